//! The mail notifier against a real SMTP server (Debian's aiosmtpd on loopback): the subject,
//! the recipients, both MIME parts, threading headers, STARTTLS with a test CA, implicit TLS,
//! AUTH, and how each failure is classified. Skips with a notice when python3-aiosmtpd or
//! openssl is missing (a failure under `LOOKOUT_REQUIRE_TOOLS=1`).

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use lookout::config::receivers::{EmailConfig, Secret, SmtpConfig, SmtpTls};
use lookout::notify::email::EmailNotifier;
use lookout::notify::{Batch, Item, Notifier, Reason, SendError, Status};
use support::smtp::{smtp_tools_or_skip, SinkOptions, SmtpSink, TestCerts};

const WAIT: Duration = Duration::from_secs(10);
const PASSWORD: &str = "s3cr3t-Pa55word-xyz";

fn config(port: u16, tls: SmtpTls) -> EmailConfig {
    EmailConfig {
        smtp: SmtpConfig {
            host: "127.0.0.1".to_string(),
            port,
            tls,
            username: None,
            password: None,
            ca_file: None,
            insecure_skip_verify: false,
            timeout: Duration::from_secs(10),
        },
        from: "lookout <lookout@example.org>".to_string(),
        to: vec![
            "ops@example.org".to_string(),
            "Second Person <oncall@example.net>".to_string(),
        ],
    }
}

