//! Fixture tests of `vzfs::config`: reading real-looking vzctl configs,
//! refusing hostile and malformed ones (and proving nothing ran), and editing
//! files byte for byte, atomically.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use vzfs::config::{read, remove_key, set_key, ConfigError, Quoting, VzConfig, VzEtc, VZFS_KEYS};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config")
}

fn fixture(rel: &str) -> PathBuf {
    fixtures().join(rel)
}

/// A private scratch directory, removed when dropped (also on panic).
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "vzfs-config-test-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        Scratch(dir)
    }

    /// Copy a fixture into the scratch directory.
    fn copy(&self, rel: &str) -> PathBuf {
        let dst = self.0.join(Path::new(rel).file_name().unwrap());
        fs::copy(fixture(rel), &dst).unwrap();
        dst
    }

    fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------
// Reading and merging

#[test]
fn loads_global_then_container_file() {
    let etc = VzEtc::new(fixture("etc"));
    let c = VzConfig::load(&etc, "101").unwrap();
    assert_eq!(c.ctid(), "101");
    c.check_vzfs_keys().unwrap();

    let dev = c.literal("VE_DEVICE").unwrap().unwrap();
    assert_eq!(
        dev.raw,
        "/dev/disk/by-id/wwn-0x600a0b800026b2820000a3b94e1d1a5c-part1"
    );
    assert_eq!(dev.origin.path, etc.ct_conf("101"));
    assert_eq!(dev.origin.line, 24);
    assert_eq!(dev.quoting, Quoting::Double);

    // The container file overrides the global one, with its origin.
    let opts = c.literal("VE_DEVICE_OPTIONS").unwrap().unwrap();
    assert_eq!((opts.raw.as_str(), opts.origin.line), ("noatime,nodev", 26));
    assert_eq!(c.expanded("VE_DEVICE_FSCK").unwrap().unwrap(), "yes");

    // Keys only in vz.conf come from vz.conf.
    let lock = c.literal("LOCKDIR").unwrap().unwrap();
    assert_eq!(lock.origin.path, etc.global_conf());
    assert_eq!(lock.origin.line, 3);
    assert_eq!(
        c.path_value("LOCKDIR").unwrap().unwrap(),
        Path::new("/vz/lock")
    );
    assert_eq!(
        c.path_value("DUMPDIR").unwrap().unwrap(),
        Path::new("/vz/dump")
    );

    // $VEID expansion.
    assert_eq!(
        c.path_value("VE_PRIVATE").unwrap().unwrap(),
        Path::new("/vz/private/101")
    );
    assert_eq!(
        c.path_value("VE_ROOT").unwrap().unwrap(),
        Path::new("/vz/root/101")
    );
    assert_eq!(c.get("VE_PRIVATE").unwrap().raw, "/vz/private/$VEID");
    assert_eq!(c.get("VE_PRIVATE").unwrap().origin.line, 16);

    // Single quotes (our extension) for a vzfs key.
    let dump = c.literal("VE_DUMP_DEVICE").unwrap().unwrap();
    assert_eq!(
        (dump.raw.as_str(), dump.quoting),
        ("LABEL=vzdump", Quoting::Single)
    );
    // Backslash escapes in a key vzfs does not use.
    assert_eq!(c.get("DESCRIPTION").unwrap().raw, "web \"front\" end");
    assert!(c.get("VE_NOT_SET").is_none());
}

#[test]
fn container_ids_sharing_a_prefix_stay_apart() {
    let etc = VzEtc::new(fixture("etc"));
    let c10 = VzConfig::load(&etc, "10").unwrap();
    let c101 = VzConfig::load(&etc, "101").unwrap();
    assert_eq!(
        c10.path_value("VE_PRIVATE").unwrap().unwrap(),
        Path::new("/vz/private-shared/10")
    );
    // Global default, expanded for 10.
    assert_eq!(
        c10.path_value("VE_ROOT").unwrap().unwrap(),
        Path::new("/vz/root/10")
    );
    assert!(c10.literal("VE_DEVICE").unwrap().is_none());
    assert!(c101.literal("VE_DEVICE").unwrap().is_some());
}

