//! When each filesystem fills, predicted from its recent free space: `fill_eta_seconds`.
//!
//! The community's "will fill in 24 hours" rules ask `predict_linear(node_filesystem_avail_bytes
//! [6h], 24 * 3600) < 0`: a least-squares line through the last 6 hours of available bytes,
//! read at the evaluation time plus 24 hours. [`FillHistory`] keeps those hours per filesystem,
//! at most one point a minute, and gives the time at which that same line reaches 0, so
//! `fill_eta_seconds < 86400` holds exactly when that `predict_linear` is below 0 (with the
//! history downsampled).
//!
//! The engine owns the one history (it lives as long as the engine: across rule reloads, not
//! across restarts). It holds at most [`MAX_POINTS`] points per mounted, writable filesystem;
//! an unmounted filesystem's history is dropped.

use std::collections::{HashMap, VecDeque};

use crate::snapshot::Filesystem;

/// How far back the line is fitted, as `[6h]` in node-mixin's NodeFilesystemSpaceFillingUp.
pub const WINDOW_SECONDS: f64 = 6.0 * 3600.0;
/// One point is kept per this many seconds.
pub const STEP_SECONDS: f64 = 60.0;
/// The least history a prediction needs: a line through a few minutes says little.
pub const MIN_SPAN_SECONDS: f64 = 3600.0;
/// ... and the fewest points (a long interval spreads few over the hour).
pub const MIN_POINTS: usize = 10;
/// The most points kept per filesystem: the window at one a step, the sliding last one, and one
/// just outside the window.
pub const MAX_POINTS: usize = (WINDOW_SECONDS / STEP_SECONDS) as usize + 2;

/// One filesystem's (time, available bytes) points, oldest first.
#[derive(Debug, Clone, Default)]
struct Series {
    /// The device it was mounted from: another device on the same mountpoint starts afresh.
    device: String,
    points: VecDeque<(f64, f64)>,
}

impl Series {
    /// Add a reading. Points but the last are at least a step apart; the last moves to the
    /// newest reading until it is a step past the one before it, and then stays.
    fn push(&mut self, now: f64, avail: f64) {
        if self.points.back().is_some_and(|(t, _)| now < *t) {
            // The clock went back: the old points are no longer on this time line.
            self.points.clear();
        }
        let len = self.points.len();
        let slide = len >= 2 && self.points[len - 1].0 - self.points[len - 2].0 < STEP_SECONDS;
        if slide {
            self.points[len - 1] = (now, avail);
        } else {
            self.points.push_back((now, avail));
        }
        while self.points.len() > MAX_POINTS
            || self
                .points
                .front()
                .is_some_and(|(t, _)| *t < now - WINDOW_SECONDS)
        {
            self.points.pop_front();
        }
    }

    /// Seconds from `now` until the fitted line reaches 0; +∞ when it does not fall; None
    /// with too little history.
    fn eta(&self, now: f64) -> Option<f64> {
        let (first, last) = (self.points.front()?, self.points.back()?);
        if self.points.len() < MIN_POINTS || last.0 - first.0 < MIN_SPAN_SECONDS {
            return None;
        }
        let (slope, at_now) = fit(&self.points, now)?;
        if slope >= 0.0 {
            return Some(f64::INFINITY);
        }
        Some((at_now / -slope).max(0.0))
    }
}

/// Least squares through `points`, as Prometheus's `predict_linear` fits them: (slope in bytes
/// per second, the line's value at `now`). None when every point has the same time.
fn fit(points: &VecDeque<(f64, f64)>, now: f64) -> Option<(f64, f64)> {
    let n = points.len() as f64;
    // Times relative to now keep the sums small.
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(sx, sy), (t, y)| (sx + (t - now), sy + y));
    let (mx, my) = (sx / n, sy / n);
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (t, y) in points {
        let dx = (t - now) - mx;
        sxy += dx * (y - my);
        sxx += dx * dx;
    }
    if sxx <= 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    Some((slope, my - slope * mx))
}

/// The available-bytes history of every mounted, writable filesystem, by mountpoint.
#[derive(Debug, Clone, Default)]
pub struct FillHistory {
    by_mountpoint: HashMap<String, Series>,
}

