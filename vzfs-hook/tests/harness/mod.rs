//! Test harness for the hook's root tests: every test body runs on its own
//! thread in its own private mount namespace (unshare(CLONE_FS|CLONE_NEWNS)),
//! with tmpfs over /etc/vz and /vz, so this machine's mounts are never
//! touched and every mount dies with the thread. Loop devices over sparse
//! image files are detached and helper processes killed in `Drop`, also when
//! the test panics. Without root or loop devices a test fails with a message;
//! `VZFS_SKIP_ROOT_TESTS=1` skips it and says how many were skipped.
#![allow(dead_code)]

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The vzfs-hook binary under test: this build's, or the one named by
/// `VZFS_HOOK_BIN` (`make test` runs the hook tests again against the static
/// release build that the packages ship).
pub static HOOK: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| match std::env::var("VZFS_HOOK_BIN") {
        Ok(p) if !p.is_empty() => {
            let p = std::fs::canonicalize(&p).unwrap_or_else(|e| panic!("VZFS_HOOK_BIN={p}: {e}"));
            p.to_string_lossy().into_owned()
        }
        _ => env!("CARGO_BIN_EXE_vzfs-hook").to_string(),
    });
/// The legacy profile (`make test` runs the hook's root tests a third time
/// so): `VZFS_LEGACY_C6` names the CentOS 6 toolset, `VZFS_HOOK_BIN` is a
/// wrapper running the static hook under `oldkernel` with that toolset first
/// in PATH. Filesystems are then made as an OpenVZ 6 node makes them, and the
/// tests of ext4 MMP and xfs v5 expect the hook's refusal (that kernel cannot
/// mount them; this machine's kernel may no longer mount xfs v4 at all).
pub fn legacy() -> Option<PathBuf> {
    std::env::var_os("VZFS_LEGACY_C6")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Legacy profile: `r` is the hook's refusal (exit 3, a device error) of a
/// filesystem with `feature` (as the message writes it, with the release it
/// needs) on the 2.6 kernel, and nothing of `dev` is mounted.
pub fn assert_kernel_refused(r: &HookRun, feature: &str, dev: &Path) {
    assert_code(r, 3, &format!("premount of {feature} on a 2.6.32 kernel"));
    assert!(
        r.stderr.contains(feature) && r.stderr.contains("kernel 2.6."),
        "{}",
        r.stderr
    );
    assert!(mounts_of(dev).is_empty());
}

pub const VZCTL_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

static SKIPPED: AtomicUsize = AtomicUsize::new(0);

fn precondition() -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("this test needs root (it uses loop devices, mount(2) and namespaces)".into());
    }
    if !Path::new("/dev/loop-control").exists() {
        return Err(
            "this test needs loop devices (/dev/loop-control is missing: modprobe loop)".into(),
        );
    }
    for tool in ["losetup", "mkfs.ext4", "mkfs.xfs", "unshare", "e2fsck"] {
        if !Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
        {
            return Err(format!(
                "this test needs {tool}: run `sh scripts/install-prereqs` (or `make test`)"
            ));
        }
    }
    if !Path::new("/etc/vz").is_dir() || !Path::new("/vz").is_dir() {
        return Err("/etc/vz and /vz must exist as directories (tmpfs is mounted over them in a private namespace): run `sh scripts/install-prereqs`".into());
    }
    Ok(())
}

/// Runs `body` in a fresh private mount namespace on its own thread.
/// Panics (fails) when the test cannot run, unless VZFS_SKIP_ROOT_TESTS=1.
pub fn root_test(name: &str, body: impl FnOnce(&mut World) + Send + 'static) {
    if let Err(why) = precondition() {
        if std::env::var("VZFS_SKIP_ROOT_TESTS").as_deref() == Ok("1") {
            let n = SKIPPED.fetch_add(1, Ordering::SeqCst) + 1;
            // Straight to fd 2: libtest captures eprintln! of passing tests.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "SKIPPED {name}: {why} (VZFS_SKIP_ROOT_TESTS=1; {n} root test(s) skipped in this binary so far)");
            return;
        }
        panic!(
            "{name}: cannot run: {why}. Set VZFS_SKIP_ROOT_TESTS=1 to skip root tests explicitly."
        );
    }
    let name = name.to_string();
    let h = std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            let mut w = World::new(&name);
            body(&mut w);
        })
        .unwrap();
    if let Err(p) = h.join() {
        std::panic::resume_unwind(p);
    }
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn sh(script: &str) -> String {
    String::from_utf8_lossy(&run(Command::new("sh").args(["-c", script])).stdout).into_owned()
}

