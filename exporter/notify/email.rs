//! Mail through SMTP: one message per batch, text and HTML, threaded per group.
//!
//! One connection per send, driven step by step (connect and STARTTLS, AUTH, MAIL/RCPT/DATA),
//! so that every failure is classified by the step it happened in:
//!
//! | step                                   | failure                  | result      |
//! |----------------------------------------|--------------------------|-------------|
//! | connect, TLS, greeting, EHLO, STARTTLS | any                      | `Retry`     |
//! | AUTH                                   | any (wrong password too) | `Retry`     |
//! | MAIL, RCPT, DATA                       | 4xx, network, timeout    | `Retry`     |
//! | MAIL, RCPT, DATA                       | 5xx                      | `Rejected`  |
//!
//! A wrong password is retried with the sender's backoff until the config is fixed: dropping
//! alerts because of a typo in a password would lose them silently. lettre's pooled transport
//! is not used: its pool spawns tasks when built and dropped (a panic outside a runtime, as in
//! `lookout check`), and it hides which step failed.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, Mailboxes, MultiPart};
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;
use lettre::transport::smtp::Error as SmtpError;
use lettre::Message;

use super::{rfc3339, truncate, Ack, Batch, Item, Notifier, SendError, Status};
use crate::config::receivers::{EmailConfig, Secret, SmtpTls};

/// Subjects are cut to this many characters (with `…`).
pub const MAX_SUBJECT: usize = 200;
/// Each log line in a mail is cut to this many characters.
const MAX_LOG_LINE: usize = 1000;
/// The time `QUIT` gets after the server accepted the message (its answer does not matter).
const QUIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends alerts as mail through one SMTP server.
pub struct EmailNotifier {
    host: String,
    port: u16,
    mode: SmtpTls,
    /// For `starttls` and `tls`: the verifier (web PKI roots, `ca_file`, or none).
    tls: Option<TlsParameters>,
    username: Option<String>,
    credentials: Option<Credentials>,
    /// Kept to scrub it from any text a server or library might echo.
    password: Option<Secret>,
    from: Mailbox,
    to: Vec<Mailbox>,
    timeout: Duration,
    /// The right-hand side of Message-IDs: the From address's domain.
    id_domain: String,
    /// The EHLO name: this host's name.
    hello: ClientId,
}