impl FillHistory {
    /// Record a successful disk collection at `now`: each filesystem's available bytes. A
    /// filesystem not in `filesystems` (unmounted) or read-only is forgotten; one whose statfs
    /// failed this time keeps its history without a point.
    pub fn observe(&mut self, filesystems: &[Filesystem], now: f64) {
        let mut seen: HashMap<&str, &Filesystem> = HashMap::with_capacity(filesystems.len());
        for f in filesystems.iter().filter(|f| !f.readonly) {
            seen.insert(f.mountpoint.as_str(), f);
        }
        self.by_mountpoint
            .retain(|m, s| seen.get(m.as_str()).is_some_and(|f| f.device == s.device));
        for (m, f) in seen {
            if f.device_error {
                continue;
            }
            let s = self
                .by_mountpoint
                .entry(m.to_string())
                .or_insert_with(|| Series {
                    device: f.device.clone(),
                    points: VecDeque::new(),
                });
            s.push(now, f.avail_bytes as f64);
        }
    }

    /// Seconds from `now` until `mountpoint` is predicted to fill: +∞ when its free space is not
    /// falling, None without enough history (under an hour or [`MIN_POINTS`] points).
    pub fn eta(&self, mountpoint: &str, now: f64) -> Option<f64> {
        self.by_mountpoint.get(mountpoint)?.eta(now)
    }

