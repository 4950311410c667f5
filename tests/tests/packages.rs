//! The .deb and .rpm that `make package` built (target/package/; `make test`
//! builds them first):
//!
//! * their contents (`dpkg-deb -c`, `rpm -qp`) are exactly
//!   `packaging/files.txt` with its modes, owned by root, no lab or test
//!   binaries, `%doc`/`%license` marked;
//! * the .deb installs with dpkg, maintainer scripts included, inside a
//!   private mount namespace whose `/usr`, `/var` and `/etc` are overlays
//!   with their upper layer on a tmpfs (the machine's own files and mounts
//!   are never touched): every file and the hook symlinks are checked, and
//!   removing the package leaves nothing of it;
//! * with an admin's seed-style `vps.premount`/`vps.postumount` present,
//!   `dpkg -i` succeeds, leaves them byte for byte and says how to chain;
//!   `vzfs-hook install --chain` then runs them from vzctl (the vzctl test
//!   double, `vzctl-double mount/umount`) with vzctl's exact argv, environment
//!   and stdin, in the right order, once per call, their failure respected;
//!   `dpkg -r` puts them back byte for byte;
//! * the .rpm's scriptlets do the same (rpm with its own database there);
//! * they install on the OpenVZ 6 nodes that run vzctl 4.x (CentOS 6: rpm
//!   4.8, glibc 2.12; Debian 7/8: dpkg 1.16/1.17.27, glibc 2.13/2.19), read
//!   from their metadata: the .rpm requires only what CentOS 6 has (no
//!   GLIBC_ symbol versions, only rpmlib features rpm 4.8 knows, no weak
//!   dependencies) and has a gzip or xz payload; the .deb holds
//!   control.tar.gz and data.tar.gz or .xz, and Debian 7 and 8 satisfy its
//!   Depends; the maintainer scripts and scriptlets are POSIX sh;
//! * every binary they ship is static (scripts/static-bins): no program
//!   interpreter, no shared library, no GLIBC_ version needed, and no NSS
//!   code (the node's libnss_*.so would be loaded at run time).
//!
//! Without the packages or the tools these tests fail (run `make package`,
//! `scripts/install-prereqs`), unless `VZFS_SKIP_PACKAGE_TESTS=1`; the
//! install tests need root (else they fail unless `VZFS_SKIP_ROOT_TESTS=1`).
//! Each skip is printed.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const SKIP_PKG: &str = "VZFS_SKIP_PACKAGE_TESTS";
const SKIP_ROOT: &str = "VZFS_SKIP_ROOT_TESTS";

fn skip_or_fail(test: &str, var: &str, why: &str) -> bool {
    if std::env::var(var).as_deref() == Ok("1") {
        eprintln!("SKIPPED {test} ({var}=1): {why}");
        return false;
    }
    panic!("{test}: {why} (or set {var}=1 to skip)");
}

fn have(tool: &str) -> bool {
    vzfs_lab::preflight::which(tool).is_some()
}

struct Packages {
    deb: PathBuf,
    rpm: PathBuf,
}

/// The packages of this version, or `None` after a printed skip.
fn packages(test: &str) -> Option<Packages> {
    let dir = vzfs_lab::lab::default_bin_dir()
        .parent()
        .map(|p| p.join("package"))
        .unwrap_or_default();
    let v = env!("CARGO_PKG_VERSION");
    let deb = fs::read_dir(&dir).ok().and_then(|rd| {
        rd.filter_map(|e| e.ok().map(|e| e.path())).find(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with(&format!("vzfs_{v}_")) && n.ends_with(".deb")
        })
    });
    let rpm = fs::read_dir(&dir).ok().and_then(|rd| {
        rd.filter_map(|e| e.ok().map(|e| e.path())).find(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with(&format!("vzfs-{v}-1.")) && n.ends_with(".rpm")
        })
    });
    match (deb, rpm) {
        (Some(deb), Some(rpm)) => Some(Packages { deb, rpm }),
        _ => {
            skip_or_fail(
                test,
                SKIP_PKG,
                &format!(
                    "no vzfs {v} .deb and .rpm in {}: run `make package` (make test does)",
                    dir.display()
                ),
            );
            None
        }
    }
}

fn tools(test: &str, list: &[&str]) -> bool {
    let missing: Vec<&str> = list.iter().copied().filter(|t| !have(t)).collect();
    missing.is_empty()
        || skip_or_fail(
            test,
            SKIP_PKG,
            &format!("missing {missing:?}: run scripts/install-prereqs as root"),
        )
}

