//! Benchmark of vzfs-migrate in the lab (ignored by `cargo test`; run by
//! `make bench` as `cargo test --release -p vzfs-lab --test migrate_bench --
//! --ignored --nocapture`). Prints, from one run, side by side:
//! - the d2 handoff of the same container with 1x and 10x data (goal <= 1.1);
//! - the d2 handoff against the floor of one unmount, one ssh round trip and
//!   one mount done by hand (goal <= 1.5);
//! - a copy migration (scenario a, stopped) against a plain rsync of the same
//!   tree over ssh (goal <= 1.10).
//!
//! No assertion on times: the figures are printed, compare them within a run.

mod migrate_common;
use migrate_common::*;
use std::time::Instant;
use vzfs_lab::{DiskSpec, Fs, Host};

const RUNS: usize = 5;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Seconds of one `vzfs-migrate --json` run on `from` to `to`, and the
/// handoff phase (src-device-umount + dst-device-mount) from its summary.
fn timed_migrate(from: &Host, to: &str) -> (f64, f64) {
    let t0 = Instant::now();
    let out = from.run(&["vzfs-migrate", "--json", to, CT]).unwrap();
    let total = t0.elapsed().as_secs_f64();
    assert!(out.success(), "{}", out.all());
    let line = out
        .stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap();
    let v: serde_like::Summary = serde_like::parse(line);
    (total, v.handoff)
}

/// Minimal JSON field extraction without a serde dependency in the lab crate.
mod serde_like {
    pub struct Summary {
        pub handoff: f64,
    }
    pub fn parse(line: &str) -> Summary {
        let mut handoff = 0.0;
        for name in ["src-device-umount", "dst-device-mount"] {
            let key = format!("\"name\":\"{name}\"");
            if let Some(p) = line.find(&key) {
                let rest = &line[p..];
                let s = rest.find("\"seconds\":").unwrap() + "\"seconds\":".len();
                let num: String = rest[s..]
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == 'e' || *c == '-')
                    .collect();
                handoff += num.parse::<f64>().unwrap();
            }
        }
        Summary { handoff }
    }
}

fn fill(h: &Host, dir: &str, mib: u64) {
    // 4 files per MiB of 256 KiB each
    h.sh_ok(&format!(
        "mkdir -p {dir}/bench && i=0; while [ $i -lt {} ]; do head -c 262144 /dev/urandom > {dir}/bench/f$i; i=$((i+1)); done",
        mib * 4
    ))
    .unwrap();
}

/// d2 back and forth (mounted container): medians of total and handoff.
fn d2_times(mib: u64) -> (f64, f64, f64) {
    let Some(lab) = lab(&format!("migrate_bench_d2_{mib}")) else {
        panic!("lab")
    };
    let (a, b) = (lab.host("a"), lab.host("b"));
    let san = lab
        .add_disk(DiskSpec::new("san", &["a", "b"], Fs::Ext4Mmp).size_mib(160))
        .unwrap();
    create_insulated(a, &san);
    a.vzctl(&["mount", CT]).unwrap().ok().unwrap();
    fill(a, "/vz/private/101", mib);
    let (mut tot, mut hand) = (Vec::new(), Vec::new());
    for i in 0..RUNS {
        let (from, to, conf_on) = if i % 2 == 0 { (a, "b", a) } else { (b, "a", b) };
        // the config moved; the other side's .migrated copy is stale
        let _ = conf_on;
        let (t, h) = timed_migrate(from, to);
        tot.push(t);
        hand.push(h);
        let back = if i % 2 == 0 { a } else { b };
        let _ = std::fs::remove_file(back.path("/etc/vz/conf/101.conf.migrated"));
    }
    // the floor: unmount here, one ssh round trip that mounts there
    let (here, there) = if RUNS % 2 == 0 { (a, b) } else { (b, a) };
    here.vzctl(&["umount", CT]).unwrap().ok().unwrap();
    let dev_here = san.device(here.name()).display().to_string();
    let dev_there = san.device(there.name()).display().to_string();
    let mut floor = Vec::new();
    for i in 0..RUNS {
        let (h, t, dh, dt) = if i % 2 == 0 {
            (here, there, &dev_here, &dev_there)
        } else {
            (there, here, &dev_there, &dev_here)
        };
        if i == 0 {
            h.sh_ok(&format!("mount {dh} /vz/private/101")).unwrap();
        }
        let out = h
            .sh_ok(&format!(
                "t0=$(date +%s%N); umount /vz/private/101 && ssh {} mount {dt} /vz/private/101 && t1=$(date +%s%N); echo $((t1-t0))",
                t.name()
            ))
            .unwrap();
        floor.push(out.stdout.trim().parse::<f64>().unwrap() / 1e9);
    }
    let last = if RUNS % 2 == 0 { here } else { there };
    last.sh_ok("umount /vz/private/101").unwrap();
    lab.teardown().unwrap();
    (median(tot), median(hand), median(floor))
}

