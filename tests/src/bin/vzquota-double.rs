//! TEST DOUBLE of OpenVZ's vzquota tools (`vzquota`, `vzdqdump`,
//! `vzdqload`), for the vzfs lab. Not the real programs: one binary that
//! acts as the one it is called as (argv[0]), installed under the three
//! names on every lab host's PATH. It keeps each quota "file" as text in
//! `/var/tmp/vzquota/quota.<ID>` (the real tools keep a binary file in
//! `/var/vzquota/quota.<ID>`; `/var/tmp` is a private tmpfs of each lab
//! host, `/var` is the machine's), and touches no kernel quota.
//!
//! What it follows of vzquota 3.x (src/vzdqdump.c, src/vzdqload.c,
//! include/common.h of the vzquota sources), because stock vzmigrate and
//! vzfs-migrate rely on it:
//! - `vzdqdump ID [-c FILE] [-f] [-U] [-G] [-T] [-F]` prints
//!   `ugid_quota_status:\t0|1`, then (if 1) with `-G` a `#grace_time:`
//!   header and `grace_time:\tTYPE\tBEXPIRE\tIEXPIRE` for types 0 and 1,
//!   with `-U`/`-T` `ugid_number:\tN`, a `#ugid:` header and
//!   `ugid:\tID\tTYPE[\tBSOFT\tBHARD\tISOFT\tIHARD][\tBTIME\tITIME]`.
//! - `vzdqload ID [-c FILE] [-U] [-G] [-T] [-F]` reads that from stdin
//!   (skipping empty and `#` lines), rejects anything else with
//!   `Invalid input data: LINE` (exit 2), writes the quota file.
//! - `-F` (the first-level quota, which stock vzmigrate passes to both):
//!   the vzquota sources this double was written from do not show its
//!   format, so the double uses its own line, printed first:
//!   `first_level_quota:\tBSOFT\tBHARD\tISOFT\tIHARD\tBEXPIRE\tIEXPIRE`.
//! - `vzquota init ID -b -B -i -I -e -n -p PATH`, `on ID`, `off ID`,
//!   `drop ID`, `reload2 ID`, `setlimit ID [-b -B -i -I -e -n]`, `show ID`.
//! - Exit codes (vzquota's include/common.h): 0 success, 2 EC_USAGE,
//!   4 EC_QUOTAFILE, 5 EC_RUN (quota is on), 6 EC_NOTRUN (quota is off),
//!   11 EC_NOQUOTAFILE (no quota file); messages `vzquota : (error) ...`.

use std::io::Read;
use std::path::PathBuf;
use std::process::exit;

const DIR: &str = "/var/tmp/vzquota";
const EC_USAGE: i32 = 2;
const EC_QUOTAFILE: i32 = 4;
const EC_RUN: i32 = 5;
const EC_NOTRUN: i32 = 6;
const EC_NOQUOTAFILE: i32 = 11;

fn die(code: i32, msg: &str) -> ! {
    eprintln!("vzquota : (error) {msg}");
    exit(code)
}

#[derive(Default)]
struct Quota {
    path: String,
    on: bool,
    /// bsoft bhard isoft ihard bexpire iexpire
    first: [u64; 6],
    ugid_on: bool,
    /// (bexpire, iexpire) of user (0) and group (1) quotas
    grace: [(u64, u64); 2],
    /// id type bsoft bhard isoft ihard btime itime
    ugids: Vec<[u64; 8]>,
}

fn qfile(id: u32, custom: &Option<String>) -> PathBuf {
    match custom {
        Some(c) => PathBuf::from(c),
        None => PathBuf::from(format!("{DIR}/quota.{id}")),
    }
}

fn nums(it: std::str::SplitWhitespace<'_>) -> Vec<u64> {
    it.filter_map(|x| x.parse().ok()).collect()
}

