#!/bin/bash
# Build, once, the minimal Debian 12 root that the system suite boots, and cache it.
#
#   tests/system/rootfs.sh            # prints the cached root's path; builds it if missing
#
# The cache lives in $WW_CI_CACHE (default /var/cache/worker-watcher-ci). It is built in a
# temporary folder and renamed into place only when debootstrap succeeded, so an interrupted
# build never leaves a half root that later runs would trust. Delete the folder to rebuild.
set -euo pipefail

CACHE_DIR=${WW_CI_CACHE:-/var/cache/worker-watcher-ci}
SUITE=${WW_CI_SUITE:-bookworm}
MIRROR=${WW_CI_MIRROR:-http://deb.debian.org/debian}
# What an operator's minimal Debian 12 has, plus what the suites drive: systemd as PID 1,
# dbus for systemctl, curl to scrape metrics, man-db (`man -w` finds the installed pages),
# rpm (tests/packaging/rpm.sh installs the .rpm under this systemd too). Nothing the .deb
# would need is added here: installing it on this root is the test that it needs nothing else.
INCLUDE=systemd,systemd-sysv,dbus,curl,man-db,rpm
# The cache is named after what it holds, so that a change of INCLUDE builds a new root
# instead of trusting an old one (and roots of other branches are left alone).
ROOTFS=$CACHE_DIR/$SUITE-rootfs-$(printf '%s' "$INCLUDE" | sha256sum | cut -c1-8)
STAMP=$ROOTFS/.worker-watcher-ci-complete

need_root_tools() {
    local missing=()
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
    if ((${#missing[@]})); then
        echo "rootfs: installing ${missing[*]}" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
    fi
}

build_rootfs() {
    local tmp
    mkdir -p "$CACHE_DIR"
    tmp=$(mktemp -d "$CACHE_DIR/.build.XXXXXX")
    echo "rootfs: debootstrap $SUITE into $tmp (once; cached afterwards)" >&2
    if ! debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$tmp" "$MIRROR" \
        >"$CACHE_DIR/debootstrap.log" 2>&1; then
        echo "rootfs: debootstrap failed; see $CACHE_DIR/debootstrap.log" >&2
        rm -rf --one-file-system "$tmp"
        return 1
    fi
    # A container booted from a copy of this root must not share a machine id with its
    # siblings; an empty file makes systemd generate a fresh one at each boot.
    : >"$tmp/etc/machine-id"
    # mktemp made the folder 0700; as a root directory it must let every user through.
    chmod 0755 "$tmp"
    date -u +%FT%TZ >"$tmp/.worker-watcher-ci-complete"
    rm -rf --one-file-system "$ROOTFS"
    mv "$tmp" "$ROOTFS"
}

main() {
    if [[ -f $STAMP ]]; then
        echo "rootfs: reusing $ROOTFS (built $(cat "$STAMP"))" >&2
    else
        need_root_tools
        build_rootfs
    fi
    echo "$ROOTFS"
}

main "$@"