fn root(test: &str) -> bool {
    nix::unistd::geteuid().is_root()
        || skip_or_fail(
            test,
            SKIP_ROOT,
            "needs root (dpkg in a private mount namespace)",
        )
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Both `first` and `second` are in `out`, `first` before `second`.
fn in_order(out: &str, first: &str, second: &str, what: &str) {
    let at = |m: &str| {
        out.find(m)
            .unwrap_or_else(|| panic!("{what}: no line {m:?}:\n{out}"))
    };
    assert!(at(first) < at(second), "{what}: wrong order:\n{out}");
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

/// `packaging/files.txt` for `fmt`: path -> mode, for the binaries `bins`.
fn expected(fmt: &str, bins: &[&str]) -> BTreeMap<String, u32> {
    let list =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/files.txt"))
            .unwrap();
    let mut m = BTreeMap::new();
    for l in list
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let f: Vec<&str> = l.split_whitespace().collect();
        assert!(
            f.len() == 3 || f.len() == 4 || (f.len() == 5 && f[3] == "->"),
            "files.txt: {l}"
        );
        if !f[2].split(',').any(|x| x == fmt) || f[1].ends_with('/') {
            continue;
        }
        if f.len() == 4 && !bins.contains(&f[3]) {
            continue;
        }
        m.insert(f[1].to_string(), u32::from_str_radix(f[0], 8).unwrap());
    }
    m
}

fn perm_bits(s: &str) -> u32 {
    let mut m = 0;
    for (i, c) in s.chars().skip(1).take(9).enumerate() {
        if c != '-' {
            m |= 1 << (8 - i);
        }
    }
    m
}

const TEST_BINARIES: &[&str] = &[
    "vzfs-lab",
    "vzctl-double",
    "vzfs-bench",
    "vzquota-double",
    "vzfs-docgen",
];

#[test]
fn package_contents_match_the_list() {
    let t = "package_contents_match_the_list";
    let Some(p) = packages(t) else { return };
    if !tools(t, &["dpkg-deb", "rpm"]) {
        return;
    }
    // .deb
    let out = run(Command::new("dpkg-deb").arg("-c").arg(&p.deb));
    let mut files = BTreeMap::new();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(f[1], "root/root", "{l}");
        let path = f[5].trim_start_matches('.').to_string();
        match f[0].chars().next() {
            Some('d') => assert_eq!(perm_bits(f[0]), 0o755, "{l}"),
            Some('-') => {
                files.insert(path, perm_bits(f[0]));
            }
            // The OCF agent: a symlink to vzfs-hook (files.txt: 0777 ... ->).
            Some('l') => {
                assert_eq!(f.get(7).copied(), Some("../../../../sbin/vzfs-hook"), "{l}");
                files.insert(path, 0o777);
            }
            _ => panic!("unexpected entry in the .deb: {l}"),
        }
    }
    let bins: Vec<&str> = ["vzfs-hook", "vzfs-migrate", "vzfs-create"]
        .into_iter()
        .filter(|b| files.contains_key(&format!("/usr/sbin/{b}")))
        .collect();
    assert_eq!(
        files,
        expected("deb", &bins),
        "dpkg-deb -c {}",
        p.deb.display()
    );
    for b in TEST_BINARIES {
        assert!(!files.keys().any(|f| f.ends_with(b)), "{b} packaged");
    }
    let info = text(&run(Command::new("dpkg-deb").arg("-I").arg(&p.deb)));
    for s in [
        "Package: vzfs",
        "Depends: e2fsprogs",
        " postinst ",
        " prerm ",
        " md5sums ",
    ] {
        assert!(info.contains(s), "dpkg-deb -I lacks {s:?}:\n{info}");
    }

    // .rpm
    let out = run(Command::new("rpm")
        .args([
            "-qp",
            "--qf",
            "[%{FILEMODES:octal} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILENAMES}\n]",
        ])
        .arg(&p.rpm));
    let mut rfiles = BTreeMap::new();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(f[1], "root:root", "{l}");
        let mode = u32::from_str_radix(f[0], 8).unwrap();
        match mode & 0o170000 {
            0o040000 => assert_eq!(mode & 0o7777, 0o755, "{l}"),
            0o100000 | 0o120000 => {
                rfiles.insert(f[2].to_string(), mode & 0o7777);
            }
            _ => panic!("unexpected entry in the .rpm: {l}"),
        }
    }
    assert_eq!(
        rfiles,
        expected("rpm", &bins),
        "rpm -qp {}",
        p.rpm.display()
    );
    let lic = text(&run(Command::new("rpm")
        .args(["-qp", "--licensefiles"])
        .arg(&p.rpm)));
    assert!(lic.contains("/usr/share/licenses/vzfs/COPYING"), "{lic}");
    let docs = text(&run(Command::new("rpm")
        .args(["-qp", "--docfiles"])
        .arg(&p.rpm)));
    assert!(
        docs.contains("/usr/share/doc/vzfs/README.md") && docs.contains("ct.conf.example"),
        "{docs}"
    );
    let scripts = text(&run(Command::new("rpm")
        .args(["-qp", "--scripts"])
        .arg(&p.rpm)));
    assert!(
        scripts.contains("vzfs-hook install") && scripts.contains("vzfs-hook uninstall"),
        "{scripts}"
    );
}