    /// Points held for `mountpoint` (for tests and the memory bound).
    pub fn points(&self, mountpoint: &str) -> usize {
        self.by_mountpoint
            .get(mountpoint)
            .map_or(0, |s| s.points.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs(mountpoint: &str, device: &str, avail: u64) -> Filesystem {
        Filesystem {
            mountpoint: mountpoint.into(),
            device: device.into(),
            avail_bytes: avail,
            size_bytes: 1 << 40,
            ..Default::default()
        }
    }

    /// Feed `/data` every `interval` s for `secs` s, losing `per_s` bytes a second from `start`.
    fn feed(h: &mut FillHistory, t0: f64, secs: f64, interval: f64, start: f64, per_s: f64) -> f64 {
        let mut t = t0;
        while t <= t0 + secs {
            let avail = (start - per_s * (t - t0)).max(0.0) as u64;
            h.observe(&[fs("/data", "/dev/sdb1", avail)], t);
            t += interval;
        }
        t - interval
    }

    #[test]
    fn a_steady_fall_gives_the_time_to_zero() {
        let mut h = FillHistory::default();
        // 50 GB, losing 1 MB/s: 0 at t = 50 000 s.
        let end = feed(&mut h, 0.0, 7200.0, 10.0, 50e9, 1e6);
        let eta = h.eta("/data", end).unwrap();
        assert!((eta - (50_000.0 - end)).abs() < 1.0, "{eta}");
        // predict_linear(…, 86400) < 0 exactly when the ETA is under a day.
        assert!(eta < 86400.0);
        // Twice the space: 0 in about 26 hours, not within a day.
        let mut h = FillHistory::default();
        let end = feed(&mut h, 0.0, 7200.0, 10.0, 100e9, 1e6);
        let eta = h.eta("/data", end).unwrap();
        assert!(
            (eta - (100_000.0 - end)).abs() < 1.0 && eta > 86400.0,
            "{eta}"
        );
    }

    #[test]
    fn not_falling_is_infinite_and_too_little_history_is_none() {
        let mut h = FillHistory::default();
        let end = feed(&mut h, 0.0, 3000.0, 10.0, 100e9, 1e6);
        assert_eq!(h.eta("/data", end), None, "under an hour");
        let end = feed(&mut h, end + 10.0, 1200.0, 10.0, 97e9, 1e6);
        assert!(h.eta("/data", end).is_some_and(f64::is_finite));
        let mut flat = FillHistory::default();
        let end = feed(&mut flat, 0.0, 7200.0, 10.0, 100e9, 0.0);
        assert_eq!(flat.eta("/data", end), Some(f64::INFINITY));
        let mut growing = FillHistory::default();
        let end = feed(&mut growing, 0.0, 7200.0, 10.0, 100e9, -1e6);
        assert_eq!(growing.eta("/data", end), Some(f64::INFINITY));
        assert_eq!(growing.eta("/other", end), None);
        // An hour of readings every 10 minutes: 7 points, too few.
        let mut sparse = FillHistory::default();
        let end = feed(&mut sparse, 0.0, 3600.0, 600.0, 100e9, 1e6);
        assert_eq!(sparse.points("/data"), 7);
        assert_eq!(sparse.eta("/data", end), None);
    }

    #[test]
    fn the_history_is_bounded_and_downsampled() {
        let mut h = FillHistory::default();
        // A day at one reading a second.
        let end = feed(&mut h, 0.0, 86400.0, 1.0, 100e9, 1e3);
        assert!(h.points("/data") <= MAX_POINTS, "{}", h.points("/data"));
        assert!(h.points("/data") >= MAX_POINTS - 2);
        let s = &h.by_mountpoint["/data"];
        assert!(s.points.front().unwrap().0 >= end - WINDOW_SECONDS);
        assert_eq!(
            s.points.back().unwrap().0,
            end,
            "the newest reading is used"
        );
        for w in s.points.iter().collect::<Vec<_>>().windows(2).rev().skip(1) {
            assert!(w[1].0 - w[0].0 >= STEP_SECONDS);
        }
        // Only the last 6 hours count: a fall that stopped 7 hours ago is not filling.
        let end = feed(&mut h, end + 1.0, 7.0 * 3600.0, 30.0, 50e9, 0.0);
        assert_eq!(h.eta("/data", end), Some(f64::INFINITY));
    }

    #[test]
    fn the_line_not_the_last_reading_is_read_as_predict_linear_does() {
        // Saw-tooth: a log that is rotated every 20 minutes, growing 1 GB between rotations,
        // on a 100 GB disk: the line through it is flat, not filling.
        let mut h = FillHistory::default();
        let mut t = 0.0;
        while t <= 7200.0 {
            let avail = 100e9 - 1e9 * ((t % 1200.0) / 1200.0);
            h.observe(&[fs("/data", "/dev/sdb1", avail as u64)], t);
            t += 15.0;
        }
        let eta = h.eta("/data", t - 15.0).unwrap();
        assert!(eta > 86400.0 * 30.0, "{eta}");
    }

    #[test]
    fn unmounted_remounted_read_only_and_failing_filesystems() {
        let mut h = FillHistory::default();
        let end = feed(&mut h, 0.0, 7200.0, 60.0, 100e9, 1e6);
        // A statfs that failed keeps the history, without a point.
        let n = h.points("/data");
        let mut broken = fs("/data", "/dev/sdb1", 0);
        broken.device_error = true;
        h.observe(&[broken], end + 60.0);
        assert_eq!(h.points("/data"), n);
        // Another device on the mountpoint starts afresh.
        h.observe(&[fs("/data", "/dev/sdc1", 5)], end + 120.0);
        assert_eq!(h.points("/data"), 1);
        // Read-only, or gone: forgotten.
        let mut ro = fs("/data", "/dev/sdc1", 5);
        ro.readonly = true;
        h.observe(&[ro], end + 180.0);
        assert_eq!(h.points("/data"), 0);
        h.observe(&[fs("/data", "/dev/sdc1", 5)], end + 240.0);
        h.observe(&[], end + 300.0);
        assert_eq!(h.points("/data"), 0);
        // A clock that went back drops what came before.
        feed(&mut h, 0.0, 600.0, 60.0, 100e9, 1e6);
        h.observe(&[fs("/data", "/dev/sdb1", 5)], 100.0);
        assert_eq!(h.points("/data"), 1);
    }

    #[test]
    fn already_past_zero_is_zero() {
        let mut h = FillHistory::default();
        // Falling fast to 0 and staying there: the line is below 0 at now.
        let end = feed(&mut h, 0.0, 7200.0, 60.0, 5e9, 1e6);
        assert_eq!(h.eta("/data", end), Some(0.0));
    }
}
