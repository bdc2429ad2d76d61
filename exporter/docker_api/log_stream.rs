//! Docker's logs endpoint read with bounded memory: just enough HTTP/1.1 (over the unix socket
//! or tcp) to follow `GET /containers/{id}/logs`, and decoders for its two stream formats. The
//! same small client reads the inspect and list answers whole ([`Response::bytes`]), which
//! lookout parses leniently itself.
//!
//! bollard's decoder holds a TTY container's raw stream until a newline, so a long line (or a
//! progress bar that never writes one) costs its length in memory. Here every buffer has a
//! fixed size whatever the container writes: a socket read is at most [`READ_SIZE`] bytes, and
//! each [`LogChunk`] is a slice of one read. Callers see the same chunks for both formats:
//!
//! - **Multiplexed** (no TTY): 8-byte headers (stream, u32 BE length) before each message.
//!   A frame's payload is yielded as it arrives, in pieces if it spans reads.
//! - **Raw** (`docker run -t`): the TTY's bytes, all on stdout, with no framing. Each message
//!   (a line, or a 16 KiB part of a longer one) starts with its timestamp.
//!
//! With `timestamps=1` each message starts with `<RFC 3339 nano> `: the first chunk of a message
//! carries that time in [`LogChunk::time_nano`] (the prefix removed), and further chunks of the
//! same message (`None`) continue it. In the raw format the 16 KiB parts of a long line repeat
//! the line's timestamp; those repeats are recognised at the part boundary and removed, so the
//! line's text is what the container wrote. Which format a response uses is not in its headers
//! before API 1.42 (Docker 20.10 sends no `Content-Type` at all), so the caller says, from the
//! container's `Config.Tty`.

use std::io;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::Stream;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{LogChunk, LogStream};
use crate::docker_api::parse_rfc3339_nanos;

/// The most bytes read from the socket at once, and so the most one chunk holds.
pub const READ_SIZE: usize = 64 * 1024;
/// The longest status line and headers accepted.
const HEAD_MAX: usize = 16 * 1024;
/// The most of an error response's body read for its message.
const ERROR_BODY_MAX: usize = 64 * 1024;
/// The longest chunk-size line (with extensions) accepted.
const SIZE_LINE_MAX: usize = 1024;
/// Bytes of a message searched for its timestamp's end (Docker's is 30 bytes and a space).
const TS_MAX: usize = 40;
/// Content bytes of each part Docker's log copier splits a long line into.
const PART: usize = 16 * 1024;

/// What can go wrong reading the logs endpoint.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("malformed response from the daemon: {0}")]
    Malformed(String),
    #[error("{status}: {message}")]
    Status { status: u16, message: String },
}

/// The two formats of the logs endpoint's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// 8-byte frame headers name each message's stream (containers without a TTY).
    Multiplexed,
    /// The TTY's output as is, all on stdout.
    Raw,
}

trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

/// A response whose status and headers were read; its body is read as it is consumed.
pub struct Response {
    /// `Content-Type`, if the daemon sent one.
    pub content_type: Option<String>,
    body: Body,
}

/// Send `GET path` to the daemon at `host` (`unix:///path` or `tcp://host:port`) and read the
/// response's head. A status other than 2xx is an error carrying the daemon's message.
pub async fn get(host: &str, path: &str) -> Result<Response, HttpError> {
    let (mut conn, authority): (Box<dyn Conn>, &str) = if let Some(p) = host.strip_prefix("unix://")
    {
        (
            Box::new(tokio::net::UnixStream::connect(p).await?),
            "docker",
        )
    } else {
        let a = host
            .strip_prefix("tcp://")
            .or_else(|| host.strip_prefix("http://"))
            .unwrap_or(host)
            .trim_end_matches('/');
        (Box::new(tokio::net::TcpStream::connect(a).await?), a)
    };
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: lookout\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(req.as_bytes()).await?;
    conn.flush().await?;
    read_response(conn).await
}

