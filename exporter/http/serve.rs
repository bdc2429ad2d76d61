//! The HTTP server's accept loop: hyper's HTTP/1 connections, each under a clock that bounds how
//! long a client may take, behind a cap on the connections served at once.
//!
//! `axum::serve` bounds nothing: a few hundred clients that dribble a header or read a response a
//! byte a second exhaust memory and file descriptors, and hold a graceful shutdown for ever.
//!
//! # What hyper 1.12 does by itself (checked by experiment, not only by reading)
//! - `header_read_timeout` starts when hyper begins to read a head and partial data does not reset
//!   it, so it does close a client that sends one byte a second. But it is also hyper's only
//!   keep-alive timer: it starts again right after each response, so an idle keep-alive connection
//!   is closed after the *header* timeout. hyper has no idle timeout of its own.
//! - `graceful_shutdown` closes a connection that has sent nothing, but one holding part of a head
//!   waits for the rest: for ever, without a header timeout.
//! - Nothing bounds the time a response takes to write.
//!
//! So hyper's timer is off, and one [`ConnClock`] per connection does all of it, the way Go's
//! `net/http` does: from the connection's start a head must be complete within
//! `read_header_timeout`; after a response the connection may idle for `idle_timeout`, and once the
//! next request's first byte arrives its head must be complete within `read_header_timeout`; from a
//! complete head, the response must be handed to the kernel within `request_timeout`. The clock is
//! a pure state machine stepped with explicit instants; the edges that feed it are an IO wrapper
//! (bytes read, writes flushed), the service (head parsed) and the response body (dropped by hyper
//! once written).

use std::collections::HashSet;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::Router;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config::WebConfig;

/// What bounds the HTTP server (from [`WebConfig`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once. At the cap no more are accepted: further clients wait in the
    /// kernel's accept queue, where they cost lookout no memory and no file descriptor.
    pub max_connections: usize,
    /// A request head must be complete within this time, counted from the connection's start, or
    /// on a keep-alive connection from the next request's first byte.
    pub read_header_timeout: Duration,
    /// A keep-alive connection on which no new request has started for this long after the last
    /// response is closed.
    pub idle_timeout: Duration,
    /// From a complete request head until its response is handed to the kernel in full; past it
    /// the connection is reset, so a client reading a byte a second cannot hold it.
    pub request_timeout: Duration,
    /// How long in-flight requests may finish after shutdown starts; then everything is dropped.
    pub drain: Duration,
}

impl Limits {
    /// The drain on shutdown: enough for any scrape of a healthy lookout, and well inside the
    /// 10 s that Docker gives a container between SIGTERM and SIGKILL.
    pub const DRAIN: Duration = Duration::from_secs(3);

    /// The limits of `--web.*` settings, with the fixed [`Limits::DRAIN`].
    pub fn from_config(web: &WebConfig) -> Limits {
        Limits {
            max_connections: web.max_connections,
            read_header_timeout: web.read_header_timeout,
            idle_timeout: web.idle_timeout,
            request_timeout: web.request_timeout,
            drain: Limits::DRAIN,
        }
    }
}

/// hyper's read buffer grows up to this; requests to lookout are small GETs (and a reload POST),
/// so a larger head is answered 431 and closed. hyper's default is about 400 KiB.
const MAX_BUF_SIZE: usize = 64 * 1024;

/// How long the accept loop waits after an error that is not the client's (EMFILE, ENFILE,
/// ENOBUFS), so that it does not spin while descriptors or memory are short.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// After the drain, how long serve() waits for connection tasks to end on their own, and then
/// for the aborted ones; together well under the ~100 ms promised beyond the drain.
const DRAIN_GRACE: Duration = Duration::from_millis(40);