fn item(status: Status, alert: &str, name: &str) -> Item {
    let labels: BTreeMap<String, String> = [
        ("alertname", alert),
        ("name", name),
        ("severity", "critical"),
        ("image", "busybox:1.36"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let annotations: BTreeMap<String, String> = [
        ("summary", format!("{name} uses 93% of its memory limit")),
        (
            "description",
            "<script>alert('x')</script> & memory keeps growing".to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Item {
        seq: 1,
        status,
        labels,
        annotations,
        starts_at: 1_796_048_630.5,
        ends_at: (status == Status::Resolved).then_some(1_796_048_930.0),
        value: Some("93.2".to_string()),
        reason: Some(Reason {
            container: name.to_string(),
            image: "busybox:1.36".to_string(),
            state: "exited".to_string(),
            health: String::new(),
            exit_code: Some(137),
            oom_killed: true,
            restart_count: 3,
            ran_for_seconds: Some(125.0),
        }),
        logs: vec![
            format!("{name}: allocating <buffer> #1"),
            format!("{name}: allocating <buffer> #2 & more"),
        ],
        fingerprint: format!("fp-{name}"),
    }
}

fn batch(items: Vec<Item>) -> Batch {
    Batch {
        receiver: "mail".to_string(),
        group_key: "{}:{alertname=\"ContainerHighMemory\"}".to_string(),
        group_labels: [("alertname".to_string(), "ContainerHighMemory".to_string())]
            .into_iter()
            .collect(),
        items,
        host: "docker-host-7".to_string(),
        external_url: "http://docker-host-7:9659".to_string(),
        thread: None,
        test: false,
        repeat: false,
    }
}

fn firing_two() -> Batch {
    batch(vec![
        item(Status::Firing, "ContainerHighMemory", "web-1"),
        item(Status::Firing, "ContainerHighMemory", "web-2"),
    ])
}

fn with_auth(mut cfg: EmailConfig, password: &str) -> EmailConfig {
    cfg.smtp.username = Some("alerts".to_string());
    cfg.smtp.password = Some(Secret::new(password));
    cfg
}

fn retry_reason(r: Result<lookout::notify::Ack, SendError>) -> String {
    match r {
        Err(SendError::Retry {
            after: None,
            reason,
        }) => {
            eprintln!("retry: {reason}");
            reason
        }
        other => panic!("expected Retry, got {other:?}"),
    }
}

#[tokio::test]
async fn a_firing_mail_lists_every_alert_in_both_parts() {
    if !smtp_tools_or_skip("a_firing_mail_lists_every_alert_in_both_parts") {
        return;
    }
    let sink = SmtpSink::start(&SinkOptions::default());
    let n = EmailNotifier::new(&config(sink.port(), SmtpTls::None)).unwrap();
    assert_eq!(n.kind(), "email");
    let ack = n.send(&firing_two()).await.expect("sent");
    let msgs = sink.wait_for(1, WAIT);
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];

    assert_eq!(
        m.header("Subject"),
        Some("[FIRING:2] ContainerHighMemory web-1, web-2")
    );
    assert_eq!(m.mail_from, "lookout@example.org");
    assert_eq!(m.rcpt_tos, ["ops@example.org", "oncall@example.net"]);
    let to = m.header("To").unwrap();
    assert!(
        to.contains("ops@example.org") && to.contains("Second Person <oncall@example.net>"),
        "{to}"
    );
    assert!(m.header("From").unwrap().contains("lookout@example.org"));
    assert!(m.header("Date").is_some());
    assert_eq!(m.header("Auto-Submitted"), Some("auto-generated"));

    // Ack: the Message-ID exactly as in the header, and the server's reply.
    let id = m.header("Message-ID").unwrap();
    assert_eq!(ack.message_id.as_deref(), Some(id));
    assert!(id.starts_with('<') && id.ends_with("@example.org>"), "{id}");
    assert!(ack.detail.starts_with("250 "), "{}", ack.detail);
    assert!(ack.detail.contains("queued as 1"), "{}", ack.detail);
    assert!(m.header("In-Reply-To").is_none());

    assert_eq!(m.content_type, "multipart/alternative");
    assert_eq!(m.parts, ["text/plain", "text/html"]);
    let text = m.text.as_deref().unwrap();
    let html = m.html.as_deref().unwrap();
    for name in ["web-1", "web-2"] {
        let summary = format!("{name} uses 93% of its memory limit");
        assert!(text.contains(&summary), "{text}");
        assert!(html.contains(&summary), "{html}");
        assert!(
            text.contains(&format!("    {name}: allocating <buffer> #1\n")),
            "{text}"
        );
        assert!(
            html.contains(&format!("{name}: allocating &lt;buffer&gt; #2 &amp; more")),
            "{html}"
        );
    }
    // The reason: the one-line form and the table.
    for part in [text, html] {
        assert!(part.contains("137 (SIGKILL, OOM-killed"), "{part}");
        assert!(part.contains("Restarts"), "{part}");
        assert!(part.contains("2m 5s"), "{part}");
        assert!(part.contains("93.2"), "{part}");
        assert!(part.contains("2026-11-30T14:23:50.500Z"), "{part}");
        assert!(part.contains("docker-host-7"), "{part}");
        assert!(part.contains("http://docker-host-7:9659"), "{part}");
    }
    assert!(text.contains("<script>alert('x')</script> & memory keeps growing"));
    assert!(!html.contains("<script>"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; memory"),
        "{html}"
    );
    assert!(html.contains("<pre"), "{html}");
}

#[tokio::test]
async fn later_mails_of_a_group_thread_under_the_first() {
    if !smtp_tools_or_skip("later_mails_of_a_group_thread_under_the_first") {
        return;
    }
    let sink = SmtpSink::start(&SinkOptions::default());
    let n = EmailNotifier::new(&config(sink.port(), SmtpTls::None)).unwrap();
    let first = n.send(&firing_two()).await.expect("first");
    let first_id = first.message_id.clone().unwrap();

    let mut resolved = batch(vec![item(Status::Resolved, "ContainerHighMemory", "web-1")]);
    resolved.thread = Some(first_id.clone());
    let second = n.send(&resolved).await.expect("second");

    let msgs = sink.wait_for(2, WAIT);
    let m = &msgs[1];
    assert_eq!(
        m.header("Subject"),
        Some("[RESOLVED] ContainerHighMemory web-1")
    );
    assert_eq!(m.header("In-Reply-To"), Some(first_id.as_str()));
    assert_eq!(m.header("References"), Some(first_id.as_str()));
    let second_id = m.header("Message-ID").unwrap();
    assert_eq!(second.message_id.as_deref(), Some(second_id));
    assert_ne!(second_id, first_id);
    assert_eq!(msgs[0].header("Message-ID"), Some(first_id.as_str()));
    assert!(m
        .text
        .as_deref()
        .unwrap()
        .contains("2026-11-30T14:28:50.000Z"));
}

#[tokio::test]
async fn test_and_reminder_mails_say_so() {
    if !smtp_tools_or_skip("test_and_reminder_mails_say_so") {
        return;
    }
    let sink = SmtpSink::start(&SinkOptions::default());
    let n = EmailNotifier::new(&config(sink.port(), SmtpTls::None)).unwrap();
    let mut b = batch(vec![item(Status::Firing, "LookoutTest", "web-1")]);
    b.test = true;
    n.send(&b).await.expect("test mail");
    let mut b = firing_two();
    b.repeat = true;
    n.send(&b).await.expect("reminder");
    let msgs = sink.wait_for(2, WAIT);
    let subject = msgs[0].header("Subject").unwrap();
    assert!(
        subject.starts_with("[TEST] [FIRING:1] LookoutTest"),
        "{subject}"
    );
    assert!(msgs[0]
        .text
        .as_deref()
        .unwrap()
        .contains("test notification"));
    assert!(msgs[0]
        .html
        .as_deref()
        .unwrap()
        .contains("test notification"));
    let subject = msgs[1].header("Subject").unwrap();
    assert!(subject.ends_with("(reminder)"), "{subject}");
    assert!(msgs[1].text.as_deref().unwrap().contains("still firing"));
}

#[tokio::test]
async fn starttls_with_the_configured_ca_and_auth() {
    if !smtp_tools_or_skip("starttls_with_the_configured_ca_and_auth") {
        return;
    }
    let certs = TestCerts::make();
    let sink = SmtpSink::start(&SinkOptions {
        starttls: Some((certs.cert.clone(), certs.key.clone())),
        auth: Some(("alerts".to_string(), PASSWORD.to_string())),
        ..SinkOptions::default()
    });
    let mut cfg = with_auth(config(sink.port(), SmtpTls::Starttls), PASSWORD);
    cfg.smtp.ca_file = Some(certs.ca.clone());
    let n = EmailNotifier::new(&cfg).unwrap();
    assert!(!format!("{n:?}").contains(PASSWORD));
    let ack = n.send(&firing_two()).await.expect("sent over STARTTLS");
    let msgs = sink.wait_for(1, WAIT);
    assert!(msgs[0].tls, "the session was not encrypted");
    assert!(msgs[0].authenticated);
    assert_eq!(msgs[0].header("Message-ID"), ack.message_id.as_deref());

    // The same server without the CA: the certificate is not trusted, nothing is sent.
    let mut cfg = with_auth(config(sink.port(), SmtpTls::Starttls), PASSWORD);
    let reason = retry_reason(EmailNotifier::new(&cfg).unwrap().send(&firing_two()).await);
    assert!(reason.to_lowercase().contains("tls"), "{reason}");
    assert!(!reason.contains(PASSWORD));
    // ... unless verification is off.
    cfg.smtp.insecure_skip_verify = true;
    EmailNotifier::new(&cfg)
        .unwrap()
        .send(&firing_two())
        .await
        .expect("sent without verification");
    assert_eq!(sink.wait_for(2, WAIT).len(), 2);
}

#[tokio::test]
async fn a_wrong_password_is_retried_and_never_shown() {
    if !smtp_tools_or_skip("a_wrong_password_is_retried_and_never_shown") {
        return;
    }
    let certs = TestCerts::make();
    let sink = SmtpSink::start(&SinkOptions {
        starttls: Some((certs.cert.clone(), certs.key.clone())),
        auth: Some(("alerts".to_string(), "the-right-one".to_string())),
        ..SinkOptions::default()
    });
    let mut cfg = with_auth(config(sink.port(), SmtpTls::Starttls), PASSWORD);
    cfg.smtp.ca_file = Some(certs.ca.clone());
    let n = EmailNotifier::new(&cfg).unwrap();
    let err = n.send(&firing_two()).await.unwrap_err();
    let shown = format!("{err} {err:?} {n:?}");
    assert!(!shown.contains(PASSWORD), "{shown}");
    let reason = retry_reason(Err(err));
    assert!(reason.contains("authentication"), "{reason}");
    assert!(reason.contains("config"), "{reason}");
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn implicit_tls_with_the_configured_ca() {
    if !smtp_tools_or_skip("implicit_tls_with_the_configured_ca") {
        return;
    }
    let certs = TestCerts::make();
    let sink = SmtpSink::start(&SinkOptions {
        implicit_tls: Some((certs.cert.clone(), certs.key.clone())),
        auth: Some(("alerts".to_string(), PASSWORD.to_string())),
        ..SinkOptions::default()
    });
    let mut cfg = with_auth(config(sink.port(), SmtpTls::Tls), PASSWORD);
    cfg.smtp.ca_file = Some(certs.ca.clone());
    EmailNotifier::new(&cfg)
        .unwrap()
        .send(&firing_two())
        .await
        .expect("sent over TLS");
    let msgs = sink.wait_for(1, WAIT);
    assert!(msgs[0].tls && msgs[0].authenticated);
}

#[tokio::test]
async fn required_starttls_never_falls_back_to_plain_text() {
    if !smtp_tools_or_skip("required_starttls_never_falls_back_to_plain_text") {
        return;
    }
    let sink = SmtpSink::start(&SinkOptions {
        auth: Some(("alerts".to_string(), PASSWORD.to_string())),
        ..SinkOptions::default()
    });
    let n =
        EmailNotifier::new(&with_auth(config(sink.port(), SmtpTls::Starttls), PASSWORD)).unwrap();
    let reason = retry_reason(n.send(&firing_two()).await);
    assert!(reason.contains("STARTTLS"), "{reason}");
    assert!(!reason.contains(PASSWORD));
    std::thread::sleep(Duration::from_millis(200));
    assert!(sink.messages().is_empty(), "a mail went out in plain text");
}

#[tokio::test]
async fn a_server_that_is_down_or_silent_means_retry() {
    if !smtp_tools_or_skip("a_server_that_is_down_or_silent_means_retry") {
        return;
    }
    let n = EmailNotifier::new(&config(support::free_port(), SmtpTls::None)).unwrap();
    let reason = retry_reason(n.send(&firing_two()).await);
    assert!(reason.contains("127.0.0.1"), "{reason}");

    // Accepts the connection but never greets: the timeout ends the send.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut cfg = config(silent.local_addr().unwrap().port(), SmtpTls::None);
    cfg.smtp.timeout = Duration::from_secs(1);
    let start = Instant::now();
    retry_reason(EmailNotifier::new(&cfg).unwrap().send(&firing_two()).await);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn transient_and_permanent_refusals() {
    if !smtp_tools_or_skip("transient_and_permanent_refusals") {
        return;
    }
    let sink = SmtpSink::start(&SinkOptions {
        reject_rcpt: vec!["oncall@example.net".to_string()],
        ..SinkOptions::default()
    });
    let n = EmailNotifier::new(&config(sink.port(), SmtpTls::None)).unwrap();
    match n.send(&firing_two()).await {
        Err(SendError::Rejected { reason }) => {
            eprintln!("rejected: {reason}");
            assert!(reason.contains("550"), "{reason}")
        }
        other => panic!("expected Rejected, got {other:?}"),
    }

    let sink = SmtpSink::start(&SinkOptions {
        tempfail: true,
        ..SinkOptions::default()
    });
    let n = EmailNotifier::new(&config(sink.port(), SmtpTls::None)).unwrap();
    let reason = retry_reason(n.send(&firing_two()).await);
    assert!(reason.contains("451"), "{reason}");
}
