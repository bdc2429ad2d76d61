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

/// `lookout notify-test RECEIVER` sends a marked test alert and prints the answer; an unknown
/// receiver is refused with the list. The notification series pass promtool, and the status
/// page and /api/v1/receivers list the receiver.
#[test]
fn notify_test_metrics_and_status_page() {
    let hook = HttpSink::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg_text = format!(
        "collectors: {{docker: false, cgroup: false, gpu: false}}\ninterval: 1s\n\
         receivers:\n  - name: hook\n    webhook: {{url: \"{}/x\"}}\n",
        hook.url
    );
    let cfg = dir.path().join("lookout.yml");
    std::fs::write(&cfg, &cfg_text).unwrap();
    let out = std::process::Command::new(support::lookout_bin())
        .args(["notify-test", "hook", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("hook (webhook): delivered"), "{stdout}");
    let posts = hook.posts();
    assert_eq!(posts.len(), 1);
    let body = posts[0].json();
    assert_eq!(body["alerts"][0]["labels"]["alertname"], "LookoutTest");
    assert!(body["alerts"][0]["annotations"]["summary"]
        .as_str()
        .unwrap()
        .contains("test"));
    let out = std::process::Command::new(support::lookout_bin())
        .args(["notify-test", "nope", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no receiver named \"nope\"") && err.contains("hook"),
        "{err}"
    );
    // A receiver that does not answer: an error naming it, exit 1, the URL never shown.
    let down_cfg = dir.path().join("down.yml");
    std::fs::write(
        &down_cfg,
        "receivers:\n  - name: hook\n    webhook: {url: \"http://127.0.0.1:1/s3cr3t\"}\n",
    )
    .unwrap();
    let down = std::process::Command::new(support::lookout_bin())
        .args(["notify-test", "hook", "-c"])
        .arg(&down_cfg)
        .output()
        .unwrap();
    assert!(!down.status.success());
    let err = String::from_utf8_lossy(&down.stderr);
    assert!(err.contains("hook (webhook): not delivered"), "{err}");
    assert!(!err.contains("s3cr3t"), "{err}");

    let lo = Lookout::start(&cfg_text, &[]);
    let m = wait_until(Duration::from_secs(15), || {
        let m = lo.metrics();
        m.contains("lookout_receiver_up{").then_some(m)
    })
    .expect("notification series");
    for family in [
        "lookout_notifications_total{receiver=\"hook\",outcome=\"success\"} 0",
        "lookout_notification_duration_seconds_bucket{receiver=\"hook\",le=\"+Inf\"} 0",
        "lookout_notifications_pending{receiver=\"hook\"} 0",
        "lookout_notifications_dropped_total{receiver=\"hook\",reason=\"backlog_full\"} 0",
        "lookout_receiver_up{receiver=\"hook\",kind=\"webhook\"} 1",
    ] {
        assert!(m.contains(family), "{family}\n{m}");
    }
    if let Some(problems) = support::promtool_problems("notify_test_metrics_and_status_page", &m) {
        assert!(problems.is_empty(), "{problems:?}");
    }
    let page = support::get(&lo.addr, "/").text();
    assert!(
        page.contains("<h2>Receivers</h2>") && page.contains("hook"),
        "{page}"
    );
    let api: Value =
        serde_json::from_str(&support::get(&lo.addr, "/api/v1/receivers").text()).unwrap();
    assert_eq!(api["receivers"]["hook"]["kind"], "webhook");
}