impl Quota {
    fn load(p: &PathBuf) -> Quota {
        let text = match std::fs::read_to_string(p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => exit(EC_NOQUOTAFILE),
            Err(e) => die(
                EC_QUOTAFILE,
                &format!("can't read quota file {}: {e}", p.display()),
            ),
        };
        let mut q = Quota::default();
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let mut w = l.split_whitespace();
            match w.next() {
                Some("path") => q.path = w.collect::<Vec<_>>().join(" "),
                Some("status") => q.on = w.next() == Some("on"),
                Some("first") => {
                    let v = nums(w);
                    if v.len() == 6 {
                        q.first.copy_from_slice(&v);
                    }
                }
                Some("ugid_status") => q.ugid_on = w.next() == Some("1"),
                Some("grace") => {
                    let v = nums(w);
                    if v.len() == 3 && v[0] < 2 {
                        q.grace[v[0] as usize] = (v[1], v[2]);
                    }
                }
                Some("ugid") => {
                    let v = nums(w);
                    if v.len() == 8 {
                        let mut a = [0; 8];
                        a.copy_from_slice(&v);
                        q.ugids.push(a);
                    }
                }
                _ => die(
                    EC_QUOTAFILE,
                    &format!("quota file {} is broken", p.display()),
                ),
            }
        }
        q
    }

    fn save(&self, p: &PathBuf) {
        let mut s =
            String::from("# vzquota test double (vzfs lab): not the real quota file format\n");
        s.push_str(&format!("path {}\n", self.path));
        s.push_str(&format!("status {}\n", if self.on { "on" } else { "off" }));
        let f = self.first;
        s.push_str(&format!(
            "first {} {} {} {} {} {}\n",
            f[0], f[1], f[2], f[3], f[4], f[5]
        ));
        s.push_str(&format!("ugid_status {}\n", u8::from(self.ugid_on)));
        for (i, g) in self.grace.iter().enumerate() {
            s.push_str(&format!("grace {i} {} {}\n", g.0, g.1));
        }
        for u in &self.ugids {
            let v: Vec<String> = u.iter().map(|x| x.to_string()).collect();
            s.push_str(&format!("ugid {}\n", v.join(" ")));
        }
        if let Some(d) = p.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        let tmp = p.with_extension("tmp");
        if let Err(e) = std::fs::write(&tmp, s).and_then(|_| std::fs::rename(&tmp, p)) {
            die(
                EC_QUOTAFILE,
                &format!("can't write quota file {}: {e}", p.display()),
            );
        }
    }
}

/// Parsed command line: the id, flags, and `-x VALUE` options.
struct Args {
    id: u32,
    flags: Vec<char>,
    vals: Vec<(char, String)>,
}

fn parse(args: &[String], with_value: &str, flags: &str, usage: &str) -> Args {
    let Some(id) = args.first().and_then(|a| a.parse::<u32>().ok()) else {
        eprintln!("{usage}");
        exit(EC_USAGE)
    };
    let mut a = Args {
        id,
        flags: Vec::new(),
        vals: Vec::new(),
    };
    let mut it = args[1..].iter();
    while let Some(o) = it.next() {
        let c = o.strip_prefix('-').and_then(|r| {
            let mut ch = r.chars();
            match (ch.next(), ch.next()) {
                (Some(c), None) => Some(c),
                _ => None,
            }
        });
        match c {
            Some(c) if with_value.contains(c) => match it.next() {
                Some(v) => a.vals.push((c, v.clone())),
                None => {
                    eprintln!("{usage}");
                    exit(EC_USAGE)
                }
            },
            Some(c) if flags.contains(c) => a.flags.push(c),
            _ => {
                eprintln!("{usage}");
                exit(EC_USAGE)
            }
        }
    }
    a
}

impl Args {
    fn val(&self, c: char) -> Option<&str> {
        self.vals
            .iter()
            .find(|(k, _)| *k == c)
            .map(|(_, v)| v.as_str())
    }
    fn num(&self, c: char) -> Option<u64> {
        self.val(c).map(|v| {
            v.parse()
                .unwrap_or_else(|_| die(EC_USAGE, &format!("bad value for -{c}: {v}")))
        })
    }
    fn has(&self, c: char) -> bool {
        self.flags.contains(&c)
    }
}

fn set_first(q: &mut Quota, a: &Args) {
    for (i, c) in ['b', 'B', 'i', 'I', 'e', 'n'].iter().enumerate() {
        if let Some(v) = a.num(*c) {
            q.first[i] = v;
        }
    }
}