#[test]
fn missing_files() {
    let etc = VzEtc::new(fixture("etc"));
    let e = VzConfig::load(&etc, "999").unwrap_err();
    assert!(matches!(e, ConfigError::NoCtConfig { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "no config for CT 999: {} does not exist; check the container ID, or create the container with vzctl first",
            etc.ct_conf("999").display()
        )
    );

    // A missing global file is allowed.
    let c = VzConfig::load_files(
        &fixture("does-not-exist/vz.conf"),
        &etc.ct_conf("101"),
        "101",
    )
    .unwrap();
    assert!(c.global().entries.is_empty());
    assert_eq!(c.literal("LOCKDIR").unwrap(), None);

    // Any other error on the global file is not.
    let e = VzConfig::load_files(&fixture("etc"), &etc.ct_conf("101"), "101").unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!(
            "{}: a directory, not a regular file",
            fixture("etc").display()
        )),
        "{msg}"
    );

    let e = VzConfig::load_files(&etc.global_conf(), &etc.ct_conf("101"), "1x").unwrap_err();
    assert!(matches!(e, ConfigError::InvalidCtid { .. }), "{e}");
}

// ---------------------------------------------------------------------------
// Hostile configs: refused, and nothing runs.

/// (fixture, key, line, what the check reports)
const HOSTILE: &[(&str, &str, usize, &str)] = &[
    ("dollar-paren.conf", "VE_DEVICE", 2, "'$('"),
    ("backtick.conf", "VE_PRIVATE", 2, "a backtick"),
    ("semicolon.conf", "VE_DEVICE_OPTIONS", 2, "';'"),
    ("braces.conf", "VE_ROOT", 1, "'${' other than ${VEID}"),
    ("ampersand.conf", "VE_DEVICE_FSCK", 2, "'&'"),
    ("pipe.conf", "VE_DEVICE_FSTYPE", 1, "'|'"),
    ("redirect.conf", "VE_DUMP_DEVICE", 1, "'>'"),
];

#[test]
fn hostile_configs_are_refused_and_nothing_runs() {
    let pwned = Scratch::new("pwned");
    for &(name, key, line, found) in HOSTILE {
        let path = fixture(&format!("hostile/{name}"));
        // The file parses (vzctl would read it too), but the check refuses it.
        let c = VzConfig::load_files(&fixture("no-such-global.conf"), &path, "101")
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let e = c.check_vzfs_keys().unwrap_err();
        match &e {
            ConfigError::ShellCode {
                path: p,
                line: l,
                key: k,
                found: f,
            } => assert_eq!((p, *l, k.as_str(), *f), (&path, line, key, found), "{name}"),
            other => panic!("{name}: {other:?}"),
        }
        assert_eq!(
            e.to_string(),
            format!(
                "{}:{line}: {key} looks like shell code ({found}); vzfs never runs the config: write a literal value",
                path.display()
            )
        );
        // Every checked accessor refuses it too.
        assert!(c.literal(key).is_err());
        assert!(c.expanded(key).is_err());
        assert!(c.path_value(key).is_err());
    }
    assert_eq!(
        pwned.entries(),
        Vec::<String>::new(),
        "vzfs ran something from a config"
    );

    // Control: the fixtures really are hostile. A shell that sources them
    // (what the seed's hooks did) runs the payload.
    for &(name, ..) in HOSTILE {
        let status = Command::new("/bin/sh")
            .arg("-c")
            .arg(". \"$1\"")
            .arg("sh")
            .arg(fixture(&format!("hostile/{name}")))
            .env("PWNED_DIR", &pwned.0)
            .env("VEID", "101")
            .status()
            .expect("run /bin/sh");
        let _ = status; // some payloads make the sourced line fail; only the marker matters
    }
    let mut expected: Vec<String> = HOSTILE
        .iter()
        .map(|(n, ..)| n.trim_end_matches(".conf").to_string())
        .collect();
    expected.sort();
    assert_eq!(
        pwned.entries(),
        expected,
        "control: sourcing the fixtures should run every payload"
    );
}

