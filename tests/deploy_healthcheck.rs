//! `lookout healthcheck`, the image's HEALTHCHECK: exit 0 against a live and ready lookout,
//! 1 against one that is stopped, frozen or not ready yet, each within its timeout.

mod support;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::{lookout_bin, request, Lookout};

fn healthcheck(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(lookout_bin())
        .arg("healthcheck")
        .args(args)
        .env_remove("LOOKOUT_URL")
        .env_remove("LOOKOUT_LISTEN")
        .env_remove("LOOKOUT_CONFIG")
        .envs(env.iter().copied())
        .output()
        .expect("run lookout healthcheck")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn a_live_and_ready_lookout_passes_by_url_flag_env_and_config() {
    let lk = Lookout::start("interval: 1s\n", &["--no-collector.docker"]);
    let url = format!("http://{}", lk.addr);

    let o = healthcheck(&["--url", &url], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        format!("lookout at {url} is live and ready")
    );

    // The address lookout listens on, as `lookout run` reads it: the flag, the environment,
    // the config file.
    let o = healthcheck(&["--web.listen-address", &lk.addr], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = healthcheck(&[], &[("LOOKOUT_LISTEN", &lk.addr)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let cfg = lk.dir.path().join("lookout.yml");
    let o = healthcheck(&["-c", cfg.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = healthcheck(&[], &[("LOOKOUT_URL", &url)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn a_stopped_lookout_fails() {
    let mut lk = Lookout::start("interval: 1s\n", &["--no-collector.docker"]);
    let url = format!("http://{}", lk.addr);
    lk.child.kill().unwrap();
    lk.child.wait().unwrap();
    let o = healthcheck(&["--url", &url], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("cannot reach lookout at {url}/health")),
        "{err}"
    );
    assert!(err.contains("refused"), "{err}");
}

#[test]
fn a_frozen_lookout_fails_within_the_timeout() {
    let lk = Lookout::start("interval: 1s\n", &["--no-collector.docker"]);
    let pid = lk.child.id().to_string();
    let signal = |sig: &str| {
        assert!(Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success());
    };
    signal("-STOP");
    let start = Instant::now();
    let o = healthcheck(
        &["--url", &format!("http://{}", lk.addr), "--timeout", "1s"],
        &[],
    );
    let took = start.elapsed();
    signal("-CONT");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("within 1s"),
        "{}",
        text(&o)
    );
}

/// A lookout whose Docker daemon does not answer is live at once but not ready until its first
/// collection, which waits up to 3 s for the daemon: the check fails in that window unless
/// only liveness is asked. The window is real time, so each attempt checks that lookout was
/// unready both before and after the check, and a lost race is tried again.
#[test]
fn a_live_but_unready_lookout_fails_unless_only_liveness_is_asked() {
    for attempt in 1..=5 {
        // A socket that accepts connections (in its backlog) and never answers.
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("docker.sock");
        let _silent = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let port = support::free_port();
        let addr = format!("127.0.0.1:{port}");
        std::fs::write(
            dir.path().join("lookout.yml"),
            format!(
                "listen: {addr}\nstate_dir: {}\n",
                dir.path().join("state").display()
            ),
        )
        .unwrap();
        let mut child = Command::new(lookout_bin())
            .arg("run")
            .arg("-c")
            .arg(dir.path().join("lookout.yml"))
            .arg("--docker.host")
            .arg(format!("unix://{}", sock.display()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let status = |path: &str| request(&addr, "GET", path, &[]).map(|r| r.status).ok();
        let serving = support::wait_until(Duration::from_secs(10), || status("/health"));
        let unready_before = status("/ready") == Some(503);
        let full = healthcheck(&["--url", &format!("http://{addr}")], &[]);
        let live = healthcheck(
            &["--url", &format!("http://{addr}"), "--liveness-only"],
            &[],
        );
        let unready_after = status("/ready") == Some(503);
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(serving, Some(200), "lookout did not serve /health");
        if !(unready_before && unready_after) {
            eprintln!("attempt {attempt}: lookout became ready during the check; again");
            continue;
        }
        assert_eq!(full.status.code(), Some(1), "{}", text(&full));
        let err = String::from_utf8_lossy(&full.stderr);
        assert!(
            err.contains(&format!("http://{addr}/ready answered 503: not ready")),
            "{err}"
        );
        assert_eq!(live.status.code(), Some(0), "{}", text(&live));
        assert_eq!(
            String::from_utf8_lossy(&live.stdout).trim(),
            format!("lookout at http://{addr} is live")
        );
        return;
    }
    panic!("lookout was never seen unready for the length of a check");
}

#[test]
fn a_bad_timeout_is_refused() {
    for bad in ["0s", "soon"] {
        let o = healthcheck(&["--url", "http://127.0.0.1:9", "--timeout", bad], &[]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("--timeout"),
            "{}",
            text(&o)
        );
    }
}