/// Runs `f` on a thread with its own mount namespace in which `/usr`,
/// `/var` and `/etc` are overlays whose changes go to a tmpfs, and `/vz` is
/// a tmpfs. Nothing propagates to the machine's mounts; everything goes when
/// the thread ends.
fn in_throwaway_root(f: impl FnOnce() + Send + 'static) {
    use nix::mount::{mount, MsFlags};
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let base = std::env::temp_dir().join(format!("vzfs-pkgtest-{}-{n}", std::process::id()));
    fs::create_dir_all(&base).unwrap();
    let dir = base.clone();
    let h = std::thread::spawn(move || {
        let base = dir;
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).expect("unshare(CLONE_NEWNS)");
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .expect("make / private in the new namespace");
        mount(
            Some("tmpfs"),
            &base,
            Some("tmpfs"),
            MsFlags::empty(),
            Some("mode=0700"),
        )
        .expect("tmpfs");
        for d in ["usr", "var", "etc"] {
            let (up, work) = (base.join(format!("{d}-up")), base.join(format!("{d}-work")));
            fs::create_dir(&up).unwrap();
            fs::create_dir(&work).unwrap();
            let opts = format!(
                "lowerdir=/{d},upperdir={},workdir={}",
                up.display(),
                work.display()
            );
            mount(
                Some("overlay"),
                format!("/{d}").as_str(),
                Some("overlay"),
                MsFlags::empty(),
                Some(opts.as_str()),
            )
            .unwrap_or_else(|e| panic!("overlay on /{d}: {e}"));
        }
        fs::create_dir_all("/vz").unwrap();
        mount(
            Some("tmpfs"),
            "/vz",
            Some("tmpfs"),
            MsFlags::empty(),
            Some("mode=0755"),
        )
        .expect("tmpfs on /vz");
        f();
        // The namespace (and with it every mount above) goes with the thread.
    });
    let r = h.join();
    // Only the empty mount point is left outside the namespace.
    fs::remove_dir(&base).unwrap_or_else(|e| panic!("remove {}: {e}", base.display()));
    if let Err(e) = r {
        std::panic::resume_unwind(e);
    }
}

fn dpkg(args: &[&str]) -> Output {
    Command::new("dpkg")
        .arg("--log=/dev/null")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()
        .expect("run dpkg")
}

/// After installing the `fmt` package: its files (for the binaries that
/// are there) with their modes, and our hook symlinks; `log` is the
/// installer's output, shown when a link is missing. Returns the files.
fn check_package_installed(fmt: &str, log: &str) -> BTreeMap<String, u32> {
    let bins = ["vzfs-hook", "vzfs-migrate", "vzfs-create"]
        .into_iter()
        .filter(|b| Path::new("/usr/sbin").join(b).exists())
        .collect::<Vec<_>>();
    let files = expected(fmt, &bins);
    check_installed(&files);
    for h in ["vps.premount", "vps.postumount"] {
        let l = fs::read_link(format!("/etc/vz/conf/{h}"))
            .unwrap_or_else(|e| panic!("{h}: {e}\n{log}"));
        assert_eq!(l, Path::new("/usr/sbin/vzfs-hook"));
    }
    files
}

fn check_installed(files: &BTreeMap<String, u32>) {
    for (f, mode) in files {
        let md = fs::symlink_metadata(f).unwrap_or_else(|e| panic!("{f} not installed: {e}"));
        if *mode == 0o777 {
            assert_eq!(
                fs::canonicalize(f).unwrap(),
                Path::new("/usr/sbin/vzfs-hook"),
                "{f}"
            );
            continue;
        }
        assert!(md.is_file(), "{f}");
        assert_eq!(md.permissions().mode() & 0o7777, *mode, "{f}");
        assert_eq!((md.uid(), md.gid()), (0, 0), "{f}");
    }
}

const CT_CONF: &str = "OSTEMPLATE=\"debian-7.0-x86_64\"\nVZFS_VERBOSE=2\n";

fn vz_conf() {
    fs::create_dir_all("/etc/vz/conf").unwrap();
    fs::create_dir_all("/vz/lock").unwrap();
    fs::create_dir_all("/vz/private/101").unwrap();
    fs::write(
        "/etc/vz/vz.conf",
        "VE_ROOT=/vz/root/$VEID\nVE_PRIVATE=/vz/private/$VEID\nLOCKDIR=/vz/lock\nVE_LAYOUT=simfs\nLOGGING=no\n",
    )
    .unwrap();
    // VZFS_VERBOSE=2: the hook's debug line for a shared container shows
    // when it ran.
    fs::write("/etc/vz/conf/101.conf", CT_CONF).unwrap();
}

