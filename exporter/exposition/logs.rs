//! The log collector's series: lines and pattern matches per container and stream.

use std::collections::HashMap;

use super::{Encoder, Kind};
use crate::snapshot::Snapshot;

pub(super) fn encode(enc: &mut Encoder, snap: &Snapshot) {
    let logs = &snap.logs;
    enc.family(
        "lookout_container_log_lines_total",
        "Log lines the container wrote on the stream since lookout began following it (opt in with the label lookout.logs=<regex> or collectors.logs).",
        Kind::Counter,
    );
    for c in &logs.counts {
        enc.sample(
            "lookout_container_log_lines_total",
            "",
            &[("name", &c.name), ("stream", c.stream)],
            c.lines as f64,
        );
    }
    enc.family(
        "lookout_container_log_matches_total",
        "Log lines on the stream that matched the container's pattern.",
        Kind::Counter,
    );
    for c in &logs.counts {
        enc.sample(
            "lookout_container_log_matches_total",
            "",
            &[("name", &c.name), ("stream", c.stream)],
            c.matches as f64,
        );
    }
    let names: HashMap<&str, &str> = logs
        .counts
        .iter()
        .map(|c| (c.container_id.as_str(), c.name.as_str()))
        .collect();
    enc.family(
        "lookout_container_log_last_match_timestamp_seconds",
        "Unix time at which lookout read the container's last matching log line.",
        Kind::Gauge,
    );
    for m in &logs.last_matches {
        if let Some(name) = names.get(m.container_id.as_str()) {
            enc.sample(
                "lookout_container_log_last_match_timestamp_seconds",
                "",
                &[("name", name)],
                m.at,
            );
        }
    }
    enc.family(
        "lookout_container_log_pattern_invalid",
        "1 for a container whose lookout.logs label is not a valid regular expression (the label is ignored).",
        Kind::Gauge,
    );
    for p in &logs.invalid_patterns {
        enc.sample(
            "lookout_container_log_pattern_invalid",
            "",
            &[("name", &p.name)],
            1.0,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::{render, Format};
    use crate::snapshot::*;

    #[test]
    fn counts_per_stream_and_invalid_labels() {
        let snap = Snapshot {
            logs: LogPart {
                counts: vec![
                    LogCounts {
                        container_id: "a".into(),
                        name: "api-1".into(),
                        stream: "stdout",
                        lines: 7,
                        matches: 0,
                    },
                    LogCounts {
                        container_id: "a".into(),
                        name: "api-1".into(),
                        stream: "stderr",
                        lines: 5,
                        matches: 3,
                    },
                ],
                last_matches: vec![LastMatch {
                    container_id: "a".into(),
                    line: "ERROR x".into(),
                    at: 1700000000.5,
                }],
                invalid_patterns: vec![InvalidPattern {
                    container_id: "b".into(),
                    name: "bad".into(),
                    pattern: "(".into(),
                    error: "unclosed group".into(),
                }],
            },
            ..Default::default()
        };
        let text = render(&snap, Format::Text);
        for line in [
            "# TYPE lookout_container_log_lines_total counter\n",
            "lookout_container_log_lines_total{name=\"api-1\",stream=\"stdout\"} 7\n",
            "lookout_container_log_lines_total{name=\"api-1\",stream=\"stderr\"} 5\n",
            "lookout_container_log_matches_total{name=\"api-1\",stream=\"stderr\"} 3\n",
            "lookout_container_log_matches_total{name=\"api-1\",stream=\"stdout\"} 0\n",
            "lookout_container_log_last_match_timestamp_seconds{name=\"api-1\"} 1700000000.5\n",
            "lookout_container_log_pattern_invalid{name=\"bad\"} 1\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        let om = render(&snap, Format::OpenMetrics);
        assert!(om.contains("# TYPE lookout_container_log_matches counter\n"));
    }
}