/// Serve `router` on `listener` until `shutdown` resolves, then drain (at most `limits.drain`).
///
/// On shutdown it stops accepting, closes at once every connection that has no request in flight
/// (idle, or still sending a head), lets the requests in flight finish for at most `limits.drain`,
/// then drops everything and returns. Accept errors are logged once per kind and retried; they
/// never end the loop, so this returns only after `shutdown`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(
        limits.max_connections.clamp(1, Semaphore::MAX_PERMITS),
    ));
    let http = Arc::new(builder());
    let (stop_tx, stop_rx) = watch::channel(None::<Instant>);
    let mut conns = JoinSet::new();
    let mut accept_errors = AcceptErrors::default();
    let mut shutdown = pin!(shutdown);

    loop {
        let accepted = async {
            // At the cap, wait for a free slot before accepting: the clients left in the kernel's
            // accept queue cost nothing here, where an accepted one costs a descriptor and a task.
            let permit = permits.clone().acquire_owned().await;
            (permit, listener.accept().await)
        };
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            (permit, accepted) = accepted => match (permit, accepted) {
                (Ok(permit), Ok((stream, peer))) => {
                    conns.spawn(connection(
                        stream,
                        peer,
                        router.clone(),
                        http.clone(),
                        limits,
                        stop_rx.clone(),
                        permit,
                    ));
                }
                (Err(_closed), _) => break, // the semaphore is never closed
                (Ok(_permit), Err(err)) => {
                    let pause = accept_errors.note(&err);
                    if pause {
                        tokio::select! {
                            () = &mut shutdown => break,
                            () = tokio::time::sleep(ACCEPT_RETRY) => {}
                        }
                    }
                }
            },
        }
    }

    drop(listener);
    let drain_until = Instant::now() + limits.drain;
    // Every connection task sees this at once: idle ones and ones mid-head close now, the others
    // at `drain_until` at the latest.
    let _ = stop_tx.send(Some(drain_until));
    let all_ended = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout_at(drain_until + DRAIN_GRACE, all_ended)
        .await
        .is_err()
    {
        tracing::warn!(
            connections = conns.len(),
            "http connections still open after the drain; dropping them"
        );
        conns.abort_all();
        let aborted = async { while conns.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(DRAIN_GRACE, aborted).await;
    }
    Ok(())
}

/// hyper's HTTP/1 settings; the timeouts are the clock's, not hyper's.
fn builder() -> http1::Builder {
    let mut http = http1::Builder::new();
    http.max_buf_size(MAX_BUF_SIZE)
        .keep_alive(true)
        .header_read_timeout(None);
    http
}

/// Accept errors, each kind logged once: under a flood, EMFILE would otherwise log thousands of
/// lines a second.
#[derive(Default)]
struct AcceptErrors {
    seen: HashSet<(Option<i32>, io::ErrorKind)>,
}

impl AcceptErrors {
    /// Log `err` if its kind is new; whether the loop should pause before the next accept (not
    /// after a client that went away before it was accepted).
    fn note(&mut self, err: &io::Error) -> bool {
        // EMFILE, ENFILE and ENOBUFS share one ErrorKind; the errno tells them apart.
        if self.seen.insert((err.raw_os_error(), err.kind())) {
            tracing::warn!(error = %err, "accepting an http connection failed; retrying (logged once per kind)");
        }
        !matches!(
            err.kind(),
            io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::Interrupted
        )
    }
}

/// Where a connection is in its request cycle; each phase has its own deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a complete request head: since the connection's start, or since the first byte
    /// after an idle spell.
    Head,
    /// A head is parsed; the handler runs and hyper writes its response.
    Request,
    /// hyper has the whole response body (it dropped it); the last bytes are being written.
    Writing,
    /// A keep-alive connection between requests.
    Idle,
}

/// What the edges of a connection report to its clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    /// The socket gave bytes.
    BytesRead,
    /// hyper parsed a request head and called the service.
    HeadParsed,
    /// hyper dropped the response body: it has all of it, buffered or written.
    BodyDone,
    /// hyper's write buffer is empty and the socket flushed.
    Flushed,
    /// The server is shutting down; requests in flight may run until `drain_until`.
    Shutdown { drain_until: Instant },
}

/// One connection's deadline, stepped by [`Event`]s at explicit instants: no I/O, no clock.
#[derive(Debug, Clone)]
struct ConnClock {
    phase: Phase,
    deadline: Instant,
    draining: Option<Instant>,
    limits: Limits,
}

impl ConnClock {
    fn new(limits: Limits, now: Instant) -> ConnClock {
        ConnClock {
            phase: Phase::Head,
            deadline: after(now, limits.read_header_timeout),
            draining: None,
            limits,
        }
    }