#[test]
fn deb_installs_links_the_hooks_and_removes_cleanly() {
    let t = "deb_installs_links_the_hooks_and_removes_cleanly";
    let Some(p) = packages(t) else { return };
    if !tools(t, &["dpkg", "dpkg-deb"]) || !root(t) {
        return;
    }
    let debug_help =
        run(Command::new(vzfs_lab::lab::default_bin_dir().join("vzfs-hook")).arg("--help")).stdout;
    in_throwaway_root(move || {
        vz_conf();
        let out = dpkg(&["-i", p.deb.to_str().unwrap()]);
        let o = text(&out);
        assert!(out.status.success(), "dpkg -i: {o}");
        let files = check_package_installed("deb", &o);
        // The packaged binary is the one this tree builds (same --help).
        let help = run(Command::new("/usr/sbin/vzfs-hook").arg("--help")).stdout;
        assert_eq!(help, debug_help, "the package is stale: run `make package`");
        // The OCF resource agent is the same binary, started by its name.
        let md = run(Command::new("/usr/lib/ocf/resource.d/vzfs/container").arg("meta-data"));
        assert!(
            md.status.success() && text(&md).contains(r#"<resource-agent name="container""#),
            "{}",
            text(&md)
        );
        let chk = run(Command::new("/usr/sbin/vzfs-hook").args(["install", "--check"]));
        assert!(
            text(&chk).contains("vps.premount: vzfs-hook"),
            "{}",
            text(&chk)
        );
        // man finds the installed pages
        if have("man") {
            let w = run(Command::new("man").args(["-w", "8", "vzfs-hook"]));
            assert!(
                text(&w).contains("/usr/share/man/man8/vzfs-hook.8.gz"),
                "{}",
                text(&w)
            );
        }

        let out = dpkg(&["-r", "vzfs"]);
        assert!(out.status.success(), "dpkg -r: {}", text(&out));
        for f in files.keys() {
            assert!(!Path::new(f).exists(), "{f} left after dpkg -r");
        }
        assert!(!Path::new("/usr/share/doc/vzfs").exists());
        let left: Vec<_> = fs::read_dir("/etc/vz/conf")
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            left,
            vec![std::ffi::OsString::from("101.conf")],
            "dpkg -r left {left:?}"
        );
    });
}

/// The .rpm's scriptlets do the same as the .deb's (rpm with a database of
/// its own, in the throwaway root; dependencies are the Debian machine's).
#[test]
fn rpm_installs_links_the_hooks_and_removes_cleanly() {
    let t = "rpm_installs_links_the_hooks_and_removes_cleanly";
    let Some(p) = packages(t) else { return };
    if !tools(t, &["rpm"]) || !root(t) {
        return;
    }
    in_throwaway_root(move || {
        vz_conf();
        let db = ["--dbpath", "/var/lib/vzfs-test-rpmdb"];
        run(Command::new("rpm").arg("--initdb").args(db));
        let out = run(Command::new("rpm")
            .args(["-i", "--nodeps"])
            .args(db)
            .arg(&p.rpm));
        let files = check_package_installed("rpm", &text(&out));
        run(Command::new("rpm")
            .args(["-e", "--nodeps"])
            .args(db)
            .arg("vzfs"));
        for f in files.keys() {
            assert!(!Path::new(f).exists(), "{f} left after rpm -e");
        }
        let left: Vec<_> = fs::read_dir("/etc/vz/conf")
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            left,
            vec![std::ffi::OsString::from("101.conf")],
            "rpm -e left {left:?}"
        );
    });
}

/// A seed-style admin hook that also records how it was started.
fn admin_script(kind: &str) -> String {
    format!(
        r#"#!/bin/bash
# the admin's own {kind} (the seed's, plus a record of how it ran)
source ${{VE_CONFFILE}}
echo "ADMIN {kind} ran" >&2
{{ printf '%s\0' "$0" "$#"; }} >> /vz/{kind}.argv
cat /proc/$$/environ > /vz/{kind}.env
readlink /proc/self/fd/0 > /vz/{kind}.stdin
[ -e /vz/fail-{kind} ] && exit 3
if [ -n "$VE_DEVICE" ]; then
   umount ${{VE_PRIVATE}} 2> /dev/null || echo -n ""
fi
exit 0
"#
    )
}

fn vzctl(args: &[&str]) -> Output {
    let bin = vzfs_lab::lab::default_bin_dir().join("vzctl-double");
    Command::new(bin)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
        .output()
        .expect("run vzctl-double")
}

