//! `vzfs-hook install/uninstall/install --check` as a command (exit codes,
//! messages on stderr, nothing changed on a refusal), and the hook started
//! through its symlink with exactly vzctl's argv, environment and stdin
//! running a chained admin script: premount ours then theirs, postumount
//! theirs then ours, their failure exit 11. A shared container (no
//! VE_DEVICE) keeps our part a no-op, so no root, device or namespace is
//! needed: everything is in a temporary directory.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

const HOOK: &str = env!("CARGO_BIN_EXE_vzfs-hook");
const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

struct Tmp(PathBuf);
impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn tmp(tag: &str) -> Tmp {
    let d = std::env::temp_dir().join(format!("vzfs-install-cli-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(d.join("conf")).unwrap();
    fs::write(
        d.join("conf/101.conf"),
        format!(
            "VE_PRIVATE=\"{}/private/$VEID\"\nVZFS_VERBOSE=2\n",
            d.display()
        ),
    )
    .unwrap();
    Tmp(d)
}

fn hook(t: &Tmp, args: &[&str]) -> Output {
    Command::new(HOOK)
        .arg("--etc-vz")
        .arg(&t.0)
        .args(args)
        .args(["--hook-path", HOOK])
        .output()
        .unwrap()
}

/// The seed's shell hook, recording its argv, environment and stdin.
fn admin(t: &Tmp, name: &str, extra: &str) -> (PathBuf, Vec<u8>) {
    let p = t.0.join("conf").join(name);
    let body = format!(
        "#!/bin/sh\n# the admin's own {name}\necho \"ADMIN {name}\" >&2\nprintf '%s\\n' \"$0\" \"$#\" >> {rec}.argv\ncat /proc/$$/environ > {rec}.env\nreadlink /proc/self/fd/0 > {rec}.stdin\n{extra}\nexit 0\n",
        rec = t.0.join(name).display()
    );
    fs::write(&p, &body).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    (p, body.into_bytes())
}

/// Runs `conf/NAME` as vzctl does: argv [path], exactly its environment
/// (PATH twice), stdin /dev/null.
fn as_vzctl(t: &Tmp, name: &str) -> Output {
    let p = t.0.join("conf").join(name);
    let conf = t.0.join("conf/101.conf");
    Command::new(&p)
        .env_clear()
        .envs([("HOME", "/"), ("TERM", "linux")])
        .env("PATH", &PATH[5..])
        .env("VEID", "101")
        .env("VE_CONFFILE", &conf)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn refusal_exits_4_and_changes_nothing_then_chain_and_uninstall() {
    let t = tmp("refuse");
    let (pre, pre_bytes) = admin(&t, "vps.premount", "");
    let o = hook(&t, &["install"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.starts_with("vzfs-hook: error: ")
            && e.contains(&pre.display().to_string())
            && e.contains("install --chain"),
        "{e}"
    );
    assert!(
        !t.0.join("conf/vps.postumount").exists(),
        "a refusal changed something"
    );
    assert_eq!(fs::read(&pre).unwrap(), pre_bytes);

    let o = hook(&t, &["install", "--check"]);
    assert_eq!(o.status.code(), Some(4), "--check with a foreign hook");
    assert!(String::from_utf8_lossy(&o.stdout).contains("NOT vzfs-hook"));

    let o = hook(&t, &["install", "--chain"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = hook(&t, &["install", "--check"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    assert!(String::from_utf8_lossy(&o.stdout).contains("chained: "));

    let o = hook(&t, &["uninstall"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(fs::read(&pre).unwrap(), pre_bytes);
    assert!(fs::symlink_metadata(&pre).unwrap().is_file());
    assert!(!t.0.join("conf/vps.postumount").exists());
    assert!(!t.0.join("conf/vzfs-chained").exists());

    // --chain and --force exclude each other (clap usage error, exit 2).
    assert_eq!(
        hook(&t, &["install", "--chain", "--force"]).status.code(),
        Some(2)
    );
}

#[test]
fn hook_runs_the_chained_script_in_order_with_vzctls_env() {
    let t = tmp("chain");
    let (_, pre_bytes) = admin(&t, "vps.premount", "");
    admin(
        &t,
        "vps.postumount",
        &format!("[ -e {}/fail ] && exit 5", t.0.display()),
    );
    assert!(hook(&t, &["install", "--chain"]).status.success());
    fs::create_dir_all(t.0.join("private")).unwrap();

    let o = as_vzctl(&t, "vps.premount");
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    let ours = e.find("vzfs-hook: CT 101").expect(&e);
    let theirs = e.find("ADMIN vps.premount").expect(&e);
    assert!(ours < theirs, "premount: ours first:\n{e}");
    let chained = t.0.join("conf/vzfs-chained/vps.premount");
    assert_eq!(
        fs::read_to_string(t.0.join("vps.premount.argv")).unwrap(),
        format!("{}\n0\n", chained.display())
    );
    let env = fs::read(t.0.join("vps.premount.env")).unwrap();
    let want = format!(
        "HOME=/\0TERM=linux\0{PATH}\0VEID=101\0VE_CONFFILE={}\0",
        t.0.join("conf/101.conf").display()
    );
    // /proc/$$/environ: the environment the script was exec'd with, before
    // the shell adds anything (order aside: Command rebuilds it sorted).
    let mut got: Vec<&[u8]> = env.split(|b| *b == 0).filter(|s| !s.is_empty()).collect();
    let mut exp: Vec<&[u8]> = want
        .as_bytes()
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .collect();
    got.sort();
    exp.sort();
    assert_eq!(got, exp, "environment of the chained script");
    assert_eq!(
        fs::read_to_string(t.0.join("vps.premount.stdin"))
            .unwrap()
            .trim(),
        "/dev/null"
    );
    assert_eq!(fs::read(&chained).unwrap(), pre_bytes);

    let o = as_vzctl(&t, "vps.postumount");
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    let theirs = e.find("ADMIN vps.postumount").expect(&e);
    let ours = e.find("vzfs-hook: CT 101").expect(&e);
    assert!(theirs < ours, "postumount: theirs first:\n{e}");

    // Their failure: exit 11 naming the script; ours still ran.
    fs::write(t.0.join("fail"), "").unwrap();
    let o = as_vzctl(&t, "vps.postumount");
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(11), "{e}");
    assert!(
        e.contains("chained admin script") && e.contains("exited with status 5"),
        "{e}"
    );
    assert!(
        e.contains("nothing to unmount"),
        "ours did not run after theirs failed:\n{e}"
    );

    // An unsafe chained script: the hook refuses (exit 4) and runs nothing.
    fs::set_permissions(&chained, fs::Permissions::from_mode(0o777)).unwrap();
    let runs = fs::read_to_string(t.0.join("vps.premount.argv")).unwrap();
    let o = as_vzctl(&t, "vps.premount");
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(4), "{e}");
    assert!(
        e.contains("writable by group or others") && !e.contains("ADMIN"),
        "{e}"
    );
    assert_eq!(
        fs::read_to_string(t.0.join("vps.premount.argv")).unwrap(),
        runs
    );
}