/// A path segment with everything but unreserved characters percent-encoded.
pub fn escape(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn read_response(mut conn: Box<dyn Conn>) -> Result<Response, HttpError> {
    let mut buf = BytesMut::with_capacity(4096);
    let end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        if buf.len() >= HEAD_MAX {
            return Err(HttpError::Malformed(format!(
                "response head longer than {HEAD_MAX} bytes"
            )));
        }
        buf.reserve(4096);
        let room = HEAD_MAX + 4 - buf.len();
        let n = conn.read_buf(&mut (&mut buf).limit(room)).await?;
        if n == 0 {
            return Err(HttpError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before the response head",
            )));
        }
    };
    let head = buf.split_to(end + 4);
    let head = String::from_utf8_lossy(&head[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|s| s.get(2..5))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| HttpError::Malformed(format!("status line {status_line:?}")))?;
    let (mut content_type, mut chunked, mut length) = (None, false, None);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-type") {
            content_type = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<u64>()
                    .map_err(|_| HttpError::Malformed(format!("Content-Length {value:?}")))?,
            );
        }
    }
    let framing = if chunked {
        Framing::Chunked(Dechunker::default())
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::Eof
    };
    let mut body = Body {
        conn,
        framing,
        rbuf: BytesMut::new(),
        input: buf.freeze(),
        eof: false,
    };
    if !(200..300).contains(&status) {
        let mut text = Vec::new();
        while text.len() < ERROR_BODY_MAX {
            match body.next().await {
                Ok(Some(b)) => text.extend_from_slice(&b[..b.len().min(ERROR_BODY_MAX)]),
                _ => break,
            }
        }
        let message = serde_json::from_slice::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("message")?.as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&text).trim().to_string());
        return Err(HttpError::Status { status, message });
    }
    Ok(Response { content_type, body })
}

impl Response {
    /// The whole body, for the small JSON answers (inspect, list) that lookout parses itself
    /// so that one value it does not know never fails the whole answer. More than `max` bytes
    /// is an error.
    pub async fn bytes(mut self, max: usize) -> Result<Bytes, HttpError> {
        let mut out = BytesMut::new();
        while let Some(b) = self.body.next().await? {
            if out.len() + b.len() > max {
                return Err(HttpError::Malformed(format!(
                    "response body larger than {max} bytes"
                )));
            }
            out.extend_from_slice(&b);
        }
        Ok(out.freeze())
    }

    /// At most the body's first `max` bytes: reading stops there, whatever follows. The flag
    /// says whether `max` was reached (the body may have been longer).
    pub async fn prefix(mut self, max: usize) -> Result<(Bytes, bool), HttpError> {
        let mut out = BytesMut::new();
        while out.len() < max {
            let Some(b) = self.body.next().await? else {
                return Ok((out.freeze(), false));
            };
            let take = b.len().min(max - out.len());
            out.extend_from_slice(&b[..take]);
        }
        Ok((out.freeze(), true))
    }

    /// The body as log chunks, in the given format.
    pub fn chunks(self, format: Format) -> impl Stream<Item = Result<LogChunk, HttpError>> + Send {
        let reader = Reader {
            body: self.body,
            decoder: LogDecoder::new(format),
            input: Bytes::new(),
        };
        futures_util::stream::unfold(Some(reader), |state| async move {
            let mut r = state?;
            loop {
                if let Some(c) = r.decoder.next(&mut r.input) {
                    return Some((Ok(c), Some(r)));
                }
                // Let go of the last read before the next, so its buffer can be reused.
                r.input = Bytes::new();
                match r.body.next().await {
                    Ok(Some(b)) => r.input = b,
                    Ok(None) => return r.decoder.finish().map(|c| (Ok(c), None)),
                    Err(e) => return Some((Err(e), None)),
                }
            }
        })
    }
}

struct Reader {
    body: Body,
    decoder: LogDecoder,
    input: Bytes,
}

/// How the body's end is known.
enum Framing {
    Chunked(Dechunker),
    /// Bytes left of a `Content-Length` body.
    Length(u64),
    /// Until the connection closes.
    Eof,
}

/// A response body, read one socket read at a time.
struct Body {
    conn: Box<dyn Conn>,
    framing: Framing,
    /// The read buffer, reused once the previous read's chunks are dropped.
    rbuf: BytesMut,
    /// Bytes read but not yet decoded.
    input: Bytes,
    eof: bool,
}