impl fmt::Debug for EmailNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailNotifier")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.mode)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<secret>"))
            .field("from", &self.from.to_string())
            .field(
                "to",
                &self.to.iter().map(ToString::to_string).collect::<Vec<_>>(),
            )
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl EmailNotifier {
    /// Check the addresses, read `ca_file` and build the TLS settings, once. The error names
    /// the field that is wrong (for `lookout check`); it never contains the password.
    pub fn new(cfg: &EmailConfig) -> Result<EmailNotifier, String> {
        let smtp = &cfg.smtp;
        let host = smtp.host.trim().to_string();
        if host.is_empty() {
            return Err("smtp.host is empty".to_string());
        }
        if smtp.port == 0 {
            return Err("smtp.port must not be 0".to_string());
        }
        let from = parse_mailbox(&cfg.from).map_err(|e| format!("from: {e}"))?;
        if cfg.to.is_empty() {
            return Err("to: at least one recipient is needed".to_string());
        }
        let to = cfg
            .to
            .iter()
            .enumerate()
            .map(|(i, a)| parse_mailbox(a).map_err(|e| format!("to[{i}]: {e}")))
            .collect::<Result<Vec<_>, _>>()?;

        let tls = match smtp.tls {
            SmtpTls::None => None,
            SmtpTls::Starttls | SmtpTls::Tls => {
                // The name the certificate must carry: the host without IPv6 brackets.
                let name = host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string();
                let mut b = TlsParameters::builder(name);
                if let Some(path) = &smtp.ca_file {
                    let pem = std::fs::read(path)
                        .map_err(|e| format!("smtp.ca_file {}: {e}", path.display()))?;
                    let cert = Certificate::from_pem(&pem).map_err(|e| {
                        format!(
                            "smtp.ca_file {}: not a PEM certificate: {e}",
                            path.display()
                        )
                    })?;
                    b = b.add_root_certificate(cert);
                }
                if smtp.insecure_skip_verify {
                    b = b.dangerous_accept_invalid_certs(true);
                }
                Some(b.build().map_err(|e| format!("smtp TLS settings: {e}"))?)
            }
        };

        let username = smtp.username.clone().filter(|u| !u.is_empty());
        let credentials = match (&username, &smtp.password) {
            (Some(u), Some(p)) => Some(Credentials::new(u.clone(), p.expose().to_string())),
            (Some(u), None) => Some(Credentials::new(u.clone(), String::new())),
            (None, Some(_)) => return Err("smtp.password is set without smtp.username".into()),
            (None, None) => None,
        };

        let id_domain = from.email.domain().to_string();
        let timeout = if smtp.timeout.is_zero() {
            Duration::from_secs(30)
        } else {
            smtp.timeout
        };
        Ok(EmailNotifier {
            host,
            port: smtp.port,
            mode: smtp.tls,
            tls,
            username,
            credentials,
            password: smtp.password.clone(),
            from,
            to,
            timeout,
            id_domain,
            hello: ClientId::default(),
        })
    }

    /// The message for `batch` and its Message-ID (with angle brackets).
    pub fn message(&self, batch: &Batch) -> Result<(Message, String), String> {
        let id = new_message_id(&self.id_domain);
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(subject(batch))
            .date_now()
            .message_id(Some(id.clone()))
            .user_agent(format!("lookout/{}", env!("CARGO_PKG_VERSION")))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("Auto-Submitted"),
                "auto-generated".to_string(),
            ));
        for to in &self.to {
            b = b.to(to.clone());
        }
        if let Some(thread) = batch.thread.as_deref().and_then(thread_id) {
            b = b.in_reply_to(thread.clone()).references(thread);
        }
        let msg = b
            .multipart(MultiPart::alternative_plain_html(
                text_body(batch),
                html_body(batch),
            ))
            .map_err(|e| format!("building the mail: {e}"))?;
        Ok((msg, id))
    }

    fn server(&self) -> String {
        format!("SMTP {}:{}", self.host, self.port)
    }

    /// Replace the password (and its base64 forms as AUTH sends them) in `s`.
    fn scrub(&self, s: String) -> String {
        let Some(p) = self.password.as_ref().map(Secret::expose) else {
            return s;
        };
        if p.is_empty() {
            return s;
        }
        let mut out = s.replace(p, "<secret>");
        let user = self.username.as_deref().unwrap_or("");
        for form in [
            base64(p.as_bytes()),
            base64(format!("\0{user}\0{p}").as_bytes()),
        ] {
            if form.len() >= 4 {
                out = out.replace(&form, "<secret>");
            }
        }
        out
    }

    fn retry(&self, reason: String) -> SendError {
        SendError::Retry {
            after: None,
            reason: self.scrub(reason),
        }
    }

    /// Connect (and upgrade), authenticate, and hand over the message.
    async fn deliver(
        &self,
        conn: &mut Option<AsyncSmtpConnection>,
        envelope: &lettre::address::Envelope,
        raw: &[u8],
    ) -> Result<Response, SendError> {
        let hello = &self.hello;
        let wrapper = match self.mode {
            SmtpTls::Tls => self.tls.clone(),
            _ => None,
        };
        let c = conn.insert(
            AsyncSmtpConnection::connect_tokio1(
                (
                    self.host.trim_start_matches('[').trim_end_matches(']'),
                    self.port,
                ),
                Some(self.timeout),
                hello,
                wrapper,
                None,
            )
            .await
            .map_err(|e| {
                self.retry(format!(
                    "{}: connecting{}: {}",
                    self.server(),
                    if self.mode == SmtpTls::Tls {
                        " (implicit TLS)"
                    } else {
                        ""
                    },
                    error_text(&e)
                ))
            })?,
        );

        if self.mode == SmtpTls::Starttls {
            if !c.can_starttls() {
                return Err(self.retry(format!(
                    "{}: the server does not offer STARTTLS, which `tls: starttls` requires; \
                     nothing was sent",
                    self.server()
                )));
            }
            let params = self.tls.clone().ok_or_else(|| {
                self.retry(format!("{}: no TLS settings for STARTTLS", self.server()))
            })?;
            c.starttls(params, hello).await.map_err(|e| {
                self.retry(format!(
                    "{}: STARTTLS failed: {}",
                    self.server(),
                    error_text(&e)
                ))
            })?;
        }

        if let Some(creds) = &self.credentials {
            c.auth(DEFAULT_MECHANISMS, creds).await.map_err(|e| {
                self.retry(format!(
                    "{}: authentication as {:?} failed: {}; fix smtp.username or smtp.password \
                     in the config (the mail is retried with backoff until then)",
                    self.server(),
                    self.username.as_deref().unwrap_or(""),
                    error_text(&e)
                ))
            })?;
        }

        c.send(envelope, raw).await.map_err(|e| {
            let text = format!(
                "{}: the server refused the mail: {}",
                self.server(),
                error_text(&e)
            );
            if e.is_permanent() {
                SendError::Rejected {
                    reason: self.scrub(text),
                }
            } else {
                self.retry(text)
            }
        })
    }
}

