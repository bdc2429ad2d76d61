//! Notifications end to end: real containers on the real daemon, the real lookout binary, and
//! the strict fake Discord (tests/support/discord.rs). Each test watches only its own
//! containers (its own name prefix).

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::discord::{FakeDiscord, Fault, Message};
use support::{get, request_with_body as request, sample, wait_until, Container, Lookout};

/// A config that watches `prefix-*` every second and sends the default rules to Discord with
/// a short group wait.
fn config(prefix: &str, webhook: &str, extra: &str) -> String {
    format!(
        "interval: 1s\ndocker:\n  include: [\"{prefix}-*\"]\n\
         receivers:\n  - name: discord\n    discord:\n      webhook_url: {webhook}\n\
         route:\n  group_by: [alertname, name]\n  group_wait: 200ms\n  group_interval: 1s\n\
         {extra}"
    )
}

/// Every (title, description) posted, in order.
fn embeds(msgs: &[Message]) -> Vec<(String, String, Value)> {
    msgs.iter()
        .flat_map(|m| m.embeds())
        .map(|e| {
            (
                e["title"].as_str().unwrap_or("").to_string(),
                e["description"].as_str().unwrap_or("").to_string(),
                e,
            )
        })
        .collect()
}

/// The titles of the ContainerDown embeds about `name`, in order.
fn down_titles(msgs: &[Message], name: &str) -> Vec<String> {
    embeds(msgs)
        .into_iter()
        .filter(|(t, ..)| t.contains(name) && t.contains("down"))
        .map(|(t, ..)| t)
        .collect()
}

