//! The decision of `ocf:vzfs:container`'s `start` about a dirty ext4 MMP
//! block left by another node: is its writer proven dead, so that the agent
//! may set the block back to clean ([`crate::device::mmp_reset`]) and the
//! kernel's mount does not wait again?
//!
//! Proven dead is one of:
//! - **fenced**: the cluster's fencing history (`stonith_admin --history`)
//!   has a successful `off` or `reboot` of the node the block names,
//!   completed no earlier than the second of the block's last update, and
//!   a read of the block after that fencing shows the sequence unchanged;
//! - **stood still**: the sequence did not move for the kernel's own first
//!   wait for that block ([`kernel_first_wait`], fs/ext4/mmp.c: at least
//!   11 s), as long as the kernel itself would watch it.
//!
//! Never: while the sequence moves, while it is e2fsck's
//! (EXT4_MMP_SEQ_FSCK). Everything here is pure: [`watch`] takes its clock,
//! reader and fencing history from a [`Watcher`], so the tests drive it with
//! a fake clock.

// `Option::is_none_or` needs Rust 1.82; the workspace supports 1.80.
#![allow(clippy::unnecessary_map_or)]

use crate::device::{Mmp, MMP_MIN_CHECK_INTERVAL};

/// The kernel's first wait before it mounts a dirty MMP block
/// (`ext4_multi_mount_protect`): the check interval is the largest of the
/// superblock's update interval, EXT4_MMP_MIN_CHECK_INTERVAL (5 s) and the
/// block's own `mmp_check_interval`; the wait is min(2 x interval + 1,
/// interval + 60) seconds.
pub fn kernel_first_wait(update_interval: u16, block_check_interval: u16) -> u64 {
    let ci = update_interval
        .max(MMP_MIN_CHECK_INTERVAL)
        .max(block_check_interval) as u64;
    (2 * ci + 1).min(ci + 60)
}

/// One entry of the fencing history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FenceEvent {
    pub action: String,
    pub target: String,
    pub status: String,
    /// Completion, seconds since the epoch (whole seconds, as Pacemaker
    /// prints it).
    pub completed: Option<i64>,
}

impl FenceEvent {
    /// A successful `off` or `reboot`: the target was powered off.
    pub fn powered_off(&self) -> bool {
        self.status == "success" && matches!(self.action.as_str(), "off" | "reboot")
    }
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn attr(elem: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let start = elem.find(&key)? + key.len();
    let end = elem[start..].find('"')? + start;
    Some(unescape(&elem[start..end]))
}

/// The `fence_event` elements of `stonith_admin --history '*'
/// --output-as=xml` (Pacemaker 2.1: `action`, `target`, `status`,
/// `completed="2026-12-07 22:26:59Z"`).
pub fn parse_fence_history(xml: &str) -> Vec<FenceEvent> {
    let mut v = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find("<fence_event ") {
        let tail = &rest[i..];
        let end = tail.find('>').unwrap_or(tail.len());
        let e = &tail[..end];
        if let (Some(action), Some(target), Some(status)) =
            (attr(e, "action"), attr(e, "target"), attr(e, "status"))
        {
            v.push(FenceEvent {
                action,
                target,
                status,
                completed: attr(e, "completed").and_then(|t| parse_time(&t)),
            });
        }
        rest = &tail[end..];
    }
    v
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Pacemaker's time stamps: `YYYY-MM-DD HH:MM:SS[.frac]` then `Z`,
/// `+HH:MM`, `+HHMM` (or `-`), optionally after a space. Whole seconds
/// since the epoch (the fraction dropped).
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, rest) = s.split_once([' ', 'T'])?;
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let [y, mo, da] = d[..] else { return None };
    let rest = rest.trim();
    let tz_at = rest.find(['Z', '+', '-', ' ']).unwrap_or(rest.len());
    let (clock, tz) = rest.split_at(tz_at);
    let clock = clock.split('.').next()?;
    let t: Vec<i64> = clock
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let [h, mi, se] = t[..] else { return None };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&da) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let tz = tz.trim();
    let offset = match tz {
        "" | "Z" | "UTC" => 0,
        _ => {
            let sign = match tz.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let digits: String = tz[1..].chars().filter(|c| *c != ':').collect();
            if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let hh: i64 = digits[..2].parse().ok()?;
            let mm: i64 = digits[2..].parse().ok()?;
            sign * (hh * 3600 + mm * 60)
        }
    };
    Some(days_from_civil(y, mo, da) * 86_400 + h * 3600 + mi * 60 + se - offset)
}