impl Body {
    /// The next piece of the body (at most [`READ_SIZE`] bytes); None at its end.
    async fn next(&mut self) -> Result<Option<Bytes>, HttpError> {
        loop {
            if !self.input.is_empty() || self.eof {
                match &mut self.framing {
                    Framing::Chunked(d) => {
                        if let Some(b) = d.next(&mut self.input)? {
                            return Ok(Some(b));
                        }
                        if d.is_done() {
                            return Ok(None);
                        }
                    }
                    Framing::Length(left) => {
                        if *left == 0 {
                            return Ok(None);
                        }
                        if !self.input.is_empty() {
                            let n = self.input.len().min(*left as usize);
                            *left -= n as u64;
                            return Ok(Some(self.input.split_to(n)));
                        }
                    }
                    Framing::Eof => {
                        if !self.input.is_empty() {
                            return Ok(Some(std::mem::take(&mut self.input)));
                        }
                    }
                }
                if self.eof {
                    return match self.framing {
                        Framing::Eof => Ok(None),
                        _ => Err(HttpError::Io(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "connection closed inside the response body",
                        ))),
                    };
                }
            }
            if let Framing::Length(0) = self.framing {
                return Ok(None);
            }
            self.input = Bytes::new();
            self.rbuf.reserve(READ_SIZE);
            let n = self
                .conn
                .read_buf(&mut (&mut self.rbuf).limit(READ_SIZE))
                .await?;
            if n == 0 {
                self.eof = true;
            }
            self.input = self.rbuf.split().freeze();
        }
    }
}

/// Decodes `Transfer-Encoding: chunked`, holding at most one size line.
#[derive(Debug, Default)]
pub(crate) struct Dechunker {
    state: ChunkState,
    /// The chunk-size line read so far.
    line: Vec<u8>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum ChunkState {
    #[default]
    Size,
    /// Bytes left of the current chunk's data.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer lines after the last chunk; whether the current line has had a byte other than CR.
    Trailer {
        text: bool,
    },
    Done,
}

impl Dechunker {
    /// Body bytes from the front of `input` (consumed), a slice of it; None when `input` is
    /// used up or the body ended.
    pub(crate) fn next(&mut self, input: &mut Bytes) -> Result<Option<Bytes>, HttpError> {
        while !input.is_empty() {
            match self.state {
                ChunkState::Size => {
                    let nl = input.iter().position(|&b| b == b'\n');
                    let take = nl.map_or(input.len(), |p| p + 1);
                    if self.line.len() + take > SIZE_LINE_MAX {
                        return Err(HttpError::Malformed("chunk size line too long".into()));
                    }
                    self.line.extend_from_slice(&input[..take]);
                    input.advance(take);
                    if nl.is_none() {
                        continue;
                    }
                    let text = String::from_utf8_lossy(&self.line);
                    let digits = text.split([';', '\r', '\n']).next().unwrap_or("").trim();
                    let size = u64::from_str_radix(digits, 16).map_err(|_| {
                        HttpError::Malformed(format!("chunk size {:?}", text.trim_end()))
                    })?;
                    self.line.clear();
                    self.state = if size == 0 {
                        ChunkState::Trailer { text: false }
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(left) => {
                    let n = input.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let data = input.split_to(n);
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                    return Ok(Some(data));
                }
                ChunkState::DataEnd => {
                    let b = input[0];
                    input.advance(1);
                    match b {
                        b'\r' => {}
                        b'\n' => self.state = ChunkState::Size,
                        _ => return Err(HttpError::Malformed("no CRLF after chunk data".into())),
                    }
                }
                ChunkState::Trailer { text } => {
                    let b = input[0];
                    input.advance(1);
                    self.state = match b {
                        b'\n' if !text => ChunkState::Done,
                        b'\n' => ChunkState::Trailer { text: false },
                        b'\r' => ChunkState::Trailer { text },
                        _ => ChunkState::Trailer { text: true },
                    };
                }
                ChunkState::Done => {
                    // Nothing follows the last chunk on this connection (Connection: close).
                    input.clear();
                }
            }
        }
        Ok(None)
    }

    /// Whether the last chunk and its trailer were read.
    pub(crate) fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }
}

/// Where the log decoder is in its input.
#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// Multiplexed: reading a frame's 8-byte header into `held`.
    FrameHeader,
    /// At a message's start, reading its timestamp into `held`.
    Head(Message),
    /// Inside a message's text.
    Text(Message),
    /// Raw: at the boundary of a long line's parts, where Docker repeats the line's timestamp.
    PartHead,
}

/// The message being read.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Message {
    /// None for a frame to drop (stdin, or an unknown stream type).
    stream: Option<LogStream>,
    /// Multiplexed: bytes left of the frame; raw messages end at a newline.
    left: Option<u64>,
}

