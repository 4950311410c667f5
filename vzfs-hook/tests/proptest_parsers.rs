//! Property tests for every parser of on-disk or /proc data: superblocks and
//! MMP blocks (random bytes, and real `mkfs.ext4 -O mmp` / `mkfs.xfs` images
//! with bytes mutated), mountinfo lines, config files and the node index
//! (`vzfs::nodecache`). The property is
//! always "no panic, ever" (no overflow, no out-of-range slice), plus what
//! an accepted result must satisfy. Bounded case counts keep `make test`
//! quick. The images are made with mkfs on plain files under cargo's
//! `target/tmp` (no root needed); a missing mkfs fails the test with what
//! to install.

use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use vzfs::device::{self, parse_mmp, probe_bytes, Probe};

struct Images {
    _dir: PathBuf,
    ext4: PathBuf,
    /// First 4 KiB of the ext4 image.
    ext4_head: Vec<u8>,
    /// Its MMP block (1 KiB) and the block number.
    mmp: Vec<u8>,
    mmp_block: u64,
    xfs_head: Vec<u8>,
}

fn mkfs(tool: &str, args: &[&str], image: &Path, mib: u64) {
    let f = std::fs::File::create(image).unwrap();
    f.set_len(mib << 20).unwrap();
    let out = Command::new(tool)
        .args(args)
        .arg(image)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {tool} ({e}): run `sh scripts/install-prereqs` (e2fsprogs, xfsprogs)"
            )
        });
    assert!(
        out.status.success(),
        "{tool} {}: {}",
        image.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn images() -> &'static Images {
    static IMAGES: OnceLock<Images> = OnceLock::new();
    IMAGES.get_or_init(|| {
        // Under target/tmp (cargo's scratch space for tests): replaced by the
        // next run, never left in /tmp.
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("vzfs-proptest");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ext4 = dir.join("ext4-mmp.img");
        mkfs(
            "mkfs.ext4",
            &["-q", "-F", "-O", "mmp", "-E", "mmp_update_interval=1"],
            &ext4,
            32,
        );
        let xfs = dir.join("xfs.img");
        mkfs("mkfs.xfs", &["-q", "-f"], &xfs, 320);
        let ext4_head = std::fs::read(&ext4).unwrap()[..4096].to_vec();
        let Probe::Fs(fs) = device::probe(&ext4).unwrap() else {
            panic!("mkfs.ext4 made no ext4")
        };
        let ext = fs.ext.unwrap();
        let (mmp_block, _) = ext.mmp.expect("mkfs.ext4 -O mmp made no MMP block");
        let all = std::fs::read(&ext4).unwrap();
        let off = (mmp_block * ext.block_size) as usize;
        let mmp = all[off..off + 1024].to_vec();
        let xfs_head = std::fs::read(&xfs).unwrap()[..4096].to_vec();
        std::fs::remove_file(&xfs).unwrap();
        Images {
            _dir: dir,
            ext4,
            ext4_head,
            mmp,
            mmp_block,
            xfs_head,
        }
    })
}

fn no_btrfs() -> vzfs::Result<Vec<u8>> {
    Ok(vec![0; 4096])
}

/// What an accepted superblock must satisfy.
fn check_accepted(p: &Probe) -> Result<(), TestCaseError> {
    if let Probe::Fs(fs) = p {
        if let Some(ext) = &fs.ext {
            prop_assert!(ext.block_size >= 1024 && ext.block_size <= 65536);
            if let Some((block, interval)) = ext.mmp {
                prop_assert!(block > 0);
                prop_assert!(interval <= device::MMP_MAX_UPDATE_INTERVAL);
            }
        }
    }
    Ok(())
}

/// (offset, byte) mutations applied to a copy of `base`.
fn mutate(base: &[u8], muts: &[(usize, u8)]) -> Vec<u8> {
    let mut b = base.to_vec();
    for &(o, v) in muts {
        let i = o % b.len();
        b[i] = v;
    }
    b
}

#[test]
fn real_images_are_recognised() {
    let im = images();
    let Probe::Fs(fs) = probe_bytes(Path::new("ext4"), &im.ext4_head, no_btrfs).unwrap() else {
        panic!()
    };
    assert_eq!(fs.fstype, "ext4");
    let m = parse_mmp(Path::new("ext4"), im.mmp_block, &im.mmp).unwrap();
    assert!(m.is_clean(), "a fresh MMP filesystem is clean");
    let Probe::Fs(fs) = probe_bytes(Path::new("xfs"), &im.xfs_head, no_btrfs).unwrap() else {
        panic!()
    };
    assert_eq!(fs.fstype, "xfs");
}