#[test]
fn hostile_global_file_is_named() {
    let global = fixture("hostile/global-vz.conf");
    let c = VzConfig::load_files(&global, &fixture("hostile/clean-ct.conf"), "101").unwrap();
    let e = c.check_vzfs_keys().unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "{}:3: LOCKDIR looks like shell code",
            global.display()
        )),
        "{e}"
    );
    // The clean keys are still readable one by one.
    assert_eq!(
        c.path_value("VE_PRIVATE").unwrap().unwrap(),
        Path::new("/vz/private/101")
    );
}

// ---------------------------------------------------------------------------
// Malformed configs

#[test]
fn malformed_configs_name_file_and_line() {
    let cases: &[(&str, usize, &str)] = &[
        ("no-equals.conf", 3, "no '=' in \"VE_DEVICE /dev/sdb1\""),
        (
            "spaces-around-equals.conf",
            2,
            "invalid key name \"VE_DEVICE \"; write VE_DEVICE=\"...\" without blanks around '='",
        ),
        (
            "export.conf",
            1,
            "drop 'export' and write VE_DEVICE=\"...\"",
        ),
        (
            "unterminated-double.conf",
            4,
            "unterminated quote: VE_DEVICE starts with \" but has no closing \"",
        ),
        (
            "unterminated-single.conf",
            1,
            "unterminated quote: VE_DEVICE starts with ' but has no closing '",
        ),
    ];
    for &(name, line, needle) in cases {
        let path = fixture(&format!("malformed/{name}"));
        let e = read(&path).unwrap_err();
        assert!(
            matches!(&e, ConfigError::Syntax { path: p, line: l, .. } if *p == path && *l == line),
            "{name}: {e:?}"
        );
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!("{}:{line}: ", path.display())),
            "{msg}"
        );
        assert!(msg.contains(needle), "{name}: {msg}");
        // Loading as the container file fails the same way.
        let e2 = VzConfig::load_files(&fixture("no-such-global.conf"), &path, "101").unwrap_err();
        assert_eq!(e2.to_string(), msg);
    }
}

#[test]
fn lines_vzctl_skips_are_skipped_unless_meant_for_our_keys() {
    // vzctl starts this container (it warns about lines 3-8 and skips them),
    // so vzfs must read it too: only the keys vzfs uses are validated.
    let path = fixture("skipped/vzctl-skips.conf");
    let c = VzConfig::load_files(&fixture("no-such-global.conf"), &path, "101").unwrap();
    c.check_vzfs_keys().unwrap();
    assert_eq!(c.literal("VE_DEVICE").unwrap().unwrap().raw, "/dev/sdb1");
    assert_eq!(c.literal("VE_DEVICE").unwrap().unwrap().origin.line, 9);
    assert_eq!(c.get("ONBOOT").unwrap().raw, "yes");
    for skipped in [
        "PATH",
        "export PATH",
        "HOSTNAME",
        "HOSTNAME ",
        "DESCRIPTION",
        "NAME",
        "NOTE",
    ] {
        assert!(
            c.get(skipped).is_none(),
            "{skipped} must be skipped as vzctl skips it"
        );
    }
    // The same kinds of line meant for a key vzfs uses are errors (see
    // malformed_configs_name_file_and_line): each kind, on VZFS_VERBOSE too.
    for (text, needle) in [
        ("export VZFS_VERBOSE=2\n", "drop 'export'"),
        ("VZFS_VERBOSE 2\n", "no '='"),
        ("LOCKDIR =/x\n", "without blanks"),
        ("VE_PRIVATE=\"/vz/private/1\n", "unterminated quote"),
        ("VE_ROOT=\"/vz/\0root\"\n", "NUL"),
    ] {
        let e = vzfs::config::parse(Path::new("t.conf"), text).unwrap_err();
        assert!(e.to_string().contains(needle), "{text:?}: {e}");
        assert!(e.to_string().starts_with("t.conf:1: "), "{e}");
    }
}

