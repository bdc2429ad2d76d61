use super::*;

const TS1: &str = "2026-11-22T21:40:27.804505854Z";
const TS2: &str = "2026-11-22T21:40:27.806328529Z";

fn ns(ts: &str) -> i64 {
    parse_rfc3339_nanos(ts.as_bytes()).unwrap()
}

/// The input cut at `k`, and one byte at a time.
fn splits(input: &[u8]) -> Vec<Vec<&[u8]>> {
    let mut all: Vec<Vec<&[u8]>> = (0..=input.len())
        .map(|k| vec![&input[..k], &input[k..]])
        .collect();
    all.push(input.chunks(1).collect());
    all
}

/// Chunks as messages: a chunk without a timestamp continues the one before on its stream.
fn messages(chunks: &[LogChunk]) -> Vec<(LogStream, Option<i64>, Vec<u8>)> {
    let mut out: Vec<(LogStream, Option<i64>, Vec<u8>)> = Vec::new();
    for c in chunks {
        match out.last_mut() {
            Some(last) if c.time_nano.is_none() && last.0 == c.stream => {
                last.2.extend_from_slice(&c.bytes)
            }
            _ => out.push((c.stream, c.time_nano, c.bytes.to_vec())),
        }
    }
    out
}

fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![stream, 0, 0, 0];
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A TTY line as Docker's raw stream sends it: parts of 16 KiB, each after the line's timestamp.
fn raw_line(ts: &str, text: &[u8]) -> Vec<u8> {
    let mut rest = text.to_vec();
    rest.extend_from_slice(b"\r\n");
    let mut out = Vec::new();
    while rest.len() > PART {
        out.extend_from_slice(format!("{ts} ").as_bytes());
        out.extend(rest.drain(..PART));
    }
    out.extend_from_slice(format!("{ts} ").as_bytes());
    out.extend_from_slice(&rest);
    out
}

