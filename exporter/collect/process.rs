//! lookout's own process, read from `/proc/self` as client_golang's process collector reads a
//! Go exporter's, for the `process_*` series.
//!
//! Not a [`super::Collector`]: it is lookout's health rather than the host's, so the wiring
//! reads it every cycle, outside the runner. It always reads the real `/proc` (the process
//! lookout runs as), never `--path.procfs`, which may be another machine's or a fixture tree.
//! The parsers are pure functions over the files' text; malformed text is an error, never a
//! panic.

use std::path::Path;

use crate::snapshot::ProcessStats;

/// The fields of `/proc/<pid>/stat` that the `process_*` series need, in the kernel's units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelfStat {
    /// Field 14 `utime`, in clock ticks.
    pub utime_ticks: u64,
    /// Field 15 `stime`, in clock ticks.
    pub stime_ticks: u64,
    /// Field 22 `starttime`: ticks after boot at which the process started.
    pub start_ticks: u64,
    /// Field 23 `vsize`, in bytes.
    pub vsize_bytes: u64,
    /// Field 24 `rss`, in pages.
    pub rss_pages: u64,
}

/// The soft limits of `/proc/<pid>/limits` that the `process_*` series need; `None` is
/// `unlimited`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelfLimits {
    pub open_files: Option<u64>,
    pub address_space: Option<u64>,
}

/// Read lookout's own process from `/proc/self`, `/proc/self/limits`, `/proc/self/fd` and
/// `/proc/stat`'s `btime`. Each error names the file.
pub fn read_self() -> Result<ProcessStats, String> {
    let read = |p: &str| std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"));
    let stat =
        parse_stat(&read("/proc/self/stat")?).map_err(|e| format!("/proc/self/stat: {e}"))?;
    let limits =
        parse_limits(&read("/proc/self/limits")?).map_err(|e| format!("/proc/self/limits: {e}"))?;
    let hz = super::host::user_hz();
    // One /proc/stat parser: the host collector's.
    let boot_time = super::host::parse_stat(&read("/proc/stat")?, hz)
        .map_err(|e| format!("/proc/stat: {e}"))?
        .boot_time;
    let open_fds = count_entries(Path::new("/proc/self/fd"))?;
    Ok(process_stats(
        &stat,
        &limits,
        open_fds,
        boot_time,
        hz,
        page_size(),
    ))
}

/// Combine the readings into [`ProcessStats`], as client_golang does: CPU is
/// `(utime + stime) / hz`, resident memory `rss × page size`, the start time
/// `btime + starttime / hz`.
pub fn process_stats(
    stat: &SelfStat,
    limits: &SelfLimits,
    open_fds: u64,
    boot_time: f64,
    hz: f64,
    page_size: u64,
) -> ProcessStats {
    ProcessStats {
        cpu_seconds_total: stat.utime_ticks.saturating_add(stat.stime_ticks) as f64 / hz,
        resident_memory_bytes: stat.rss_pages.saturating_mul(page_size),
        virtual_memory_bytes: stat.vsize_bytes,
        virtual_memory_max_bytes: limits.address_space,
        open_fds,
        max_fds: limits.open_files,
        start_time_seconds: boot_time + stat.start_ticks as f64 / hz,
    }
}

/// `/proc/<pid>/stat`. The second field, `(comm)`, is the executable's name in parentheses and
/// may itself hold spaces and parentheses (`(my (weird) name)`), so the fields are counted from
/// the *last* `)`.
pub fn parse_stat(text: &str) -> Result<SelfStat, String> {
    let open = text
        .find('(')
        .ok_or("expected `PID (COMM) STATE ...`; no `(` found")?;
    let close = text
        .rfind(')')
        .filter(|&c| c > open)
        .ok_or("expected `PID (COMM) STATE ...`; no `)` after the command name")?;
    // Fields 3 onwards; field n is at index n - 3.
    let rest: Vec<&str> = text[close + 1..].split_ascii_whitespace().collect();
    let field = |n: usize, name: &str| -> Result<&str, String> {
        rest.get(n - 3).copied().ok_or_else(|| {
            format!(
                "expected at least {n} fields (for {name}); got {}",
                rest.len() + 2
            )
        })
    };
    let unsigned = |n: usize, name: &str| -> Result<u64, String> {
        let v = field(n, name)?;
        v.parse()
            .map_err(|_| format!("expected a number for {name} (field {n}); got {v:?}"))
    };
    let utime_ticks = unsigned(14, "utime")?;
    let stime_ticks = unsigned(15, "stime")?;
    let start_ticks = unsigned(22, "starttime")?;
    let vsize_bytes = unsigned(23, "vsize")?;
    let rss = field(24, "rss")?;
    // The kernel prints rss signed; it is never negative in practice.
    let rss: i64 = rss
        .parse()
        .map_err(|_| format!("expected a number for rss (field 24); got {rss:?}"))?;
    Ok(SelfStat {
        utime_ticks,
        stime_ticks,
        start_ticks,
        vsize_bytes,
        rss_pages: rss.max(0) as u64,
    })
}

/// `/proc/<pid>/limits`: the soft values of `Max open files` and `Max address space`.
pub fn parse_limits(text: &str) -> Result<SelfLimits, String> {
    let soft = |name: &str| -> Result<Option<u64>, String> {
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .ok_or_else(|| format!("no `{name}` line"))?;
        match line.split_ascii_whitespace().next() {
            Some("unlimited") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| format!("{name}: expected a number or `unlimited`; got {v:?}")),
            None => Err(format!("{name}: no soft limit")),
        }
    };
    Ok(SelfLimits {
        open_files: soft("Max open files")?,
        address_space: soft("Max address space")?,
    })
}

