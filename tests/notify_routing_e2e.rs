//! Routing end to end: one container alert reaches Discord (the rule's `notify`), mail (a
//! route on severity, `continue`), a real Alertmanager and a webhook (routes on the alert's
//! name), each once; its resolve follows, the mail threaded under the first.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::alertmanager::{alertmanager_or_skip, Alertmanager};
use support::discord::FakeDiscord;
use support::http_sink::HttpSink;
use support::smtp::{smtp_tools_or_skip, SinkOptions, SmtpSink};
use support::{wait_until, Container, Lookout};

const AM_CONFIG: &str =
    "route:\n  receiver: 'null'\n  group_wait: 1h\nreceivers:\n  - name: 'null'\n";

fn titles(discord: &FakeDiscord, name: &str) -> Vec<String> {
    discord
        .messages()
        .iter()
        .flat_map(|m| m.embeds())
        .filter_map(|e| e["title"].as_str().map(str::to_string))
        .filter(|t| t.contains(name))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_alert_reaches_every_routed_receiver_once_then_resolves() {
    let test = "one_alert_reaches_every_routed_receiver_once_then_resolves";
    if !support::docker_or_skip(test) || !smtp_tools_or_skip(test) || !alertmanager_or_skip(test) {
        return;
    }
    let discord = FakeDiscord::start().await;
    let smtp = SmtpSink::start(&SinkOptions::default());
    let am = Alertmanager::start(AM_CONFIG);
    let hook = HttpSink::start();
    let prefix = "lookout-nr";
    let cfg = format!(
        r#"interval: 1s
docker:
  include: ["{prefix}-*"]
receivers:
  - name: discord
    discord: {{webhook_url: "{discord}"}}
  - name: email
    email:
      smtp: {{host: 127.0.0.1, port: {smtp}, tls: none}}
      from: "lookout <lookout@example.com>"
      to: [oncall@example.com]
  - name: am
    alertmanager: {{urls: ["{am}"]}}
  - name: hook
    webhook: {{url: "{hook}/hook"}}
route:
  group_by: [alertname, name]
  group_wait: 200ms
  group_interval: 1s
  routes:
    - matchers: ['severity="critical"']
      receiver: email
      continue: true
    - matchers: ['alertname="ContainerDown"']
      receiver: am
      continue: true
    - matchers: ['alertname=~"Container.*"']
      receiver: hook
    - matchers: ['alertname=~"Container.*"']
      receiver: discord
"#,
        discord = discord.webhook_url(),
        smtp = smtp.port(),
        am = am.url,
        hook = hook.url,
    );
    let lo = Lookout::start(&cfg, &[]);
    let c = Container::run(prefix, &[], &["sh", "-c", "echo bye; exit 3"]);

    // Discord: from the rule's notify (the last route, after a match without continue, never
    // applies), once.
    let fired = wait_until(Duration::from_secs(30), || {
        (!titles(&discord, &c.name).is_empty()).then_some(())
    });
    assert!(fired.is_some(), "{}", lo.log());
    // Mail: from the severity route.
    let mails = smtp.wait_for(1, Duration::from_secs(20));
    let first = &mails[0];
    let subject = first.header("Subject").unwrap_or("").to_string();
    assert_eq!(subject, format!("[FIRING:1] ContainerDown {}", c.name));
    assert_eq!(first.rcpt_tos, ["oncall@example.com"]);
    assert!(
        first.text.as_deref().unwrap_or("").contains("Exit code"),
        "{first:?}"
    );
    assert!(
        first.html.as_deref().unwrap_or("").contains("bye"),
        "the log line"
    );
    let first_id = first.header("Message-ID").unwrap().to_string();
    // Alertmanager: it has the alert, active.
    let in_am = wait_until(Duration::from_secs(20), || {
        am.alerts()
            .into_iter()
            .find(|a| a["labels"]["name"] == c.name.as_str())
    })
    .expect("the alert reached Alertmanager");
    assert_eq!(in_am["labels"]["alertname"], "ContainerDown");
    assert_eq!(in_am["status"]["state"], "active");
    // Webhook: Alertmanager's payload.
    let posted = hook
        .wait_for_async(Duration::from_secs(20), |p| p.first().cloned())
        .await
        .expect("the webhook got the alert");
    let body: Value = posted.json();
    assert_eq!(body["version"], "4");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["receiver"], "hook");
    assert_eq!(body["alerts"][0]["labels"]["name"], c.name.as_str());

    // Resolve: the container is removed.
    drop(c);
    let name = titles(&discord, "").len(); // every title so far
    let resolved = wait_until(Duration::from_secs(30), || {
        let mails = smtp.messages();
        (mails.len() >= 2 && hook.posts().len() >= 2).then_some(mails)
    })
    .unwrap_or_else(|| panic!("no resolve: {}", lo.log()));
    let second = &resolved[1];
    assert!(
        second
            .header("Subject")
            .unwrap_or("")
            .starts_with("[RESOLVED] ContainerDown"),
        "{:?}",
        second.header("Subject")
    );
    assert_eq!(second.header("In-Reply-To"), Some(first_id.as_str()));
    assert_eq!(second.header("References"), Some(first_id.as_str()));
    assert_ne!(second.header("Message-ID"), Some(first_id.as_str()));
    assert_eq!(hook.posts()[1].json()["status"], "resolved");
    let gone = wait_until(Duration::from_secs(20), || {
        let still = am.alerts().into_iter().any(|a| {
            a["labels"]["alertname"] == "ContainerDown" && a["status"]["state"] == "active"
        });
        (!still).then_some(())
    });
    assert!(
        gone.is_some(),
        "resolved in Alertmanager: {:?}",
        am.alerts()
    );
    let all = wait_until(Duration::from_secs(20), || {
        let t = titles(&discord, "");
        (t.len() > name).then_some(t)
    })
    .unwrap();
    let firing = all.iter().filter(|t| t.starts_with("[FIRING]")).count();
    let resolved = all.iter().filter(|t| t.starts_with("[RESOLVED]")).count();
    assert_eq!((firing, resolved), (1, 1), "each once: {all:?}");
    // Exactly two mails and two webhook posts: nothing twice.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(smtp.messages().len(), 2);
    assert_eq!(hook.posts().len(), 2);
}