#[test]
fn config_files_that_are_not_regular_files_are_refused_without_blocking() {
    let s = Scratch::new("special");
    let fifo = s.0.join("101.conf");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // A FIFO with no writer: opening it for reading would block forever
    // without O_NONBLOCK. Run in a thread with a deadline.
    let (tx, rx) = std::sync::mpsc::channel();
    let f2 = fifo.clone();
    std::thread::spawn(move || {
        let _ = tx.send(
            VzConfig::load_files(Path::new("/nonexistent/vz.conf"), &f2, "101")
                .map(|_| ())
                .map_err(|e| e.to_string()),
        );
    });
    let r = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("reading a FIFO config hung");
    let e = r.unwrap_err();
    assert!(
        e.contains("a FIFO") && e.contains(&fifo.display().to_string()),
        "{e}"
    );
    // A character device (/dev/zero would read until memory runs out).
    let e = read(Path::new("/dev/zero")).unwrap_err().to_string();
    assert!(
        e.contains("a character device") && e.contains("/dev/zero"),
        "{e}"
    );
    // A directory.
    let e = read(&s.0).unwrap_err().to_string();
    assert!(e.contains("a directory"), "{e}");
    // Too large: a cap, not a read of everything.
    let big = s.0.join("big.conf");
    fs::write(
        &big,
        vec![b'#'; (vzfs::config::MAX_CONFIG_BYTES + 1) as usize],
    )
    .unwrap();
    let e = read(&big).unwrap_err().to_string();
    assert!(e.contains("more than the 1048576 bytes"), "{e}");
}

#[test]
fn long_values_are_cut_in_messages() {
    let v = "a".repeat(10 << 20);
    let text = format!("VE_PRIVATE=/vz/private/101\nVE_DEVICE=/dev/sdb1\nVE_DEVICE_FSCK=\"{v}\"\n");
    let f = vzfs::config::parse(Path::new("t.conf"), &text).unwrap();
    let c = VzConfig::from_files(
        vzfs::config::ConfigFile {
            path: "g".into(),
            entries: vec![],
        },
        f,
        "101",
    );
    let e = vzfs::hook::CtFs::from_config(&c).unwrap_err().to_string();
    assert!(e.len() < 600, "message of {} bytes", e.len());
    assert!(
        e.contains("(10485760 bytes)") && e.contains("t.conf:3"),
        "{}",
        &e[..200.min(e.len())]
    );
}

#[test]
fn conflicting_duplicates_are_refused_equal_ones_are_not() {
    let path = fixture("duplicates.conf");
    let c = VzConfig::load_files(&fixture("no-such-global.conf"), &path, "101").unwrap();
    // vzctl keeps the first assignment of a string key.
    assert_eq!(c.get("VE_DEVICE").unwrap().raw, "/dev/sdb1");
    let e = c.literal("VE_DEVICE").unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}: VE_DEVICE is set on line 1 (\"/dev/sdb1\") and again on line 3 (\"/dev/sdc1\"); vzctl uses the first, a shell the last: keep only one",
            path.display()
        )
    );
    assert_eq!(c.literal("HOSTNAME").unwrap().unwrap().raw, "a");
    // All assignments are kept in file order.
    let f = read(&path).unwrap();
    let keys: Vec<(&str, usize)> = f
        .entries
        .iter()
        .map(|(k, v)| (k.as_str(), v.origin.line))
        .collect();
    assert_eq!(
        keys,
        [
            ("VE_DEVICE", 1),
            ("HOSTNAME", 2),
            ("VE_DEVICE", 3),
            ("HOSTNAME", 4)
        ]
    );
}