fn copy_times(mib: u64) -> (f64, f64) {
    let Some(lab) = lab("migrate_bench_copy") else {
        panic!("lab")
    };
    let (a, b) = (lab.host("a"), lab.host("b"));
    create_shared(a);
    fill(a, "/vz/private/101", mib);
    let mut ours = Vec::new();
    let mut plain = Vec::new();
    for i in 0..RUNS {
        let (from, to) = if i % 2 == 0 { (a, b) } else { (b, a) };
        let t0 = Instant::now();
        let out = from
            .run(&["vzfs-migrate", "-r", "yes", to.name(), CT])
            .unwrap();
        ours.push(t0.elapsed().as_secs_f64());
        assert!(out.success(), "{}", out.all());
        let _ = std::fs::remove_file(from.path("/etc/vz/conf/101.conf.migrated"));
        // the same tree, plain rsync over ssh, into a fresh directory
        let out = to
            .sh_ok(&format!(
                "ssh {} rm -rf /var/tmp/plain; t0=$(date +%s%N); rsync -aHAX --numeric-ids --sparse --delete -e ssh /vz/private/101/ {}:/var/tmp/plain/ && t1=$(date +%s%N); echo $((t1-t0)); ssh {} rm -rf /var/tmp/plain",
                from.name(),
                from.name(),
                from.name()
            ))
            .unwrap();
        plain.push(
            out.stdout
                .trim()
                .lines()
                .last()
                .unwrap()
                .parse::<f64>()
                .unwrap()
                / 1e9,
        );
    }
    lab.teardown().unwrap();
    (median(ours), median(plain))
}

#[test]
#[ignore = "benchmark: run by `make bench`"]
fn migrate_bench() {
    let (t1, h1, floor) = d2_times(4);
    let (t10, h10, _) = d2_times(40);
    let (ours, plain) = copy_times(64);
    println!("vzfs-migrate bench (medians of {RUNS} runs, seconds)");
    println!("  d2 handoff, mounted CT, 4 MiB data:   total {t1:.3}  handoff phase {h1:.3}");
    println!("  d2 handoff, mounted CT, 40 MiB data:  total {t10:.3}  handoff phase {h10:.3}");
    println!(
        "  ratio 10x/1x data (goal <= 1.1):      total {:.2}  handoff phase {:.2}",
        t10 / t1,
        h10 / h1
    );
    println!("  floor (umount + ssh mount by hand):   {floor:.3}");
    println!(
        "  ratio d2 / floor (goal <= 1.5):       total {:.2}  handoff phase {:.2}",
        t1 / floor,
        h1 / floor
    );
    println!("  copy (scenario a, 64 MiB): vzfs-migrate {ours:.3}, plain rsync {plain:.3}, ratio {:.2} (goal <= 1.10)", ours / plain);
}