fn chunked(body: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    for (i, s) in sizes.iter().cycle().enumerate() {
        if rest.is_empty() {
            break;
        }
        let n = (*s).min(rest.len());
        // An extension on some chunk-size lines, as HTTP allows.
        let ext = if i % 2 == 1 { ";x=y" } else { "" };
        out.extend_from_slice(format!("{n:X}{ext}\r\n").as_bytes());
        out.extend_from_slice(&rest[..n]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[n..];
    }
    out.extend_from_slice(b"0\r\nX-Trailer: 1\r\n\r\n");
    out
}

fn dechunk_all(inputs: &[&[u8]]) -> (Vec<u8>, bool) {
    let mut d = Dechunker::default();
    let mut out = Vec::new();
    for i in inputs {
        let mut b = Bytes::copy_from_slice(i);
        while let Some(piece) = d.next(&mut b).unwrap() {
            out.extend_from_slice(&piece);
        }
        assert!(b.is_empty());
    }
    (out, d.is_done())
}

#[test]
fn dechunks_at_every_split() {
    let body: Vec<u8> = (0..200u8).collect();
    let wire = chunked(&body, &[1, 17, 100, 3]);
    for inputs in splits(&wire) {
        assert_eq!(dechunk_all(&inputs), (body.clone(), true));
    }
    // Before the last chunk, the body is not done.
    assert!(!dechunk_all(&[&wire[..wire.len() - 5]]).1);
}

#[test]
fn dechunking_rejects_garbage_and_endless_size_lines() {
    let mut d = Dechunker::default();
    assert!(d.next(&mut Bytes::from_static(b"zz\r\n")).is_err());
    let mut d = Dechunker::default();
    let mut b = Bytes::from_static(b"3\r\nabcX");
    assert_eq!(&d.next(&mut b).unwrap().unwrap()[..], b"abc");
    assert!(d.next(&mut b).is_err());
    let mut d = Dechunker::default();
    let long = vec![b'0'; SIZE_LINE_MAX + 1];
    assert!(d.next(&mut Bytes::from(long)).is_err());
}

#[test]
fn a_big_chunk_is_passed_on_as_it_arrives() {
    let mut d = Dechunker::default();
    let mut b = Bytes::from_static(b"100000\r\nabc");
    assert_eq!(&d.next(&mut b).unwrap().unwrap()[..], b"abc");
    assert_eq!(d.state, ChunkState::Data(0x100000 - 3));
}

#[test]
fn multiplexed_frames_at_every_split() {
    let mut wire = frame(1, format!("{TS1} hello\n").as_bytes());
    wire.extend(frame(2, format!("{TS2} oops\n").as_bytes()));
    // Stdin and unknown stream types are dropped; an empty frame is skipped.
    wire.extend(frame(0, b"stdin"));
    wire.extend(frame(1, b""));
    wire.extend(frame(7, b"????"));
    // A first byte of 0..2 in the text is text.
    wire.extend(frame(1, format!("{TS2} \x01\x02\n").as_bytes()));
    let want = vec![
        (LogStream::Stdout, Some(ns(TS1)), b"hello\n".to_vec()),
        (LogStream::Stderr, Some(ns(TS2)), b"oops\n".to_vec()),
        (LogStream::Stdout, Some(ns(TS2)), b"\x01\x02\n".to_vec()),
    ];
    for inputs in splits(&wire) {
        let got = decode_all(Format::Multiplexed, &inputs);
        assert_eq!(messages(&got), want, "{inputs:?}");
    }
}

#[test]
fn a_huge_frame_is_yielded_in_pieces_of_the_input() {
    let text = vec![b'x'; 3_000_000];
    let mut payload = format!("{TS1} ").into_bytes();
    payload.extend_from_slice(&text);
    let wire = frame(1, &payload);
    let inputs: Vec<&[u8]> = wire.chunks(READ_SIZE).collect();
    let got = decode_all(Format::Multiplexed, &inputs);
    assert!(got.iter().all(|c| c.bytes.len() <= READ_SIZE));
    assert_eq!(got[0].time_nano, Some(ns(TS1)));
    assert!(got[1..].iter().all(|c| c.time_nano.is_none()));
    assert_eq!(
        messages(&got),
        vec![(LogStream::Stdout, Some(ns(TS1)), text)]
    );
}

#[test]
fn a_message_without_a_timestamp_is_text() {
    let mut wire = frame(1, b"no time here\n");
    wire.extend(frame(2, b"short"));
    let got = decode_all(Format::Multiplexed, &[&wire]);
    assert_eq!(
        messages(&got),
        vec![
            (LogStream::Stdout, None, b"no time here\n".to_vec()),
            (LogStream::Stderr, None, b"short".to_vec()),
        ]
    );
    let got = decode_all(Format::Raw, &[b"plain\nline ", b"two"]);
    assert_eq!(
        messages(&got),
        vec![(LogStream::Stdout, None, b"plain\nline two".to_vec())]
    );
    // A timestamp alone still reports its time (the reader's cursor moves).
    let got = decode_all(
        Format::Multiplexed,
        &[&frame(1, format!("{TS1} ").as_bytes())],
    );
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].time_nano, got[0].bytes.len()), (Some(ns(TS1)), 0));
}

#[test]
fn raw_lines_at_every_split() {
    let mut wire = raw_line(TS1, b"hello");
    wire.extend(raw_line(TS2, b"\x01 starts with 1"));
    wire.extend(raw_line(TS2, b"bar\r50%\r100%"));
    let want = vec![
        (LogStream::Stdout, Some(ns(TS1)), b"hello\r\n".to_vec()),
        (
            LogStream::Stdout,
            Some(ns(TS2)),
            b"\x01 starts with 1\r\n".to_vec(),
        ),
        (
            LogStream::Stdout,
            Some(ns(TS2)),
            b"bar\r50%\r100%\r\n".to_vec(),
        ),
    ];
    for inputs in splits(&wire) {
        let got = decode_all(Format::Raw, &inputs);
        assert_eq!(messages(&got), want, "{inputs:?}");
    }
}