#[test]
fn every_vzfs_key_is_checked() {
    let s = Scratch::new("allkeys");
    for key in VZFS_KEYS {
        let ct = s.0.join(format!("{key}.conf"));
        fs::write(&ct, format!("{key}=\"/x/$(id)\"\n")).unwrap();
        let c = VzConfig::load_files(&s.0.join("none"), &ct, "5").unwrap();
        let e = c.check_vzfs_keys().unwrap_err();
        assert!(
            matches!(&e, ConfigError::ShellCode { key: k, .. } if k == key),
            "{key}: {e:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Editing

fn assert_bytes(path: &Path, expected_fixture: &str) {
    let got = fs::read(path).unwrap();
    let want = fs::read(fixture(expected_fixture)).unwrap();
    assert!(
        got == want,
        "{} differs from {expected_fixture}:\n--- got ---\n{}\n--- want ---\n{}",
        path.display(),
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want)
    );
}

#[test]
fn set_existing_key_keeps_every_other_byte() {
    let s = Scratch::new("set-existing");
    let f = s.copy("edit/odd.conf");
    set_key(&f, "VE_DEVICE", "/dev/mapper/ct101").unwrap();
    assert_bytes(&f, "edit/odd.set-VE_DEVICE.expected");
    assert_eq!(s.entries(), ["odd.conf"], "no temporary file left behind");
    let c = VzConfig::load_files(&s.0.join("none"), &f, "101").unwrap();
    assert_eq!(
        c.literal("VE_DEVICE").unwrap().unwrap().raw,
        "/dev/mapper/ct101"
    );
    assert_eq!(c.get("MY_TOOL_SETTING").unwrap().raw, "keep me");
}

#[test]
fn set_new_key_appends_and_adds_final_newline() {
    let s = Scratch::new("set-new");
    let f = s.copy("edit/odd.conf");
    set_key(&f, "VE_DUMP_DEVICE", "/dev/vg/dump").unwrap();
    assert_bytes(&f, "edit/odd.set-VE_DUMP_DEVICE.expected");
}

#[test]
fn remove_key_removes_every_assignment() {
    let s = Scratch::new("remove");
    let f = s.copy("edit/odd.conf");
    assert!(remove_key(&f, "VE_DEVICE").unwrap());
    assert_bytes(&f, "edit/odd.remove-VE_DEVICE.expected");
    // Nothing left to remove: no write at all (same inode).
    let ino = fs::metadata(&f).unwrap().ino();
    assert!(!remove_key(&f, "VE_DEVICE").unwrap());
    assert_eq!(fs::metadata(&f).unwrap().ino(), ino);
    assert_bytes(&f, "edit/odd.remove-VE_DEVICE.expected");
}

#[test]
fn crlf_files_keep_their_line_endings() {
    let s = Scratch::new("crlf");
    let f = s.copy("edit/crlf.conf");
    set_key(&f, "VE_DEVICE", "/dev/sdc1").unwrap();
    assert_bytes(&f, "edit/crlf.set-VE_DEVICE.expected");
    let f2 = s.0.join("second.conf");
    fs::copy(fixture("edit/crlf.conf"), &f2).unwrap();
    set_key(&f2, "VE_DEVICE_FSCK", "no").unwrap();
    assert_bytes(&f2, "edit/crlf.set-VE_DEVICE_FSCK.expected");
}

#[test]
fn lines_vzfs_cannot_parse_are_kept() {
    let s = Scratch::new("malformed-kept");
    let f = s.copy("edit/malformed-line.conf");
    set_key(&f, "VE_DEVICE", "/dev/sdc1").unwrap();
    assert_bytes(&f, "edit/malformed-line.set-VE_DEVICE.expected");
}

#[test]
fn edits_are_atomic_and_keep_mode() {
    let s = Scratch::new("mode");
    for mode in [0o600, 0o640, 0o644, 0o664] {
        let f = s.copy("edit/odd.conf");
        fs::set_permissions(&f, fs::Permissions::from_mode(mode)).unwrap();
        let before = fs::metadata(&f).unwrap();
        set_key(&f, "VE_DEVICE", "/dev/sdz").unwrap();
        let after = fs::metadata(&f).unwrap();
        assert_eq!(after.permissions().mode() & 0o7777, mode, "mode {mode:o}");
        assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
        // Replaced by rename, not rewritten in place.
        assert_ne!(after.ino(), before.ino());
    }
    assert_eq!(s.entries(), ["odd.conf"]);
}

#[test]
fn unchanged_value_is_not_rewritten() {
    let s = Scratch::new("unchanged");
    let f = s.copy("edit/crlf.conf");
    let ino = fs::metadata(&f).unwrap().ino();
    set_key(&f, "VE_DEVICE", "/dev/sdb1").unwrap();
    assert_eq!(fs::metadata(&f).unwrap().ino(), ino);
    assert_bytes(&f, "edit/crlf.conf");
}

#[test]
fn stale_temporary_file_is_replaced() {
    let s = Scratch::new("stale");
    let f = s.copy("edit/odd.conf");
    let tmp = s.0.join("odd.conf.tmp");
    fs::write(&tmp, "garbage from a crashed edit\n").unwrap();
    set_key(&f, "VE_DEVICE", "/dev/mapper/ct101").unwrap();
    assert_bytes(&f, "edit/odd.set-VE_DEVICE.expected");
    assert!(!tmp.exists());
}

#[test]
fn a_symlinked_config_is_edited_through_the_link() {
    let s = Scratch::new("symlink");
    let real = s.copy("edit/odd.conf");
    let link = s.0.join("101.conf");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    set_key(&link, "VE_DEVICE", "/dev/mapper/ct101").unwrap();
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_bytes(&real, "edit/odd.set-VE_DEVICE.expected");
    assert_eq!(s.entries(), ["101.conf", "odd.conf"]);
}

#[test]
fn values_round_trip_through_vzctl_syntax() {
    let s = Scratch::new("roundtrip");
    let f = s.copy("edit/odd.conf");
    for value in [
        r"C:\dir with\ spaces",
        "/vz/private/$VEID",
        "",
        "it's",
        "a#b",
        " lead",
    ] {
        set_key(&f, "SOME_VALUE", value).unwrap();
        let file = read(&f).unwrap();
        assert_eq!(
            file.first("SOME_VALUE").unwrap().raw,
            value,
            "{}",
            String::from_utf8_lossy(&fs::read(&f).unwrap())
        );
    }
    let text = fs::read_to_string(&f).unwrap();
    assert_eq!(text.matches("SOME_VALUE=").count(), 1);
    assert!(text.ends_with("SOME_VALUE=\" lead\"\n"), "{text}");
}

#[test]
fn unwritable_values_and_bad_keys_are_refused_without_writing() {
    let s = Scratch::new("refuse");
    let f = s.copy("edit/odd.conf");
    let ino = fs::metadata(&f).unwrap().ino();
    for (value, what) in [
        ("/dev/\"x", "a double quote"),
        ("/dev/x\nVE_ROOT=/", "a line break"),
        ("/dev/x\r", "a line break"),
    ] {
        let e = set_key(&f, "VE_DEVICE", value).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "cannot set VE_DEVICE in {}: the value contains {what}, which a vzctl config value cannot hold; nothing was written",
                f.display()
            )
        );
    }
    for key in ["", "VE DEVICE", "1X", "A=B", "#A"] {
        let e = set_key(&f, key, "x").unwrap_err();
        assert!(
            matches!(e, ConfigError::InvalidKey { op: "set", .. }),
            "{e}"
        );
        let e = remove_key(&f, key).unwrap_err();
        assert!(
            matches!(e, ConfigError::InvalidKey { op: "remove", .. }),
            "{e}"
        );
    }
    assert_eq!(fs::metadata(&f).unwrap().ino(), ino);
    assert_bytes(&f, "edit/odd.conf");
    assert_eq!(s.entries(), ["odd.conf"]);
}

#[test]
fn editing_a_missing_file_names_it() {
    let s = Scratch::new("missing");
    let f = s.0.join("404.conf");
    let e = set_key(&f, "VE_DEVICE", "/dev/sdb1")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!(
            "cannot set VE_DEVICE in {}: resolve the path failed:",
            f.display()
        )),
        "{e}"
    );
    let e = remove_key(&f, "VE_DEVICE").unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("cannot remove VE_DEVICE from {}:", f.display())),
        "{e}"
    );
    assert!(s.entries().is_empty(), "nothing was created");
}