async fn wait_for(
    discord: &FakeDiscord,
    timeout: Duration,
    f: impl Fn(&[Message]) -> bool,
) -> Vec<Message> {
    let end = Instant::now() + timeout;
    loop {
        let m = discord.messages();
        if f(&m) || Instant::now() > end {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn field<'a>(embed: &'a Value, name: &str) -> Option<&'a str> {
    embed["fields"]
        .as_array()?
        .iter()
        .find(|f| f["name"].as_str() == Some(name))
        .and_then(|f| f["value"].as_str())
}

/// A container that prints known lines and exits 3: the ContainerDown message at Discord
/// carries the exit code with its meaning, how long it ran, the image, and its last lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_down_message_says_why_with_the_last_log_lines() {
    if !support::docker_or_skip("container_down_message_says_why_with_the_last_log_lines") {
        return;
    }
    let discord = FakeDiscord::start().await;
    let lo = Lookout::start(&config("lookout-nd-why", &discord.webhook_url(), ""), &[]);
    let c = Container::run(
        "lookout-nd-why",
        &[],
        &[
            "sh",
            "-c",
            "echo starting worker; echo 'loaded 3 jobs'; sleep 2; echo 'FATAL: cannot open /data/db' >&2; exit 3",
        ],
    );
    let msgs = wait_for(&discord, Duration::from_secs(30), |m| {
        !down_titles(m, &c.name).is_empty()
    })
    .await;
    let all = embeds(&msgs);
    let (title, desc, embed) = all
        .iter()
        .find(|(t, ..)| t.contains(&c.name) && t.contains("down"))
        .unwrap_or_else(|| {
            panic!(
                "no ContainerDown message for {}: {all:?}\n{}",
                c.name,
                lo.log()
            )
        });
    assert!(title.starts_with("[FIRING]"), "{title}");
    let text = embed.to_string();
    let exit = field(embed, "Exit code").unwrap_or_else(|| panic!("no exit code field: {text}"));
    assert!(exit.starts_with('3'), "{exit}");
    let ran = field(embed, "Ran for").unwrap_or_else(|| panic!("no run time: {text}"));
    assert!(ran.ends_with('s'), "{ran}");
    assert!(text.contains("lookout-test-bb"), "the image: {text}");
    // The last lines, stdout and stderr, in a code block, in order.
    let logs = format!("{desc}{text}");
    let a = logs
        .find("loaded 3 jobs")
        .unwrap_or_else(|| panic!("no log lines: {logs}"));
    let b = logs
        .find("FATAL: cannot open /data/db")
        .expect("stderr line");
    assert!(a < b, "in order");
    assert!(logs.contains("```"), "a code block: {logs}");
    assert!(embed["timestamp"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert!(embed["footer"]["text"]
        .as_str()
        .is_some_and(|f| !f.is_empty()));
    // Red: critical.
    assert_eq!(
        embed["color"].as_u64(),
        Some(lookout::notify::discord::COLOR_CRITICAL as u64)
    );
    assert!(
        discord.messages().iter().all(|m| m.wait),
        "always ?wait=true"
    );
    // The metrics say so.
    let ok = wait_until(Duration::from_secs(10), || {
        sample(
            &lo.metrics(),
            "lookout_notifications_total",
            &["receiver=\"discord\"", "outcome=\"success\""],
        )
        .filter(|v| *v >= 1.0)
    });
    assert!(ok.is_some(), "{}", lo.metrics());
    assert_eq!(
        sample(
            &lo.metrics(),
            "lookout_receiver_up",
            &["receiver=\"discord\""]
        ),
        Some(1.0)
    );
}

/// Discord is down for 20 s while a container dies, comes back and dies again: once Discord
/// is back, every transition arrives exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_loses_nothing_and_duplicates_nothing() {
    if !support::docker_or_skip("an_outage_loses_nothing_and_duplicates_nothing") {
        return;
    }
    let discord = FakeDiscord::start().await;
    let lo = Lookout::start(&config("lookout-nd-out", &discord.webhook_url(), ""), &[]);
    let c = Container::run("lookout-nd-out", &[], &["sleep", "3600"]);
    c.wait_state("running", Duration::from_secs(10));
    // Wait until lookout sees it running.
    wait_until(Duration::from_secs(15), || {
        get(&lo.addr, "/api/v1/containers")
            .text()
            .contains(&c.name)
            .then_some(())
    })
    .expect("lookout sees the container");
    discord.down_for(Duration::from_secs(20)).await;
    assert!(!discord.is_up());
    // fire, resolve, fire again, all while Discord is down.
    c.docker(&["kill"]);
    wait_alert(&lo.addr, &c.name, true);
    c.docker(&["start"]);
    wait_alert(&lo.addr, &c.name, false);
    c.docker(&["kill"]);
    wait_alert(&lo.addr, &c.name, true);
    assert!(discord.messages().is_empty());
    let pending = sample(
        &lo.metrics(),
        "lookout_notifications_pending",
        &["receiver=\"discord\""],
    );
    let msgs = wait_for(&discord, Duration::from_secs(60), |m| {
        down_titles(m, &c.name).len() >= 3
    })
    .await;
    // Let any duplicate arrive.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let msgs = if msgs.len() < discord.messages().len() {
        discord.messages()
    } else {
        msgs
    };
    let titles = down_titles(&msgs, &c.name);
    let states: Vec<&str> = titles
        .iter()
        .map(|t| {
            if t.starts_with("[FIRING]") {
                "firing"
            } else if t.starts_with("[RESOLVED]") {
                "resolved"
            } else {
                "?"
            }
        })
        .collect();
    assert_eq!(
        states,
        ["firing", "resolved", "firing"],
        "{titles:?}\npending was {pending:?}\n{}",
        lo.log()
    );
    assert!(wait_until(Duration::from_secs(10), || {
        (sample(
            &lo.metrics(),
            "lookout_notifications_pending",
            &["receiver=\"discord\""],
        ) == Some(0.0))
        .then_some(())
    })
    .is_some());
}

/// Whether `/api/v1/alerts` shows ContainerDown for `name` firing (or not at all).
fn wait_alert(addr: &str, name: &str, firing: bool) {
    let ok = wait_until(Duration::from_secs(20), || {
        let v: Value = serde_json::from_str(&get(addr, "/api/v1/alerts").text()).ok()?;
        let has = v["alerts"].as_array()?.iter().any(|a| {
            a["labels"]["alertname"] == "ContainerDown"
                && a["labels"]["name"] == name
                && a["state"] == "firing"
        });
        (has == firing).then_some(())
    });
    assert!(
        ok.is_some(),
        "ContainerDown for {name} firing={firing} never showed"
    );
}