#[test]
fn deb_with_admin_hooks_chains_them_and_restores_them() {
    let t = "deb_with_admin_hooks_chains_them_and_restores_them";
    let Some(p) = packages(t) else { return };
    if !tools(t, &["dpkg", "dpkg-deb", "bash"]) || !root(t) {
        return;
    }
    let vzctl_bin = vzfs_lab::lab::default_bin_dir().join("vzctl-double");
    assert!(
        vzctl_bin.exists(),
        "{} missing: run `make build`",
        vzctl_bin.display()
    );
    in_throwaway_root(move || {
        vz_conf();
        let mut orig = Vec::new();
        for k in ["premount", "postumount"] {
            let path = format!("/etc/vz/conf/vps.{k}");
            fs::write(&path, admin_script(k)).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
            let md = fs::metadata(&path).unwrap();
            orig.push((
                path,
                fs::read(format!("/etc/vz/conf/vps.{k}")).unwrap(),
                md.ino(),
                md.mtime(),
            ));
        }
        let unchanged = |orig: &Vec<(String, Vec<u8>, u64, i64)>, same_inode: bool| {
            for (path, bytes, ino, mtime) in orig {
                let md = fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{path}: {e}"));
                assert!(md.is_file(), "{path} is not the admin's file");
                assert_eq!(&fs::read(path).unwrap(), bytes, "{path} changed");
                assert_eq!(md.permissions().mode() & 0o7777, 0o755, "{path}");
                assert_eq!(md.mtime(), *mtime, "{path}");
                if same_inode {
                    assert_eq!(md.ino(), *ino, "{path}");
                }
            }
        };

        // dpkg -i: succeeds, leaves them alone, says how to chain.
        let out = dpkg(&["-i", p.deb.to_str().unwrap()]);
        let o = text(&out);
        assert!(out.status.success(), "dpkg -i: {o}");
        assert!(
            o.contains("vzfs-hook install --chain"),
            "dpkg -i output does not say how to chain:\n{o}"
        );
        unchanged(&orig, true);
        assert!(!Path::new("/etc/vz/conf/vzfs-chained").exists());

        // The admin chains them.
        let out = run(Command::new("/usr/sbin/vzfs-hook").args(["install", "--chain"]));
        assert!(
            text(&out).contains("vzfs-chained/vps.premount"),
            "{}",
            text(&out)
        );
        for h in ["vps.premount", "vps.postumount"] {
            assert_eq!(
                fs::read_link(format!("/etc/vz/conf/{h}")).unwrap(),
                Path::new("/usr/sbin/vzfs-hook")
            );
        }

        // vzctl mount: our premount first (a shared CT: one notice), then theirs.
        let m = vzctl(&["mount", "101"]);
        let mo = text(&m);
        assert!(m.status.success(), "vzctl mount: {mo}");
        in_order(
            &mo,
            "vzfs-hook: CT 101",
            "ADMIN premount ran",
            "premount: ours, then theirs",
        );
        let argv = fs::read("/vz/premount.argv").unwrap();
        assert_eq!(
            argv, b"/etc/vz/conf/vzfs-chained/vps.premount\x000\x00",
            "argv: $0 and $# (once)"
        );
        // /proc/$$/environ: exactly what the script was exec'd with (before
        // bash adds anything): vzctl's environment, PATH twice, in its order.
        let env: Vec<String> = fs::read("/vz/premount.env")
            .unwrap()
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        assert_eq!(
            env,
            vzfs_lab::vzctl::scripts::script_env("101"),
            "the chained script's environment is vzctl's, exactly"
        );
        assert_eq!(
            fs::read_to_string("/vz/premount.stdin").unwrap().trim(),
            "/dev/null"
        );

        // vzctl umount: theirs first, then ours.
        let u = vzctl(&["umount", "101"]);
        let uo = text(&u);
        assert!(u.status.success(), "vzctl umount: {uo}");
        in_order(
            &uo,
            "ADMIN postumount ran",
            "vzfs-hook: CT 101",
            "postumount: theirs, then ours",
        );
        assert_eq!(
            fs::read("/vz/postumount.argv").unwrap(),
            b"/etc/vz/conf/vzfs-chained/vps.postumount\x000\x00"
        );

        // Their failure is the hook's failure: vzctl reports the premount error.
        fs::write("/vz/fail-premount", "").unwrap();
        let m = vzctl(&["mount", "101"]);
        let mo = text(&m);
        assert_eq!(
            m.status.code(),
            Some(79),
            "vzctl mount with a failing chained premount: {mo}"
        );
        assert!(
            mo.contains(
                "chained admin script /etc/vz/conf/vzfs-chained/vps.premount exited with status 3"
            ),
            "{mo}"
        );
        fs::remove_file("/vz/fail-premount").unwrap();
        let runs = || {
            fs::read("/vz/premount.argv")
                .unwrap()
                .split(|b| *b == 0)
                .filter(|s| !s.is_empty())
                .count()
                / 2
        };
        assert_eq!(runs(), 2, "twice in all, once per call");

        // Our premount failed (a config value it cannot use): theirs does not run.
        fs::write(
            "/etc/vz/conf/101.conf",
            format!("{CT_CONF}VE_DEVICE=/dev/vzfs-test-none\nVE_DEVICE_FSCK=maybe\n"),
        )
        .unwrap();
        let m = vzctl(&["mount", "101"]);
        let mo = text(&m);
        assert_eq!(
            m.status.code(),
            Some(79),
            "vzctl mount with a failing premount: {mo}"
        );
        assert!(
            mo.contains("VE_DEVICE_FSCK") && !mo.contains("ADMIN premount ran"),
            "{mo}"
        );
        assert_eq!(runs(), 2, "the chained premount ran after ours failed");
        fs::write("/etc/vz/conf/101.conf", CT_CONF).unwrap();

        // dpkg -r puts them back, byte for byte (the same files).
        let out = dpkg(&["-r", "vzfs"]);
        assert!(out.status.success(), "dpkg -r: {}", text(&out));
        unchanged(&orig, true);
        assert!(!Path::new("/etc/vz/conf/vzfs-chained").exists());
        assert!(!Path::new("/usr/sbin/vzfs-hook").exists());
    });
}