#[test]
fn a_long_raw_line_loses_the_repeated_timestamps_of_its_parts() {
    let text: Vec<u8> = (0..40_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut wire = raw_line(TS1, &text);
    wire.extend(raw_line(TS2, b"ERROR after"));
    let mut line = text.clone();
    line.extend_from_slice(b"\r\n");
    let want = vec![
        (LogStream::Stdout, Some(ns(TS1)), line),
        (
            LogStream::Stdout,
            Some(ns(TS2)),
            b"ERROR after\r\n".to_vec(),
        ),
    ];
    // Reads of several sizes, so part boundaries fall inside reads and across them.
    for size in [1, 7, 30, 31, 1000, 16 * 1024, 16 * 1024 + 31, READ_SIZE] {
        let inputs: Vec<&[u8]> = wire.chunks(size).collect();
        let got = decode_all(Format::Raw, &inputs);
        assert_eq!(messages(&got), want, "reads of {size}");
    }
    // Lines at and around the part size.
    for n in [PART - 2, PART - 1, PART, PART + 1, 2 * PART] {
        let text = vec![b'z'; n];
        let wire = raw_line(TS1, &text);
        let mut line = text.clone();
        line.extend_from_slice(b"\r\n");
        for inputs in [vec![&wire[..]], wire.chunks(1000).collect()] {
            let got = decode_all(Format::Raw, &inputs);
            assert_eq!(
                messages(&got),
                vec![(LogStream::Stdout, Some(ns(TS1)), line.clone())],
                "a line of {n}"
            );
        }
    }
}

#[test]
fn text_at_a_part_boundary_that_is_not_the_timestamp_is_kept() {
    // Parts of another size than Docker's: nothing is removed, nothing is lost.
    let mut wire = format!("{TS1} ").into_bytes();
    wire.extend(vec![b'a'; PART]);
    wire.extend_from_slice(&TS1.as_bytes()[..10]);
    wire.extend_from_slice(b"-different\r\n");
    let mut line = vec![b'a'; PART];
    line.extend_from_slice(&TS1.as_bytes()[..10]);
    line.extend_from_slice(b"-different\r\n");
    for inputs in splits(&wire) {
        let got = decode_all(Format::Raw, &inputs);
        assert_eq!(
            messages(&got),
            vec![(LogStream::Stdout, Some(ns(TS1)), line.clone())]
        );
    }
}

#[test]
fn raw_output_without_a_newline_is_passed_on_in_bounded_pieces() {
    // A progress bar: 20 MB of `\r`-separated updates and never a newline.
    let mut text = Vec::new();
    let mut i = 0u64;
    while text.len() < 20_000_000 {
        text.extend_from_slice(format!("\r{i:>8}%").as_bytes());
        i += 1;
    }
    let mut wire = Vec::new();
    for part in text.chunks(PART) {
        wire.extend_from_slice(format!("{TS1} ").as_bytes());
        wire.extend_from_slice(part);
    }
    let mut d = LogDecoder::new(Format::Raw);
    let mut total = 0;
    let mut timed = 0;
    for read in wire.chunks(READ_SIZE - 5) {
        let mut b = Bytes::copy_from_slice(read);
        while let Some(c) = d.next(&mut b) {
            assert!(c.bytes.len() <= READ_SIZE);
            timed += usize::from(c.time_nano.is_some());
            total += c.bytes.len();
        }
        assert!(d.held.len() <= TS_MAX && d.held.capacity() <= TS_MAX);
    }
    assert_eq!((total, timed), (text.len(), 1));
}

#[test]
fn a_head_cut_off_by_the_end_of_the_body_is_text() {
    let got = decode_all(Format::Raw, &[b"2026-11-22T2"]);
    assert_eq!(
        messages(&got),
        vec![(LogStream::Stdout, None, b"2026-11-22T2".to_vec())]
    );
}

async fn respond(wire: Vec<u8>) -> Result<Response, HttpError> {
    let (client, mut server) = tokio::io::duplex(4096);
    tokio::spawn(async move {
        let _ = server.write_all(&wire).await;
    });
    read_response(Box::new(client)).await
}

#[tokio::test]
async fn reads_a_chunked_multiplexed_response() {
    use futures_util::StreamExt;
    let mut body = frame(1, format!("{TS1} out\n").as_bytes());
    body.extend(frame(2, format!("{TS2} err\n").as_bytes()));
    let mut wire = b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-type:  x/y \r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    wire.extend(chunked(&body, &[5, 9]));
    let resp = respond(wire).await.unwrap();
    assert_eq!(resp.content_type.as_deref(), Some("x/y"));
    let got: Vec<LogChunk> = resp
        .chunks(Format::Multiplexed)
        .map(|r| r.unwrap())
        .collect()
        .await;
    assert_eq!(
        messages(&got),
        vec![
            (LogStream::Stdout, Some(ns(TS1)), b"out\n".to_vec()),
            (LogStream::Stderr, Some(ns(TS2)), b"err\n".to_vec()),
        ]
    );
}

#[tokio::test]
async fn a_prefix_stops_reading_at_its_cap() {
    // A body that never ends (no length, the connection kept open): only the cap ends the read.
    let (client, mut server) = tokio::io::duplex(4096);
    tokio::spawn(async move {
        let _ = server.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await;
        loop {
            if server.write_all(&[b'x'; 1000]).await.is_err() {
                break;
            }
        }
    });
    let resp = read_response(Box::new(client)).await.unwrap();
    let (b, cut) = tokio::time::timeout(std::time::Duration::from_secs(10), resp.prefix(2500))
        .await
        .expect("the read stops at the cap")
        .unwrap();
    assert_eq!((b.len(), cut), (2500, true));
    // A shorter body is all there.
    let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec();
    let (b, cut) = respond(wire).await.unwrap().prefix(100).await.unwrap();
    assert_eq!((&b[..], cut), (&b"hello"[..], false));
}

#[tokio::test]
async fn errors_carry_the_daemons_message() {
    let body = r#"{"message":"No such container: nope"}"#;
    let wire = format!(
        "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    match respond(wire.into_bytes()).await {
        Err(HttpError::Status { status, message }) => {
            assert_eq!((status, message.as_str()), (404, "No such container: nope"))
        }
        other => panic!("{:?}", other.map(|r| r.content_type)),
    }
    let wire = b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nboom\r\n0\r\n\r\n";
    match respond(wire.to_vec()).await {
        Err(HttpError::Status { status, message }) => {
            assert_eq!((status, message.as_str()), (500, "boom"))
        }
        other => panic!("{:?}", other.map(|r| r.content_type)),
    }
    assert!(matches!(
        respond(b"SSH-2.0-OpenSSH\r\n\r\n".to_vec()).await,
        Err(HttpError::Malformed(_))
    ));
    assert!(matches!(
        respond(b"HTTP/1.1 200 OK\r\n".to_vec()).await,
        Err(HttpError::Io(_))
    ));
}

#[tokio::test]
async fn a_connection_cut_inside_the_body_is_an_error() {
    use futures_util::StreamExt;
    let mut wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let f = frame(1, format!("{TS1} partial").as_bytes());
    wire.extend_from_slice(format!("{:X}\r\n", f.len() + 10).as_bytes());
    wire.extend_from_slice(&f);
    let resp = respond(wire).await.unwrap();
    let got: Vec<Result<LogChunk, HttpError>> = resp.chunks(Format::Multiplexed).collect().await;
    assert!(matches!(got.last(), Some(Err(HttpError::Io(_)))), "{got:?}");
    assert_eq!(&got[0].as_ref().unwrap().bytes[..], b"partial");
}

/// Accept one connection, answer an empty 200, and return the request's head.
async fn serve_once<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) -> String {
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        req.extend_from_slice(&buf[..n]);
    }
    s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nx\ny\nzz")
        .await
        .unwrap();
    String::from_utf8(req).unwrap()
}