#[async_trait::async_trait]
impl Notifier for EmailNotifier {
    fn kind(&self) -> &'static str {
        "email"
    }

    async fn send(&self, batch: &Batch) -> Result<Ack, SendError> {
        let (msg, id) = self
            .message(batch)
            .map_err(|reason| SendError::Rejected { reason })?;
        let raw = msg.formatted();
        let mut conn = None;
        let result =
            tokio::time::timeout(self.timeout, self.deliver(&mut conn, msg.envelope(), &raw))
                .await
                .unwrap_or_else(|_| {
                    Err(self.retry(format!(
                        "{}: no answer within {:?} (smtp.timeout)",
                        self.server(),
                        self.timeout
                    )))
                });
        // After a failure the connection is only dropped: lettre has aborted it already when
        // a command failed, and after a failed TLS upgrade it must not be written to.
        if let (Ok(_), Some(mut c)) = (&result, conn) {
            let _ = tokio::time::timeout(QUIT_TIMEOUT.min(self.timeout), c.quit()).await;
        }
        let response = result?;
        Ok(Ack {
            detail: self.scrub(response_text(&response)),
            message_id: Some(id),
        })
    }
}

fn parse_mailbox(s: &str) -> Result<Mailbox, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty address".to_string());
    }
    let all: Mailboxes = t
        .parse()
        .map_err(|e| format!("{t:?} is not a mail address (`addr` or `Name <addr>`): {e}"))?;
    let mut all = all.into_iter();
    match (all.next(), all.next()) {
        (Some(mb), None) => Ok(mb),
        (None, _) => Err(format!("{t:?} is not a mail address")),
        (Some(_), Some(_)) => Err(format!(
            "{t:?} holds more than one address; list each recipient separately"
        )),
    }
}

/// `<id>` from what the sender stored; None when it cannot go in a header.
fn thread_id(s: &str) -> Option<String> {
    let t = s.trim();
    if t.is_empty() || t.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return None;
    }
    if t.starts_with('<') && t.ends_with('>') {
        Some(t.to_string())
    } else {
        Some(format!("<{}>", t.trim_matches(['<', '>'])))
    }
}

/// `<lookout.<ms>.<pid>.<seq>.<random>@domain>`: unique per mail, across restarts too.
fn new_message_id(domain: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(seq);
    h.write_u128(now.as_nanos());
    let domain = if domain.is_empty() {
        "lookout.invalid"
    } else {
        domain
    };
    format!(
        "<lookout.{}.{}.{seq}.{:016x}@{domain}>",
        now.as_millis(),
        std::process::id(),
        h.finish()
    )
}

/// The error and its causes, one line (lettre repeats a kind at each level: said once).
fn error_text(e: &SmtpError) -> String {
    let full = e.to_string();
    let mut parts: Vec<&str> = Vec::new();
    for p in full.split(": ") {
        if parts.last() != Some(&p) {
            parts.push(p);
        }
    }
    let mut s = parts.join(": ");
    if e.is_timeout() && !s.contains("timed out") {
        s.push_str(" (timed out)");
    }
    one_line(&s)
}

/// `250 OK queued as 1234`.
fn response_text(r: &Response) -> String {
    let lines: Vec<&str> = r.message().collect();
    one_line(&format!("{} {}", r.code(), lines.join(" ")))
}

fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ---- Subject and bodies ---------------------------------------------------------------------

/// The items the subject speaks of: the firing ones when any fires, else all.
fn headline_items(batch: &Batch) -> Vec<&Item> {
    if batch.firing() > 0 {
        batch
            .items
            .iter()
            .filter(|i| i.status == Status::Firing)
            .collect()
    } else {
        batch.items.iter().collect()
    }
}

fn dedup<'a>(values: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for v in values {
        if !v.is_empty() && !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// `[FIRING:2] ContainerHighMemory web-1, web-2`, `[RESOLVED] ContainerDown web-1`; `[TEST] `
/// before a test, ` (reminder)` after a repeat; at most [`MAX_SUBJECT`] characters.
pub fn subject(batch: &Batch) -> String {
    let firing = batch.firing();
    let tag = if firing > 0 {
        format!("[FIRING:{firing}]")
    } else {
        Status::Resolved.tag().to_string()
    };
    let items = headline_items(batch);
    let names = dedup(items.iter().map(|i| i.alertname())).join("/");
    let targets = dedup(items.iter().filter_map(|i| i.target())).join(", ");
    let mut head = String::new();
    if batch.test {
        head.push_str("[TEST] ");
    }
    head.push_str(&tag);
    if !names.is_empty() {
        head.push(' ');
        head.push_str(&names);
    } else if items.is_empty() {
        head.push_str(" lookout");
    }
    let head = one_line(&head);
    let tail = if batch.repeat && firing > 0 {
        " (reminder)"
    } else {
        ""
    };
    let targets = one_line(&targets);
    let mut s = head.clone();
    if !targets.is_empty() {
        // The targets get what is left; the tag, the names and the tail stay whole.
        let room = MAX_SUBJECT.saturating_sub(head.chars().count() + tail.chars().count() + 1);
        if room >= 2 {
            s.push(' ');
            s.push_str(&truncate(&targets, room));
        }
    }
    s.push_str(tail);
    truncate(&s, MAX_SUBJECT)
}

/// Escape text for HTML content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn counts(batch: &Batch) -> String {
    let firing = batch.firing();
    let resolved = batch.items.len() - firing;
    let mut parts = Vec::new();
    if firing > 0 {
        parts.push(format!(
            "{firing} alert{} firing",
            if firing == 1 { "" } else { "s" }
        ));
    }
    if resolved > 0 {
        parts.push(format!("{resolved} resolved"));
    }
    if parts.is_empty() {
        "no alerts".to_string()
    } else {
        parts.join(", ")
    }
}