/// lookout is SIGKILLed while notifications wait for Discord; restarted on the same
/// state_dir, it delivers them, none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_with_pending_notifications_loses_none_and_sends_none_twice() {
    if !support::docker_or_skip(
        "a_sigkill_with_pending_notifications_loses_none_and_sends_none_twice",
    ) {
        return;
    }
    let discord = FakeDiscord::start().await;
    let state = tempfile::tempdir().unwrap();
    let cfg = config(
        "lookout-nd-kill",
        &discord.webhook_url(),
        &format!("state_dir: {}\n", state.path().display()),
    );
    // Already delivered before the kill: must not come again.
    let first = Container::run("lookout-nd-kill", &[], &["sh", "-c", "exit 5"]);
    let mut lo = Lookout::start(&cfg, &[]);
    wait_for(&discord, Duration::from_secs(30), |m| {
        !down_titles(m, &first.name).is_empty()
    })
    .await;
    // Discord fails every request now; a second container dies.
    discord.fail_next(1000, Fault::ServerError(503));
    let second = Container::run("lookout-nd-kill", &[], &["sh", "-c", "exit 6"]);
    let waited = wait_until(Duration::from_secs(30), || {
        sample(
            &lo.metrics(),
            "lookout_notifications_total",
            &["receiver=\"discord\"", "outcome=\"failure\""],
        )
        .filter(|v| *v >= 1.0)
    });
    assert!(waited.is_some(), "no failed attempt: {}", lo.log());
    // SIGKILL: no chance to clean up.
    lo.child.kill().unwrap();
    lo.child.wait().unwrap();
    discord.clear_faults();
    let before = discord.messages().len();
    let lo2 = Lookout::start(&cfg, &[]);
    let msgs = wait_for(&discord, Duration::from_secs(30), |m| {
        !down_titles(m, &second.name).is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let msgs = if msgs.len() < discord.messages().len() {
        discord.messages()
    } else {
        msgs
    };
    assert_eq!(
        down_titles(&msgs, &second.name).len(),
        1,
        "the pending one, once: {:?}\n{}",
        embeds(&msgs),
        lo2.log()
    );
    assert_eq!(
        down_titles(&msgs, &first.name).len(),
        1,
        "the one sent before the kill, not again"
    );
    assert!(msgs.len() > before);
}

/// A 429 is waited out (Retry-After), a 5xx is retried with backoff, and a 404 disables the
/// receiver loudly with a metric.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_server_errors_and_a_deleted_webhook() {
    if !support::docker_or_skip("rate_limits_server_errors_and_a_deleted_webhook") {
        return;
    }
    let discord = FakeDiscord::start().await;
    let lo = Lookout::start(&config("lookout-nd-err", &discord.webhook_url(), ""), &[]);
    // 429 with retry_after 2 s: the message arrives after it, once.
    discord.fail_next(1, Fault::RateLimited { retry_after: 2.0 });
    let t0 = Instant::now();
    let a = Container::run("lookout-nd-err", &[], &["sh", "-c", "exit 7"]);
    let msgs = wait_for(&discord, Duration::from_secs(30), |m| {
        !down_titles(m, &a.name).is_empty()
    })
    .await;
    assert_eq!(down_titles(&msgs, &a.name).len(), 1);
    assert_eq!(discord.count(429), 1);
    assert!(t0.elapsed() >= Duration::from_secs(2));
    // Three 502s: retried with backoff, then delivered.
    discord.fail_next(3, Fault::ServerError(502));
    let b = Container::run("lookout-nd-err", &[], &["sh", "-c", "exit 8"]);
    let msgs = wait_for(&discord, Duration::from_secs(30), |m| {
        !down_titles(m, &b.name).is_empty()
    })
    .await;
    assert_eq!(down_titles(&msgs, &b.name).len(), 1, "{}", lo.log());
    assert_eq!(discord.count(502), 3);
    // Deleted: 404, disabled, said loudly, and not hit again.
    discord.delete_webhook();
    let c = Container::run("lookout-nd-err", &[], &["sh", "-c", "exit 9"]);
    let down = wait_until(Duration::from_secs(30), || {
        (sample(
            &lo.metrics(),
            "lookout_receiver_up",
            &["receiver=\"discord\""],
        ) == Some(0.0))
        .then_some(())
    });
    assert!(down.is_some(), "{}", lo.log());
    // The gauge was 0 during the 502s too: the log says why it is 0 now.
    let said = wait_until(Duration::from_secs(30), || {
        lo.log().contains("RECEIVER DISABLED").then_some(())
    });
    assert!(said.is_some(), "{}", lo.log());
    let still_down = wait_until(Duration::from_secs(10), || {
        let m = lo.metrics();
        (sample(&m, "lookout_receiver_up", &["receiver=\"discord\""]) == Some(0.0)
            && m.contains("lookout_notifications_total{receiver=\"discord\",outcome=\"failure\"}"))
        .then_some(())
    });
    assert!(still_down.is_some());
    let hits = discord.count(404);
    assert!(hits >= 1);
    let d = Container::run("lookout-nd-err", &[], &["sh", "-c", "exit 10"]);
    wait_alert(&lo.addr, &d.name, true);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        discord.count(404),
        hits,
        "a disabled receiver is not hit again"
    );
    assert!(
        sample(
            &lo.metrics(),
            "lookout_notifications_dropped_total",
            &["receiver=\"discord\"", "reason=\"receiver_disabled\""]
        )
        .is_some_and(|v| v >= 1.0),
        "{}",
        lo.metrics()
    );
    drop(c);
}

