//! The Discord notifier against a strict fake Discord (`tests/support/discord.rs`): batching,
//! truncation, mentions, rate limits, faults, and the token kept out of every error.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use lookout::config::receivers::{DiscordConfig, Secret};
use lookout::notify::discord::DiscordNotifier;
use lookout::notify::{Batch, Item, Notifier, Reason, SendError, Status};
use serde_json::{json, Value};
use support::discord::{FakeDiscord, Fault};

fn item(seq: u64, status: Status, severity: &str) -> Item {
    let mut labels = BTreeMap::new();
    labels.insert("alertname".to_string(), "ContainerDown".to_string());
    labels.insert("severity".to_string(), severity.to_string());
    labels.insert("name".to_string(), format!("web-{seq}"));
    Item {
        seq,
        status,
        labels,
        annotations: BTreeMap::new(),
        starts_at: 1_796_048_630.0 + seq as f64,
        ends_at: (status == Status::Resolved).then_some(1_796_048_900.0),
        value: Some("0".into()),
        reason: None,
        logs: Vec::new(),
        fingerprint: format!("fp{seq}"),
    }
}

fn batch(items: Vec<Item>) -> Batch {
    Batch {
        receiver: "ops".into(),
        group_key: "{}:{alertname=\"ContainerDown\"}".into(),
        group_labels: BTreeMap::new(),
        items,
        host: "docker-01".into(),
        external_url: "http://docker-01:9659".into(),
        thread: None,
        test: false,
        repeat: false,
    }
}

fn notifier_for(url: &str, mention: Option<&str>) -> DiscordNotifier {
    let cfg = DiscordConfig {
        webhook_url: Secret::new(url),
        username: Some("lookout".into()),
        avatar_url: Some("https://example.com/lookout.png".into()),
        mention: mention.map(str::to_string),
    };
    DiscordNotifier::new(&cfg, Duration::from_secs(3))
}

fn notifier(fake: &FakeDiscord) -> DiscordNotifier {
    notifier_for(&fake.webhook_url(), None)
}

/// Sends `items` as the sender does: `split`, then one `send` per chunk.
async fn send_all(n: &DiscordNotifier, items: Vec<Item>) -> Vec<usize> {
    let sizes = n.split(&items);
    let mut at = 0;
    for len in &sizes {
        let chunk = batch(items[at..at + len].to_vec());
        let ack = n.send(&chunk).await.expect("send");
        assert!(ack.message_id.is_some());
        at += len;
    }
    assert_eq!(at, items.len());
    sizes
}

fn title(e: &Value) -> &str {
    e["title"].as_str().unwrap()
}

fn embed_total(m: &Value) -> usize {
    let len = |v: &Value| v.as_str().map(|s| s.chars().count()).unwrap_or(0);
    m["embeds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            len(&e["title"])
                + len(&e["description"])
                + len(&e["footer"]["text"])
                + len(&e["author"]["name"])
                + e["fields"]
                    .as_array()
                    .map(|f| f.iter().map(|f| len(&f["name"]) + len(&f["value"])).sum())
                    .unwrap_or(0)
        })
        .sum()
}

#[tokio::test]
async fn twenty_three_alerts_make_three_messages_in_order() {
    let fake = FakeDiscord::start().await;
    let n = notifier(&fake);
    let items: Vec<Item> = (0..23)
        .map(|s| item(s, Status::Firing, "warning"))
        .collect();
    assert_eq!(send_all(&n, items).await, vec![10, 10, 3]);
    let msgs = fake.wait_messages(3, Duration::from_secs(5)).await;
    assert_eq!(msgs.len(), 3);
    let counts: Vec<usize> = msgs.iter().map(|m| m.embeds().len()).collect();
    assert_eq!(counts, vec![10, 10, 3]);
    let titles: Vec<String> = msgs
        .iter()
        .flat_map(|m| m.embeds())
        .map(|e| title(&e).to_string())
        .collect();
    let want: Vec<String> = (0..23)
        .map(|s| format!("[FIRING] ContainerDown web-{s}"))
        .collect();
    assert_eq!(titles, want);
    assert!(msgs.iter().all(|m| m.wait));
    assert_eq!(msgs[0].body["username"], "lookout");
    assert_eq!(msgs[0].body["allowed_mentions"], json!({"parse": []}));
    assert_eq!(fake.count(200), 3);
}

