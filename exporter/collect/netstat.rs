//! node_exporter's `netstat` collector: `/proc/net/netstat` and `/proc/net/snmp` (header and
//! value line pairs) and `/proc/net/snmp6` (`name value` lines), the fields matching its
//! default `--collector.netstat.fields`, each as the untyped `node_netstat_<Proto>_<Field>`.
//! `snmp6` is skipped where it is absent (IPv6 disabled), as node_exporter does.
//!
//! Like `/proc/net/dev`, these files are the network namespace of the reading process: run
//! lookout with `--network host`.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;

use super::node::{parse_error, read_file, read_optional, NodeError};
use crate::config::Paths;
use crate::exposition::Kind;
use crate::snapshot::Family;

/// node_exporter's (1.8) default `--collector.netstat.fields`.
pub const NETSTAT_FIELDS: &str = "^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts|TCPOFOQueue)|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$";

static FIELDS: LazyLock<Regex> = LazyLock::new(|| Regex::new(NETSTAT_FIELDS).expect("constant"));

/// One statistic: protocol, field, and the value as the kernel wrote it (borrowed from the
/// file's text: of some 300 statistics the default filter keeps about 40, so nothing is copied
/// before the filter).
pub type Stat<'a> = (&'a str, &'a str, &'a str);

/// `node_netstat_<Proto>_<Field>` for the fields [`NETSTAT_FIELDS`] matches, sorted by name.
pub fn read(paths: &Paths) -> Result<Vec<Family>, NodeError> {
    let mut out: BTreeMap<String, Family> = BTreeMap::new();
    for file in ["net/netstat", "net/snmp"] {
        let path = paths.procfs.join(file);
        let text = read_file(&path)?;
        let stats = parse_pairs(&text).map_err(|e| parse_error(&path, e))?;
        keep(stats, &mut out)?;
    }
    let path = paths.procfs.join("net/snmp6");
    if let Some(text) = read_optional(&path)? {
        let stats = parse_snmp6(&text).map_err(|e| parse_error(&path, e))?;
        keep(stats, &mut out)?;
    }
    Ok(out.into_values().collect())
}

/// The statistics [`NETSTAT_FIELDS`] matches, into `out` by family name; a field in two files:
/// the later one wins, as in node_exporter.
fn keep(stats: Vec<Stat>, out: &mut BTreeMap<String, Family>) -> Result<(), NodeError> {
    let mut key = String::with_capacity(64);
    for (proto, field, value) in stats {
        key.clear();
        key.push_str(proto);
        key.push('_');
        key.push_str(field);
        if !FIELDS.is_match(&key) {
            continue;
        }
        let v: f64 = value.parse().map_err(|_| {
            NodeError::Failed(format!("netstat {key}: expected a number, got {value:?}"))
        })?;
        let name = format!("node_netstat_{key}");
        let help = format!("Statistic {proto}{field}.");
        out.insert(name.clone(), Family::single(name, help, Kind::Untyped, v));
    }
    Ok(())
}

fn check_name(what: &str) -> Result<(), String> {
    if what.is_empty() || !what.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("{what:?} is not a metric name part"));
    }
    Ok(())
}

/// `/proc/net/netstat` and `/proc/net/snmp`: for each protocol a line of field names, then a
/// line of values, both starting `Proto:`. A value line for another protocol, or with another
/// number of fields, is an error.
pub fn parse_pairs(text: &str) -> Result<Vec<Stat<'_>>, String> {
    fn split(l: &str) -> Result<(&str, &str), String> {
        let (proto, rest) = l
            .split_once(':')
            .ok_or_else(|| format!("expected `Proto: ...`, got {l:?}"))?;
        Ok((proto.trim(), rest))
    }
    let mut out = Vec::new();
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    while let Some(names) = lines.next() {
        let values = lines
            .next()
            .ok_or_else(|| format!("header without a value line: {names:?}"))?;
        let (proto, names) = split(names)?;
        let (vproto, values) = split(values)?;
        if proto != vproto {
            return Err(format!("{proto}'s header is followed by {vproto}'s values"));
        }
        let (n, v) = (
            names.split_ascii_whitespace().count(),
            values.split_ascii_whitespace().count(),
        );
        if n != v {
            return Err(format!("{proto}: {n} field names but {v} values"));
        }
        check_name(proto)?;
        for (n, v) in names
            .split_ascii_whitespace()
            .zip(values.split_ascii_whitespace())
        {
            check_name(n)?;
            out.push((proto, n, v));
        }
    }
    Ok(out)
}

/// `/proc/net/snmp6`: `Ip6InReceives 2` lines; the protocol is the name up to its first `6`
/// (`Ip6`, `Icmp6`, `UdpLite6`). Lines without a `6` are skipped, as in node_exporter.
pub fn parse_snmp6(text: &str) -> Result<Vec<Stat<'_>>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut f = line.split_ascii_whitespace();
        let (Some(key), Some(value), None) = (f.next(), f.next(), f.next()) else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(format!("expected `name value`, got {line:?}"));
        };
        let Some(six) = key.find('6') else { continue };
        let (proto, field) = key.split_at(six + 1);
        check_name(proto)?;
        check_name(field)?;
        out.push((proto, field, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_and_snmp6() {
        let text = "TcpExt: SyncookiesSent ListenDrops TCPOFOQueue\nTcpExt: 1 2 3\n\
                    Tcp: RtoAlgorithm MaxConn CurrEstab\nTcp: 1 -1 4\n";
        let s = parse_pairs(text).unwrap();
        assert_eq!(s.len(), 6);
        assert_eq!(s[4], ("Tcp", "MaxConn", "-1"));
        let s6 = parse_snmp6("Ip6InOctets   \t 1234\nIcmp6InMsgs 2\nUdpLite6InErrors 0\n").unwrap();
        assert_eq!(s6[0], ("Ip6", "InOctets", "1234"));
        assert_eq!(s6[2].0, "UdpLite6");
    }

    #[test]
    fn malformed_is_an_error() {
        assert!(parse_pairs("Tcp: A B\n").is_err(), "no value line");
        assert!(parse_pairs("Tcp: A B\nTcp: 1\n").is_err(), "counts differ");
        assert!(
            parse_pairs("Tcp: A B\nUdp: 1 2\n").is_err(),
            "protocols differ"
        );
        assert!(parse_pairs("Tcp A B\nTcp 1 2\n").is_err());
        assert!(parse_pairs("Tcp: A-B\nTcp: 1\n").is_err());
        assert!(parse_snmp6("Ip6InOctets\n").is_err());
        assert!(parse_snmp6("Ip6In-Octets 1\n").is_err());
        assert!(parse_snmp6("Foo 1\n").unwrap().is_empty());
    }

    #[test]
    fn the_default_fields() {
        for yes in [
            "Tcp_InErrs",
            "Udp_InErrors",
            "Ip_Forwarding",
            "IpExt_InOctets",
            "Ip6_OutOctets",
            "Icmp6_InMsgs",
            "TcpExt_ListenDrops",
            "TcpExt_TCPOFOQueue",
            "Tcp_CurrEstab",
            "Udp6_NoPorts",
        ] {
            assert!(FIELDS.is_match(yes), "{yes}");
        }
        for no in [
            "Tcp_MaxConn",
            "Ip_DefaultTTL",
            "TcpExt_TW",
            "Udp_InCsumErrorsX",
        ] {
            assert!(!FIELDS.is_match(no), "{no}");
        }
    }
}