#[test]
fn an_mmp_block_near_2_pow_64_is_a_device_error_naming_the_field() {
    let im = images();
    let mut head = im.ext4_head.clone();
    head[1024 + 0x168..1024 + 0x170].copy_from_slice(&(u64::MAX - 3).to_le_bytes());
    let e = probe_bytes(&im.ext4, &head, no_btrfs).unwrap_err();
    assert_eq!(e.exit_code(), 3, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("s_mmp_block") && msg.contains(&im.ext4.display().to_string()),
        "{msg}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_superblocks_never_panic(head in proptest::collection::vec(any::<u8>(), 0..5000),
                                      btrfs in proptest::collection::vec(any::<u8>(), 0..5000)) {
        if let Ok(p) = probe_bytes(Path::new("r"), &head, || Ok(btrfs.clone())) {
            check_accepted(&p)?;
        }
    }

    #[test]
    fn mutated_ext4_superblocks_never_panic(
        muts in proptest::collection::vec((1024usize..2048, any::<u8>()), 1..12)
    ) {
        let im = images();
        let head = mutate(&im.ext4_head, &muts);
        if let Ok(p) = probe_bytes(&im.ext4, &head, no_btrfs) {
            check_accepted(&p)?;
            // Follow the (mutated) MMP pointer into the real image.
            if let Probe::Fs(fs) = p {
                if let Some(ext) = fs.ext {
                    let r = device::Reader::open(&im.ext4).unwrap();
                    if let Err(e) = r.read_mmp(&ext) {
                        prop_assert_eq!(e.exit_code(), 3, "{}", e);
                    }
                }
            }
        } else if let Err(e) = probe_bytes(&im.ext4, &head, no_btrfs) {
            prop_assert_eq!(e.exit_code(), 3, "{}", e);
        }
    }

    #[test]
    fn mutated_and_random_mmp_blocks_never_panic(
        muts in proptest::collection::vec((0usize..1024, any::<u8>()), 1..16),
        random in proptest::collection::vec(any::<u8>(), 0..1200),
    ) {
        let im = images();
        let _ = parse_mmp(&im.ext4, im.mmp_block, &mutate(&im.mmp, &muts));
        let _ = parse_mmp(&im.ext4, u64::MAX, &random);
    }

    #[test]
    fn mutated_xfs_superblocks_never_panic(
        muts in proptest::collection::vec((0usize..512, any::<u8>()), 1..12)
    ) {
        let im = images();
        if let Ok(p) = probe_bytes(Path::new("xfs"), &mutate(&im.xfs_head, &muts), no_btrfs) {
            check_accepted(&p)?;
        }
    }

    #[test]
    fn mountinfo_lines_never_panic(line in "[ -~\\t\\\\]{0,200}", text in ".{0,300}") {
        let _ = vzfs::mountinfo::parse_line(Path::new("m"), 1, &line);
        let _ = vzfs::mountinfo::MountTable::parse(Path::new("m"), &text);
    }

    #[test]
    fn mountinfo_paths_round_trip(name in "[a-z \\t\\n\\\\]{1,20}") {
        // The kernel escapes space, tab, newline and backslash as octal.
        let esc: String = name.chars().map(|c| match c {
            ' ' => "\\040".to_string(),
            '\t' => "\\011".to_string(),
            '\n' => "\\012".to_string(),
            '\\' => "\\134".to_string(),
            c => c.to_string(),
        }).collect();
        let line = format!("36 35 98:0 / /vz/{esc} rw,noatime master:1 - ext4 /dev/sda1 rw,errors=continue");
        let e = vzfs::mountinfo::parse_line(Path::new("m"), 1, &line).unwrap();
        prop_assert_eq!(e.mount_point, PathBuf::from(format!("/vz/{name}")));
    }

    #[test]
    fn config_files_never_panic(text in "(?s).{0,400}") {
        if let Ok(f) = vzfs::config::parse(Path::new("c"), &text) {
            let g = vzfs::config::ConfigFile { path: "g".into(), entries: vec![] };
            let c = vzfs::config::VzConfig::from_files(g, f, "101");
            let _ = c.check_vzfs_keys();
            let _ = vzfs::hook::CtFs::from_config(&c);
        }
    }

    #[test]
    fn node_index_never_panics(text in "(?s).{0,400}", lines in prop::collection::vec("(ct|fs|anc|dir|global|built|end)( [ -~]{0,40}){0,12}", 0..8)) {
        let _ = vzfs::nodecache::NodeCache::parse(&text);
        let t = format!("vzfs-node-cache 1\n{}\n", lines.join("\n"));
        if let Some(c) = vzfs::nodecache::NodeCache::parse(&t) {
            // what parses renders back to what parses the same
            prop_assert_eq!(vzfs::nodecache::NodeCache::parse(&c.render()), Some(c));
        }
    }

    #[test]
    fn node_index_paths_round_trip(bytes in prop::collection::vec(any::<u8>(), 0..60)) {
        use std::os::unix::ffi::OsStringExt;
        let p = PathBuf::from(std::ffi::OsString::from_vec(bytes));
        let e = vzfs::nodecache::escape(&p);
        prop_assert!(!e.contains(' ') && !e.contains('\n'));
        prop_assert_eq!(vzfs::nodecache::unescape(&e), Some(p));
    }

}
