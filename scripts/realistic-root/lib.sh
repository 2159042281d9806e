# shellcheck shell=bash
# Shared by build, cached-root and check (sourced, not run).
#
# Where things are, all overridable by the environment:
#   LQ_UPSTREAM  the upstream snapshots (default: ../shared/upstream beside the repository)
#   LQ_CACHE     the cache folder of cached-root (default: ~/.cache/lq)
#   LQ_MIRROR    Debian's mirror (default: http://deb.debian.org/debian)

# Used by the scripts that source this file.
# shellcheck disable=SC2034
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC2034
repo=$(cd "$here/../.." && pwd)
# shellcheck disable=SC2034
upstream=${LQ_UPSTREAM:-$repo/../shared/upstream}
# shellcheck disable=SC2034
mirror=${LQ_MIRROR:-http://deb.debian.org/debian}

die() {
    echo "realistic-root: $*" >&2
    exit 1
}

say() {
    echo "realistic-root: $*" >&2
}

# The one upstream tarball whose name starts with $1.
upstream_tarball() {
    local matches=("$upstream/$1"-*.tar.gz)
    [ -e "${matches[0]}" ] || die "no $1-*.tar.gz in $upstream (set LQ_UPSTREAM)"
    [ "${#matches[@]}" -eq 1 ] || die "more than one $1-*.tar.gz in $upstream"
    echo "${matches[0]}"
}

# The release named on the command line: trixie (debian-13-minimal) or bookworm (debian-12-minimal).
release_arg() {
    case "${1:-trixie}" in
        trixie | bookworm) echo "${1:-trixie}" ;;
        *) die "release must be trixie or bookworm, not '$1'" ;;
    esac
}

# Lines of a package list without comments and blanks.
list_packages() {
    sed 's/#.*//; s/[[:space:]]\+$//; /^[[:space:]]*$/d' "$@"
}

# Mount what a chroot needs; call only inside `unshare --mount`, so that the
# mounts vanish with the namespace whatever happens.
mount_chroot() {
    local root=$1
    mount --make-rprivate /
    mount -t proc proc "$root/proc"
    mount -t sysfs sysfs "$root/sys"
    mount --rbind /dev "$root/dev"
    mount -t tmpfs tmpfs "$root/run"
}

umount_chroot() {
    local root=$1 point
    for point in run dev sys proc; do
        umount -R "$root/$point" 2>/dev/null || umount -l "$root/$point" 2>/dev/null || true
    done
}

in_root() {
    local root=$1
    shift
    chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive "$@"
}

# root_args SCRIPT ARGS...: the arguments of check, boot and slim
# (ROOT_TARBALL LQ_BINARY MANIFEST) as absolute paths in $tarball, $lq and
# $manifest; then the script runs again in a mount namespace of its own.
root_args() {
    local script=$1
    shift
    [ "$#" -eq 3 ] || die "usage: $script ROOT_TARBALL LQ_BINARY MANIFEST"
    [ -f "$1" ] || die "no root tarball $1"
    [ -x "$2" ] || die "no lq binary $2"
    [ -f "$3" ] || die "no manifest $3"
    tarball=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
    lq=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
    manifest=$(cd "$(dirname "$3")" && pwd)/$(basename "$3")
    [ "$(id -u)" -eq 0 ] || die "$script needs root (chroot, unshare, losetup)"
    if [ "${LQ_ROOT_UNSHARED:-}" != 1 ]; then
        LQ_ROOT_UNSHARED=1 exec unshare --mount -- "$0" "$@"
    fi
}

# A temporary folder for check, boot or slim: $work (kept with LQ_KEEP=1), $root in
# it, and $failures, the list fail() appends to. At exit, the caller's
# cleanup_extra (if it defines one) runs before the chroot is unmounted.
start_work() {
    work=$(mktemp -d "${TMPDIR:-/tmp}/lq-realistic-$1.XXXXXX")
    root=$work/root
    failures=$work/failures
    : >"$failures"
    trap finish_work EXIT
}

finish_work() {
    if declare -F cleanup_extra >/dev/null; then cleanup_extra || true; fi
    umount_chroot "$root"
    if [ "${LQ_KEEP:-0}" = 1 ]; then say "kept $work"; else rm -rf "$work"; fi
}

fail() { # CHECK PATH MESSAGE...
    local check=$1 path=$2
    shift 2
    printf 'FAIL (%s) %s: %s\n' "$check" "$path" "$*" | tee -a "$failures"
}

note() {
    printf 'note: %s\n' "$*"
}

# The template package to give apply (docs/packaging.md): LQ_DEB, else the one scripts/release made in
# .build-release/dist; it must be of lq's release.
template_package() {
    local deb=${LQ_DEB:-}
    [ -n "$deb" ] || deb=$(compgen -G "$repo/.build-release/dist/lq-inqube_*_amd64.deb" | head -n 1) ||
        die "no template package in .build-release/dist: scripts/release (or set LQ_DEB)"
    [ -f "$deb" ] || die "no template package $deb (LQ_DEB)"
    cp "$deb" "$work/tools/"
}

# apply_to_root TARBALL LQ MANIFEST: unpacks the root into $root and runs
# `LQ plan --json` (into $work/plan.json) and `LQ apply` of MANIFEST with
# --in-qube folder:$root (the keys qube's files in $work/keys), the store a
# copy of examples/qubes-default.xml; then, in the root, the command apply
# recorded that installs the template package (a folder only records it).
# Sets $release.
apply_to_root() {
    local tarball=$1 lq=$2 manifest=$3
    mkdir -p "$root" "$work/keys/home/user" "$work/policy.d" "$work/qubes-rpc" "$work/tools" "$work/manifest"
    tar --numeric-owner -xf "$tarball" -C "$root"
    chown 1000:1000 "$work/keys/home/user"
    release=$(cat "$root/usr/share/lq-realistic-root/release")
    cp "$repo/examples/qubes-default.xml" "$work/qubes.xml"
    # The manifest's folder (saved networks beside it): secrets are private to root.
    cp -a "$(dirname "$manifest")/." "$work/manifest/"
    find "$work/manifest" -type f -name '*.nmconnection' -exec chmod 600 {} +
    template_package
    local common=(-f "$work/manifest/$(basename "$manifest")" --store "$work/qubes.xml" --policy-dir "$work/policy.d"
        --rpc-dir "$work/qubes-rpc" --in-qube "folder:$root,core-keys=$work/keys" --binaries "$work/tools")
    "$lq" plan "${common[@]}" --json >"$work/plan.json" 2>"$work/plan.err" ||
        { cat "$work/plan.err" >&2; die "lq plan failed"; }
    "$lq" apply "${common[@]}" >"$work/apply.log" 2>&1 ||
        { tail -n 20 "$work/apply.log" >&2; die "lq apply failed"; }
    local install
    install=$(grep -m 1 '/template-package install ' "$root/var/lib/liteqube/commands") || die "lq apply recorded no template package install"
    mount_chroot "$root"
    in_root "$root" sh -c "$install" >"$work/template-package.log" 2>&1 ||
        { tail -n 20 "$work/template-package.log" >&2; die "the template package does not install: $install"; }
    umount_chroot "$root"
    say "lq apply of $(basename "$manifest") on the $release root: done, the template package installed"
}