/// The number of entries in a directory (`/proc/self/fd`: open file descriptors, the one
/// reading it included, as Go's `FileDescriptorsLen` counts).
fn count_entries(dir: &Path) -> Result<u64, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut n = 0u64;
    for e in entries {
        e.map_err(|e| format!("{}: {e}", dir.display()))?;
        n += 1;
    }
    Ok(n)
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 {
        size as u64
    } else {
        4096
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real line (kernel 6.x), command `lookout`.
    const STAT: &str = "4242 (lookout) S 1 4242 4242 0 -1 4194560 2573 0 0 0 \
        150 75 0 0 20 0 6 0 123456 812646400 3072 18446744073709551615 1 1 0 0 0 0 0 4096 17610 \
        0 0 0 17 3 0 0 0 0 0 0 0 0 0 0 0 0 0\n";

    const LIMITS: &str = "\
Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max file size             unlimited            unlimited            bytes     
Max data size             unlimited            unlimited            bytes     
Max stack size            8388608              unlimited            bytes     
Max core file size        0                    unlimited            bytes     
Max resident set          unlimited            unlimited            bytes     
Max processes             127431               127431               processes 
Max open files            1024                 1048576              files     
Max locked memory         8388608              8388608              bytes     
Max address space         unlimited            unlimited            bytes     
Max file locks            unlimited            unlimited            locks     
Max pending signals       127431               127431               signals   
Max msgqueue size         819200               819200               bytes     
Max nice priority         0                    0                    
Max realtime priority     0                    0                    
Max realtime timeout      unlimited            unlimited            us        
";

    #[test]
    fn stat_fields() {
        assert_eq!(
            parse_stat(STAT).unwrap(),
            SelfStat {
                utime_ticks: 150,
                stime_ticks: 75,
                start_ticks: 123456,
                vsize_bytes: 812646400,
                rss_pages: 3072,
            }
        );
    }

    #[test]
    fn stat_comm_with_spaces_and_parentheses() {
        let weird = STAT.replace("(lookout)", "(my (weird) name)");
        assert_eq!(parse_stat(&weird).unwrap(), parse_stat(STAT).unwrap());
        let sneaky = STAT.replace("(lookout)", "(a) 9 9 9 (b)");
        assert_eq!(parse_stat(&sneaky).unwrap(), parse_stat(STAT).unwrap());
        let empty = STAT.replace("(lookout)", "()");
        assert_eq!(parse_stat(&empty).unwrap().rss_pages, 3072);
    }

    #[test]
    fn stat_malformed_is_an_error() {
        for (text, needle) in [
            ("", "no `(`"),
            ("4242 lookout S 1", "no `(`"),
            ("4242 (lookout S 1 2 3", "no `)`"),
            (")4242 (lookout", "no `)`"),
            ("4242 (lookout) S 1 4242", "expected at least"),
            (&STAT[..STAT.find(" 812646400").unwrap()], "(for vsize)"),
            (&STAT.replace(" 150 75 ", " 150 x "), "stime (field 15)"),
            (&STAT.replace(" 3072 ", " -x "), "rss (field 24)"),
            (&STAT.replace(" 150 75 ", " -150 75 "), "utime"),
        ] {
            let err = parse_stat(text).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
        let negative_rss = STAT.replace(" 3072 ", " -1 ");
        assert_eq!(parse_stat(&negative_rss).unwrap().rss_pages, 0);
    }

    #[test]
    fn limits_soft_values() {
        assert_eq!(
            parse_limits(LIMITS).unwrap(),
            SelfLimits {
                open_files: Some(1024),
                address_space: None,
            }
        );
        let capped = LIMITS.replace(
            "Max address space         unlimited",
            "Max address space         4294967296",
        );
        assert_eq!(
            parse_limits(&capped).unwrap().address_space,
            Some(4294967296)
        );
    }

    #[test]
    fn limits_malformed_is_an_error() {
        let no_files: String = LIMITS
            .lines()
            .filter(|l| !l.starts_with("Max open files"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(parse_limits(&no_files)
            .unwrap_err()
            .contains("no `Max open files` line"));
        let bad = LIMITS.replace(
            "Max open files            1024",
            "Max open files            lots",
        );
        assert!(parse_limits(&bad).unwrap_err().contains("\"lots\""));
        assert!(parse_limits("Max open files\nMax address space 1\n")
            .unwrap_err()
            .contains("no soft limit"));
        assert!(parse_limits("").is_err());
    }

    #[test]
    fn stats_in_client_golang_units() {
        let p = process_stats(
            &parse_stat(STAT).unwrap(),
            &parse_limits(LIMITS).unwrap(),
            9,
            1_700_000_000.0,
            100.0,
            4096,
        );
        assert_eq!(
            p,
            ProcessStats {
                cpu_seconds_total: 2.25,
                resident_memory_bytes: 3072 * 4096,
                virtual_memory_bytes: 812646400,
                virtual_memory_max_bytes: None,
                open_fds: 9,
                max_fds: Some(1024),
                start_time_seconds: 1_700_001_234.56,
            }
        );
    }

    #[test]
    fn reads_this_process() {
        let p = read_self().unwrap();
        assert!(p.resident_memory_bytes > 1 << 20, "{p:?}");
        assert!(p.virtual_memory_bytes >= p.resident_memory_bytes, "{p:?}");
        assert!(p.open_fds >= 3, "{p:?}");
        assert!(p.max_fds.is_none_or(|m| m >= p.open_fds), "{p:?}");
        let now = crate::now_unix();
        assert!(
            p.start_time_seconds <= now + 1.0 && p.start_time_seconds > now - 3600.0,
            "{p:?}"
        );
    }
}
