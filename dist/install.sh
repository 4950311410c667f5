#!/bin/sh
# vzfs: install or remove vzfs-hook on an OpenVZ (vzctl 4.x) host.
#
#   install.sh install   [--force] [--bin FILE] [--root DIR] [--scripts-dir DIR]
#       copies vzfs-hook to /usr/sbin/vzfs-hook (and vzfs-migrate/vzfs-create
#       when they are next to it) and makes vzctl's action scripts
#       vps.premount and vps.postumount symlinks to it.
#   install.sh link      [--force] [--root DIR] [--scripts-dir DIR]
#       only the two symlinks (the binary is already installed: packages).
#   install.sh unlink    [--root DIR] [--scripts-dir DIR]
#       removes the two symlinks if they point at vzfs-hook, and puts back
#       what `install --force` set aside.
#   install.sh uninstall [--root DIR] [--scripts-dir DIR]
#       unlink, then removes the installed binaries.
#
# An existing vps.premount/vps.postumount that is not our symlink (the seed's
# shell hooks, say) is never replaced without --force; with --force it is
# kept as NAME.vzfs-saved (and `unlink` restores it).
#
# --root DIR installs under DIR instead of / (staging, tests).
# --scripts-dir defaults to /etc/vz/conf, or /etc/sysconfig/vz-scripts when
# only that one exists (some distributions' vzctl).
#
# Exit codes: 0 done; 1 usage; 2 refused (an existing different hook, use
# --force); 3 a file operation failed.
set -eu

BIN_NAME=vzfs-hook
SBIN=/usr/sbin
HOOKS="vps.premount vps.postumount"
EXTRA_BINS="vzfs-migrate vzfs-create"

prog=${0##*/}
say() { printf '%s: %s\n' "$prog" "$*"; }
die() { code=$1; shift; printf '%s: error: %s\n' "$prog" "$*" >&2; exit "$code"; }

usage() {
    sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'
    exit "${1:-1}"
}

[ $# -ge 1 ] || usage 1
action=$1
shift
case $action in
    install|link|unlink|uninstall) ;;
    -h|--help|help) usage 0 ;;
    *) printf '%s: error: unknown action %s\n' "$prog" "$action" >&2; usage 1 ;;
esac

force=no
bin=
root=
scripts=
while [ $# -gt 0 ]; do
    case $1 in
        --force) force=yes ;;
        --bin) [ $# -ge 2 ] || die 1 "--bin needs a file"; bin=$2; shift ;;
        --root) [ $# -ge 2 ] || die 1 "--root needs a directory"; root=${2%/}; shift ;;
        --scripts-dir) [ $# -ge 2 ] || die 1 "--scripts-dir needs a directory"; scripts=$2; shift ;;
        -h|--help) usage 0 ;;
        *) die 1 "unknown option $1 (see $prog --help)" ;;
    esac
    shift
done

if [ -n "$root" ] && [ ! -d "$root" ]; then
    die 1 "--root $root is not a directory"
fi
if [ -z "$root" ] && [ "$(id -u)" != 0 ]; then
    die 1 "run as root (or stage with --root DIR)"
fi

if [ -z "$scripts" ]; then
    if [ ! -d "$root/etc/vz/conf" ] && [ -d "$root/etc/sysconfig/vz-scripts" ]; then
        scripts=/etc/sysconfig/vz-scripts
    else
        scripts=/etc/vz/conf
    fi
fi
target=$SBIN/$BIN_NAME           # what the symlinks point at (inside the host)
sdir=$root$scripts

# is_ours FILE: FILE is a symlink to vzfs-hook.
is_ours() {
    [ -L "$1" ] || return 1
    l=$(readlink "$1")
    [ "$l" = "$target" ] || [ "$l" = "$root$target" ]
}

