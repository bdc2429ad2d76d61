//! The Alertmanager and webhook notifiers against a real Alertmanager (Debian's
//! `prometheus-alertmanager`, alone and as a two-member gossip cluster) and a recording HTTP
//! sink.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lookout::config::receivers::{AlertmanagerConfig, Secret, WebhookConfig};
use lookout::notify::alertmanager::AlertmanagerNotifier;
use lookout::notify::webhook::{WebhookNotifier, ZERO_TIME};
use lookout::notify::{rfc3339, Batch, Item, Notifier, SendError, Status};
use serde_json::Value;
use support::alertmanager::{alertmanager_or_skip, Alertmanager};
use support::http_sink::{Answer, HttpSink, Posted};

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn item(status: Status, labels: &[(&str, &str)], starts_at: f64) -> Item {
    Item {
        seq: 1,
        status,
        labels: map(labels),
        annotations: map(&[("summary", "web is down"), ("description", "exit 137")]),
        starts_at,
        ends_at: (status == Status::Resolved).then(|| now() - 1.0),
        value: None,
        reason: None,
        logs: vec![],
        fingerprint: format!("{:016x}", labels.len() as u64 * 7919 + starts_at as u64),
    }
}

fn batch(items: Vec<Item>) -> Batch {
    Batch {
        receiver: "am".into(),
        group_key: "{}:{alertname=\"ContainerDown\"}".into(),
        group_labels: map(&[("alertname", "ContainerDown")]),
        items,
        host: "testhost".into(),
        external_url: "http://lookout.test:9659".into(),
        thread: None,
        test: false,
        repeat: false,
    }
}

fn am_cfg(urls: &[String], timeout: Duration) -> AlertmanagerConfig {
    AlertmanagerConfig {
        urls: urls.to_vec(),
        resend_interval: Duration::from_secs(60),
        timeout,
    }
}

/// An Alertmanager config whose one receiver posts to `sink_url` (resolved ones too), with
/// short group timers.
fn am_config(sink_url: &str) -> String {
    format!(
        "route:\n  receiver: sink\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
         receivers:\n  - name: sink\n    webhook_configs:\n      - url: {sink_url}\n        send_resolved: true\n"
    )
}

/// An address nothing listens on.
fn dead_url() -> String {
    format!("http://127.0.0.1:{}", support::free_port())
}