    fn step(&mut self, event: Event, now: Instant) {
        let next = match (self.phase, event) {
            (Phase::Idle, Event::BytesRead) => Some(Phase::Head),
            (_, Event::HeadParsed) => Some(Phase::Request),
            (Phase::Request, Event::BodyDone) => Some(Phase::Writing),
            (Phase::Writing, Event::Flushed) => Some(Phase::Idle),
            (_, Event::Shutdown { drain_until }) => {
                self.draining = Some(drain_until);
                None
            }
            _ => None,
        };
        if let Some(phase) = next {
            self.deadline = match phase {
                Phase::Head => after(now, self.limits.read_header_timeout),
                Phase::Request => after(now, self.limits.request_timeout),
                // The response must be written within the request's own time.
                Phase::Writing => self.deadline,
                Phase::Idle => after(now, self.limits.idle_timeout),
            };
            self.phase = phase;
        }
        if let Some(drain_until) = self.draining {
            let cap = match self.phase {
                // No request in flight: nothing to wait for.
                Phase::Head | Phase::Idle => now,
                Phase::Request | Phase::Writing => drain_until,
            };
            self.deadline = self.deadline.min(cap);
        }
    }

    /// When the connection must be closed.
    fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether closing at the deadline should reset the connection rather than close it in order:
    /// yes unless it is idle, so that the kernel drops what a slow reader left unread at once
    /// instead of sending it on for minutes from an orphaned socket.
    fn reset_on_expiry(&self) -> bool {
        self.phase != Phase::Idle
    }
}

/// `now + d`, or a time decades ahead where that would overflow (a huge configured timeout).
fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 86_400))
}

/// The clock and the reset flag, shared by one connection's edges. Every event happens while the
/// connection task polls hyper, so the task reads the deadline afresh after each poll.
struct Shared {
    clock: Mutex<ConnClock>,
    reset: AtomicBool,
}

