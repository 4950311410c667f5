//! Section 8 pages: clap_mangen renders the name, synopsis, description and
//! options from the clap definitions, and each subcommand's synopsis and
//! options in a SUBCOMMANDS section; this module adds the exit codes, files,
//! environment, examples (the seed's scenarios) and see-also.

use crate::roff::{esc, example, para, section, tp};
use clap_mangen::Man;

fn render(f: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> String {
    let mut buf = Vec::new();
    f(&mut buf).expect("writing into a Vec cannot fail");
    String::from_utf8(buf).expect("clap_mangen writes UTF-8")
}

/// Every visible subcommand: `.SS name`, its about, synopsis and options
/// (clap_mangen's sections demoted to text under the subsection).
fn subcommands(bin: &str, cmd: &clap::Command) -> String {
    let mut o = String::new();
    let subs: Vec<&clap::Command> = cmd.get_subcommands().filter(|s| !s.is_hide_set()).collect();
    if subs.is_empty() {
        return o;
    }
    o.push_str(&section("SUBCOMMANDS"));
    for sub in subs {
        let full = format!("{bin} {}", sub.get_name());
        o.push_str(&format!(".SS \"{}\"\n", esc(&full)));

        if let Some(a) = sub.get_long_about().or(sub.get_about()) {
            o.push_str(&para(&a.to_string()));
        }
        // A build tool run once: leaking the few names is simpler than
        // clap's `string` feature for the whole workspace.
        let full: &'static str = Box::leak(full.into_boxed_str());
        let man = Man::new(sub.clone().name(full).bin_name(full));
        for part in [
            render(|w| man.render_synopsis_section(w)),
            render(|w| man.render_options_section(w)),
        ] {
            for line in part.lines() {
                if line.starts_with(".SH ") {
                    o.push_str(".PP\n");
                    continue;
                }
                o.push_str(line);
                o.push('\n');
            }
        }
    }
    o
}

/// clap_mangen does not show visible long aliases (`--live`, `--dry-run`):
/// one tagged paragraph each, under OPTIONS.
fn aliases(cmd: &clap::Command) -> String {
    let mut o = String::new();
    for a in cmd.get_arguments() {
        let (Some(long), Some(al)) = (a.get_long(), a.get_visible_aliases()) else {
            continue;
        };
        for alias in al {
            o.push_str(&tp(
                &format!("--{alias}"),
                &format!("The same as --{long}."),
            ));
        }
    }
    o
}

struct Extra {
    exit: Vec<(String, String)>,
    files: &'static [(&'static str, &'static str)],
    env: &'static [(&'static str, &'static str)],
    examples: &'static [(&'static str, &'static str)],
    see_also: &'static str,
}

fn extra(bin: &str) -> Extra {
    match bin {
        "vzfs-hook" => Extra {
            exit: vzfs::cli::EXIT_CODES
                .iter()
                .map(|(c, m)| (c.to_string(), m.to_string()))
                .collect(),
            files: &[
                ("/etc/vz/vz.conf, /etc/vz/conf/CTID.conf", "vzctl's configuration, read (never executed); see vzfs(7)"),
                ("/etc/vz/conf/vps.premount, /etc/vz/conf/vps.postumount", "symlinks to /usr/sbin/vzfs-hook made by install (CTID.premount, CTID.postumount with --ctid); /etc/sysconfig/vz-scripts where only that exists"),
                ("/etc/vz/conf/vzfs-chained/NAME", "an admin's script kept by install --chain, run by the hook started as NAME: premount after ours succeeded (not at all if ours failed), postumount before ours (ours runs even if it failed); exec'd directly with argv [its path], vzctl's environment and stdin /dev/null; it must be a root-owned regular executable file with one link, not writable by group/others, in a root-owned directory, or the hook refuses to do anything"),
                ("/etc/vz/conf/vzfs-saved/NAME", "an admin's script replaced by install --force; not run; uninstall puts it back"),
                ("LOCKDIR/vzfs-CTID.lck", "the hook's own lock (LOCKDIR from vz.conf, default /vz/lock)"),
            ],
            env: &[
                ("VEID", "the container ID (set by vzctl); its absence when started as an action script is a usage error"),
                ("VE_CONFFILE", "the container's config file (set by vzctl); default /etc/vz/conf/VEID.conf"),
            ],
            examples: &[
                ("Install on a node without hooks (the package's postinst does this):", "vzfs-hook install"),
                ("A node that has the seed's vps.premount/vps.postumount: keep them and run them from vzfs-hook, check, and undo:", "vzfs-hook install --chain\nvzfs-hook install --check\nvzfs-hook uninstall"),
                ("Only for container 101, its own 101.premount/101.postumount:", "vzfs-hook install --ctid 101"),
                ("An insulated container 123 on a SAN LUN (VE_DEVICE=\"UUID=...\" in 123.conf): what would be mounted, and mounting by hand exactly as vzctl would:", "vzfs-hook status 123\nvzfs-hook -v premount 123\nvzfs-hook postumount 123"),
            ],
            see_also: "\\fBvzfs\\fR(7), \\fBvzfs\\-migrate\\fR(8), \\fBvzctl\\fR(8), \\fBmount\\fR(8)",
        },
        "vzfs-create" => Extra {
            exit: vzfs_migrate::create::cli::EXIT_CODES
                .iter()
                .map(|(c, m)| (c.to_string(), m.to_string()))
                .collect(),
            files: &[
                ("/etc/vz/vz.conf, /etc/vz/conf/CTID.conf", "vzctl's configuration; VE_PRIVATE, VE_DEVICE and VE_DEVICE_FSTYPE are set (or the VE_DEVICE* lines removed) with the byte-preserving editor, atomically"),
                ("VE_PRIVATE/../.vzfs-create-CTID/private", "the temporary private area vzctl create fills (same filesystem as the private areas); removed at the end or by the undo"),
                ("VE_PRIVATE.vzfs-shared-CTID", "--convert: the old private directory, kept until the admin removes it (or --remove-old); its path goes to stderr and syslog"),
                ("VE_PRIVATE.vzfs-new-CTID", "--convert --to-shared: the copy of the device's files before it replaces the empty mount point"),
                ("LOCKDIR/CTID.lck", "vzctl's container lock, held for the whole run (vzctl runs with --skiplock)"),
                ("LOCKDIR/CTID.create-journal", "every step, recorded before it runs; --recover finishes from it after a crash"),
            ],
            env: &[
                ("VZFS_VZCTL", "default of --vzctl"),
                ("VZFS_CREATE_JOURNAL_DIR", "default of --journal-dir"),
                ("VZFS_FAILPOINTS", "tests only: before:STEP=fail, after:STEP=crash, undo:STEP=fail"),
            ],
            examples: &[
                ("Container 123 on its own SAN LUN, named the same on every node, a new ext4 with multi-mount protection:", "vzfs-create 123 --device /dev/disk/by-uuid/UUID --mkfs ext4 --mmp --ostemplate centos-6-x86_64 --hostname web --ipadd 10.0.0.23"),
                ("The same on a LUN that already holds an empty filesystem (only lost+found):", "vzfs-create 123 --device UUID=... --ostemplate centos-6-x86_64"),
                ("Every check and the plan, changing nothing:", "vzfs-create --check-only 123 --device /dev/sdg1 --mkfs xfs"),
                ("Move the running shared container 101 onto /dev/sdh1 (stopped, converted, started; the old directory is kept as /vz/private/101.vzfs-shared-101), and back:", "vzfs-create --convert 101 --device /dev/sdh1 --restart\nvzfs-create --convert --to-shared 101 --restart"),
                ("Finish an interrupted run after a crash:", "vzfs-create --recover 123"),
            ],
            see_also: "\\fBvzfs\\fR(7), \\fBvzfs\\-hook\\fR(8), \\fBvzfs\\-migrate\\fR(8), \\fBvzctl\\fR(8), \\fBrsync\\fR(1), \\fBtune2fs\\fR(8)",
        },
        _ => Extra {
            exit: [
                (0, "success"),
                (1, "usage"),
                (2, "container stopped (--online)"),
                (4, "cannot connect"),
                (6, "copy failed"),
                (7, "start on the target failed"),
                (8, "stop on the source failed"),
                (9, "container exists on the target"),
                (10, "no such container"),
                (12, "IP address in use on the target"),
                (13, "disk quota (vzdqdump/vzdqload) failed"),
                (14, "the target lacks vzctl or the same vzfs-migrate"),
                (15, "apply config"),
                (16, "ploop unsupported"),
                (19, "cannot read the remote config"),
                (20, "locked, or an unfinished journal (run --recover)"),
                (21, "device check"),
                (22, "device mount/unmount"),
                (23, "undo incomplete (run --recover)"),
                (24, "interrupted"),
                (25, "system error"),
            ]
            .iter()
            .map(|(c, m)| (c.to_string(), m.to_string()))
            .collect(),
            files: &[
                ("/etc/vz/vz.conf, /etc/vz/conf/CTID.conf", "vzctl's configuration (VE_DEVICE, VE_DUMP_DEVICE: see vzfs(7)); edited atomically, every other byte kept"),
                ("LOCKDIR/CTID.lck", "vzctl's container lock, held for the whole run (vzctl runs with --skiplock)"),
                ("LOCKDIR/CTID.migrate-journal", "every step, recorded before it runs; --recover finishes from it after a crash"),
            ],
            env: &[
                ("VZFS_MIGRATE_REMOTE_HELPER", "default of --remote-helper"),
                ("VZFS_VZCTL", "default of --vzctl"),
                ("VZFS_MIGRATE_JOURNAL_DIR", "default of --journal-dir"),
            ],
            examples: &[
                ("a: shared to shared, as stock vzmigrate (rsync, stop/start):", "vzfs-migrate node-b 101"),
                ("b: shared to insulated, onto the target's /dev/sdg1:", "vzfs-migrate --dst-device /dev/sdg1 node-b 123"),
                ("c: insulated to shared (VE_DEVICE dropped on the target):", "vzfs-migrate --dst-shared node-b 123"),
                ("d1: insulated to insulated on another device (data copied):", "vzfs-migrate --dst-device /dev/sdm1 node-b 123"),
                ("d2: insulated on a SAN LUN seen by both nodes: unmount here, prove it released, mount there, no copy:", "vzfs-migrate node-b 123"),
                ("Online, the dump file through a device shared between the nodes:", "vzfs-migrate --online --dump-device /dev/VG/dump node-b 123"),
                ("Every check and the plan, changing nothing; finishing the undo after a crash:", "vzfs-migrate --check-only node-b 123\nvzfs-migrate --recover 123"),
            ],
            see_also: "\\fBvzfs\\fR(7), \\fBvzfs\\-hook\\fR(8), \\fBvzmigrate\\fR(8), \\fBvzctl\\fR(8), \\fBrsync\\fR(1), \\fBssh\\fR(1)",
        },
    }
}

/// The whole page of `bin` (section 8).
pub fn page(bin: &str, cmd: clap::Command, date: &str) -> String {
    let version = env!("CARGO_PKG_VERSION");
    // Built once so that subcommands show their own options only (global
    // options are listed once, in OPTIONS).
    let unbuilt = cmd.clone();
    // man-pages(7): the title in capitals (clap_mangen's default is the
    // command's name as written), like vzfs(7)'s VZFS.
    let man = Man::new(cmd)
        .title(bin.to_uppercase())
        .section("8")
        .date(date)
        .source(format!("vzfs {version}"))
        .manual("System Administration");
    let mut o = String::new();
    o.push_str(&render(|w| man.render_title(w)));
    o.push_str(&render(|w| man.render_name_section(w)));
    o.push_str(&render(|w| man.render_synopsis_section(w)));
    o.push_str(&render(|w| man.render_description_section(w)));
    o.push_str(&render(|w| man.render_options_section(w)));
    o.push_str(&aliases(&unbuilt));
    o.push_str(&subcommands(bin, &unbuilt));
    let x = extra(bin);
    o.push_str(&section("EXIT STATUS"));
    for (c, m) in &x.exit {
        o.push_str(&tp(c, m));
    }
    o.push_str(&section("ENVIRONMENT"));
    for (k, v) in x.env {
        o.push_str(&tp(k, v));
    }
    o.push_str(&section("FILES"));
    for (k, v) in x.files {
        o.push_str(&tp(k, v));
    }
    o.push_str(&section("EXAMPLES"));
    for (what, cmds) in x.examples {
        o.push_str(&para(what));
        o.push_str(&example(cmds));
    }
    o.push_str(&section("SEE ALSO"));
    o.push_str(x.see_also);
    o.push('\n');
    o.push_str(&render(|w| man.render_version_section(w)));
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every long option `--help` shows (of the binary and of each
    /// subcommand) appears in the page.
    #[test]
    fn every_long_option_of_help_is_in_the_page() {
        for (bin, cmd) in crate::commands() {
            let page = page(bin, cmd.clone(), "2026-01-01").replace("\\-", "-");
            let mut helps = vec![cmd.clone().render_long_help().to_string()];
            let mut built = cmd.clone();
            built.build();
            for s in built.get_subcommands_mut() {
                helps.push(s.render_long_help().to_string());
            }
            let mut n = 0;
            for h in helps {
                for w in h.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']') {
                    let w = w
                        .split('=')
                        .next()
                        .unwrap()
                        .trim_end_matches(['.', ':', ')']);
                    if w.starts_with("--")
                        && w.len() > 2
                        && w[2..]
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-')
                    {
                        n += 1;
                        assert!(page.contains(w), "{bin}(8) lacks {w}");
                    }
                }
            }
            assert!(n > 5, "{bin}: only {n} long options found in --help");
        }
    }

    #[test]
    fn hook_page_has_its_sections() {
        let p = page(
            "vzfs-hook",
            <vzfs::cli::Cli as clap::CommandFactory>::command(),
            "2026-01-01",
        );
        for s in [
            ".TH VZFS-HOOK 8 ",
            ".SH SUBCOMMANDS",
            "vzfs\\-hook install",
            "\\-\\-chain",
            ".SH EXIT STATUS",
            ".SH FILES",
            "vzfs\\-chained",
            ".SH EXAMPLES",
        ] {
            assert!(p.contains(s), "missing {s:?}:\n{p}");
        }
    }
}