/// One entry of the agent's `mmp_nodes` parameter: cluster node `node`
/// writes `nodename` (and, when given, device name `bdev`) into MMP blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MmpNode {
    pub node: String,
    pub nodename: String,
    pub bdev: Option<String>,
}

/// Parses `NODE=NAME[:DEVICE] ...` (space-separated).
pub fn parse_mmp_nodes(s: &str) -> Result<Vec<MmpNode>, String> {
    let mut v = Vec::new();
    for w in s.split_whitespace() {
        let (node, rest) = w.split_once('=').ok_or_else(|| {
            format!("{w:?} is not NODE=NAME[:DEVICE] (a cluster node, the host name its kernel writes into MMP blocks, optionally its device name)")
        })?;
        let (nodename, bdev) = match rest.split_once(':') {
            Some((n, d)) => (n, Some(d.to_string()).filter(|d| !d.is_empty())),
            None => (rest, None),
        };
        if node.is_empty() || nodename.is_empty() {
            return Err(format!("{w:?}: an empty node or host name"));
        }
        v.push(MmpNode {
            node: node.into(),
            nodename: nodename.into(),
            bdev,
        });
    }
    Ok(v)
}

fn short(s: &str) -> &str {
    s.split('.').next().unwrap_or(s)
}

/// The cluster node that wrote `m`: with `map`, the one entry that matches
/// its host name (and device name, where the entry gives one), none when
/// no entry or several match; without a map, the block's host name itself
/// (a node named as its host, the usual setup).
pub fn writer_node(m: &Mmp, map: &[MmpNode]) -> Option<String> {
    if m.nodename.is_empty() {
        return None;
    }
    if map.is_empty() {
        return Some(m.nodename.clone());
    }
    let hits: Vec<&MmpNode> = map
        .iter()
        .filter(|e| e.nodename == m.nodename || short(&e.nodename) == short(&m.nodename))
        .filter(|e| e.bdev.as_deref().map_or(true, |d| d == m.bdevname))
        .collect();
    match hits.as_slice() {
        [one] => Some(one.node.clone()),
        _ => None,
    }
}

/// The fencing that proves `writer` dead for a block last updated at
/// `block_time` (its writer's clock, whole seconds): the latest successful
/// `off`/`reboot` of that node (its name or short name) completed in that
/// second or later. A fencing before the update (a node rebooted and
/// writing again) or of another node does not count.
pub fn fencing_of<'a>(
    events: &'a [FenceEvent],
    writer: &str,
    block_time: u64,
) -> Option<&'a FenceEvent> {
    events
        .iter()
        .filter(|e| e.powered_off())
        .filter(|e| e.target == writer || short(&e.target) == short(writer))
        .filter(|e| e.completed.is_some_and(|c| c >= block_time as i64))
        .max_by_key(|e| e.completed)
}

/// How the writer was proven dead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    /// Its node was fenced after the block's last update.
    Fenced(FenceEvent),
    /// The sequence stood still this many seconds (the kernel's wait).
    StoodStill(u64),
}

impl Proof {
    /// One word for logs and the failover breakdown.
    pub fn tag(&self) -> String {
        match self {
            Proof::Fenced(_) => "fenced".into(),
            Proof::StoodStill(w) => format!("still-{w}s"),
        }
    }
}

/// What the watch found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The block became clean (its writer unmounted, e2fsck finished).
    Clean,
    /// e2fsck runs on it (from the node in the block).
    Fsck(Mmp),
    /// Its writer is alive: the sequence (or writer) changed.
    Live(Mmp),
    /// Proven dead; the last read (unchanged since the first).
    Dead(Proof, Mmp),
}