fn vzquota(args: &[String]) {
    const USAGE: &str = "Usage: vzquota init|on|off|drop|reload2|setlimit|show ID [options]";
    let Some(cmd) = args.first() else {
        die(EC_USAGE, USAGE)
    };
    let a = parse(&args[1..], "bBiIenpc", "f", USAGE);
    let p = qfile(a.id, &a.val('c').map(String::from));
    match cmd.as_str() {
        "init" => {
            if p.exists() {
                die(
                    EC_QUOTAFILE,
                    &format!("quota file {} already exists", p.display()),
                );
            }
            let Some(path) = a.val('p') else {
                die(EC_USAGE, "init: quota path (-p) is not set")
            };
            for c in ['b', 'B', 'i', 'I', 'e', 'n'] {
                if a.val(c).is_none() {
                    die(EC_USAGE, &format!("init: -{c} is not set"));
                }
            }
            let mut q = Quota {
                path: path.to_string(),
                ..Quota::default()
            };
            set_first(&mut q, &a);
            q.save(&p);
        }
        "on" | "off" | "reload2" => {
            let mut q = Quota::load(&p);
            match (cmd.as_str(), q.on) {
                ("on", true) => die(EC_RUN, "Quota is running"),
                ("off", false) | ("reload2", false) => die(EC_NOTRUN, "Quota is not running"),
                ("on", false) => q.on = true,
                ("off", true) => q.on = false,
                _ => {}
            }
            q.save(&p);
        }
        "drop" => {
            let q = Quota::load(&p);
            if q.on && !a.has('f') {
                die(EC_RUN, "Quota is running, stop it first");
            }
            if let Err(e) = std::fs::remove_file(&p) {
                die(EC_QUOTAFILE, &format!("can't remove {}: {e}", p.display()));
            }
        }
        "setlimit" => {
            let mut q = Quota::load(&p);
            set_first(&mut q, &a);
            q.save(&p);
        }
        "show" | "stat" => {
            let q = Quota::load(&p);
            let f = q.first;
            println!(
                "   resource          usage       softlimit      hardlimit    grace\n  1k-blocks              0 {:>15} {:>14}\n     inodes              0 {:>15} {:>14}",
                f[0], f[1], f[2], f[3]
            );
        }
        _ => die(EC_USAGE, USAGE),
    }
}

fn vzdqdump(args: &[String]) {
    const USAGE: &str = "Usage: vzdqdump quotaid [-c file] [-f] commands";
    let a = parse(args, "c", "fGUTF", USAGE);
    if !(a.has('G') || a.has('U') || a.has('T') || a.has('F')) {
        die(EC_USAGE, USAGE);
    }
    let q = Quota::load(&qfile(a.id, &a.val('c').map(String::from)));
    if a.has('f') && !q.on {
        die(EC_NOTRUN, "Quota accounting is off");
    }
    let mut out = String::new();
    if a.has('F') {
        let f = q.first;
        out.push_str("#first_level_quota:\tbsoft\tbhard\tisoft\tihard\tbexpire\tiexpire\n");
        out.push_str(&format!(
            "first_level_quota:\t{}\t{}\t{}\t{}\t{}\t{}\n",
            f[0], f[1], f[2], f[3], f[4], f[5]
        ));
    }
    out.push_str(&format!("ugid_quota_status:\t{}\n", u8::from(q.ugid_on)));
    if q.ugid_on {
        if a.has('G') {
            out.push_str("#grace_time:\ttype\tblock\tinode\n");
            for (i, g) in q.grace.iter().enumerate() {
                out.push_str(&format!("grace_time:\t{i}\t{}\t{}\n", g.0, g.1));
            }
        }
        if a.has('U') || a.has('T') {
            out.push_str(&format!("ugid_number:\t{}\n", q.ugids.len()));
            if !q.ugids.is_empty() {
                out.push_str("#ugid:\tID\ttype");
                if a.has('U') {
                    out.push_str("\tbsoft\tbhard\tisoft\tihard");
                }
                if a.has('T') {
                    out.push_str("\tbtime\titime");
                }
                out.push('\n');
                let mut u = q.ugids.clone();
                u.sort_by_key(|x| (x[1], x[0]));
                for x in u {
                    out.push_str(&format!("ugid:\t{}\t{}", x[0], x[1]));
                    if a.has('U') {
                        out.push_str(&format!("\t{}\t{}\t{}\t{}", x[2], x[3], x[4], x[5]));
                    }
                    if a.has('T') {
                        out.push_str(&format!("\t{}\t{}", x[6], x[7]));
                    }
                    out.push('\n');
                }
            }
        }
    }
    print!("{out}");
}

