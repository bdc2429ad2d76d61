//! A tiny HTTP server on `127.0.0.1:0` that records every POST (path, headers, body) and
//! answers with a status the test chooses (200 unless told). It runs on its own thread and
//! runtime, so sync and async tests alike can use it; stopped when dropped.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Posted {
    /// The path and query (`/hook?x=1`).
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Posted {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("POST {} body is not JSON ({e}): {}", self.path, self.text())
        })
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The answer the sink gives.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Wait this long before answering (to provoke timeouts).
    pub delay: Duration,
}

impl Default for Answer {
    fn default() -> Answer {
        Answer {
            status: 200,
            headers: vec![],
            body: String::new(),
            delay: Duration::ZERO,
        }
    }
}

#[derive(Default)]
struct State {
    posts: Mutex<Vec<Posted>>,
    answer: Mutex<Answer>,
}

/// The running sink.
pub struct HttpSink {
    /// `127.0.0.1:P`.
    pub addr: String,
    /// `http://127.0.0.1:P`.
    pub url: String,
    state: Arc<State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

async fn record(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method == Method::POST {
        state.posts.lock().unwrap().push(Posted {
            path: uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| uri.path().to_string()),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
                .collect(),
            body: body.to_vec(),
        });
    }
    let answer = state.answer.lock().unwrap().clone();
    if !answer.delay.is_zero() {
        tokio::time::sleep(answer.delay).await;
    }
    let mut resp = (
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        answer.body,
    )
        .into_response();
    for (k, v) in answer.headers {
        if let (Ok(k), Ok(v)) = (
            axum::http::HeaderName::try_from(k),
            axum::http::HeaderValue::try_from(v),
        ) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

impl HttpSink {
    /// A sink answering 200.
    pub fn start() -> HttpSink {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap().to_string();
        let state = Arc::new(State::default());
        let app = axum::Router::new()
            .fallback(record)
            .with_state(state.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                tokio::spawn(async move {
                    let _ = axum::serve(listener, app).await;
                });
                let _ = stopped.await;
            });
            // Dropping the runtime ends the server and every open connection.
        });
        HttpSink {
            url: format!("http://{addr}"),
            addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// A sink that answers every request with `status` and `body`.
    pub fn answering(status: u16, body: &str) -> HttpSink {
        let s = HttpSink::start();
        s.set_answer(Answer {
            status,
            body: body.to_string(),
            ..Answer::default()
        });
        s
    }

    pub fn set_answer(&self, answer: Answer) {
        *self.state.answer.lock().unwrap() = answer;
    }

    /// Every POST so far, in arrival order.
    pub fn posts(&self) -> Vec<Posted> {
        self.state.posts.lock().unwrap().clone()
    }

    /// The POSTs to `path` (path and query).
    pub fn posts_to(&self, path: &str) -> Vec<Posted> {
        self.posts()
            .into_iter()
            .filter(|p| p.path == path)
            .collect()
    }

    /// Wait (blocking, polling every 50 ms) until `f` of the posts so far gives `Some`.
    pub fn wait_for<T>(
        &self,
        timeout: Duration,
        mut f: impl FnMut(&[Posted]) -> Option<T>,
    ) -> Option<T> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(v) = f(&self.posts()) {
                return Some(v);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// [`HttpSink::wait_for`] for async tests: polls with `tokio::time::sleep`.
    pub async fn wait_for_async<T>(
        &self,
        timeout: Duration,
        mut f: impl FnMut(&[Posted]) -> Option<T>,
    ) -> Option<T> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(v) = f(&self.posts()) {
                return Some(v);
            }
            if Instant::now() >= end {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for HttpSink {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
