//! The Docker watcher against a scripted fake daemon (`tests/support/fake_docker.rs`): what a
//! real daemon won't do on cue.
//! - A reconnect re-inspects every container: a daemon restart gives a `--restart always`
//!   container a new pid, `StartedAt` and `RestartCount` under the same `running`.
//! - Events missed while disconnected are replayed from the last one seen.
//! - One container whose inspect fails costs only that container's update; the session stays.

#[path = "support/fake_docker.rs"]
mod fake_docker;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_docker::FakeDocker;
use lookout::collect::docker::{self, DockerState};
use lookout::config::NameFilter;
use lookout::snapshot::{ContainerInfo, State};
use tokio_util::sync::CancellationToken;

fn running(id: &str, pid: u32, started_at: f64, restarts: i64) -> ContainerInfo {
    ContainerInfo {
        id: id.into(),
        name: format!("name-{id}"),
        image: "img".into(),
        state: State::Running,
        pid,
        started_at: Some(started_at),
        restart_count: restarts,
        ..Default::default()
    }
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// lookout's Docker watcher on the fake daemon (resync far away: only sessions and events).
fn watch(
    fake: &Arc<FakeDocker>,
) -> (
    Arc<DockerState>,
    CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let state = DockerState::new(NameFilter::all());
    let token = CancellationToken::new();
    let watcher = tokio::spawn(docker::watch(
        fake.clone() as Arc<dyn lookout::docker_api::DockerApi>,
        state.clone(),
        Duration::from_secs(3600),
        token.clone(),
    ));
    (state, token, watcher)
}

fn get(state: &DockerState, id: &str) -> Option<ContainerInfo> {
    state.view().iter().find(|c| c.id == id).cloned()
}

#[tokio::test]
async fn a_reconnect_refreshes_what_looks_unchanged_and_replays_missed_events() {
    let fake = FakeDocker::new();
    let now = lookout::now_unix();
    fake.put(running("c1", 100, now - 50.0, 0));
    let (state, token, watcher) = watch(&fake);
    wait_for("the first inventory", || {
        state.is_connected() && get(&state, "c1").is_some_and(|c| c.pid == 100)
    })
    .await;
    // An event while connected sets the replay point.
    let mut events = state.subscribe();
    let t0 = (now * 1e9) as i64;
    fake.emit("start", "c1", t0);
    wait_for("the first event", || fake.inspect_calls("c1") >= 2).await;

    // The daemon restarts: the container keeps `running` (so the list looks the same) but has
    // a new pid, start time and restart count.
    fake.set_up(false);
    wait_for("the disconnect", || !state.is_connected()).await;
    fake.put(running("c1", 200, now + 5.0, 1));
    // Something happened while lookout was away.
    fake.emit("die", "c1", t0 + 2_000_000_000);
    fake.set_up(true);
    wait_for("the reconnect", || state.is_connected()).await;
    let c = get(&state, "c1").unwrap();
    assert_eq!(c.pid, 200, "pid refreshed");
    assert_eq!(c.started_at, Some(now + 5.0));
    assert_eq!(c.restart_count, 1);
    // The restart lookout did not see is counted for restarts_recent.
    assert_eq!(c.recent_starts, vec![now + 5.0]);

    // The second session asked for events from the last one seen, not from now, and the
    // missed `die` came through (the `start` already seen was not announced twice).
    let since = fake.since_asked();
    assert_eq!(since.len(), 2, "{since:?}");
    assert_eq!(since[1], Some(t0 / 1_000_000_000));
    let mut got = Vec::new();
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end && !got.iter().any(|e: &String| e == "die") {
        if let Ok(Ok(ev)) = tokio::time::timeout(Duration::from_millis(100), events.recv()).await {
            got.push(ev.action);
        }
    }
    assert_eq!(got, ["start", "die"]);
    token.cancel();
    let _ = watcher.await;
}

#[tokio::test]
async fn one_container_that_fails_to_inspect_costs_only_itself() {
    let fake = FakeDocker::new();
    let now = lookout::now_unix();
    for (i, id) in ["c1", "c2", "c3"].iter().enumerate() {
        fake.put(running(id, 100 + i as u32, now - 50.0, 0));
    }
    let (state, token, watcher) = watch(&fake);
    wait_for("the first inventory", || state.view().len() == 3).await;

    // All three restart; c2's inspect answers a 500.
    for (i, id) in ["c1", "c2", "c3"].iter().enumerate() {
        fake.put(running(id, 300 + i as u32, now, 1));
    }
    fake.fail_inspect("c2", true);
    let t = (now * 1e9) as i64;
    for id in ["c1", "c2", "c3"] {
        fake.emit("restart", id, t);
    }
    wait_for("c1 and c3 updated", || {
        get(&state, "c1").is_some_and(|c| c.pid == 300)
            && get(&state, "c3").is_some_and(|c| c.pid == 302)
    })
    .await;
    // c2 keeps its last facts; the session is still the first one.
    assert_eq!(get(&state, "c2").unwrap().pid, 101);
    assert!(state.is_connected());
    assert_eq!(fake.info_calls(), 1, "no reconnect");
    assert_eq!(fake.since_asked().len(), 1);

    // Once it inspects again, the next event brings it up to date.
    fake.fail_inspect("c2", false);
    fake.emit("restart", "c2", t + 1);
    wait_for("c2 updated", || {
        get(&state, "c2").is_some_and(|c| c.pid == 301)
    })
    .await;
    token.cancel();
    let _ = watcher.await;
}

#[tokio::test]
async fn the_fake_answers_the_last_log_lines_it_was_given() {
    use lookout::docker_api::DockerApi;
    let fake = FakeDocker::new();
    fake.set_logs("c1", &["one", "two", "three"]);
    assert_eq!(
        fake.logs_tail("c1", 2, 1024).await.unwrap(),
        ["two", "three"]
    );
    assert_eq!(fake.logs_tail("c1", 9, 1024).await.unwrap().len(), 3);
    assert!(fake.logs_tail("gone", 5, 1024).await.unwrap().is_empty());
    fake.set_up(false);
    assert!(fake.logs_tail("c1", 2, 1024).await.is_err());
}