/// Copies the executable `src` to `dst` with `cp`, in a child process: a
/// file this multi-threaded test process opened for writing may still be
/// open in a child another test forked at that instant, and exec'ing it
/// would then fail with ETXTBSY ("Text file busy").
pub fn copy_executable(src: &Path, dst: &Path) {
    let out = Command::new("cp").arg(src).arg(dst).output().unwrap();
    assert!(
        out.status.success(),
        "cp {} {}: {}",
        src.display(),
        dst.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A loop device over a sparse image file; detached on drop.
pub struct Loop {
    pub dev: PathBuf,
}

impl Drop for Loop {
    fn drop(&mut self) {
        // On a device still mounted in this (dying) namespace this sets
        // autoclear: the kernel detaches it when the namespace goes away.
        let out = Command::new("losetup").arg("-d").arg(&self.dev).output();
        if let Ok(o) = out {
            if !o.status.success() {
                eprintln!(
                    "harness: losetup -d {}: {}",
                    self.dev.display(),
                    String::from_utf8_lossy(&o.stderr)
                );
            }
        }
    }
}

/// One test's private world.
pub struct World {
    pub name: String,
    pub scratch: PathBuf,
    pub loops: Vec<Loop>,
    pub children: Vec<Child>,
    /// A private /dev was mounted over the real one (see `private_dev`).
    pub dev_overlay: bool,
}

impl Drop for World {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if self.dev_overlay {
            // Test cleanup only (the product never detaches lazily): the real
            // /dev must be back for losetup -d.
            let _ = nix::mount::umount2("/dev", nix::mount::MntFlags::MNT_DETACH);
        }
        self.loops.clear();
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

pub struct HookRun {
    pub code: i32,
    pub stderr: String,
    pub stdout: String,
}

impl World {
    fn new(name: &str) -> World {
        use nix::mount::{mount, MsFlags};
        use nix::sched::{unshare, CloneFlags};
        unshare(CloneFlags::CLONE_FS | CloneFlags::CLONE_NEWNS)
            .expect("unshare(CLONE_FS|CLONE_NEWNS)");
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .expect("make / rprivate");
        for d in ["/etc/vz", "/vz"] {
            mount(
                Some("tmpfs"),
                d,
                Some("tmpfs"),
                MsFlags::empty(),
                Some("mode=755"),
            )
            .expect("tmpfs");
        }
        for d in [
            "/etc/vz/conf",
            "/vz/private",
            "/vz/root",
            "/vz/lock",
            "/vz/dump",
        ] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write("/etc/vz/vz.conf", "## Global parameters\nLOCKDIR=/vz/lock\nDUMPDIR=/vz/dump\nVE_ROOT=/vz/root/$VEID\nVE_PRIVATE=/vz/private/$VEID\nVE_LAYOUT=simfs\n").unwrap();
        symlink(&*HOOK, "/etc/vz/conf/vps.premount").unwrap();
        symlink(&*HOOK, "/etc/vz/conf/vps.postumount").unwrap();
        // Images live on the real disk (not the namespace's tmpfs) in a per-test dir.
        let scratch =
            std::env::temp_dir().join(format!("vzfs-hooktest-{}-{}", std::process::id(), name));
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch).unwrap();
        World {
            name: name.into(),
            scratch,
            loops: Vec::new(),
            children: Vec::new(),
            dev_overlay: false,
        }
    }

    /// A new sparse image of `mib` MiB.
    pub fn image(&self, tag: &str, mib: u64) -> PathBuf {
        let p = self.scratch.join(format!("{tag}.img"));
        let f = std::fs::File::create(&p).unwrap();
        f.set_len(mib << 20).unwrap();
        p
    }

    /// Attaches `image` to a new loop device.
    pub fn attach(&mut self, image: &Path) -> PathBuf {
        let out = run(Command::new("losetup").args(["-f", "--show"]).arg(image));
        let dev = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        self.loops.push(Loop { dev: dev.clone() });
        dev
    }

    /// A loop device holding a fresh filesystem; `mkfs_args` go to mkfs.<fstype>.
    pub fn disk(&mut self, tag: &str, fstype: &str, mkfs_args: &[&str]) -> PathBuf {
        let img = self.image(tag, if fstype == "xfs" { 320 } else { 64 });
        let dev = self.attach(&img);
        let mut c = Command::new(format!("mkfs.{fstype}"));
        if fstype == "xfs" {
            c.arg("-q").arg("-f");
        } else {
            c.arg("-q").arg("-F");
        }
        // An OpenVZ 6 node's ext4: made by its mke2fs 1.41.12 (which has no MMP)
        if let (Some(c6), "ext4", false) = (legacy(), fstype, mkfs_args.contains(&"mmp")) {
            c = Command::new(c6.join("sbin/mke2fs"));
            c.args(["-q", "-F", "-t", "ext4"])
                .env("MKE2FS_CONFIG", c6.join("etc/mke2fs.conf"));
        }
        run(c.args(mkfs_args).arg(&dev));
        dev
    }

    /// Writes /etc/vz/conf/<ctid>.conf.
    pub fn ct_conf(&self, ctid: &str, body: &str) -> PathBuf {
        let p = PathBuf::from(format!("/etc/vz/conf/{ctid}.conf"));
        std::fs::write(&p, body).unwrap();
        p
    }

    /// Runs the hook exactly as vzctl does: argv is only the script path,
    /// the environment is exactly vzctl's, stdin is /dev/null.
    pub fn vzctl_hook(&self, script: &str, ctid: &str) -> HookRun {
        self.vzctl_hook_cmd(script, ctid)
            .output()
            .map(into_run)
            .unwrap()
    }

    pub fn vzctl_hook_cmd(&self, script: &str, ctid: &str) -> Command {
        let mut c = Command::new(format!("/etc/vz/conf/{script}"));
        c.env_clear()
            .env("HOME", "/")
            .env("TERM", "linux")
            .env("PATH", format!("{VZCTL_PATH}:{VZCTL_PATH}"))
            .env("VEID", ctid)
            .env("VE_CONFFILE", format!("/etc/vz/conf/{ctid}.conf"))
            .stdin(Stdio::null());
        c
    }

    /// Runs the admin CLI: `vzfs-hook ARGS`.
    pub fn admin(&self, args: &[&str]) -> HookRun {
        Command::new(&*HOOK)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map(into_run)
            .unwrap()
    }

    /// Gives this namespace a /dev holding only `devices` (plus null, zero,
    /// urandom), as a node on real hardware sees only its own disks.
    pub fn private_dev(&mut self, devices: &[&Path]) {
        std::fs::create_dir_all("/vz/.realdev").unwrap();
        let names: Vec<String> = ["null", "zero", "urandom"]
            .iter()
            .map(|n| n.to_string())
            .chain(
                devices
                    .iter()
                    .map(|d| d.file_name().unwrap().to_string_lossy().into_owned()),
            )
            .map(|n| format!("/vz/.realdev/{n}"))
            .collect();
        self.dev_overlay = true;
        // One shell: its stdin (/dev/null) is opened before /dev is replaced.
        sh(&format!(
            "mount --bind /dev /vz/.realdev && mount -t tmpfs devtmp /dev && cp -a {} /dev/",
            names.join(" ")
        ));
    }

    /// Keeps a helper process; it is killed when the test ends.
    pub fn keep(&mut self, c: Child) -> u32 {
        let pid = c.id();
        self.children.push(c);
        pid
    }

    pub fn kill_children(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.children.clear();
    }
}

/// Writes a container config with `VE_DEVICE` and `extra` lines.
pub fn ct(w: &World, id: &str, device: &Path, extra: &str) {
    w.ct_conf(
        id,
        &format!(
            "# CT {id}\nOSTEMPLATE=\"debian\"\nVE_DEVICE=\"{}\"\n{extra}",
            device.display()
        ),
    );
}

fn into_run(o: Output) -> HookRun {
    HookRun {
        code: o.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
    }
}

/// Mount points (in this thread's namespace) of the filesystem on `dev`.
pub fn mounts_of(dev: &Path) -> Vec<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let rdev = std::fs::metadata(dev).unwrap().rdev();
    let want = vzfs::mountinfo::DevNum::from_rdev(rdev);
    let text = std::fs::read_to_string("/proc/thread-self/mountinfo").unwrap();
    let t = vzfs::mountinfo::MountTable::parse(Path::new("mountinfo"), &text).unwrap();
    t.by_dev(want).map(|e| e.mount_point.clone()).collect()
}

pub fn assert_code(r: &HookRun, code: i32, ctx: &str) {
    assert_eq!(
        r.code, code,
        "{ctx}: expected exit {code}, got {}; stderr: {}",
        r.code, r.stderr
    );
}
