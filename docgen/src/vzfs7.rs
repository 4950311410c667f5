//! vzfs(7): the configuration keys vzfs reads from vzctl's config files,
//! the syntax, the hook scripts and the files. [`KEYS`] is the one list of
//! keys; a test checks it against the README's table.

use crate::roff::{esc, example, para, section, tp};

/// Every configuration key vzfs reads, with its meaning.
pub const KEYS: &[(&str, &str)] = &[
    ("VE_DEVICE", "The container's own device: a path (/dev/sdg1), a /dev/disk/by-* link, UUID=... or LABEL=.... Absent or empty: a shared container, the hook does nothing. UUID=/LABEL= matching two devices is an error, not a guess. Set it in the container's file only: in vz.conf it would make every container insulated on the same device."),
    ("VE_DEVICE_FSTYPE", "Optional filesystem type; otherwise read from the superblock (ext2/3/4, xfs, btrfs). A type that contradicts the superblock is refused. Types are never guessed by trying."),
    ("VE_DEVICE_OPTIONS", "Mount options, mount(8) style (noatime,nodev,user_xattr). Options that change what mount does (bind, remount, move, propagation, loop, user, ...) are refused."),
    ("VE_DEVICE_FSCK", "no, auto (default: only when the superblock says the filesystem needs it; xfs and btrfs replay their log at mount) or yes (always: e2fsck -f -p, xfs_repair -n, btrfs check --readonly)."),
    ("VE_DUMP_DEVICE", "A device shared between nodes for dump files (online migration with a SAN handoff); used by vzfs-migrate --dump-device."),
    ("VZFS_VERBOSE", "0 errors and warnings only, 1 one line per action (default), 2 debug. vzctl passes no environment to its action scripts, so this is a config key."),
    ("VE_PRIVATE", "Read as vzctl reads it ($VEID and ${VEID} substituted, trailing / stripped): where VE_DEVICE is mounted. Its parent must exist."),
    ("VE_ROOT", "Read as vzctl reads it; a VE_PRIVATE inside another container's VE_ROOT or VE_PRIVATE is refused."),
    ("LOCKDIR", "vzctl's lock directory (default /vz/lock). The hook's own lock is LOCKDIR/vzfs-CTID.lck, never vzctl's CTID.lck; vzfs-migrate keeps its journal there."),
];

/// The page, for `date` (YYYY-MM-DD).
pub fn page(date: &str) -> String {
    let version = env!("CARGO_PKG_VERSION");
    let mut o = String::new();
    o.push_str(&format!(
        ".TH VZFS 7 \"{date}\" \"vzfs {version}\" \"vzfs\"\n"
    ));
    o.push_str(&section("NAME"));
    o.push_str(&format!(
        "{} \\- {}\n",
        esc("vzfs"),
        esc("every OpenVZ container on its own filesystem: configuration keys")
    ));
    o.push_str(&section("DESCRIPTION"));
    o.push_str(&para("vzfs is for OpenVZ hosts running legacy vzctl 4.x whose containers have their own filesystem (VE_DEVICE: a block device, often a SAN LUN presented to several nodes). vzfs-hook(8) mounts it before vzctl mounts the container and unmounts it afterwards; vzfs-migrate(8) migrates containers knowing their filesystems."));
    o.push_str(&para("The keys below go into the container's /etc/vz/conf/CTID.conf, or globally into /etc/vz/vz.conf; the container's file wins."));
    o.push_str(&section("CONFIGURATION KEYS"));
    for (k, v) in KEYS {
        o.push_str(&tp(k, v));
    }
    o.push_str(&section("SYNTAX"));
    o.push_str(&para("The files are never executed. They are parsed with vzctl's own rules: blank lines and lines starting with # are skipped, the line is split at the first =, a value starting with \" runs to the last \" on the line, backslash escapes are removed. KEY='value', which shell users write, is accepted too. A value that looks like shell code ($(...), backticks, ;, |, ...) in a key vzfs uses is an error naming the file and line. Edits (vzfs-migrate) keep every other byte and are atomic, as vzctl's set --save."));
    o.push_str(&section("ACTION SCRIPTS"));
    o.push_str(&para("vzctl runs vps.premount, then CTID.premount, before it mounts a container, and CTID.postumount, then vps.postumount, after it unmounted it, from /etc/vz/conf (or /etc/sysconfig/vz-scripts), with the environment HOME, TERM, PATH, VEID and VE_CONFFILE only and stdin /dev/null. vzfs-hook install makes these names symlinks to /usr/sbin/vzfs-hook. An admin's own script in their place is never replaced silently: install refuses; install --chain keeps it in vzfs-chained/ and runs it from the hook (premount: after vzfs-hook's premount succeeded; postumount: before vzfs-hook's); install --force keeps it in vzfs-saved/ without running it; uninstall puts it back."));
    o.push_str(&section("FILES"));
    for (f, what) in [
        ("/etc/vz/vz.conf", "global configuration"),
        ("/etc/vz/conf/CTID.conf", "a container's configuration"),
        (
            "/etc/vz/conf/vps.premount, /etc/vz/conf/vps.postumount",
            "symlinks to /usr/sbin/vzfs-hook (vzfs-hook install)",
        ),
        (
            "/etc/vz/conf/vzfs-chained/",
            "admin scripts run by the hook (install --chain)",
        ),
        (
            "/etc/vz/conf/vzfs-saved/",
            "admin scripts replaced by install --force, not run",
        ),
        ("LOCKDIR/vzfs-CTID.lck", "the hook's lock"),
        (
            "LOCKDIR/CTID.migrate-journal",
            "vzfs-migrate's undo journal",
        ),
        (
            "/usr/share/doc/vzfs/examples/",
            "vz.conf.example and ct.conf.example",
        ),
    ] {
        o.push_str(&tp(f, what));
    }
    o.push_str(&section("EXAMPLES"));
    o.push_str(&para(
        "An insulated container on a SAN LUN, in /etc/vz/conf/123.conf:",
    ));
    o.push_str(&example("VE_PRIVATE=\"/vz/private/$VEID\"\nVE_DEVICE=\"UUID=3e6be9de-8139-4a0e-9a8f-2a4c0b4c8a01\"\nVE_DEVICE_OPTIONS=\"noatime,nodev\"\nVE_DEVICE_FSCK=\"auto\""));
    o.push_str(&para("Creating a container on its own filesystem, as the seed describes it (vzctl refuses a non-empty private area):"));
    o.push_str(&example("vzctl create 123 --private /var/tmp/123\nmkdir /vz/private/123\nmount /dev/sda1 /vz/private/123\nmv /var/tmp/123/* /vz/private/123\numount /vz/private/123\nvzctl set 123 --private /vz/private/123 --save\necho 'VE_DEVICE=\"/dev/sda1\"' >> /etc/vz/conf/123.conf"));
    o.push_str(&section("SEE ALSO"));
    o.push_str("\\fBvzfs\\-hook\\fR(8), \\fBvzfs\\-migrate\\fR(8), \\fBvzctl\\fR(8), \\fBvz.conf\\fR(5), \\fBmount\\fR(8)\n");
    o
}