/// Alertmanager's notifications at the sink for `alertname` with top-level `status`.
fn notifications(posts: &[Posted], alertname: &str, status: &str) -> Vec<Value> {
    posts
        .iter()
        .map(Posted::json)
        .filter(|v| v["status"] == status && v["commonLabels"]["alertname"] == alertname)
        .collect()
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

fn find<'a>(alerts: &'a [Value], alertname: &str) -> Option<&'a Value> {
    alerts
        .iter()
        .find(|a| a["labels"]["alertname"] == alertname)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_alertmanager_and_resolve() {
    if !alertmanager_or_skip("alerts_reach_alertmanager_and_resolve") {
        return;
    }
    let sink = HttpSink::start();
    let am = Alertmanager::start(&am_config(&format!("{}/am", sink.url)));
    // A trailing slash must not make `//api/v2/alerts`.
    let n = AlertmanagerNotifier::new(&am_cfg(&[format!("{}/", am.url)], Duration::from_secs(5)));
    assert_eq!(n.kind(), "alertmanager");
    assert!(!n.groups());
    assert_eq!(n.resend_interval(), Some(Duration::from_secs(60)));

    let starts = now() - 30.0;
    let labels = [
        ("alertname", "ContainerDown"),
        ("severity", "critical"),
        ("name", "web"),
        ("bad-label", "dropped"),
        ("empty", ""),
    ];
    let firing = batch(vec![item(Status::Firing, &labels, starts)]);
    let ack = n
        .send(&firing)
        .await
        .unwrap_or_else(|e| panic!("{e:?}\n{}", am.log()));
    assert!(ack.detail.contains(&am.url), "{}", ack.detail);

    let alerts = am.alerts();
    let a = find(&alerts, "ContainerDown").unwrap_or_else(|| panic!("{alerts:?}"));
    assert_eq!(
        a["labels"],
        serde_json::json!({"alertname": "ContainerDown", "severity": "critical", "name": "web"})
    );
    assert_eq!(
        a["annotations"],
        serde_json::json!({"summary": "web is down", "description": "exit 137"})
    );
    assert_eq!(a["status"]["state"], "active");
    assert_eq!(a["generatorURL"], "http://lookout.test:9659/api/v1/alerts");
    assert_eq!(
        a["startsAt"].as_str().unwrap()[..19],
        rfc3339(starts)[..19],
        "{a}"
    );
    // endsAt is about now + 4 × resend_interval: Alertmanager resolves it by itself if
    // lookout stops sending.
    let ends = a["endsAt"].as_str().unwrap();
    assert!(
        ends[..16] >= rfc3339(now() + 230.0)[..16] && ends[..16] <= rfc3339(now() + 250.0)[..16],
        "{ends}"
    );

    // Alertmanager notifies its webhook receiver: that real payload is what WebhookNotifier
    // must look like.
    let from_am = sink
        .wait_for_async(Duration::from_secs(15), |p| {
            notifications(p, "ContainerDown", "firing")
                .into_iter()
                .next()
        })
        .await
        .unwrap_or_else(|| panic!("no firing notification; {:?}\n{}", sink.posts(), am.log()));
    let hook = WebhookNotifier::new(
        &WebhookConfig {
            url: Secret::new(format!("{}/lookout", sink.url)),
            max_alerts: 0,
            timeout: Duration::from_secs(5),
        },
        "sink",
    );
    let mut ours_batch = firing.clone();
    ours_batch.items[0].labels.remove("bad-label");
    ours_batch.items[0].labels.remove("empty");
    hook.send(&ours_batch).await.unwrap();
    let ours = sink.posts_to("/lookout")[0].json();
    assert_eq!(keys(&ours), keys(&from_am), "top-level fields");
    assert_eq!(
        keys(&ours["alerts"][0]),
        keys(&from_am["alerts"][0]),
        "alert fields"
    );
    for field in [
        "version",
        "status",
        "receiver",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "truncatedAlerts",
    ] {
        assert_eq!(ours[field], from_am[field], "{field}");
    }
    for field in ["status", "labels", "annotations", "endsAt", "generatorURL"] {
        assert_eq!(
            ours["alerts"][0][field], from_am["alerts"][0][field],
            "alerts[0].{field}"
        );
    }
    assert_eq!(from_am["alerts"][0]["endsAt"], ZERO_TIME);

    // Resolved: gone from the active list, and Alertmanager says so to its receiver.
    let resolved = batch(vec![item(Status::Resolved, &labels, starts)]);
    n.send(&resolved).await.unwrap();
    let gone = support::wait_until(Duration::from_secs(5), || {
        find(&am.alerts(), "ContainerDown").is_none().then_some(())
    });
    assert!(gone.is_some(), "still listed: {:?}", am.alerts());
    let note = sink
        .wait_for_async(Duration::from_secs(15), |p| {
            notifications(p, "ContainerDown", "resolved")
                .into_iter()
                .next()
        })
        .await
        .unwrap_or_else(|| panic!("no resolved notification; {:?}", sink.posts()));
    assert_eq!(note["alerts"][0]["status"], "resolved");
    assert_ne!(note["alerts"][0]["endsAt"], ZERO_TIME);

    // A batch Alertmanager can never take (no valid label left): Rejected, with its reason.
    let hopeless = batch(vec![item(Status::Firing, &[("bad-label", "x")], starts)]);
    match n.send(&hopeless).await {
        Err(SendError::Rejected { reason }) => {
            assert!(reason.contains("400"), "{reason}");
            assert!(reason.contains("label"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_notifies_once() {
    if !alertmanager_or_skip("a_cluster_notifies_once") {
        return;
    }
    let sink = HttpSink::start();
    let peer_timeout = Duration::from_secs(2);
    let ams = Alertmanager::start_cluster(&am_config(&format!("{}/am", sink.url)), 2, peer_timeout);
    // Both members see each other and have settled (until then the pipelines hold back).
    let settled = support::wait_until(Duration::from_secs(30), || {
        ams.iter()
            .all(|am| am.cluster_status() == ("ready".to_string(), 2))
            .then_some(())
    });
    assert!(
        settled.is_some(),
        "cluster did not settle: {:?}\n{}",
        ams.iter()
            .map(Alertmanager::cluster_status)
            .collect::<Vec<_>>(),
        ams[0].log()
    );

    let urls: Vec<String> = ams.iter().map(|a| a.url.clone()).collect();
    let n = AlertmanagerNotifier::new(&am_cfg(&urls, Duration::from_secs(5)));
    let labels = [("alertname", "ClusterDedup"), ("name", "db")];
    let ack = n
        .send(&batch(vec![item(Status::Firing, &labels, now() - 5.0)]))
        .await
        .unwrap();
    for u in &urls {
        assert!(ack.detail.contains(&format!("{u}: 200")), "{}", ack.detail);
    }
    for am in &ams {
        assert!(find(&am.alerts(), "ClusterDedup").is_some(), "{}", am.url);
    }

    // The first member notifies after group_wait; the second waits peer_timeout more, sees the
    // first one's notification log entry, and stays quiet.
    let sent = Instant::now();
    sink.wait_for_async(Duration::from_secs(20), |p| {
        (!notifications(p, "ClusterDedup", "firing").is_empty()).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("no notification; {}", ams[1].log()));
    let quiet_until = sent + Duration::from_secs(1) + peer_timeout * 2 + Duration::from_secs(3);
    tokio::time::sleep(quiet_until.saturating_duration_since(Instant::now())).await;
    let firing = notifications(&sink.posts(), "ClusterDedup", "firing");
    assert_eq!(firing.len(), 1, "{firing:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_alertmanager_is_enough() {
    if !alertmanager_or_skip("one_alertmanager_is_enough") {
        return;
    }
    let sink = HttpSink::start();
    let am = Alertmanager::start(&am_config(&format!("{}/am", sink.url)));
    let b = batch(vec![item(
        Status::Firing,
        &[("alertname", "HalfDown")],
        now() - 5.0,
    )]);

    // One of two down: acknowledged, the dead one named in the detail.
    let dead = dead_url();
    let n = AlertmanagerNotifier::new(&am_cfg(
        &[dead.clone(), am.url.clone()],
        Duration::from_secs(5),
    ));
    let ack = n.send(&b).await.unwrap();
    assert!(
        ack.detail.contains(&format!("{}: 200", am.url)),
        "{}",
        ack.detail
    );
    assert!(ack.detail.contains(&dead), "{}", ack.detail);
    assert!(find(&am.alerts(), "HalfDown").is_some());

    // All down: try again.
    let n = AlertmanagerNotifier::new(&am_cfg(&[dead_url(), dead_url()], Duration::from_secs(5)));
    match n.send(&b).await {
        Err(SendError::Retry { after: None, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_outcomes_without_alertmanager() {
    let b = batch(vec![item(
        Status::Firing,
        &[("alertname", "Outcomes")],
        now() - 5.0,
    )]);

    // A path prefix is kept; userinfo is sent as basic auth, never shown.
    let sink = HttpSink::start();
    let with_prefix = format!("http://user:pass@{}/prefix/am/", sink.addr);
    let ack = AlertmanagerNotifier::new(&am_cfg(&[with_prefix], Duration::from_secs(5)))
        .send(&b)
        .await
        .unwrap();
    assert!(!ack.detail.contains("pass"), "{}", ack.detail);
    let posts = sink.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].path, "/prefix/am/api/v2/alerts");
    assert_eq!(posts[0].header("content-type"), Some("application/json"));
    assert!(posts[0]
        .header("authorization")
        .is_some_and(|a| a.starts_with("Basic ")));
    let body = posts[0].json();
    assert_eq!(body[0]["labels"]["alertname"], "Outcomes");

    // Every Alertmanager refuses the batch: Rejected with their words.
    let r1 = HttpSink::answering(400, "\"invalid label set: bad\"");
    let r2 = HttpSink::answering(422, "nope");
    let n = AlertmanagerNotifier::new(&am_cfg(
        &[r1.url.clone(), r2.url.clone()],
        Duration::from_secs(5),
    ));
    match n.send(&b).await {
        Err(SendError::Rejected { reason }) => {
            assert!(reason.contains("invalid label set: bad"), "{reason}");
            assert!(reason.contains("nope"), "{reason}");
        }
        other => panic!("{other:?}"),
    }

    // One refuses, one is down or failing: try again (the other may take it later).
    for other in [dead_url(), HttpSink::answering(503, "").url.clone()] {
        let n =
            AlertmanagerNotifier::new(&am_cfg(&[r1.url.clone(), other], Duration::from_secs(5)));
        assert!(matches!(n.send(&b).await, Err(SendError::Retry { .. })));
    }

    // A slow Alertmanager: the timeout holds.
    let slow = HttpSink::start();
    slow.set_answer(Answer {
        delay: Duration::from_secs(5),
        ..Answer::default()
    });
    let t = Instant::now();
    let n = AlertmanagerNotifier::new(&am_cfg(
        std::slice::from_ref(&slow.url),
        Duration::from_millis(300),
    ));
    match n.send(&b).await {
        Err(SendError::Retry { reason, .. }) => assert!(reason.contains("timed out"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_payload_and_outcomes() {
    let sink = HttpSink::start();
    let url = format!("{}/hook/s3cret", sink.url);
    let cfg = |max_alerts| WebhookConfig {
        url: Secret::new(url.clone()),
        max_alerts,
        timeout: Duration::from_secs(5),
    };
    let starts = now() - 60.0;
    let mut b = batch(vec![
        item(
            Status::Firing,
            &[
                ("alertname", "ContainerDown"),
                ("name", "a"),
                ("severity", "critical"),
            ],
            starts,
        ),
        item(
            Status::Resolved,
            &[
                ("alertname", "ContainerDown"),
                ("name", "b"),
                ("severity", "critical"),
            ],
            starts,
        ),
        item(
            Status::Firing,
            &[
                ("alertname", "ContainerDown"),
                ("name", "c"),
                ("severity", "critical"),
            ],
            starts,
        ),
    ]);
    b.receiver = "team".into();
    let n = WebhookNotifier::new(&cfg(2), "team");
    assert_eq!(n.kind(), "webhook");
    assert!(n.groups());
    n.send(&b).await.unwrap();

    let posts = sink.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].path, "/hook/s3cret");
    assert!(posts[0]
        .header("user-agent")
        .is_some_and(|u| u.starts_with("lookout/")));
    assert_eq!(posts[0].header("content-type"), Some("application/json"));
    let v = posts[0].json();
    assert_eq!(
        keys(&v),
        [
            "alerts",
            "commonAnnotations",
            "commonLabels",
            "externalURL",
            "groupKey",
            "groupLabels",
            "receiver",
            "status",
            "truncatedAlerts",
            "version"
        ]
    );
    assert_eq!(v["version"], "4");
    assert_eq!(v["status"], "firing");
    assert_eq!(v["receiver"], "team");
    assert_eq!(v["groupKey"], "{}:{alertname=\"ContainerDown\"}");
    assert_eq!(
        v["groupLabels"],
        serde_json::json!({"alertname": "ContainerDown"})
    );
    assert_eq!(
        v["commonLabels"],
        serde_json::json!({"alertname": "ContainerDown", "severity": "critical"})
    );
    assert_eq!(
        v["commonAnnotations"],
        serde_json::json!({"summary": "web is down", "description": "exit 137"})
    );
    assert_eq!(v["externalURL"], "http://lookout.test:9659");
    assert_eq!(v["truncatedAlerts"], 1);
    let alerts = v["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 2);
    for a in alerts {
        assert_eq!(
            keys(a),
            [
                "annotations",
                "endsAt",
                "fingerprint",
                "generatorURL",
                "labels",
                "startsAt",
                "status"
            ]
        );
        // Firing ones are kept before resolved ones when cutting.
        assert_eq!(a["status"], "firing");
        assert_eq!(a["endsAt"], ZERO_TIME);
        assert_eq!(a["startsAt"], rfc3339(starts));
        assert_eq!(a["generatorURL"], "http://lookout.test:9659/api/v1/alerts");
        assert!(!a["fingerprint"].as_str().unwrap().is_empty());
    }

    // All resolved: "resolved", with real end times; no limit, nothing truncated.
    let done = batch(vec![item(
        Status::Resolved,
        &[("alertname", "ContainerDown")],
        starts,
    )]);
    WebhookNotifier::new(&cfg(0), "team")
        .send(&done)
        .await
        .unwrap();
    let v = sink.posts()[1].json();
    assert_eq!(v["status"], "resolved");
    assert_eq!(v["truncatedAlerts"], 0);
    assert_ne!(v["alerts"][0]["endsAt"], ZERO_TIME);

    // Outcomes by status.
    let n = WebhookNotifier::new(&cfg(0), "team");
    sink.set_answer(Answer {
        status: 500,
        body: "boom".into(),
        ..Answer::default()
    });
    assert!(matches!(
        n.send(&b).await,
        Err(SendError::Retry { after: None, .. })
    ));
    sink.set_answer(Answer {
        status: 429,
        headers: vec![("Retry-After".into(), "3".into())],
        ..Answer::default()
    });
    match n.send(&b).await {
        Err(SendError::Retry { after, .. }) => assert_eq!(after, Some(Duration::from_secs(3))),
        other => panic!("{other:?}"),
    }
    sink.set_answer(Answer {
        status: 400,
        body: "bad payload at /hook/s3cret".into(),
        ..Answer::default()
    });
    match n.send(&b).await {
        Err(SendError::Rejected { reason }) => {
            assert!(reason.contains("400"), "{reason}");
            assert!(reason.contains("bad payload"), "{reason}");
            assert!(!reason.contains("s3cret"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // Down: Retry, and the URL nowhere in it.
    let gone = WebhookNotifier::new(
        &WebhookConfig {
            url: Secret::new(format!("{}/hook/s3cret", dead_url())),
            max_alerts: 0,
            timeout: Duration::from_secs(5),
        },
        "team",
    );
    match gone.send(&b).await {
        Err(e @ SendError::Retry { .. }) => assert!(!format!("{e:?}").contains("s3cret"), "{e:?}"),
        other => panic!("{other:?}"),
    }
}