#[tokio::test]
async fn the_6000_total_splits_messages_too() {
    let fake = FakeDiscord::start().await;
    let n = notifier(&fake);
    let items: Vec<Item> = (0..6)
        .map(|s| {
            let mut i = item(s, Status::Firing, "critical");
            i.annotations
                .insert("description".into(), format!("{s}").repeat(2500));
            i
        })
        .collect();
    // Two fit 6000, three do not.
    assert_eq!(send_all(&n, items.clone()).await, vec![2, 2, 2]);
    let msgs = fake.wait_messages(3, Duration::from_secs(5)).await;
    for m in &msgs {
        let total = embed_total(&m.body);
        assert!(total > 5000 && total <= 6000, "{total}");
    }
    // Unsplit, one send is still accepted: what does not fit is named in the content.
    let ack = n
        .send(&batch(items))
        .await
        .expect("an unsplit batch is sent");
    assert!(ack.message_id.is_some());
    let last = fake
        .wait_messages(4, Duration::from_secs(5))
        .await
        .pop()
        .unwrap();
    assert_eq!(last.embeds().len(), 2);
    assert!(last.content().unwrap().contains("4 more alerts not shown"));
    assert_eq!(fake.count(400), 0);
}

#[tokio::test]
async fn long_text_is_truncated_and_accepted() {
    let fake = FakeDiscord::start().await;
    let n = notifier(&fake);
    let mut a = item(1, Status::Firing, "critical");
    a.annotations
        .insert("description".into(), "Disk full. ".repeat(1000)); // 11 kB
    let mut b = item(2, Status::Firing, "critical");
    b.logs = (0..5000).map(|i| format!("log line {i:05} ```x")).collect();
    b.annotations
        .insert("description".into(), "y".repeat(10_000));
    b.reason = Some(Reason {
        container: "web-2".into(),
        image: "nginx:1.27".into(),
        state: "exited".into(),
        exit_code: Some(137),
        oom_killed: true,
        restart_count: 4,
        ran_for_seconds: Some(125.0),
        ..Default::default()
    });
    let mut c = item(3, Status::Firing, "warning");
    c.annotations.insert("summary".into(), "s".repeat(1000));
    c.labels.insert("instance".into(), "i".repeat(3000));
    for i in [a, b, c] {
        n.send(&batch(vec![i])).await.expect("accepted");
    }
    let msgs = fake.wait_messages(3, Duration::from_secs(5)).await;
    assert_eq!(fake.count(400), 0);

    let d = msgs[0].embeds()[0]["description"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(d.chars().count(), 4096);
    assert!(d.ends_with('…'), "{}", &d[d.len() - 20..]);

    let d = msgs[1].embeds()[0]["description"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(d.chars().count() <= 4096);
    let (annotation, block) = d.split_once('\n').unwrap();
    assert!(annotation.ends_with('…'));
    assert!(block.starts_with("```\n…\n"), "the cut is marked");
    assert!(
        block.ends_with("log line 04999 `\u{200b}``x\n```"),
        "newest lines, closed"
    );
    assert_eq!(d.matches("```").count(), 2);
    let fields = msgs[1].embeds()[0]["fields"].to_string();
    assert!(fields.contains("137 (SIGKILL, OOM-killed"), "{fields}");

    let e = &msgs[2].embeds()[0];
    assert_eq!(title(e).chars().count(), 256);
    assert!(title(e).ends_with('…'));
    let instance = e["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Instance")
        .unwrap();
    assert_eq!(instance["value"].as_str().unwrap().chars().count(), 1024);
}

#[tokio::test]
async fn mention_only_on_critical_firing() {
    let fake = FakeDiscord::start().await;
    let n = notifier_for(&fake.webhook_url(), Some("<@&987654321>"));
    n.send(&batch(vec![item(1, Status::Firing, "warning")]))
        .await
        .unwrap();
    n.send(&batch(vec![item(2, Status::Resolved, "critical")]))
        .await
        .unwrap();
    let mut crit = item(3, Status::Firing, "critical");
    // Text that would ping if allowed_mentions let it.
    crit.annotations
        .insert("description".into(), "@everyone <@&111> <@222>".into());
    n.send(&batch(vec![item(4, Status::Firing, "info"), crit]))
        .await
        .unwrap();
    let msgs = fake.wait_messages(3, Duration::from_secs(5)).await;
    assert_eq!(msgs[0].content(), None);
    assert_eq!(msgs[0].body["allowed_mentions"], json!({"parse": []}));
    assert_eq!(msgs[1].content(), None);
    assert_eq!(msgs[1].embeds()[0]["color"], 0x2E_CC_71);
    assert_eq!(msgs[2].content(), Some("<@&987654321>"));
    assert_eq!(
        msgs[2].body["allowed_mentions"],
        json!({"parse": [], "roles": ["987654321"]})
    );

    let here = notifier_for(&fake.webhook_url(), Some("@here"));
    here.send(&batch(vec![item(5, Status::Firing, "critical")]))
        .await
        .unwrap();
    let user = notifier_for(&fake.webhook_url(), Some("<@!42>"));
    user.send(&batch(vec![item(6, Status::Firing, "critical")]))
        .await
        .unwrap();
    let msgs = fake.wait_messages(5, Duration::from_secs(5)).await;
    assert_eq!(
        msgs[3].body["allowed_mentions"],
        json!({"parse": ["everyone"]})
    );
    assert_eq!(
        msgs[4].body["allowed_mentions"],
        json!({"parse": [], "users": ["42"]})
    );
}

#[tokio::test]
async fn test_notifications_are_marked() {
    let fake = FakeDiscord::start().await;
    let mut b = batch(vec![item(1, Status::Firing, "critical")]);
    b.test = true;
    notifier(&fake).send(&b).await.unwrap();
    let m = &fake.wait_messages(1, Duration::from_secs(5)).await[0];
    assert_eq!(
        m.content(),
        Some("lookout test notification, please ignore")
    );
    assert!(title(&m.embeds()[0]).starts_with("[TEST] "));
}

#[tokio::test]
async fn rate_limit_answer_gives_its_retry_after() {
    let fake = FakeDiscord::start().await;
    let n = notifier(&fake);
    let b = batch(vec![item(1, Status::Firing, "warning")]);
    fake.fail_next(1, Fault::RateLimited { retry_after: 0.75 });
    match n.send(&b).await {
        Err(SendError::Retry { after: Some(a), .. }) => {
            assert!((a.as_secs_f64() - 0.75).abs() < 0.01, "{a:?}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.count(429), 1);
    tokio::time::sleep(Duration::from_millis(800)).await;
    n.send(&b).await.expect("after retry_after");
    assert_eq!(fake.messages().len(), 1);
}

#[tokio::test]
async fn the_bucket_headers_are_honoured_and_the_fake_enforces_them() {
    let fake = FakeDiscord::start().await;
    let n = notifier(&fake);
    let b = batch(vec![item(1, Status::Firing, "warning")]);
    let t = Instant::now();
    for _ in 0..7 {
        n.send(&b).await.expect("no 429 provoked");
    }
    assert_eq!(fake.count(429), 0);
    assert_eq!(fake.messages().len(), 7);
    assert!(
        t.elapsed() >= Duration::from_millis(1800),
        "{:?}",
        t.elapsed()
    );

    // Someone ignoring the headers gets Discord's 429.
    let other = FakeDiscord::start().await;
    let client = reqwest::Client::new();
    let url = format!("{}?wait=true", other.webhook_url());
    let mut last = None;
    for _ in 0..6 {
        last = Some(
            client
                .post(&url)
                .header("content-type", "application/json")
                .body(r#"{"content":"hi"}"#)
                .send()
                .await
                .unwrap(),
        );
    }
    let last = last.unwrap();
    assert_eq!(last.status().as_u16(), 429);
    assert_eq!(last.headers()["x-ratelimit-remaining"], "0");
    assert!(last.headers().contains_key("retry-after"));
    let body: Value = serde_json::from_slice(&last.bytes().await.unwrap()).unwrap();
    assert_eq!(body["global"], false);
    let ra = body["retry_after"].as_f64().unwrap();
    assert!(ra > 0.0 && ra <= 2.0, "{ra}");
}

#[tokio::test]
async fn server_errors_and_missing_ids_are_retried() {
    let fake = FakeDiscord::start().await;
    let n = notifier(&fake);
    let b = batch(vec![item(1, Status::Firing, "warning")]);
    fake.fail_next(1, Fault::ServerError(502));
    assert!(matches!(
        n.send(&b).await,
        Err(SendError::Retry { after: None, .. })
    ));
    fake.fail_next(1, Fault::NoMessageId);
    assert!(matches!(
        n.send(&b).await,
        Err(SendError::Retry { after: None, .. })
    ));
    n.send(&b).await.expect("then it works");
    assert_eq!(fake.count(502), 1);
    assert_eq!(fake.messages().len(), 1);
}

#[tokio::test]
async fn unknown_or_deleted_webhooks_disable_the_receiver() {
    let fake = FakeDiscord::start().await;
    let b = batch(vec![item(1, Status::Firing, "warning")]);
    let wrong = notifier_for(&fake.url_for(fake.webhook_id(), "wrong-token"), None);
    match wrong.send(&b).await {
        Err(SendError::Disabled { reason }) => {
            assert!(
                reason.contains("Unknown Webhook") && reason.contains("10015"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    let n = notifier(&fake);
    n.send(&b).await.unwrap();
    fake.delete_webhook();
    assert!(matches!(n.send(&b).await, Err(SendError::Disabled { .. })));
    assert_eq!(fake.count(404), 2);
}

#[tokio::test]
async fn a_discord_that_is_down_means_retry_and_it_comes_back() {
    let fake = FakeDiscord::start().await;
    let n = notifier(&fake);
    let b = batch(vec![item(1, Status::Firing, "warning")]);
    n.send(&b).await.unwrap(); // a pooled keep-alive connection now exists
    fake.down_for(Duration::from_millis(700)).await;
    match n.send(&b).await {
        Err(SendError::Retry {
            after: None,
            reason,
        }) => {
            assert!(!reason.contains(fake.token()), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(900)).await;
    n.send(&b).await.expect("back on the same port");
    assert_eq!(fake.messages().len(), 2);
}

#[tokio::test]
async fn the_token_appears_in_no_error() {
    let fake = FakeDiscord::start().await;
    let n = notifier(&fake);
    let b = batch(vec![item(1, Status::Firing, "warning")]);
    let mut errors = Vec::new();
    for fault in [
        Fault::RateLimited { retry_after: 0.01 },
        Fault::ServerError(500),
        Fault::Gone,
        Fault::Unauthorized,
        Fault::NoMessageId,
    ] {
        fake.fail_next(1, fault);
        errors.push(n.send(&b).await.unwrap_err());
        tokio::time::sleep(Duration::from_millis(420)).await; // stay within the bucket
    }
    let slow = DiscordNotifier::new(
        &DiscordConfig {
            webhook_url: Secret::new(fake.webhook_url()),
            username: None,
            avatar_url: None,
            mention: None,
        },
        Duration::from_millis(200),
    );
    fake.fail_next(1, Fault::Slow(Duration::from_secs(2)));
    errors.push(slow.send(&b).await.unwrap_err());
    fake.down_for(Duration::from_secs(60)).await;
    errors.push(n.send(&b).await.unwrap_err());
    assert_eq!(errors.len(), 7);
    for e in &errors {
        let text = format!("{e} | {e:?}");
        assert!(!text.contains(fake.token()), "{text}");
        assert!(!text.contains(&fake.webhook_url()), "{text}");
    }
    assert!(errors[5].to_string().contains("timed out"), "{}", errors[5]);
    assert!(!format!("{n:?}").contains(fake.token()));
}

/// Posts `body` by hand; the status and the JSON answer.
async fn post(fake: &FakeDiscord, content_type: &str, body: String) -> (u16, Value) {
    // A fresh bucket per request is not what this is about.
    fake.set_rate_limit(1000, Duration::from_secs(1));
    let r = reqwest::Client::new()
        .post(format!("{}?wait=true", fake.webhook_url()))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (
        status,
        serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn the_fake_rejects_what_discord_rejects() {
    let fake = FakeDiscord::start().await;
    let j = |v: Value| v.to_string();
    let embed = |t: &str| json!({"title": t});
    let cases: Vec<(&str, String, i64)> = vec![
        ("empty", j(json!({})), 50006),
        (
            "blank content",
            j(json!({"content": "  ", "embeds": []})),
            50006,
        ),
        ("text/plain", "{\"content\":\"hi\"}".into(), 50006),
        ("bad json", "{\"content\":".into(), 50109),
        (
            "content 2001",
            j(json!({"content": "x".repeat(2001)})),
            50035,
        ),
        (
            "11 embeds",
            j(json!({"embeds": vec![embed("t"); 11]})),
            50035,
        ),
        (
            "title 257",
            j(json!({"embeds": [embed(&"t".repeat(257))]})),
            50035,
        ),
        (
            "description 4097",
            j(json!({"embeds": [{"description": "d".repeat(4097)}]})),
            50035,
        ),
        (
            "26 fields",
            j(json!({"embeds": [{"fields": vec![json!({"name": "n", "value": "v"}); 26]}]})),
            50035,
        ),
        (
            "empty field name",
            j(json!({"embeds": [{"fields": [{"name": "", "value": "v"}]}]})),
            50035,
        ),
        (
            "field value 1025",
            j(json!({"embeds": [{"fields": [{"name": "n", "value": "v".repeat(1025)}]}]})),
            50035,
        ),
        (
            "footer 2049",
            j(json!({"embeds": [{"footer": {"text": "f".repeat(2049)}}]})),
            50035,
        ),
        (
            "author 257",
            j(json!({"embeds": [{"author": {"name": "a".repeat(257)}}]})),
            50035,
        ),
        (
            "total 6001",
            j(json!({"embeds": [
                {"description": "d".repeat(4000)},
                {"description": "d".repeat(2000), "title": "t"},
            ]})),
            50035,
        ),
        (
            "colour",
            j(json!({"embeds": [{"title": "t", "color": 0x1000000}]})),
            50035,
        ),
        (
            "colour type",
            j(json!({"embeds": [{"title": "t", "color": "red"}]})),
            50035,
        ),
        (
            "timestamp",
            j(json!({"embeds": [{"title": "t", "timestamp": "yesterday"}]})),
            50035,
        ),
        (
            "parse value",
            j(json!({"content": "x", "allowed_mentions": {"parse": ["channels"]}})),
            50035,
        ),
        (
            "parse and roles",
            j(json!({"content": "x", "allowed_mentions": {"parse": ["roles"], "roles": ["1"]}})),
            50035,
        ),
    ];
    for (name, body, code) in &cases {
        let ct = if *name == "text/plain" {
            "text/plain"
        } else {
            "application/json"
        };
        let (status, answer) = post(&fake, ct, body.clone()).await;
        assert_eq!(status, 400, "{name}: {answer}");
        assert_eq!(answer["code"], *code, "{name}: {answer}");
    }
    let (_, answer) = post(&fake, "application/json", cases[6].1.clone()).await;
    assert_eq!(
        answer["errors"]["embeds"]["0"]["title"]["_errors"][0]["code"],
        "BASE_TYPE_MAX_LENGTH"
    );
    assert_eq!(fake.count(400), cases.len() + 1);
    assert!(fake.messages().is_empty());

    // At the limits exactly: accepted.
    let ok = json!({
        "content": "c".repeat(2000),
        "embeds": [
            {"title": "t".repeat(256), "description": "d".repeat(3744), "color": 0xFFFFFF,
             "timestamp": "2026-11-30T14:23:50.123Z",
             "fields": [{"name": "n", "value": "v".repeat(1023)}, {"name": "n", "value": "v", "inline": true}]},
            {"description": "é".repeat(974)},
        ],
        "allowed_mentions": {"parse": ["everyone"], "roles": ["1"]},
    });
    let (status, answer) = post(&fake, "application/json", ok.to_string()).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer["id"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(answer["embeds"].as_array().unwrap().len(), 2);
    // Without wait: 204, no body.
    let r = reqwest::Client::new()
        .post(fake.webhook_url())
        .header("content-type", "application/json")
        .body(r#"{"content":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(fake.messages().len(), 2);
    assert!(!fake.messages()[1].wait);
}
