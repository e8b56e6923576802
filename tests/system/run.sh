#!/bin/bash
# Entry point of the system suite: builds the .deb (packaging/build.sh), then runs suite.sh
# against it in a freshly booted Debian 12 container, and engine.sh in two of them sharing a
# Redis engine. Needs root. Exits non-zero if the
# build or any step fails.
#
#   tests/system/run.sh               # build, then test
#   WW_DEB=path.deb tests/system/run.sh   # test a given .deb, no build
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}

host_tools() {
    local missing=()
    command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v jq >/dev/null || missing+=(jq)
    command -v nsenter >/dev/null || missing+=(util-linux)
    command -v pgrep >/dev/null || missing+=(procps)
    if ((${#missing[@]})); then
        echo "run.sh: installing ${missing[*]}"
        apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
    fi
}

main() {
    local deb
    [[ $EUID == 0 ]] || { echo "run.sh: the system suite needs root" >&2; exit 2; }
    host_tools
    deb=${WW_DEB:-$("$REPO/packaging/build.sh" deb)}
    echo "run.sh: testing $deb"
    local rc=0
    "$HERE/suite.sh" "$deb" || rc=$?
    # Two hosts sharing a Redis engine (issue 16, test 12).
    "$HERE/engine.sh" "$deb" || rc=$?
    return "$rc"
}

main "$@"
