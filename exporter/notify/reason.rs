//! Why a container is down, as the person on call needs it first: the exit code and what it
//! means, the OOM flag, the restart count, how long it ran, and the image.

use serde::{Deserialize, Serialize};

use crate::snapshot::ContainerInfo;

/// A container's facts at the moment of a transition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    pub container: String,
    pub image: String,
    /// `running`, `exited`, ...
    pub state: String,
    /// `healthy`, `unhealthy`, `starting`, or empty without a health check.
    pub health: String,
    /// The last exit code (None while it never exited).
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    pub restart_count: i64,
    /// How long the container ran (start to finish, or start to now while running).
    pub ran_for_seconds: Option<f64>,
}

impl Reason {
    /// The facts of `c` at unix time `now`.
    pub fn of(c: &ContainerInfo, now: f64) -> Reason {
        let running = c.is_running();
        let ran_for_seconds = match (c.started_at, c.finished_at) {
            (Some(s), _) if running => Some((now - s).max(0.0)),
            (Some(s), Some(f)) if f >= s => Some(f - s),
            _ => None,
        };
        let exited = !running && c.finished_at.is_some();
        Reason {
            container: c.name.clone(),
            image: c.image.clone(),
            state: c.state.as_str().to_string(),
            health: c.health.as_str().to_string(),
            exit_code: exited.then_some(c.exit_code),
            oom_killed: c.oom_killed,
            restart_count: c.restart_count,
            ran_for_seconds,
        }
    }

    /// The exit code with its meaning: `137 (SIGKILL, OOM-killed)`, `143 (SIGTERM)`,
    /// `139 (SIGSEGV, segmentation fault)`, `1 (error)`.
    pub fn exit(&self) -> Option<String> {
        let code = self.exit_code?;
        Some(format!("{code} ({})", exit_meaning(code, self.oom_killed)))
    }

    /// Name and value pairs in the order the person on call reads them; only known facts.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(e) = self.exit() {
            out.push(("Exit code", e));
        }
        out.push((
            "OOM-killed",
            if self.oom_killed { "yes" } else { "no" }.to_string(),
        ));
        out.push(("Restarts", self.restart_count.to_string()));
        if let Some(s) = self.ran_for_seconds {
            out.push(("Ran for", human_duration(s)));
        }
        if !self.image.is_empty() {
            out.push(("Image", self.image.clone()));
        }
        let mut state = self.state.clone();
        if !self.health.is_empty() && self.health != "none" {
            state = format!("{state} ({})", self.health);
        }
        if !state.is_empty() {
            out.push(("State", state));
        }
        out
    }

    /// One line: `exit code 137 (SIGKILL, OOM-killed) after 2m 5s, 3 restarts, image busybox`.
    pub fn line(&self) -> String {
        let mut parts = Vec::new();
        if let Some(e) = self.exit() {
            parts.push(format!("exit code {e}"));
        } else if self.oom_killed {
            parts.push("OOM-killed".to_string());
        }
        if let Some(s) = self.ran_for_seconds {
            parts.push(format!("ran for {}", human_duration(s)));
        }
        parts.push(format!(
            "{} restart{}",
            self.restart_count,
            if self.restart_count == 1 { "" } else { "s" }
        ));
        if !self.image.is_empty() {
            parts.push(format!("image {}", self.image));
        }
        parts.join(", ")
    }
}

/// What an exit code means. Codes above 128 are 128 + the signal that ended the process.
pub fn exit_meaning(code: i64, oom_killed: bool) -> String {
    let signal = |n: i64| -> Option<&'static str> {
        Some(match n {
            1 => "SIGHUP",
            2 => "SIGINT",
            3 => "SIGQUIT",
            4 => "SIGILL",
            5 => "SIGTRAP",
            6 => "SIGABRT",
            7 => "SIGBUS",
            8 => "SIGFPE",
            9 => "SIGKILL",
            11 => "SIGSEGV",
            13 => "SIGPIPE",
            14 => "SIGALRM",
            15 => "SIGTERM",
            _ => return None,
        })
    };
    let text = match code {
        0 => "exited normally".to_string(),
        1 => "application error".to_string(),
        2 => "misuse of a shell builtin or bad arguments".to_string(),
        125 => "the container failed to run (docker run error)".to_string(),
        126 => "the command cannot be executed".to_string(),
        127 => "command not found".to_string(),
        137 => {
            if oom_killed {
                "SIGKILL, OOM-killed: out of memory".to_string()
            } else {
                "SIGKILL: killed (docker kill, or a stop timeout), not OOM".to_string()
            }
        }
        139 => "SIGSEGV: segmentation fault".to_string(),
        143 => "SIGTERM: terminated (docker stop)".to_string(),
        c if c > 128 && c < 128 + 65 => match signal(c - 128) {
            Some(s) => format!("killed by {s}"),
            None => format!("killed by signal {}", c - 128),
        },
        _ => "error".to_string(),
    };
    if oom_killed && code != 137 {
        format!("{text}; OOM-killed")
    } else {
        text
    }
}

/// `45s`, `2m 5s`, `3h 2m`, `4d 1h`.
pub fn human_duration(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    let (d, h, m, sec) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60, s % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {sec}s")
    } else {
        format!("{sec}s")
    }
}

/// Remove ANSI escape sequences (colours, cursor moves) and other control characters but tab.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            match chars.peek() {
                // CSI: ESC [ params final-byte(0x40..=0x7e)
                Some('[') => {
                    chars.next();
                    for c in chars.by_ref() {
                        if ('\u{40}'..='\u{7e}').contains(&c) {
                            break;
                        }
                    }
                }
                // OSC: ESC ] ... BEL or ESC \
                Some(']') => {
                    chars.next();
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' {
                            break;
                        }
                        if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                            chars.next();
                            break;
                        }
                    }
                }
                // Two-character escapes.
                Some(_) => {
                    chars.next();
                }
                None => {}
            }
        } else if c == '\t' || !c.is_control() {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_say_what_they_mean() {
        assert!(exit_meaning(137, true).contains("OOM"));
        assert!(exit_meaning(137, false).contains("not OOM"));
        assert!(exit_meaning(143, false).contains("SIGTERM"));
        assert!(exit_meaning(139, false).contains("segmentation fault"));
        assert_eq!(exit_meaning(130, false), "killed by SIGINT");
        assert_eq!(exit_meaning(3, false), "error");
    }

    #[test]
    fn ansi_is_stripped() {
        assert_eq!(strip_ansi("\u{1b}[31mred\u{1b}[0m ok\r"), "red ok");
        assert_eq!(strip_ansi("\u{1b}]0;title\u{7}x"), "x");
        assert_eq!(strip_ansi("a\tb"), "a\tb");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(45.2), "45s");
        assert_eq!(human_duration(125.0), "2m 5s");
        assert_eq!(human_duration(3.0 * 3600.0 + 120.0), "3h 2m");
    }
}