impl Shared {
    fn step(&self, event: Event) {
        self.lock().step(event, Instant::now());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ConnClock> {
        // Nothing panics while holding it; a poisoned clock is still a valid clock.
        self.clock.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Serve one connection until it ends, its clock runs out, or the drain ends.
async fn connection(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    router: Router,
    http: Arc<http1::Builder>,
    limits: Limits,
    mut stop: watch::Receiver<Option<Instant>>,
    _permit: tokio::sync::OwnedSemaphorePermit,
) {
    // Responses are written whole and at once; Nagle would only delay their last segment.
    let _ = stream.set_nodelay(true);
    let shared = Arc::new(Shared {
        clock: Mutex::new(ConnClock::new(limits, Instant::now())),
        reset: AtomicBool::new(false),
    });
    let io = TokioIo::new(Watched {
        stream,
        shared: shared.clone(),
    });
    let service = ConnService {
        router,
        shared: shared.clone(),
        peer,
    };
    let mut conn = pin!(http.serve_connection(io, service));
    let mut sleep = pin!(tokio::time::sleep_until(shared.lock().deadline()));
    let mut stopping = false;

    loop {
        if !stopping {
            if let Some(drain_until) = *stop.borrow_and_update() {
                stopping = true;
                // No keep-alive after the response in flight.
                conn.as_mut().graceful_shutdown();
                shared.step(Event::Shutdown { drain_until });
            }
        }
        let run = std::future::poll_fn(|cx| {
            if let Poll::Ready(result) = conn.as_mut().poll(cx) {
                return Poll::Ready(Some(result));
            }
            // hyper may have stepped the clock during that poll.
            let deadline = shared.lock().deadline();
            if sleep.deadline() != deadline {
                sleep.as_mut().reset(deadline);
            }
            match sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            }
        });
        tokio::select! {
            ended = run => {
                match ended {
                    Some(Ok(())) => {}
                    Some(Err(err)) => tracing::debug!(error = %err, "http connection ended"),
                    None => {
                        let clock = shared.lock().clone();
                        tracing::debug!(phase = ?clock.phase, stopping, "closing an http connection at its deadline");
                        shared.reset.store(clock.reset_on_expiry(), Ordering::Relaxed);
                    }
                }
                return;
            }
            changed = stop.changed(), if !stopping => {
                if changed.is_err() {
                    return; // serve() is gone
                }
            }
        }
    }
}

/// The socket, reporting to the connection's clock what hyper reads and flushes.
struct Watched {
    stream: TcpStream,
    shared: Arc<Shared>,
}

impl Drop for Watched {
    fn drop(&mut self) {
        if self.shared.reset.load(Ordering::Relaxed) {
            // SO_LINGER 0: close sends RST and the kernel frees the unsent data now.
            let _ = self.stream.set_zero_linger();
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.shared.step(Event::BytesRead);
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_flush(cx);
        // hyper flushes the socket only once its own write buffer is empty.
        if matches!(polled, Poll::Ready(Ok(()))) {
            this.shared.step(Event::Flushed);
        }
        polled
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// The router as one connection's hyper service, reporting each parsed head to the clock.
struct ConnService {
    router: Router,
    shared: Arc<Shared>,
    peer: std::net::SocketAddr,
}

/// The client's address, in each request's extensions (the admin API trusts loopback).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::SocketAddr);

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<WatchedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        self.shared.step(Event::HeadParsed);
        req.extensions_mut().insert(Peer(self.peer));
        let mut router = self.router.clone();
        let shared = self.shared.clone();
        Box::pin(async move {
            std::future::poll_fn(|cx| {
                <Router as tower_service::Service<Request<Incoming>>>::poll_ready(&mut router, cx)
            })
            .await?;
            let response = tower_service::Service::call(&mut router, req).await?;
            Ok(response.map(|body| WatchedBody { body, shared }))
        })
    }
}

/// A response body that tells the clock when hyper drops it, i.e. when hyper holds all of it.
struct WatchedBody {
    body: Body,
    shared: Arc<Shared>,
}

impl Drop for WatchedBody {
    fn drop(&mut self) {
        self.shared.step(Event::BodyDone);
    }
}

impl http_body::Body for WatchedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
    use tokio::task::JoinHandle;

    const MS: Duration = Duration::from_millis(1);

    fn limits() -> Limits {
        Limits {
            max_connections: 64,
            read_header_timeout: 300 * MS,
            idle_timeout: 600 * MS,
            request_timeout: 5_000 * MS,
            drain: 500 * MS,
        }
    }

    /// 8 MiB: more than a small-windowed client and the server's send buffer (4 MiB at most
    /// here) can absorb, so the server is still writing while the client reads slowly.
    const BIG: usize = 8 << 20;

    fn router() -> Router {
        Router::new()
            .route("/", get(|| async { "ok\n" }))
            .route("/big", get(|| async { vec![b'x'; BIG] }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(200 * MS).await;
                    "slow\n"
                }),
            )
    }

    struct Server {
        addr: SocketAddr,
        stop: tokio::sync::oneshot::Sender<()>,
        done: JoinHandle<io::Result<()>>,
    }

    async fn start(limits: Limits) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(serve(listener, router(), limits, async {
            let _ = stopped.await;
        }));
        Server { addr, stop, done }
    }

    impl Server {
        /// Shut down; how long serve() took to return.
        async fn stop(self) -> Duration {
            let t0 = Instant::now();
            self.stop.send(()).unwrap();
            tokio::time::timeout(Duration::from_secs(10), self.done)
                .await
                .expect("serve() returned")
                .unwrap()
                .unwrap();
            t0.elapsed()
        }
    }

    async fn connect(addr: SocketAddr) -> (OwnedReadHalf, OwnedWriteHalf) {
        TcpStream::connect(addr).await.unwrap().into_split()
    }