fn labels_line(labels: &std::collections::BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The annotations other than summary and description, in name order.
fn other_annotations(item: &Item) -> impl Iterator<Item = (&String, &String)> {
    item.annotations
        .iter()
        .filter(|(k, v)| k.as_str() != "summary" && k.as_str() != "description" && !v.is_empty())
}

fn heading(item: &Item) -> String {
    let mut h = format!("{} {}", item.status.tag(), item.alertname());
    if let Some(t) = item.target() {
        h.push(' ');
        h.push_str(t);
    }
    h.push_str(&format!(" ({})", item.severity()));
    h
}

fn intro(batch: &Batch) -> Vec<String> {
    let mut out = Vec::new();
    if batch.test {
        out.push(format!(
            "TEST: this is a test notification from lookout on {}; no alert is firing.",
            batch.host
        ));
    }
    if batch.repeat {
        out.push("Reminder: these alerts are still firing.".to_string());
    }
    let mut summary = counts(batch);
    if !batch.group_labels.is_empty() {
        summary.push_str(&format!(" (group: {})", labels_line(&batch.group_labels)));
    }
    out.push(summary);
    out
}

/// The text/plain part.
pub fn text_body(batch: &Batch) -> String {
    let mut s = String::new();
    for line in intro(batch) {
        s.push_str(&line);
        s.push('\n');
    }
    for item in &batch.items {
        s.push('\n');
        s.push_str(&format!("== {} ==\n", heading(item)));
        let field = |s: &mut String, name: &str, value: &str| {
            let value = value.trim_end();
            if value.is_empty() {
                return;
            }
            let mut lines = value.lines();
            s.push_str(&format!(
                "{:<13}{}\n",
                format!("{name}:"),
                lines.next().unwrap_or("")
            ));
            for l in lines {
                s.push_str(&format!("{:13}{l}\n", ""));
            }
        };
        field(&mut s, "Summary", &item.summary());
        if let Some(d) = item.annotations.get("description") {
            field(&mut s, "Description", d);
        }
        if let Some(v) = &item.value {
            field(&mut s, "Value", v);
        }
        field(&mut s, "Status", item.status.as_str());
        field(&mut s, "Started", &rfc3339(item.starts_at));
        if let Some(e) = item.ends_at {
            field(&mut s, "Ended", &rfc3339(e));
        }
        for (k, v) in other_annotations(item) {
            field(&mut s, k, v);
        }
        field(&mut s, "Labels", &labels_line(&item.labels));
        if let Some(r) = &item.reason {
            field(&mut s, "Reason", &r.line());
            for (k, v) in r.fields() {
                s.push_str(&format!("    {k:<12}{v}\n"));
            }
        }
        if !item.logs.is_empty() {
            s.push_str(&format!("Last {} log lines:\n", item.logs.len()));
            for l in &item.logs {
                s.push_str("    ");
                s.push_str(&truncate(&one_line_log(l), MAX_LOG_LINE));
                s.push('\n');
            }
        }
    }
    s.push_str("\n-- \n");
    s.push_str(&format!("Sent by lookout on {}", batch.host));
    if !batch.external_url.is_empty() {
        s.push_str(&format!(" - {}", batch.external_url));
    }
    s.push('\n');
    s
}

/// A log line without the control characters a mail must not carry (tabs stay).
fn one_line_log(l: &str) -> String {
    l.chars()
        .map(|c| if c.is_control() && c != '\t' { ' ' } else { c })
        .collect()
}

/// The text/html part: every value escaped.
pub fn html_body(batch: &Batch) -> String {
    let e = html_escape;
    let mut s = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head>\n\
         <body style=\"font-family:sans-serif;font-size:14px;color:#222\">\n",
    );
    for line in intro(batch) {
        s.push_str(&format!("<p>{}</p>\n", e(&line)));
    }
    let cell = "style=\"padding:2px 12px 2px 0;vertical-align:top;color:#555\"";
    for item in &batch.items {
        let colour = match item.status {
            Status::Firing => "#c0392b",
            Status::Resolved => "#27ae60",
        };
        s.push_str(&format!(
            "<h3 style=\"color:{colour};margin:18px 0 6px\">{}</h3>\n<table>\n",
            e(&heading(item))
        ));
        let row = |s: &mut String, name: &str, value: &str| {
            if value.trim().is_empty() {
                return;
            }
            s.push_str(&format!(
                "<tr><td {cell}><b>{}</b></td><td style=\"white-space:pre-wrap\">{}</td></tr>\n",
                e(name),
                e(value.trim_end())
            ));
        };
        row(&mut s, "Summary", &item.summary());
        if let Some(d) = item.annotations.get("description") {
            row(&mut s, "Description", d);
        }
        if let Some(v) = &item.value {
            row(&mut s, "Value", v);
        }
        row(&mut s, "Status", item.status.as_str());
        row(&mut s, "Started", &rfc3339(item.starts_at));
        if let Some(t) = item.ends_at {
            row(&mut s, "Ended", &rfc3339(t));
        }
        for (k, v) in other_annotations(item) {
            row(&mut s, k, v);
        }
        row(&mut s, "Labels", &labels_line(&item.labels));
        s.push_str("</table>\n");
        if let Some(r) = &item.reason {
            s.push_str(&format!(
                "<p style=\"margin:8px 0 2px\"><b>Reason:</b> {}</p>\n<table>\n",
                e(&r.line())
            ));
            for (k, v) in r.fields() {
                s.push_str(&format!(
                    "<tr><td {cell}>{}</td><td>{}</td></tr>\n",
                    e(k),
                    e(&v)
                ));
            }
            s.push_str("</table>\n");
        }
        if !item.logs.is_empty() {
            s.push_str(&format!(
                "<p style=\"margin:8px 0 2px\"><b>Last {} log lines:</b></p>\n\
                 <pre style=\"background:#f4f4f4;padding:8px;white-space:pre-wrap\">",
                item.logs.len()
            ));
            for l in &item.logs {
                s.push_str(&e(&truncate(&one_line_log(l), MAX_LOG_LINE)));
                s.push('\n');
            }
            s.push_str("</pre>\n");
        }
    }
    s.push_str(&format!(
        "<hr>\n<p style=\"color:#777;font-size:12px\">Sent by lookout on {}",
        e(&batch.host)
    ));
    if !batch.external_url.is_empty() {
        let url = &batch.external_url;
        if url.starts_with("http://") || url.starts_with("https://") {
            s.push_str(&format!(" - <a href=\"{}\">{}</a>", e(url), e(url)));
        } else {
            s.push_str(&format!(" - {}", e(url)));
        }
    }
    s.push_str("</p>\n</body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::receivers::SmtpConfig;
    use crate::notify::Reason;
    use std::collections::BTreeMap;

    fn item(status: Status, alert: &str, name: &str) -> Item {
        let mut labels = BTreeMap::new();
        labels.insert("alertname".to_string(), alert.to_string());
        labels.insert("name".to_string(), name.to_string());
        labels.insert("severity".to_string(), "critical".to_string());
        Item {
            seq: 1,
            status,
            labels,
            annotations: BTreeMap::new(),
            starts_at: 1_796_048_630.5,
            ends_at: (status == Status::Resolved).then_some(1_796_048_700.0),
            value: Some("93.2".to_string()),
            reason: None,
            logs: vec![],
            fingerprint: "f".to_string(),
        }
    }

    fn batch(items: Vec<Item>) -> Batch {
        Batch {
            receiver: "mail".to_string(),
            group_key: "g".to_string(),
            group_labels: BTreeMap::new(),
            items,
            host: "host-1".to_string(),
            external_url: "http://host-1:9659".to_string(),
            thread: None,
            test: false,
            repeat: false,
        }
    }

    fn config() -> EmailConfig {
        EmailConfig {
            smtp: SmtpConfig {
                host: "127.0.0.1".to_string(),
                port: 25,
                tls: SmtpTls::None,
                username: Some("alice".to_string()),
                password: Some(Secret::new("hunter2-very-secret")),
                ca_file: None,
                insecure_skip_verify: false,
                timeout: Duration::from_secs(5),
            },
            from: "lookout <lookout@example.org>".to_string(),
            to: vec!["ops@example.org".to_string()],
        }
    }

    #[test]
    fn subjects_read_like_alertmanagers() {
        let b = batch(vec![
            item(Status::Firing, "ContainerHighMemory", "web-1"),
            item(Status::Firing, "ContainerHighMemory", "web-2"),
            item(Status::Firing, "ContainerHighMemory", "web-1"),
        ]);
        assert_eq!(subject(&b), "[FIRING:3] ContainerHighMemory web-1, web-2");
        let b = batch(vec![item(Status::Resolved, "ContainerDown", "db")]);
        assert_eq!(subject(&b), "[RESOLVED] ContainerDown db");
        let mut b = batch(vec![
            item(Status::Firing, "A", "x"),
            item(Status::Resolved, "B", "y"),
            item(Status::Firing, "C", "z"),
        ]);
        assert_eq!(subject(&b), "[FIRING:2] A/C x, z");
        b.test = true;
        b.repeat = true;
        assert_eq!(subject(&b), "[TEST] [FIRING:2] A/C x, z (reminder)");
    }

    #[test]
    fn long_subjects_are_cut_keeping_the_tag() {
        let items = (0..100)
            .map(|i| item(Status::Firing, "ContainerDown", &format!("container-{i}")))
            .collect();
        let mut b = batch(items);
        b.repeat = true;
        let s = subject(&b);
        assert!(s.chars().count() <= MAX_SUBJECT, "{s}");
        assert!(s.starts_with("[FIRING:100] ContainerDown container-0, "));
        assert!(s.ends_with("… (reminder)"), "{s}");
        let b = batch(vec![item(Status::Firing, &"X".repeat(500), "n")]);
        assert_eq!(subject(&b).chars().count(), MAX_SUBJECT);
        let b = batch(vec![item(Status::Firing, "A\r\nBcc: evil@x", "n")]);
        assert!(!subject(&b).contains('\n'));
    }

    #[test]
    fn bodies_carry_everything_and_html_is_escaped() {
        let mut it = item(Status::Firing, "ContainerDied", "web-1");
        it.annotations.insert(
            "description".to_string(),
            "<script>alert(1)</script> & more".to_string(),
        );
        it.annotations
            .insert("runbook_url".to_string(), "https://x/rb".to_string());
        it.reason = Some(Reason {
            container: "web-1".to_string(),
            image: "busybox".to_string(),
            state: "exited".to_string(),
            exit_code: Some(137),
            oom_killed: true,
            restart_count: 3,
            ..Reason::default()
        });
        it.logs = vec!["line <one>".to_string(), "line two".to_string()];
        let b = batch(vec![it]);
        let text = text_body(&b);
        assert!(text.contains("<script>alert(1)</script> & more"));
        assert!(text.contains("    line <one>\n"));
        assert!(text.contains("137 (SIGKILL, OOM-killed"));
        assert!(text.contains("Started:     2026-11-30T14:23:50.500Z"));
        assert!(text.contains("host-1") && text.contains("http://host-1:9659"));
        let html = html_body(&b);
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; more"));
        assert!(html.contains("line &lt;one&gt;"));
        assert!(html.contains("<pre"));
        assert!(html.contains("OOM-killed"));
        assert!(html.contains("https://x/rb"));
    }

    #[test]
    fn test_and_repeat_batches_say_so() {
        let mut b = batch(vec![item(Status::Firing, "A", "x")]);
        b.test = true;
        assert!(text_body(&b).contains("test notification"));
        assert!(html_body(&b).contains("test notification"));
        b.test = false;
        b.repeat = true;
        assert!(text_body(&b).contains("Reminder"));
    }

    #[test]
    fn addresses_are_checked_up_front() {
        assert!(EmailNotifier::new(&config()).is_ok());
        let mut c = config();
        c.from = "not an address".to_string();
        assert!(EmailNotifier::new(&c).unwrap_err().starts_with("from:"));
        let mut c = config();
        c.to = vec!["ops@example.org".to_string(), "nope".to_string()];
        assert!(EmailNotifier::new(&c).unwrap_err().starts_with("to[1]:"));
        let mut c = config();
        c.to.clear();
        assert!(EmailNotifier::new(&c).is_err());
        let mut c = config();
        c.smtp.tls = SmtpTls::Starttls;
        c.smtp.ca_file = Some("/nonexistent/ca.pem".into());
        assert!(EmailNotifier::new(&c).unwrap_err().contains("ca_file"));
    }

    #[test]
    fn the_password_never_prints() {
        let n = EmailNotifier::new(&config()).unwrap();
        let dbg = format!("{n:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        let s = n.scrub(format!(
            "x hunter2-very-secret {} y",
            base64(b"\0alice\0hunter2-very-secret")
        ));
        assert_eq!(s, "x <secret> <secret> y");
    }

    #[test]
    fn base64_matches_the_rfc() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn message_ids_are_unique_and_threads_are_headers() {
        let a = new_message_id("example.org");
        let b = new_message_id("example.org");
        assert_ne!(a, b);
        assert!(a.starts_with("<lookout.") && a.ends_with("@example.org>"));
        assert_eq!(thread_id("<a@b>").as_deref(), Some("<a@b>"));
        assert_eq!(thread_id("a@b").as_deref(), Some("<a@b>"));
        assert_eq!(thread_id("a@b\r\nBcc: x"), None);
        assert_eq!(thread_id(""), None);

        let n = EmailNotifier::new(&config()).unwrap();
        let mut b = batch(vec![item(Status::Firing, "A", "x")]);
        b.thread = Some("<first@example.org>".to_string());
        let (msg, id) = n.message(&b).unwrap();
        let raw = String::from_utf8(msg.formatted()).unwrap();
        assert!(raw.contains(&format!("Message-ID: {id}\r\n")), "{raw}");
        assert!(
            raw.contains("In-Reply-To: <first@example.org>\r\n"),
            "{raw}"
        );
        assert!(raw.contains("References: <first@example.org>\r\n"), "{raw}");
        assert!(raw.contains("multipart/alternative"));
    }
}
