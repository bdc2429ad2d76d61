//! A real SMTP server for the mail tests: `smtp_sink.py` (Debian's python3-aiosmtpd) on a free
//! loopback port, killed when dropped; and a test CA with a server certificate for
//! `localhost`/127.0.0.1 made with the `openssl` CLI.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use super::{tool_or_skip, wait_until};

const PYTHON: &str = "/usr/bin/python3";
const AIOSMTPD: &str = "/usr/lib/python3/dist-packages/aiosmtpd";
const OPENSSL: &str = "/usr/bin/openssl";

/// Whether the sink can run (python3 with aiosmtpd, and openssl for the certificates). With
/// `LOOKOUT_REQUIRE_TOOLS=1` a missing one is a failure, else the test skips with a notice.
pub fn smtp_tools_or_skip(test: &str) -> bool {
    tool_or_skip(test, PYTHON) && tool_or_skip(test, AIOSMTPD) && tool_or_skip(test, OPENSSL)
}

/// How the sink behaves.
#[derive(Debug, Clone, Default)]
pub struct SinkOptions {
    /// Offer and require STARTTLS with this certificate and key.
    pub starttls: Option<(PathBuf, PathBuf)>,
    /// TLS from the first byte with this certificate and key.
    pub implicit_tls: Option<(PathBuf, PathBuf)>,
    /// Require AUTH (PLAIN, LOGIN) with this user and password.
    pub auth: Option<(String, String)>,
    /// Answer `550` to RCPT for these addresses.
    pub reject_rcpt: Vec<String>,
    /// Answer `451` to every DATA.
    pub tempfail: bool,
}

/// One received message.
#[derive(Debug, Clone)]
pub struct SmtpMessage {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    /// The session was encrypted (STARTTLS or implicit TLS).
    pub tls: bool,
    pub authenticated: bool,
    /// The top-level content type (`multipart/alternative`).
    pub content_type: String,
    /// The content types of the leaf parts, in order.
    pub parts: Vec<String>,
    /// Headers in order, values decoded (RFC 2047).
    pub headers: Vec<(String, String)>,
    /// The text/plain and text/html parts, transfer encoding undone.
    pub text: Option<String>,
    pub html: Option<String>,
    /// The message as it came over the wire.
    pub raw: String,
}

impl SmtpMessage {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header called `name`.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn from_json(v: &serde_json::Value) -> SmtpMessage {
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        let strings = |k: &str| -> Vec<String> {
            v[k].as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        SmtpMessage {
            mail_from: s("mail_from"),
            rcpt_tos: strings("rcpt_tos"),
            tls: v["tls"].as_bool().unwrap_or(false),
            authenticated: v["authenticated"].as_bool().unwrap_or(false),
            content_type: s("content_type"),
            parts: strings("parts"),
            headers: v["headers"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|h| {
                            (
                                h[0].as_str().unwrap_or_default().to_string(),
                                h[1].as_str().unwrap_or_default().to_string(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
            text: v["text"].as_str().map(str::to_string),
            html: v["html"].as_str().map(str::to_string),
            raw: s("raw"),
        }
    }
}

/// The running sink; killed when dropped.
pub struct SmtpSink {
    child: Child,
    /// Held open: the sink stops when it closes.
    _stdin: Option<ChildStdin>,
    port: u16,
    dir: tempfile::TempDir,
}

impl SmtpSink {
    /// Start the sink and wait for it to accept connections.
    pub fn start(opts: &SinkOptions) -> SmtpSink {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("messages");
        std::fs::create_dir(&out).expect("create the messages dir");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/smtp_sink.py");
        let mut cmd = Command::new(PYTHON);
        cmd.arg(script).args(["--port", "0", "--out"]).arg(&out);
        if let Some((c, k)) = &opts.starttls {
            cmd.arg("--starttls").arg(c).arg(k);
        }
        if let Some((c, k)) = &opts.implicit_tls {
            cmd.arg("--implicit-tls").arg(c).arg(k);
        }
        if let Some((u, p)) = &opts.auth {
            cmd.arg("--auth").arg(format!("{u}:{p}"));
        }
        for r in &opts.reject_rcpt {
            cmd.arg("--reject-rcpt").arg(r);
        }
        if opts.tempfail {
            cmd.arg("--tempfail");
        }
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).expect("stderr log");
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start smtp_sink.py");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("sink stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_default();
        let port = line
            .trim()
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok());
        let mut sink = SmtpSink {
            child,
            _stdin: stdin,
            port: 0,
            dir,
        };
        match port {
            Some(p) => sink.port = p,
            None => panic!(
                "smtp_sink.py did not become ready (said {line:?}); stderr:\n{}",
                sink.log()
            ),
        }
        sink
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// What the sink wrote to stderr.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// The messages received so far, oldest first.
    pub fn messages(&self) -> Vec<SmtpMessage> {
        let out = self.dir.path().join("messages");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&out)
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files.iter().map(|p| read_message(p)).collect()
    }

    /// Wait until at least `n` messages arrived; all of them. Panics after `timeout`.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<SmtpMessage> {
        wait_until(timeout, || {
            let m = self.messages();
            (m.len() >= n).then_some(m)
        })
        .unwrap_or_else(|| {
            panic!(
                "the SMTP sink got {} of {n} messages; stderr:\n{}",
                self.messages().len(),
                self.log()
            )
        })
    }
}

fn read_message(p: &Path) -> SmtpMessage {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    SmtpMessage::from_json(&v)
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test CA and a server certificate it signed, for `localhost` and 127.0.0.1.
pub struct TestCerts {
    pub dir: tempfile::TempDir,
    /// The CA certificate (PEM): what a client trusts (`ca_file`).
    pub ca: PathBuf,
    /// The server's certificate and key (PEM).
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCerts {
    /// Make them with `openssl` (P-256 keys; the CA has CA:TRUE, the leaf CA:FALSE, a SAN and
    /// serverAuth, as rustls/webpki want).
    pub fn make() -> TestCerts {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let openssl = |args: &[&str]| {
            let out = Command::new(OPENSSL)
                .args(args)
                .current_dir(d)
                .output()
                .expect("run openssl");
            assert!(
                out.status.success(),
                "openssl {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509"];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=lookout test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&ca);
        let mut csr = vec!["req"];
        csr.extend(ec);
        csr.extend([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        openssl(&csr);
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n\
             basicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth\n",
        )
        .expect("write server.ext");
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ]);
        TestCerts {
            ca: d.join("ca.pem"),
            cert: d.join("server.pem"),
            key: d.join("server.key"),
            dir,
        }
    }
}