    /// A client whose receive window stays small, so that a large response backs up in the
    /// server instead of in this client's socket buffer.
    async fn connect_small_window(addr: SocketAddr) -> (OwnedReadHalf, OwnedWriteHalf) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(16 * 1024).unwrap();
        socket.connect(addr).await.unwrap().into_split()
    }

    /// Read (discarding) until the server closes; the instant it did, or None within `limit`.
    async fn closed(r: &mut OwnedReadHalf, limit: Duration) -> Option<Instant> {
        let mut buf = [0u8; 4096];
        let read_to_end = async {
            loop {
                match r.read(&mut buf).await {
                    Ok(0) | Err(_) => return Instant::now(),
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(limit, read_to_end).await.ok()
    }

    /// Send `GET path` on a keep-alive connection and read one whole response; its body.
    async fn get_keep_alive(r: &mut OwnedReadHalf, w: &mut OwnedWriteHalf, path: &str) -> String {
        w.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .await
            .unwrap();
        read_response(r).await
    }

    /// One response with a Content-Length (what these routes send); its body.
    async fn read_response(r: &mut OwnedReadHalf) -> String {
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = tokio::time::timeout(Duration::from_secs(5), r.read(&mut buf))
                .await
                .expect("a response within 5 s")
                .unwrap();
            assert!(
                n > 0,
                "closed mid-response: {:?}",
                String::from_utf8_lossy(&raw)
            );
            raw.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&raw).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let len: usize = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .expect("content-length");
                if raw.len() >= end + 4 + len {
                    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
                    return text[end + 4..end + 4 + len].to_string();
                }
            }
        }
    }

    /// Write `bytes` one at a time, `every` apart, until the server closes.
    fn dribble(mut w: OwnedWriteHalf, bytes: &'static [u8], every: Duration) -> JoinHandle<()> {
        tokio::spawn(async move {
            for b in bytes.iter().cycle() {
                if w.write_all(&[*b]).await.is_err() {
                    return;
                }
                tokio::time::sleep(every).await;
            }
        })
    }

    /// An unfinished head that never ends.
    const UNFINISHED: &[u8] =
        b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    #[test]
    fn clock_walks_a_keep_alive_cycle() {
        let l = limits();
        let t0 = Instant::now();
        let mut c = ConnClock::new(l, t0);
        assert_eq!(c.deadline(), t0 + l.read_header_timeout);
        // Bytes of the first head do not extend its deadline.
        c.step(Event::BytesRead, t0 + 100 * MS);
        assert_eq!(c.deadline(), t0 + l.read_header_timeout);
        c.step(Event::HeadParsed, t0 + 200 * MS);
        assert_eq!(c.deadline(), t0 + 200 * MS + l.request_timeout);
        // Reading the request body or a flush of the head move nothing.
        c.step(Event::BytesRead, t0 + 250 * MS);
        c.step(Event::Flushed, t0 + 260 * MS);
        assert_eq!(c.deadline(), t0 + 200 * MS + l.request_timeout);
        // Writing the rest counts against the request's own time.
        c.step(Event::BodyDone, t0 + 300 * MS);
        assert_eq!(c.deadline(), t0 + 200 * MS + l.request_timeout);
        assert!(c.reset_on_expiry());
        c.step(Event::Flushed, t0 + 400 * MS);
        assert_eq!(c.deadline(), t0 + 400 * MS + l.idle_timeout);
        assert!(!c.reset_on_expiry());
        // The next request's first byte starts its header clock.
        c.step(Event::BytesRead, t0 + 700 * MS);
        assert_eq!(c.deadline(), t0 + 700 * MS + l.read_header_timeout);
        c.step(Event::BytesRead, t0 + 800 * MS);
        assert_eq!(c.deadline(), t0 + 700 * MS + l.read_header_timeout);
        // A pipelined head goes from idle straight to a request.
        let mut p = ConnClock::new(l, t0);
        p.step(Event::HeadParsed, t0);
        p.step(Event::BodyDone, t0);
        p.step(Event::Flushed, t0 + MS);
        p.step(Event::HeadParsed, t0 + 2 * MS);
        assert_eq!(p.deadline(), t0 + 2 * MS + l.request_timeout);
    }

    #[test]
    fn clock_on_shutdown_closes_what_has_no_request_and_caps_the_rest() {
        let l = limits();
        let t0 = Instant::now();
        let drain_until = t0 + Duration::from_secs(1) + l.drain;
        let at = t0 + Duration::from_secs(1);

        let mut head = ConnClock::new(l, t0);
        head.step(Event::BytesRead, t0 + 100 * MS);
        head.step(Event::Shutdown { drain_until }, t0 + 200 * MS);
        assert_eq!(head.deadline(), t0 + 200 * MS);

        let mut idle = ConnClock::new(l, t0);
        for e in [Event::HeadParsed, Event::BodyDone, Event::Flushed] {
            idle.step(e, t0);
        }
        idle.step(Event::Shutdown { drain_until }, t0 + 300 * MS);
        assert_eq!(idle.deadline(), t0 + 300 * MS);

        let mut busy = ConnClock::new(l, t0);
        busy.step(Event::HeadParsed, at);
        busy.step(Event::Shutdown { drain_until }, at);
        assert_eq!(busy.deadline(), drain_until);
        // Finishing within the drain closes it at once.
        busy.step(Event::BodyDone, at + 10 * MS);
        assert_eq!(busy.deadline(), drain_until);
        busy.step(Event::Flushed, at + 20 * MS);
        assert_eq!(busy.deadline(), at + 20 * MS);

        // A request due before the drain ends keeps its own deadline.
        let mut short = ConnClock::new(
            Limits {
                request_timeout: 100 * MS,
                ..l
            },
            t0,
        );
        short.step(Event::HeadParsed, at);
        short.step(Event::Shutdown { drain_until }, at);
        assert_eq!(short.deadline(), at + 100 * MS);
    }

    #[test]
    fn a_huge_timeout_does_not_overflow() {
        let l = Limits {
            read_header_timeout: Duration::MAX,
            idle_timeout: Duration::MAX,
            ..limits()
        };
        let t0 = Instant::now();
        let mut c = ConnClock::new(l, t0);
        c.step(Event::HeadParsed, t0);
        assert!(c.deadline() > t0);
    }

    #[test]
    fn limits_come_from_the_web_config() {
        let web = WebConfig {
            max_connections: 7,
            read_header_timeout: Duration::from_secs(2),
            ..WebConfig::default()
        };
        let l = Limits::from_config(&web);
        assert_eq!(l.max_connections, 7);
        assert_eq!(l.read_header_timeout, Duration::from_secs(2));
        assert_eq!(l.idle_timeout, web.idle_timeout);
        assert_eq!(l.request_timeout, web.request_timeout);
        assert_eq!(l.drain, Duration::from_secs(3));
    }

    #[test]
    fn accept_errors_are_noted_once_per_kind() {
        let mut e = AcceptErrors::default();
        let emfile = || io::Error::from_raw_os_error(libc::EMFILE);
        assert!(e.note(&emfile()), "EMFILE pauses the loop");
        assert!(e.note(&emfile()));
        assert!(e.note(&io::Error::from_raw_os_error(libc::ENFILE)));
        assert!(!e.note(&io::Error::from(io::ErrorKind::ConnectionAborted)));
        assert_eq!(e.seen.len(), 3, "EMFILE once, ENFILE once, aborted once");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dribbling_client_is_closed_after_the_header_timeout() {
        let s = start(limits()).await;
        let t0 = Instant::now();
        let (mut r, w) = connect(s.addr).await;
        let dribbler = dribble(w, UNFINISHED, 100 * MS);
        let at = closed(&mut r, Duration::from_secs(3))
            .await
            .expect("closed")
            - t0;
        assert!(
            at >= 290 * MS && at < 700 * MS,
            "closed after {at:?}, want ~300 ms"
        );
        dribbler.abort();
        // And the server still serves.
        let (mut r, mut w) = connect(s.addr).await;
        assert_eq!(get_keep_alive(&mut r, &mut w, "/").await, "ok\n");
        s.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_silent_client_is_closed_after_the_header_timeout() {
        let s = start(limits()).await;
        let t0 = Instant::now();
        let (mut r, _w) = connect(s.addr).await;
        let at = closed(&mut r, Duration::from_secs(3))
            .await
            .expect("closed")
            - t0;
        assert!(
            at >= 290 * MS && at < 700 * MS,
            "closed after {at:?}, want ~300 ms"
        );
        s.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
        // Idle (600 ms) longer than the header timeout (300 ms): hyper's own timer would close
        // this connection after 300 ms.
        let s = start(limits()).await;
        let (mut r, mut w) = connect(s.addr).await;
        assert_eq!(get_keep_alive(&mut r, &mut w, "/").await, "ok\n");
        tokio::time::sleep(450 * MS).await;
        assert_eq!(
            get_keep_alive(&mut r, &mut w, "/").await,
            "ok\n",
            "kept alive past the header timeout"
        );
        let t0 = Instant::now();
        let at = closed(&mut r, Duration::from_secs(3))
            .await
            .expect("closed")
            - t0;
        assert!(
            at >= 550 * MS && at < 1_000 * MS,
            "closed {at:?} after the response, want ~600 ms"
        );
        s.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_head_started_after_idling_gets_the_header_timeout() {
        let s = start(limits()).await;
        let (mut r, mut w) = connect(s.addr).await;
        assert_eq!(get_keep_alive(&mut r, &mut w, "/").await, "ok\n");
        tokio::time::sleep(200 * MS).await;
        let t0 = Instant::now();
        let dribbler = dribble(w, UNFINISHED, 100 * MS);
        let at = closed(&mut r, Duration::from_secs(3))
            .await
            .expect("closed")
            - t0;
        assert!(
            at >= 290 * MS && at < 700 * MS,
            "closed {at:?} after the first byte, want ~300 ms"
        );
        dribbler.abort();
        s.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_the_cap_a_third_connection_waits_until_one_closes() {
        let l = Limits {
            max_connections: 2,
            read_header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(10),
            ..limits()
        };
        let s = start(l).await;
        let (mut r1, mut w1) = connect(s.addr).await;
        assert_eq!(get_keep_alive(&mut r1, &mut w1, "/").await, "ok\n");
        let (_r2, mut w2) = connect(s.addr).await;
        w2.write_all(b"GET / HT").await.unwrap();
        tokio::time::sleep(100 * MS).await;

        // The kernel completes the handshake, but the server does not accept it.
        let (mut r3, mut w3) = connect(s.addr).await;
        w3.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let mut byte = [0u8; 1];
        let early = tokio::time::timeout(400 * MS, r3.peek(&mut byte)).await;
        assert!(early.is_err(), "served beyond the cap: {early:?}");

        let t0 = Instant::now();
        drop((r1, w1));
        let body = read_response(&mut r3).await;
        assert_eq!(body, "ok\n");
        assert!(
            t0.elapsed() < 300 * MS,
            "served {:?} after a slot freed",
            t0.elapsed()
        );
        s.stop().await;
    }

    /// Read `BIG` bytes one byte per `every` for `for_`, then as fast as possible; how many bytes
    /// came before the server ended the stream, and whether it did within 5 s of going fast.
    async fn slow_read(r: &mut OwnedReadHalf, every: Duration, for_: Duration) -> (usize, bool) {
        let t0 = Instant::now();
        let mut total = 0;
        let mut one = [0u8; 1];
        while t0.elapsed() < for_ {
            match r.read(&mut one).await {
                Ok(0) | Err(_) => return (total, true),
                Ok(n) => total += n,
            }
            tokio::time::sleep(every).await;
        }
        let mut buf = vec![0u8; 64 * 1024];
        let rest = async {
            loop {
                match r.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => total += n,
                }
            }
        };
        let ended = tokio::time::timeout(Duration::from_secs(5), rest)
            .await
            .is_ok();
        (total, ended)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_reader_of_a_large_response_is_cut_after_the_request_timeout() {
        let l = Limits {
            max_connections: 1,
            request_timeout: 800 * MS,
            ..limits()
        };
        let s = start(l).await;
        let (mut r, mut w) = connect_small_window(s.addr).await;
        w.write_all(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let t0 = Instant::now();
        // The only slot is taken: a scrape waits until the slow reader is cut.
        let addr = s.addr;
        let scrape = tokio::spawn(async move {
            tokio::time::sleep(100 * MS).await;
            let (mut r, mut w) = connect(addr).await;
            let body = get_keep_alive(&mut r, &mut w, "/").await;
            (body, t0.elapsed())
        });
        let (total, ended) = slow_read(&mut r, 50 * MS, 1_500 * MS).await;
        assert!(ended, "the slow reader's connection was never ended");
        assert!(
            total < BIG,
            "the whole response arrived ({total} bytes): not cut"
        );
        let (body, at) = scrape.await.unwrap();
        assert_eq!(body, "ok\n");
        assert!(
            at >= 750 * MS && at < 1_400 * MS,
            "the waiting scrape was served after {at:?}, want ~800 ms"
        );
        s.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_returns_within_the_drain_whatever_the_clients_do() {
        let l = Limits {
            read_header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            ..limits()
        };
        let s = start(l).await;
        let (mut dribbler_r, w) = connect(s.addr).await;
        let dribbler = dribble(w, UNFINISHED, 100 * MS);
        let (mut silent_r, _silent_w) = connect(s.addr).await;
        let (mut idle_r, mut idle_w) = connect(s.addr).await;
        assert_eq!(get_keep_alive(&mut idle_r, &mut idle_w, "/").await, "ok\n");
        let (mut slow_r, mut slow_w) = connect_small_window(s.addr).await;
        slow_w
            .write_all(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let slow =
            tokio::spawn(
                async move { slow_read(&mut slow_r, 100 * MS, Duration::from_secs(3)).await },
            );
        tokio::time::sleep(300 * MS).await;

        let t0 = Instant::now();
        let (stopped, idle_at, dribbler_at, silent_at) = tokio::join!(
            s.stop(),
            closed(&mut idle_r, Duration::from_secs(3)),
            closed(&mut dribbler_r, Duration::from_secs(3)),
            closed(&mut silent_r, Duration::from_secs(3)),
        );
        for (who, at) in [
            ("idle", idle_at),
            ("dribbler", dribbler_at),
            ("silent", silent_at),
        ] {
            let at = at.unwrap_or_else(|| panic!("{who} not closed")) - t0;
            assert!(
                at < 100 * MS,
                "{who} closed {at:?} after shutdown, want at once"
            );
        }
        // The slow reader is in flight: it has the drain, and no more.
        assert!(
            stopped >= 450 * MS,
            "returned after {stopped:?}, before the drain ended"
        );
        assert!(
            stopped < l.drain + 150 * MS,
            "returned after {stopped:?}, drain {:?}",
            l.drain
        );
        let (total, ended) = slow.await.unwrap();
        assert!(
            ended && total < BIG,
            "slow reader: {total} bytes, ended {ended}"
        );
        dribbler.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_in_flight_request_completes_during_the_drain() {
        let l = Limits {
            drain: Duration::from_secs(3),
            ..limits()
        };
        let s = start(l).await;
        let (mut r, mut w) = connect(s.addr).await;
        w.write_all(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(50 * MS).await;
        let (stopped, body) = tokio::join!(s.stop(), read_response(&mut r));
        assert_eq!(body, "slow\n");
        assert!(
            stopped < 1_500 * MS,
            "returned {stopped:?} after shutdown: should not wait out the drain"
        );
        assert!(
            closed(&mut r, Duration::from_secs(1)).await.is_some(),
            "no keep-alive after shutdown"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bad_input_gets_an_error_or_a_close_never_a_panic() {
        let s = start(limits()).await;
        let oversize = format!(
            "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
            "a".repeat(100_000)
        );
        let inputs: Vec<Vec<u8>> = vec![
            (0..=255u8).cycle().take(10_000).collect(),
            oversize.into_bytes(),
            b"BREW / HTCPCP/1.0\r\n\r\n".to_vec(),
            b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n".to_vec(),
            b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n".to_vec(),
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
            b"GET /\xff\xfe HTTP/1.1\r\nHost: \xff\r\n\r\n".to_vec(),
            b"\r\n\r\n\r\n".to_vec(),
        ];
        for input in inputs {
            let (mut r, mut w) = connect(s.addr).await;
            let _ = w.write_all(&input).await;
            let at = closed(&mut r, Duration::from_secs(2)).await;
            assert!(
                at.is_some(),
                "not closed after {:?}",
                String::from_utf8_lossy(&input[..input.len().min(40)])
            );
        }
        let (mut r, mut w) = connect(s.addr).await;
        assert_eq!(get_keep_alive(&mut r, &mut w, "/").await, "ok\n");
        s.stop().await;
    }
}