/// A fresh empty directory under the temp dir, removed when dropped (also
/// when a check fails).
struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A fresh empty directory for `what`.
fn scratch(what: &str) -> Scratch {
    let d = std::env::temp_dir().join(format!("vzfs-pkgmeta-{}-{what}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    Scratch(d)
}

/// What the Debian releases with vzctl 4.x and the OpenVZ kernel have, for
/// the packages a Depends of ours may name: (package, Debian 7, Debian 8).
const DEBIAN_OLD: &[(&str, &str, &str)] = &[
    ("libc6", "2.13-38+deb7u10", "2.19-18+deb8u10"),
    ("libgcc1", "1:4.7.2-5", "1:4.9.2-10+deb8u1"),
    ("e2fsprogs", "1.42.5-1.1+deb7u1", "1.42.12-2+b1"),
    ("util-linux", "2.20.1-5.3", "2.25.2-6"),
    ("rsync", "3.0.9-4", "3.1.1-3+deb8u1"),
    ("openssh-client", "1:6.0p1-4+deb7u2", "1:6.7p1-5+deb8u3"),
    ("psmisc", "22.19-1+deb7u1", "22.21-2"),
];

/// `installed` satisfies `rel ver` (dpkg --compare-versions).
fn deb_version_ok(installed: &str, rel: &str, ver: &str) -> bool {
    let op = match rel {
        ">=" => "ge",
        "<=" => "le",
        ">>" => "gt",
        "<<" => "lt",
        "=" => "eq",
        _ => panic!("Depends: unknown relation {rel:?}"),
    };
    Command::new("dpkg")
        .args(["--compare-versions", installed, op, ver])
        .status()
        .expect("dpkg --compare-versions")
        .success()
}

/// `sh -n` of a maintainer script or scriptlet, and none of the usual
/// bashisms (checkbashisms when it is there).
fn posix_sh(name: &str, script: &str) {
    let dir = scratch(&format!("sh-{}", name.replace(['/', ' '], "_")));
    let f = dir.join("script");
    fs::write(&f, script).unwrap();
    for sh in ["sh", "dash"] {
        if have(sh) {
            let o = Command::new(sh).arg("-n").arg(&f).output().unwrap();
            assert!(o.status.success(), "{sh} -n {name}: {}\n{script}", text(&o));
        }
    }
    if have("checkbashisms") {
        let o = Command::new("checkbashisms")
            .arg("-f")
            .arg(&f)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "checkbashisms {name}: {}\n{script}",
            text(&o)
        );
    }
    drop(dir);
    if let Some(first) = script.lines().next().filter(|l| l.starts_with("#!")) {
        assert_eq!(first.trim(), "#!/bin/sh", "{name}");
    }
    for l in script
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
    {
        for bad in [
            "[[",
            "]]",
            "local ",
            "function ",
            "source ",
            " == ",
            "<<<",
            "&>",
            "$'",
            "${!",
            "pushd",
            "declare ",
            "select ",
        ] {
            assert!(!l.contains(bad), "{name}: {bad:?} is not POSIX sh: {l}");
        }
    }
}

/// rpmlib features that rpm 4.8 (CentOS 6) knows (lib/rpmds.c there),
/// without FileCaps (not built into every rpm 4.8).
const RPM48_FEATURES: &[&str] = &[
    "VersionedDependencies",
    "CompressedFileNames",
    "PayloadIsBzip2",
    "PayloadIsXz",
    "PayloadIsLzma",
    "PayloadFilesHavePrefix",
    "ExplicitPackageProvide",
    "HeaderLoadSortsTags",
    "ScriptletInterpreterArgs",
    "PartialHardlinkSets",
    "ConcurrentAccess",
    "BuiltinLuaScripts",
    "FileDigests",
];

fn rpm_query(rpm: &Path, args: &[&str]) -> String {
    String::from_utf8_lossy(&run(Command::new("rpm").arg("-qp").args(args).arg(rpm)).stdout)
        .into_owned()
}

#[test]
fn packages_install_on_openvz6_nodes() {
    let t = "packages_install_on_openvz6_nodes";
    let Some(p) = packages(t) else { return };
    if !tools(t, &["dpkg", "dpkg-deb", "rpm", "ar", "sh"]) {
        return;
    }

    // .rpm: rpm 4.8, CentOS 6.
    let req = rpm_query(&p.rpm, &["--requires"]);
    for r in req.lines().map(str::trim).filter(|r| !r.is_empty()) {
        if let Some(f) = r.strip_prefix("rpmlib(") {
            let feature = f.split(')').next().unwrap();
            assert!(
                RPM48_FEATURES.contains(&feature),
                "the .rpm requires {r}: rpm 4.8 (CentOS 6) does not know rpmlib({feature})\n{req}"
            );
            continue;
        }
        assert!(
            !r.contains("GLIBC") && !r.contains(".so") && !r.starts_with("rtld("),
            "the .rpm requires {r}: a library of the build machine (the binaries must be static)\n{req}"
        );
        assert!(
            ["/bin/sh", "e2fsprogs"].contains(&r),
            "the .rpm requires {r}: not known to be on a CentOS 6 node\n{req}"
        );
    }
    for weak in ["--recommends", "--suggests", "--supplements", "--enhances"] {
        let w = rpm_query(&p.rpm, &[weak]);
        assert!(
            w.trim().is_empty(),
            "rpm -qp {weak}: weak dependencies are rpm 4.12, CentOS 6 has 4.8: {w}"
        );
    }
    let payload = rpm_query(&p.rpm, &["--qf", "%{PAYLOADFORMAT} %{PAYLOADCOMPRESSOR}"]);
    assert!(
        ["cpio gzip", "cpio xz"].contains(&payload.trim()),
        "the .rpm's payload is {payload:?}: rpm 4.8 reads a gzip or xz cpio"
    );
    for (tag, prog) in [("POSTIN", "POSTINPROG"), ("PREUN", "PREUNPROG")] {
        let interp = rpm_query(&p.rpm, &["--qf", &format!("%{{{prog}}}")]);
        assert_eq!(interp.trim(), "/bin/sh", "%{prog}");
        let script = rpm_query(&p.rpm, &["--qf", &format!("%{{{tag}}}")]);
        assert!(script.contains("vzfs-hook"), "{tag}: {script}");
        posix_sh(&format!("rpm {tag}"), &script);
    }
    for tag in ["PRETRANS", "POSTTRANS", "PREIN", "POSTUN", "TRIGGERSCRIPTS"] {
        let s = rpm_query(&p.rpm, &["--qf", &format!("%{{{tag}}}")]);
        assert!(
            s.trim().is_empty() || s.trim() == "(none)",
            "unexpected %{tag}: {s}"
        );
    }

    // .deb: dpkg 1.16, Debian 7 (and Debian 8).
    let members = text(&run(Command::new("ar").arg("t").arg(&p.deb)));
    let members: Vec<&str> = members.lines().collect();
    assert!(
        members.len() == 3
            && members[0] == "debian-binary"
            && members[1] == "control.tar.gz"
            && ["data.tar.gz", "data.tar.xz"].contains(&members[2]),
        "ar t {}: {members:?}: dpkg 1.16 reads control.tar.gz and data.tar.gz or .xz",
        p.deb.display()
    );
    let version = run(Command::new("ar").arg("p").arg(&p.deb).arg("debian-binary")).stdout;
    assert_eq!(version, b"2.0\n");
    let field = |f: &str| {
        text(&run(Command::new("dpkg-deb").arg("-f").arg(&p.deb).arg(f)))
            .trim()
            .to_string()
    };
    assert!(field("Pre-Depends").is_empty(), "Pre-Depends");
    let depends = field("Depends");
    for group in depends.split(',').map(str::trim).filter(|g| !g.is_empty()) {
        // Debian 7 (index 1) and Debian 8 (index 2) each satisfy one alternative.
        for (rel, release) in [(1, "Debian 7"), (2, "Debian 8")] {
            let ok = group.split('|').map(str::trim).any(|alt| {
                let (name, cons) = match alt.split_once('(') {
                    Some((n, c)) => (n.trim(), Some(c.trim_end_matches(')').trim())),
                    None => (alt, None),
                };
                let name = name.split(':').next().unwrap();
                let Some(have) = DEBIAN_OLD.iter().find(|d| d.0 == name) else {
                    return false;
                };
                let have = if rel == 1 { have.1 } else { have.2 };
                match cons {
                    None => true,
                    Some(c) => {
                        let (op, ver) = c
                            .split_once(' ')
                            .unwrap_or_else(|| panic!("Depends: {alt}"));
                        deb_version_ok(have, op.trim(), ver.trim())
                    }
                }
            });
            assert!(
                ok,
                "Depends: {depends}: {release} does not satisfy {group:?} (packages known there: {DEBIAN_OLD:?})"
            );
        }
    }
    assert!(
        !depends.contains("libc6") && !depends.contains("libgcc"),
        "the binaries are static: no libc6/libgcc dependency: {depends}"
    );
    let dir = scratch("deb-control");
    run(Command::new("dpkg-deb").arg("-e").arg(&p.deb).arg(&*dir));
    for s in ["postinst", "prerm"] {
        let script = fs::read_to_string(dir.join(s)).unwrap();
        posix_sh(&format!("deb {s}"), &script);
    }
    for s in ["preinst", "postrm", "config", "triggers"] {
        assert!(!dir.join(s).exists(), "unexpected {s} in the .deb");
    }
}

/// glibc's NSS entry points and module machinery (as scripts/static-bins
/// checks them): defined in a static program, it can load the node's
/// libnss_*.so, built for another glibc.
fn is_nss_symbol(s: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "_nss_",
        "__nss_lookup",
        "__nss_database_lookup",
        "__nss_module",
        "__nss_configure",
        "__nss_next",
        "__nss_files",
        "__nss_parse",
        "__nss_readline",
        "__nss_disable",
        "nss_",
        "getpwnam",
        "getpwuid",
        "getpwent",
        "getgrnam",
        "getgrgid",
        "getgrent",
        "getgrouplist",
        "initgroups",
        "getspnam",
        "getaddrinfo",
        "gethostby",
        "gethostent",
        "getservby",
        "getprotoby",
        "getnetby",
        "getrpcby",
        "getlogin",
        "ether_ntohost",
        "ether_hostton",
        "getnetgrent",
        "innetgr",
    ];
    PREFIXES.iter().any(|p| s.starts_with(p))
}