/// Turns the logs endpoint's body into [`LogChunk`]s, holding at most a frame header or a
/// timestamp (under [`TS_MAX`] bytes) between inputs.
#[derive(Debug)]
pub(crate) struct LogDecoder {
    format: Format,
    state: State,
    /// A frame header or a message's head, gathered across inputs.
    held: Vec<u8>,
    /// The current message's timestamp, until its first chunk is yielded.
    time: Option<i64>,
    /// Raw: the current line's timestamp prefix as sent (with its space), empty when the line
    /// had none or its parts could not be followed.
    line_ts: Vec<u8>,
    /// Raw: text bytes of the current line since its last timestamp.
    part_len: usize,
}

const RAW: Message = Message {
    stream: Some(LogStream::Stdout),
    left: None,
};

impl LogDecoder {
    pub(crate) fn new(format: Format) -> LogDecoder {
        LogDecoder {
            format,
            state: match format {
                Format::Multiplexed => State::FrameHeader,
                Format::Raw => State::Head(RAW),
            },
            held: Vec::with_capacity(TS_MAX),
            time: None,
            line_ts: Vec::with_capacity(TS_MAX),
            part_len: 0,
        }
    }

    /// The next chunk decoded from the front of `input` (consumed); None when `input` is used up.
    pub(crate) fn next(&mut self, input: &mut Bytes) -> Option<LogChunk> {
        loop {
            match self.state {
                State::FrameHeader => {
                    let take = (8 - self.held.len()).min(input.len());
                    if take == 0 {
                        return None;
                    }
                    self.held.extend_from_slice(&input[..take]);
                    input.advance(take);
                    if self.held.len() < 8 {
                        return None;
                    }
                    let stream = match self.held[0] {
                        1 => Some(LogStream::Stdout),
                        2 => Some(LogStream::Stderr),
                        _ => None,
                    };
                    let len = u32::from_be_bytes([
                        self.held[4],
                        self.held[5],
                        self.held[6],
                        self.held[7],
                    ]);
                    self.held.clear();
                    if len > 0 {
                        self.state = State::Head(Message {
                            stream,
                            left: Some(u64::from(len)),
                        });
                    }
                }
                State::Head(mut m) => {
                    // The head ends at the timestamp's space, a newline (raw), the frame's
                    // end, or after TS_MAX bytes.
                    let mut room = TS_MAX - self.held.len();
                    if let Some(l) = m.left {
                        room = room.min(usize::try_from(l).unwrap_or(usize::MAX));
                    }
                    let avail = &input[..input.len().min(room)];
                    let stop = avail
                        .iter()
                        .position(|&b| b == b' ' || (m.left.is_none() && b == b'\n'));
                    let take = stop.map_or(avail.len(), |p| p + 1);
                    self.held.extend_from_slice(&avail[..take]);
                    input.advance(take);
                    if let Some(l) = &mut m.left {
                        *l -= take as u64;
                    }
                    let complete = stop.is_some() || self.held.len() == TS_MAX || m.left == Some(0);
                    if !complete {
                        self.state = State::Head(m);
                        return None;
                    }
                    let time = match self.held.split_last() {
                        Some((b' ', ts)) => parse_rfc3339_nanos(ts),
                        _ => None,
                    };
                    self.line_ts.clear();
                    self.part_len = 0;
                    let ended = m.left.is_none() && self.held.last() == Some(&b'\n');
                    self.state = State::Text(m);
                    if time.is_some() {
                        self.time = time;
                        if self.format == Format::Raw {
                            self.line_ts.extend_from_slice(&self.held);
                        }
                        self.held.clear();
                        continue;
                    }
                    // No timestamp: the head is text.
                    self.time = None;
                    let text = Bytes::copy_from_slice(&self.held);
                    self.held.clear();
                    if ended {
                        self.state = State::Head(RAW);
                    }
                    if let Some(stream) = m.stream {
                        return Some(LogChunk {
                            stream,
                            time_nano: None,
                            bytes: text,
                        });
                    }
                }
                State::Text(mut m) => {
                    if m.left == Some(0) {
                        self.state = State::FrameHeader;
                        // A message with only a timestamp still moves the reader's cursor.
                        match (m.stream, self.time.take()) {
                            (Some(stream), Some(t)) => {
                                return Some(LogChunk {
                                    stream,
                                    time_nano: Some(t),
                                    bytes: Bytes::new(),
                                })
                            }
                            _ => continue,
                        }
                    }
                    if input.is_empty() {
                        return None;
                    }
                    let mut n = input.len();
                    if let Some(l) = m.left {
                        n = n.min(usize::try_from(l).unwrap_or(usize::MAX));
                    }
                    let mut next = State::Text(m);
                    if m.left.is_none() {
                        let following = !self.line_ts.is_empty();
                        if following {
                            n = n.min(PART - self.part_len);
                        }
                        if let Some(p) = input[..n].iter().position(|&b| b == b'\n') {
                            n = p + 1;
                            next = State::Head(RAW);
                        } else if following {
                            self.part_len += n;
                            if self.part_len == PART {
                                next = State::PartHead;
                            }
                        }
                    }
                    let bytes = input.split_to(n);
                    if let Some(l) = &mut m.left {
                        *l -= n as u64;
                        next = State::Text(m);
                    }
                    self.state = next;
                    if let Some(stream) = m.stream {
                        return Some(LogChunk {
                            stream,
                            time_nano: self.time.take(),
                            bytes,
                        });
                    }
                }
                State::PartHead => {
                    let want = &self.line_ts[self.held.len()..];
                    let same = want
                        .iter()
                        .zip(input.iter())
                        .take_while(|(a, b)| a == b)
                        .count();
                    if same == want.len() {
                        // The line's timestamp again: the next part of the same line.
                        input.advance(same);
                        self.held.clear();
                        self.part_len = 0;
                        self.state = State::Text(RAW);
                        continue;
                    }
                    if same == input.len() {
                        self.held.extend_from_slice(&input[..same]);
                        input.advance(same);
                        return None;
                    }
                    // Not a part boundary after all: what was held is text, and the rest of
                    // this line is passed on as it comes.
                    self.held.extend_from_slice(&input[..same]);
                    input.advance(same);
                    self.line_ts.clear();
                    self.state = State::Text(RAW);
                    let text = Bytes::copy_from_slice(&self.held);
                    self.held.clear();
                    if !text.is_empty() {
                        return Some(LogChunk {
                            stream: LogStream::Stdout,
                            time_nano: None,
                            bytes: text,
                        });
                    }
                }
            }
        }
    }