/// A silence (made with the CLI) suppresses a container's alert; expiring it un-suppresses:
/// the alert, still firing, is then notified. A silenced alert shows in /api/v1/alerts,
/// marked silenced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silence_suppresses_and_its_expiry_unsuppresses() {
    if !support::docker_or_skip("a_silence_suppresses_and_its_expiry_unsuppresses") {
        return;
    }
    let discord = FakeDiscord::start().await;
    let lo = Lookout::start(&config("lookout-nd-sil", &discord.webhook_url(), ""), &[]);
    let name = support::unique_name("lookout-nd-sil");
    let url = format!("http://{}", lo.addr);
    let out = std::process::Command::new(support::lookout_bin())
        .args([
            "silence",
            "add",
            &format!("name=\"{name}\""),
            "--for",
            "2h",
            "--comment",
            "deploy",
            "--url",
            &url,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(id.len(), 36, "a silence id: {id}");
    let list = std::process::Command::new(support::lookout_bin())
        .args(["silence", "list", "--url", &url])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        listed.contains(&id) && listed.contains("deploy") && listed.contains("active"),
        "{listed}"
    );

    let c = Container::run_named(&name, &[], &["sh", "-c", "exit 4"]);
    wait_alert(&lo.addr, &c.name, true);
    let v: Value = serde_json::from_str(&get(&lo.addr, "/api/v1/alerts").text()).unwrap();
    let alert = v["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["name"] == name.as_str())
        .unwrap()
        .clone();
    assert_eq!(alert["silenced"], true, "{alert}");
    assert_eq!(alert["silencedBy"][0], id.as_str());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        down_titles(&discord.messages(), &name).is_empty(),
        "silenced: not sent"
    );

    let out = std::process::Command::new(support::lookout_bin())
        .args(["silence", "expire", &id, "--url", &url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let msgs = wait_for(&discord, Duration::from_secs(15), |m| {
        !down_titles(m, &name).is_empty()
    })
    .await;
    assert_eq!(down_titles(&msgs, &name).len(), 1, "{}", lo.log());
    drop(c);
}

/// An inhibition rule: while the source alert fires, its targets are not notified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inhibiting_alert_suppresses_its_targets() {
    if !support::docker_or_skip("an_inhibiting_alert_suppresses_its_targets") {
        return;
    }
    let discord = FakeDiscord::start().await;
    let src = support::unique_name("lookout-nd-inh-src");
    let extra = format!(
        "inhibit_rules:\n  - source_matchers: ['name=\"{src}\"']\n    target_matchers: ['alertname=\"ContainerDown\"', 'name=~\"lookout-nd-inh-tgt.*\"']\n"
    );
    let lo = Lookout::start(
        &config("lookout-nd-inh", &discord.webhook_url(), &extra),
        &[],
    );
    let s = Container::run_named(&src, &[], &["sh", "-c", "exit 2"]);
    wait_for(&discord, Duration::from_secs(20), |m| {
        !down_titles(m, &src).is_empty()
    })
    .await;
    let t = Container::run("lookout-nd-inh-tgt", &[], &["sh", "-c", "exit 2"]);
    wait_alert(&lo.addr, &t.name, true);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        down_titles(&discord.messages(), &t.name).is_empty(),
        "inhibited: not sent"
    );
    let v: Value = serde_json::from_str(&get(&lo.addr, "/api/v1/alerts").text()).unwrap();
    let inhibited = v["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["labels"]["name"] == t.name.as_str() && a["inhibited"] == true);
    assert!(inhibited, "{v}");
    // The source goes away (removed): the target, still firing, is notified.
    drop(s);
    let msgs = wait_for(&discord, Duration::from_secs(30), |m| {
        !down_titles(m, &t.name).is_empty()
    })
    .await;
    assert_eq!(down_titles(&msgs, &t.name).len(), 1, "{}", lo.log());
}

/// Changing silences needs loopback or --web.enable-lifecycle; reading them does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_silence_api_validates_what_it_is_given() {
    let discord = FakeDiscord::start().await;
    let lo = Lookout::start(
        &config(
            "lookout-nd-api",
            &discord.webhook_url(),
            "collectors: {docker: false, cgroup: false}\n",
        ),
        &[],
    );
    wait_until(Duration::from_secs(10), || {
        (get(&lo.addr, "/ready").status == 200).then_some(())
    })
    .expect("ready");
    let post = |body: &str| {
        request(
            &lo.addr,
            "POST",
            "/api/v1/silences",
            &[("content-type", "application/json")],
            body.as_bytes(),
        )
        .unwrap()
    };
    let bad = post(r#"{"matchers": ["name"], "duration": "1h"}"#);
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert!(bad.text().contains("matchers[0]"), "{}", bad.text());
    let all = post(r#"{"matchers": ["name=~\".*\""], "duration": "1h"}"#);
    assert_eq!(all.status, 400, "a silence of everything: {}", all.text());
    let ok = post(
        r#"{"matchers": [{"name": "name", "value": "web-1", "isRegex": false, "isEqual": true}], "endsAt": "2999-01-01T00:00:00Z", "createdBy": "t", "comment": "c"}"#,
    );
    assert_eq!(ok.status, 200, "{}", ok.text());
    let id = serde_json::from_str::<Value>(&ok.text()).unwrap()["silenceID"]
        .as_str()
        .unwrap()
        .to_string();
    let listed: Value = serde_json::from_str(&get(&lo.addr, "/api/v1/silences").text()).unwrap();
    assert_eq!(listed["silences"][0]["id"], id.as_str());
    assert_eq!(listed["silences"][0]["status"]["state"], "active");
    let del = request(
        &lo.addr,
        "DELETE",
        &format!("/api/v1/silences/{id}"),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(del.status, 200, "{}", del.text());
    let again = request(
        &lo.addr,
        "DELETE",
        &format!("/api/v1/silences/{id}"),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(again.status, 404);
    // A cross-site browser request may not change anything.
    let cross = request(
        &lo.addr,
        "POST",
        "/api/v1/silences",
        &[
            ("content-type", "application/json"),
            ("sec-fetch-site", "cross-site"),
        ],
        br#"{"matchers": ["a=\"b\""], "duration": "1h"}"#,
    )
    .unwrap();
    assert_eq!(cross.status, 403);
}

/// A receiver that stays down does not hold up another; a reload that points the receiver at
/// a live webhook delivers what waited, and re-enables a receiver disabled by a 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_receiver_delays_only_itself_and_a_reload_repoints_it() {
    if !support::docker_or_skip("a_down_receiver_delays_only_itself_and_a_reload_repoints_it") {
        return;
    }
    let dead = FakeDiscord::start().await;
    dead.fail_next(100_000, Fault::ServerError(503));
    let live = FakeDiscord::start().await;
    let hook = support::http_sink::HttpSink::start();
    let prefix = "lookout-nd-rl";
    let cfg = |url: &str| {
        format!(
            "interval: 1s\ndocker:\n  include: [\"{prefix}-*\"]\n\
             receivers:\n  - name: discord\n    discord: {{webhook_url: \"{url}\"}}\n\
             \x20 - name: hook\n    webhook: {{url: \"{}/h\"}}\n\
             route:\n  receiver: hook\n  group_wait: 200ms\n  group_interval: 1s\n",
            hook.url
        )
    };
    let lo = Lookout::start(&cfg(&dead.webhook_url()), &["--web.enable-lifecycle"]);
    let c = Container::run(prefix, &[], &["sh", "-c", "exit 1"]);
    // The hook has it at once, while Discord keeps failing.
    let got = hook
        .wait_for_async(Duration::from_secs(20), |p| {
            p.iter().any(|p| p.text().contains(&c.name)).then_some(())
        })
        .await;
    assert!(got.is_some(), "{}", lo.log());
    assert!(dead.count(503) >= 1, "discord was tried");
    // Point discord at the live webhook and reload: what waited goes there, once.
    let cfg_path = lo.dir.path().join("lookout.yml");
    let text = std::fs::read_to_string(&cfg_path)
        .unwrap()
        .replace(&dead.webhook_url(), &live.webhook_url());
    std::fs::write(&cfg_path, text).unwrap();
    let r = request(&lo.addr, "POST", "/-/reload", &[], b"").unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let msgs = wait_for(&live, Duration::from_secs(20), |m| {
        !down_titles(m, &c.name).is_empty()
    })
    .await;
    assert_eq!(down_titles(&msgs, &c.name).len(), 1, "{}", lo.log());
}