/// The clock, the block and the fencing history of a [`watch`].
pub trait Watcher {
    /// Seconds since the watch began.
    fn elapsed(&mut self) -> f64;
    fn sleep(&mut self, secs: f64);
    /// Reads the MMP block again (around the page cache).
    fn read(&mut self) -> Result<Mmp, String>;
    /// The cluster's fencing history; `None` when it cannot be had (no
    /// cluster, no `stonith_admin`).
    fn history(&mut self) -> Option<Vec<FenceEvent>>;
}

/// Watches a dirty block `first` (read before the watch) until it is
/// proven dead, live, clean or e2fsck's. The fencing history is asked at
/// the start and then every second; a fencing counts only with a read of
/// the block after it that still equals `first`. Without such a fencing,
/// dead needs the sequence unchanged for `window` seconds (give
/// [`kernel_first_wait`]). Reads every 250 ms.
pub fn watch(
    w: &mut impl Watcher,
    first: &Mmp,
    writer: Option<&str>,
    window: u64,
) -> Result<Verdict, String> {
    if first.is_clean() {
        return Ok(Verdict::Clean);
    }
    if first.is_fsck() {
        return Ok(Verdict::Fsck(first.clone()));
    }
    let mut asked_at: Option<f64> = None;
    loop {
        let mut fenced = None;
        let t = w.elapsed();
        if let Some(node) = writer {
            if asked_at.map_or(true, |a| t - a >= 1.0) {
                asked_at = Some(t);
                if let Some(h) = w.history() {
                    fenced = fencing_of(&h, node, first.time).cloned();
                }
            }
        }
        // Read after the history: a fencing it lists was complete before
        // this read, so the node could not have written since.
        let now = w.read()?;
        let t = w.elapsed();
        if now.is_clean() {
            return Ok(Verdict::Clean);
        }
        if now.is_fsck() {
            return Ok(Verdict::Fsck(now));
        }
        if now != *first {
            return Ok(Verdict::Live(now));
        }
        if let Some(f) = fenced {
            return Ok(Verdict::Dead(Proof::Fenced(f), now));
        }
        if t >= window as f64 {
            return Ok(Verdict::Dead(Proof::StoodStill(window), now));
        }
        w.sleep(0.25);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{MMP_SEQ_CLEAN, MMP_SEQ_FSCK};

    fn mmp(seq: u32, time: u64) -> Mmp {
        Mmp {
            seq,
            time,
            nodename: "vm".into(),
            bdevname: "loop5".into(),
            check_interval: 5,
        }
    }

    fn off(target: &str, completed: i64) -> FenceEvent {
        FenceEvent {
            action: "off".into(),
            target: target.into(),
            status: "success".into(),
            completed: Some(completed),
        }
    }

    /// A fake clock and LUN: `writes` are the writer's (time, seq) updates,
    /// `fenced` the fencing history from a time on.
    struct Fake {
        t: f64,
        writes: Vec<(f64, Mmp)>,
        history: Vec<(f64, FenceEvent)>,
        cluster: bool,
        reads: usize,
    }

    impl Watcher for Fake {
        fn elapsed(&mut self) -> f64 {
            self.t
        }
        fn sleep(&mut self, secs: f64) {
            self.t += secs;
        }
        fn read(&mut self) -> Result<Mmp, String> {
            self.reads += 1;
            Ok(self
                .writes
                .iter()
                .rev()
                .find(|(at, _)| *at <= self.t)
                .map(|(_, m)| m.clone())
                .expect("a write at 0"))
        }
        fn history(&mut self) -> Option<Vec<FenceEvent>> {
            self.cluster.then(|| {
                self.history
                    .iter()
                    .filter(|(at, _)| *at <= self.t)
                    .map(|(_, e)| e.clone())
                    .collect()
            })
        }
    }

    fn fake(writes: Vec<(f64, Mmp)>, history: Vec<(f64, FenceEvent)>) -> Fake {
        Fake {
            t: 0.0,
            writes,
            history,
            cluster: true,
            reads: 0,
        }
    }

    #[test]
    fn kernel_wait_is_at_least_eleven_seconds() {
        assert_eq!(kernel_first_wait(1, 5), 11);
        assert_eq!(kernel_first_wait(1, 0), 11);
        assert_eq!(kernel_first_wait(5, 5), 11);
        assert_eq!(kernel_first_wait(10, 5), 21);
        assert_eq!(kernel_first_wait(1, 8), 17);
        assert_eq!(kernel_first_wait(100, 5), 160);
    }

    #[test]
    fn fenced_writer_is_dead_at_once() {
        let first = mmp(7, 1000);
        let mut f = fake(vec![(0.0, first.clone())], vec![(0.0, off("a", 1002))]);
        let v = watch(&mut f, &first, Some("a"), 11).unwrap();
        assert!(matches!(v, Verdict::Dead(Proof::Fenced(_), _)), "{v:?}");
        assert_eq!(f.t, 0.0, "a fenced writer needs no wait");
        // Fenced in the same second as its last update: counts (a node
        // cannot boot and mount again within that second).
        let mut f = fake(vec![(0.0, first.clone())], vec![(0.0, off("a", 1000))]);
        assert!(matches!(
            watch(&mut f, &first, Some("a"), 11).unwrap(),
            Verdict::Dead(Proof::Fenced(_), _)
        ));
    }

    #[test]
    fn held_up_writer_waits_the_full_window_then_is_refused_when_it_resumes() {
        // Writes held up (a suspended path): the sequence stops, nothing
        // is fenced. Not dead before the kernel's window.
        let first = mmp(7, 1000);
        let mut f = fake(vec![(0.0, first.clone())], vec![]);
        let v = watch(&mut f, &first, Some("a"), 11).unwrap();
        assert_eq!(v, Verdict::Dead(Proof::StoodStill(11), first.clone()));
        assert!(f.t >= 11.0, "dead after {} s, before the window", f.t);
        assert!(f.reads >= 44, "{} reads", f.reads);
        // The writes resume at 6 s: live, refused.
        let mut f = fake(vec![(0.0, first.clone()), (6.0, mmp(8, 1006))], vec![]);
        let v = watch(&mut f, &first, Some("a"), 11).unwrap();
        assert_eq!(v, Verdict::Live(mmp(8, 1006)));
        assert!(f.t >= 6.0 && f.t < 6.5, "{}", f.t);
        // Fenced at 4 s: dead then, with the block unchanged.
        let mut f = fake(vec![(0.0, first.clone())], vec![(4.0, off("a", 1004))]);
        let v = watch(&mut f, &first, Some("a"), 11).unwrap();
        assert!(matches!(v, Verdict::Dead(Proof::Fenced(_), _)), "{v:?}");
        assert!(f.t >= 4.0 && f.t < 5.5, "{}", f.t);
    }

    #[test]
    fn other_fencings_do_not_count() {
        let first = mmp(7, 1000);
        for (h, why) in [
            (off("b", 1002), "another node"),
            (off("a", 990), "before the block's last update"),
            (
                FenceEvent {
                    status: "failed".into(),
                    ..off("a", 1002)
                },
                "a failed fencing",
            ),
            (
                FenceEvent {
                    action: "on".into(),
                    ..off("a", 1002)
                },
                "an `on`",
            ),
        ] {
            let mut f = fake(vec![(0.0, first.clone())], vec![(0.0, h)]);
            let v = watch(&mut f, &first, Some("a"), 11).unwrap();
            assert_eq!(
                v,
                Verdict::Dead(Proof::StoodStill(11), first.clone()),
                "{why}"
            );
            assert!(f.t >= 11.0, "{why}: {}", f.t);
        }
        // No cluster, or a writer no node maps to: the window too.
        let mut f = fake(vec![(0.0, first.clone())], vec![(0.0, off("a", 1002))]);
        f.cluster = false;
        assert!(matches!(
            watch(&mut f, &first, Some("a"), 11).unwrap(),
            Verdict::Dead(Proof::StoodStill(11), _)
        ));
        let mut f = fake(vec![(0.0, first.clone())], vec![(0.0, off("a", 1002))]);
        assert!(matches!(
            watch(&mut f, &first, None, 11).unwrap(),
            Verdict::Dead(Proof::StoodStill(11), _)
        ));
    }

    #[test]
    fn live_writer_and_fsck_are_never_dead() {
        // Moving every second, even with a (stale) fencing of it listed
        // with a time after the first read: the move wins.
        let first = mmp(7, 1000);
        let writes: Vec<(f64, Mmp)> = (0..30)
            .map(|i| (i as f64, mmp(7 + i, 1000 + i as u64)))
            .collect();
        let mut f = fake(writes.clone(), vec![]);
        assert!(matches!(
            watch(&mut f, &first, Some("a"), 11).unwrap(),
            Verdict::Live(_)
        ));
        assert!(f.t <= 1.25, "{}", f.t);
        let mut f = fake(writes, vec![(0.5, off("a", 1000))]);
        let v = watch(&mut f, &first, Some("a"), 11).unwrap();
        assert!(matches!(v, Verdict::Live(_)), "{v:?}");
        // e2fsck's sequence, first or later.
        let fsck = mmp(MMP_SEQ_FSCK, 1000);
        let mut f = fake(vec![(0.0, fsck.clone())], vec![(0.0, off("a", 1002))]);
        assert!(matches!(
            watch(&mut f, &fsck, Some("a"), 11).unwrap(),
            Verdict::Fsck(_)
        ));
        let mut f = fake(vec![(0.0, first.clone()), (3.0, fsck)], vec![]);
        assert!(matches!(
            watch(&mut f, &first, Some("a"), 11).unwrap(),
            Verdict::Fsck(_)
        ));
        let mut f = fake(
            vec![(0.0, first.clone()), (2.0, mmp(MMP_SEQ_CLEAN, 0))],
            vec![],
        );
        assert_eq!(
            watch(&mut f, &first, Some("a"), 11).unwrap(),
            Verdict::Clean
        );
    }

    #[test]
    fn history_xml_and_times() {
        let xml = r#"<pacemaker-result api-version="2.25" request="stonith_admin --history * --output-as=xml">
  <list name="fencing history" count="3">
    <fence_event action="off" target="a" client="pacemaker-controld.19038" origin="b" status="success" delegate="b" completed="2026-12-07 22:26:59Z"/>
    <fence_event action="reboot" target="node2.example.com" client="x" origin="b" status="failed" exit-reason="timed out" completed="2026-12-07 23:26:59.123456 +01:00"/>
    <fence_event action="off" target="c" client="x" origin="b" status="pending" extended-status="1"/>
  </list>
  <status code="0" message="OK"/>
</pacemaker-result>"#;
        let h = parse_fence_history(xml);
        assert_eq!(h.len(), 3);
        assert_eq!(h[0], off("a", 1_796_682_419));
        assert_eq!(h[1].completed, Some(1_796_682_419));
        assert!(!h[1].powered_off() && !h[2].powered_off() && h[0].powered_off());
        assert_eq!(h[2].completed, None);
        assert_eq!(parse_time("1970-01-01 00:00:00Z"), Some(0));
        assert_eq!(parse_time("2000-03-01 00:00:00-0130"), Some(951_874_200));
        assert_eq!(parse_time("2026-13-01 00:00:00Z"), None);
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(
            fencing_of(&h, "node2", 0),
            None,
            "a failed reboot is no fencing"
        );
        assert!(fencing_of(&h, "a.example.com", 1_796_682_419).is_some());
    }

    #[test]
    fn writer_mapping() {
        let m = mmp(7, 1000);
        assert_eq!(writer_node(&m, &[]).as_deref(), Some("vm"));
        let map = parse_mmp_nodes("a=vm:loop5 b=vm:loop6").unwrap();
        assert_eq!(writer_node(&m, &map).as_deref(), Some("a"));
        let map = parse_mmp_nodes("a=vm b=vm").unwrap();
        assert_eq!(writer_node(&m, &map), None, "two nodes share the name");
        let map = parse_mmp_nodes("node1=vm.example.com").unwrap();
        assert_eq!(writer_node(&m, &map).as_deref(), Some("node1"));
        let map = parse_mmp_nodes("c=other").unwrap();
        assert_eq!(writer_node(&m, &map), None);
        assert!(parse_mmp_nodes("a").is_err());
        assert!(parse_mmp_nodes("=vm").is_err());
    }
}