    /// The body ended: bytes held back (a head without its end) are text.
    pub(crate) fn finish(&mut self) -> Option<LogChunk> {
        let stream = match self.state {
            State::Head(m) => m.stream?,
            State::PartHead => LogStream::Stdout,
            _ => return None,
        };
        if self.held.is_empty() {
            return None;
        }
        let bytes = Bytes::copy_from_slice(&self.held);
        self.held.clear();
        Some(LogChunk {
            stream,
            time_nano: None,
            bytes,
        })
    }
}

/// The format of a logs body that is already read: as its `Content-Type` says when that names
/// the multiplexed stream (API 1.42 and later), else by its first bytes. Before 1.42 the daemon
/// calls every logs body a raw stream, so that name proves nothing; a multiplexed body starts
/// with a frame header (stream 0, 1 or 2, then three zero bytes), which a TTY's text never does
/// (and with `timestamps=1` a raw body starts with a digit).
pub fn sniff_format(content_type: Option<&str>, body: &[u8]) -> Format {
    if content_type.is_some_and(|t| t.contains("multiplexed-stream")) {
        return Format::Multiplexed;
    }
    match body {
        [0..=2, 0, 0, 0, ..] => Format::Multiplexed,
        _ => Format::Raw,
    }
}

/// Used by tests to feed a decoder without a socket.
#[cfg(test)]
pub(crate) fn decode_all(format: Format, inputs: &[&[u8]]) -> Vec<LogChunk> {
    let mut d = LogDecoder::new(format);
    let mut out = Vec::new();
    for i in inputs {
        let mut b = Bytes::copy_from_slice(i);
        while let Some(c) = d.next(&mut b) {
            out.push(c);
        }
        assert!(b.is_empty());
    }
    out.extend(d.finish());
    out
}

#[cfg(test)]
mod tests;