fn sha256(path: &Path) -> String {
    let o = run(Command::new("sha256sum").arg(path));
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn shipped_binaries_are_static_without_nss() {
    let t = "shipped_binaries_are_static_without_nss";
    let Some(p) = packages(t) else { return };
    if !tools(
        t,
        &["dpkg-deb", "rpm", "readelf", "objdump", "nm", "sha256sum"],
    ) {
        return;
    }
    let dir = scratch("deb-data");
    run(Command::new("dpkg-deb").arg("-x").arg(&p.deb).arg(&*dir));
    let bins: Vec<&str> = ["vzfs-hook", "vzfs-migrate", "vzfs-create"]
        .into_iter()
        .filter(|b| dir.join("usr/sbin").join(b).exists())
        .collect();
    assert!(bins.len() >= 2, "{bins:?}");
    // The .rpm ships the same bytes (its SHA-256 file digests).
    let digests = rpm_query(&p.rpm, &["--qf", "[%{FILENAMES} %{FILEDIGESTS}\n]"]);
    let release = vzfs_lab::lab::default_bin_dir()
        .parent()
        .unwrap()
        .join("release");
    for b in &bins {
        let exe = dir.join("usr/sbin").join(b);
        let sum = sha256(&exe);
        assert!(
            digests.contains(&format!("/usr/sbin/{b} {sum}")),
            "the .rpm's {b} is not the .deb's ({sum}):\n{digests}"
        );
        let phdrs = text(&run(Command::new("readelf").arg("-lW").arg(&exe)));
        assert!(
            !phdrs.contains("INTERP") && !phdrs.contains("program interpreter"),
            "{b} has a program interpreter (dynamically linked):\n{phdrs}"
        );
        let dynamic = text(&run(Command::new("readelf").arg("-dW").arg(&exe)));
        assert!(
            !dynamic.contains("(NEEDED)"),
            "{b} needs shared libraries:\n{dynamic}"
        );
        let dynsyms = text(&run(Command::new("objdump").arg("-T").arg(&exe)));
        assert!(
            !dynsyms.contains("GLIBC_") && !dynsyms.contains("*UND*"),
            "{b} needs dynamic symbols (objdump -T):\n{dynsyms}"
        );
        let bytes = fs::read(&exe).unwrap();
        // (ld-linux-x86-64.so.2 is named in every static glibc program:
        // libc.a's static dlopen support, which NSS would use.)
        for s in [&b"nsswitch.conf"[..], b"libnss_"] {
            assert!(
                !bytes.windows(s.len()).any(|w| w == s),
                "{b} holds {:?}: glibc's NSS is linked in",
                String::from_utf8_lossy(s)
            );
        }
        // The unstripped build the package was made from (make package
        // leaves it in target/release): no NSS symbol defined.
        let unstripped = release.join(b);
        let syms = text(&run(Command::new("nm").arg(&unstripped)));
        assert!(
            !text(&run(Command::new("readelf").arg("-lW").arg(&unstripped))).contains("INTERP"),
            "{} is a dynamic build: run `make package` (or `make release`)",
            unstripped.display()
        );
        let nss: Vec<&str> = syms
            .lines()
            .filter_map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
                [_, kind, name] if !["U", "w", "v"].contains(&kind) && is_nss_symbol(name) => {
                    Some(name)
                }
                _ => None,
            })
            .collect();
        assert!(
            nss.is_empty(),
            "{b} links glibc's NSS (it would load the node's libnss_*.so): {nss:?}"
        );
    }
}