do_link() {
    [ -d "$sdir" ] || die 3 "$sdir does not exist: is vzctl installed? (--scripts-dir DIR for another place)"
    # Check both first, so nothing changes when one of them is refused.
    for h in $HOOKS; do
        f=$sdir/$h
        if [ -e "$f" ] || [ -L "$f" ]; then
            is_ours "$f" && continue
            if [ "$force" != yes ]; then
                what=$( [ -L "$f" ] && printf 'a symlink to %s' "$(readlink "$f")" || printf 'a file' )
                die 2 "$f exists and is $what, not vzfs-hook; it is left alone. Check it (the seed's shell hook?), then rerun with --force to set it aside as $h.vzfs-saved"
            fi
            if [ -e "$f.vzfs-saved" ] || [ -L "$f.vzfs-saved" ]; then
                die 2 "$f.vzfs-saved already exists; move it away first (it is an earlier hook set aside by this script)"
            fi
        fi
    done
    for h in $HOOKS; do
        f=$sdir/$h
        if is_ours "$f"; then
            say "$f -> $target (already)"
            continue
        fi
        if [ -e "$f" ] || [ -L "$f" ]; then
            mv "$f" "$f.vzfs-saved" || die 3 "cannot move $f aside"
            say "set $f aside as $f.vzfs-saved"
        fi
        ln -s "$target" "$f.vzfs-new.$$" && mv -f "$f.vzfs-new.$$" "$f" || {
            rm -f "$f.vzfs-new.$$"
            die 3 "cannot create the symlink $f"
        }
        say "$f -> $target"
    done
}

do_unlink() {
    for h in $HOOKS; do
        f=$sdir/$h
        if is_ours "$f"; then
            rm -f "$f" || die 3 "cannot remove $f"
            say "removed $f"
            if [ -e "$f.vzfs-saved" ] || [ -L "$f.vzfs-saved" ]; then
                mv "$f.vzfs-saved" "$f" || die 3 "cannot restore $f from $f.vzfs-saved"
                say "restored the earlier $f"
            fi
        elif [ -e "$f" ] || [ -L "$f" ]; then
            say "$f is not vzfs-hook: left alone"
        fi
    done
}

install_bin() {
    # $1 source, $2 name
    dst=$root$SBIN/$2
    mkdir -p "$root$SBIN" || die 3 "cannot create $root$SBIN"
    cp "$1" "$dst.vzfs-new.$$" && chmod 0755 "$dst.vzfs-new.$$" && mv -f "$dst.vzfs-new.$$" "$dst" || {
        rm -f "$dst.vzfs-new.$$"
        die 3 "cannot install $dst"
    }
    say "installed $dst"
}

case $action in
    install)
        if [ -z "$bin" ]; then
            here=$(cd "$(dirname "$0")" && pwd)
            for c in "$here/$BIN_NAME" "$here/../target/release/$BIN_NAME"; do
                if [ -x "$c" ]; then bin=$c; break; fi
            done
            [ -n "$bin" ] || die 1 "no $BIN_NAME next to this script or in ../target/release; build it (cargo build --release) or pass --bin FILE"
        fi
        [ -f "$bin" ] && [ -x "$bin" ] || die 1 "$bin is not an executable file"
        "$bin" --version >/dev/null 2>&1 || die 1 "$bin --version failed: is it vzfs-hook, built for this machine?"
        # Refuse before copying anything.
        [ -d "$sdir" ] || die 3 "$sdir does not exist: is vzctl installed? (--scripts-dir DIR for another place)"
        if [ "$force" != yes ]; then
            for h in $HOOKS; do
                f=$sdir/$h
                if { [ -e "$f" ] || [ -L "$f" ]; } && ! is_ours "$f"; then
                    die 2 "$f exists and is not vzfs-hook; it is left alone. Check it (the seed's shell hook?), then rerun with --force to set it aside as $h.vzfs-saved"
                fi
            done
        fi
        install_bin "$bin" "$BIN_NAME"
        bdir=$(dirname "$bin")
        for b in $EXTRA_BINS; do
            if [ -x "$bdir/$b" ]; then install_bin "$bdir/$b" "$b"; fi
        done
        do_link
        ;;
    link) do_link ;;
    unlink) do_unlink ;;
    uninstall)
        do_unlink
        for b in $BIN_NAME $EXTRA_BINS; do
            if [ -e "$root$SBIN/$b" ]; then
                rm -f "$root$SBIN/$b" || die 3 "cannot remove $root$SBIN/$b"
                say "removed $root$SBIN/$b"
            fi
        done
        ;;
esac