#[tokio::test]
async fn sends_a_plain_get_over_tcp_and_unix_sockets() {
    use futures_util::StreamExt;
    let path = "/v1.41/containers/abc/logs?follow=1";
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let server = tokio::spawn(async move { serve_once(tcp.accept().await.unwrap().0).await });
    let resp = get(&format!("tcp://{addr}/"), path).await.unwrap();
    let req = server.await.unwrap();
    assert!(
        req.starts_with(&format!("GET {path} HTTP/1.1\r\n")),
        "{req}"
    );
    assert!(req.contains(&format!("\r\nHost: {addr}\r\n")), "{req}");
    // A Content-Length body ends where it says; what follows is not body.
    let got: Vec<LogChunk> = resp.chunks(Format::Raw).map(|r| r.unwrap()).collect().await;
    assert_eq!(
        messages(&got),
        vec![(LogStream::Stdout, None, b"x\ny\n".to_vec())]
    );

    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("docker.sock");
    let unix = tokio::net::UnixListener::bind(&sock).unwrap();
    let server = tokio::spawn(async move { serve_once(unix.accept().await.unwrap().0).await });
    get(&format!("unix://{}", sock.display()), path)
        .await
        .unwrap();
    let req = server.await.unwrap();
    assert!(
        req.starts_with(&format!("GET {path} HTTP/1.1\r\n")),
        "{req}"
    );
    // Nothing listens: an I/O error (the caller's "unreachable").
    assert!(matches!(
        get(
            &format!("unix://{}", dir.path().join("none").display()),
            path
        )
        .await,
        Err(HttpError::Io(_))
    ));
}

#[test]
fn path_segments_are_escaped() {
    assert_eq!(escape("web-1.a_b~"), "web-1.a_b~");
    assert_eq!(escape("a/b c?"), "a%2Fb%20c%3F");
}
