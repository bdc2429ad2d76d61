//! `DockerApi::logs_tail` against a real Docker daemon: the last lines of a container that has
//! exited, with and without a TTY, escapes stripped; a container that is gone has none.

mod support;

use std::time::Duration;

use lookout::docker_api::{BollardDocker, DockerApi};
use support::Container;

/// stdout and stderr lines (one in colour), a pause before each change of stream so that the
/// daemon's order is the order written, then exit 3.
const SCRIPT: &str = r#"echo "out 1"; echo "out 2"; echo "out 3"; printf '\033[31mred alert\033[0m\n'; sleep 0.2; echo "err 1" >&2; sleep 0.2; echo "out 4"; sleep 0.2; echo "err 2" >&2; exit 3"#;

fn host() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

fn exited_with_3(c: &Container) {
    c.wait_state("exited", Duration::from_secs(30));
    let out = c.docker(&["inspect", "--format", "{{.State.ExitCode}}"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "3");
}

#[tokio::test]
async fn the_last_lines_of_an_exited_container() {
    if !support::docker_or_skip("the_last_lines_of_an_exited_container") {
        return;
    }
    let docker = BollardDocker::new(&host()).unwrap();

    let plain = Container::run("lookout-tail-plain", &[], &["sh", "-c", SCRIPT]);
    exited_with_3(&plain);
    let got = docker.logs_tail(&plain.id, 5, 64 * 1024).await.unwrap();
    assert_eq!(got, ["out 3", "red alert", "err 1", "out 4", "err 2"]);
    // More lines asked for than there are: all of them.
    let all = docker.logs_tail(&plain.id, 100, 64 * 1024).await.unwrap();
    assert_eq!(all.len(), 7, "{all:?}");
    assert_eq!(all[0], "out 1");
    // A byte cap smaller than the answer: the first frame (8 + ~31 + 6 bytes) fits, the
    // second is cut inside its timestamp and dropped.
    let capped = docker.logs_tail(&plain.id, 5, 60).await.unwrap();
    assert_eq!(capped, ["out 3"]);

    // With a TTY the daemon sends the raw text (one stream, CRLF line ends).
    let tty = Container::run("lookout-tail-tty", &["-t"], &["sh", "-c", SCRIPT]);
    exited_with_3(&tty);
    let got = docker.logs_tail(&tty.id, 5, 64 * 1024).await.unwrap();
    assert_eq!(got, ["out 3", "red alert", "err 1", "out 4", "err 2"]);

    // A container that is gone has no lines, and that is no error.
    let id = plain.id.clone();
    drop(plain);
    assert_eq!(
        docker.logs_tail(&id, 5, 64 * 1024).await.unwrap(),
        Vec::<String>::new()
    );
}