fn vzdqload(args: &[String]) {
    const USAGE: &str = "Usage: vzdqload quotaid [-c file] commands";
    let a = parse(args, "c", "GUTF", USAGE);
    if !(a.has('G') || a.has('U') || a.has('T') || a.has('F')) {
        die(EC_USAGE, USAGE);
    }
    let p = qfile(a.id, &a.val('c').map(String::from));
    let mut q = Quota::load(&p);
    let mut input = String::new();
    if std::io::stdin().read_to_string(&mut input).is_err() {
        die(EC_USAGE, "Invalid input data: not text");
    }
    let mut lines = input
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'));
    // the next line: its label and numbers (exactly `n` of them)
    let mut next = |label: &str, n: usize| -> Vec<u64> {
        let Some(l) = lines.next() else {
            die(EC_USAGE, "Invalid input data: End of input file")
        };
        let mut w = l.split_whitespace();
        let v: Vec<u64> = w.clone().skip(1).filter_map(|x| x.parse().ok()).collect();
        if w.next() != Some(label) || v.len() != n || l.split_whitespace().count() != n + 1 {
            die(EC_USAGE, &format!("Invalid input data: {l}"));
        }
        v
    };
    if a.has('F') {
        q.first.copy_from_slice(&next("first_level_quota:", 6));
    }
    let st = next("ugid_quota_status:", 1)[0];
    if st > 1 {
        die(
            EC_USAGE,
            &format!("Invalid input data: ugid_quota_status: {st}"),
        );
    }
    q.ugid_on = st == 1;
    if q.ugid_on {
        if a.has('G') {
            for i in 0..2u64 {
                let v = next("grace_time:", 3);
                if v[0] != i {
                    die(
                        EC_USAGE,
                        &format!("Invalid input data: grace_time: {}", v[0]),
                    );
                }
                q.grace[i as usize] = (v[1], v[2]);
            }
        }
        if a.has('U') || a.has('T') {
            let n = next("ugid_number:", 1)[0];
            let width = 2 + if a.has('U') { 4 } else { 0 } + if a.has('T') { 2 } else { 0 };
            for _ in 0..n {
                let v = next("ugid:", width);
                // MAXQUOTAS is 2 in vzquota's check (type > MAXQUOTAS)
                if v[1] > 2 {
                    die(EC_USAGE, &format!("Invalid input data: ugid type {}", v[1]));
                }
                let e = match q.ugids.iter().position(|u| u[0] == v[0] && u[1] == v[1]) {
                    Some(i) => i,
                    None => {
                        q.ugids.push([v[0], v[1], 0, 0, 0, 0, 0, 0]);
                        q.ugids.len() - 1
                    }
                };
                let mut k = 2;
                if a.has('U') {
                    q.ugids[e][2..6].copy_from_slice(&v[k..k + 4]);
                    k += 4;
                }
                if a.has('T') {
                    q.ugids[e][6..8].copy_from_slice(&v[k..k + 2]);
                }
            }
        }
    }
    q.save(&p);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let me = std::path::Path::new(&args[0])
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if matches!(args.get(1).map(String::as_str), Some("--version" | "-V")) {
        println!(
            "vzquota-double {} (vzfs lab test double of vzquota)",
            env!("CARGO_PKG_VERSION")
        );
        return;
    }
    match me.as_str() {
        "vzdqdump" => vzdqdump(&args[1..]),
        "vzdqload" => vzdqload(&args[1..]),
        "vzquota" => vzquota(&args[1..]),
        other => {
            eprintln!("vzquota-double: a test double of vzquota/vzdqdump/vzdqload; run it under one of those names (called as {other:?})");
            exit(EC_USAGE)
        }
    }
}
