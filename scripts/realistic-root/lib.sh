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
