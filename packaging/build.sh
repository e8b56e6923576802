#!/bin/bash
# Builds the packages from one release build:
#   $CARGO_TARGET_DIR/debian/worker-watcher.deb          (cargo-deb)
#   $CARGO_TARGET_DIR/generate-rpm/worker-watcher.rpm    (cargo-generate-rpm)
# and prints their paths on stdout, one a line; everything else goes to stderr.
#
#   packaging/build.sh            # both
#   packaging/build.sh deb        # one of them
#   packaging/build.sh rpm
#
# The packagers are installed with `cargo install --locked` at the versions the metadata in
# Cargo.toml was written and tested with, if missing. cargo-deb gzips what it installs under
# usr/share/man itself; for the rpm the pages are gzipped here (gzip -9n: no name, no time,
# so the same source gives the same bytes) into $CARGO_TARGET_DIR/release/man/, which the
# rpm's assets name as target/release/man/.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
CARGO_DEB_VERSION=3.8.0
CARGO_GENERATE_RPM_VERSION=0.21.1

log() { echo "build.sh: $*" >&2; }

# tool CRATE VERSION: installs the cargo subcommand CRATE at VERSION if it is missing.
tool() {
    if ! command -v "$1" >/dev/null; then
        log "installing $1 $2"
        cargo install "$1" --version "$2" --locked >&2
    fi
}

release_build() {
    log "cargo build --release"
    (cd "$REPO" && cargo build --release --locked >&2)
}

gzip_man_pages() {
    local out=$CARGO_TARGET_DIR/release/man page
    mkdir -p "$out"
    for page in "$REPO"/man/*.[1-8]; do
        gzip -9n -c "$page" >"$out/$(basename "$page").gz"
    done
}

build_deb() {
    local out=$CARGO_TARGET_DIR/debian/worker-watcher.deb
    tool cargo-deb "$CARGO_DEB_VERSION"
    log "cargo deb"
    (cd "$REPO" && cargo deb --no-build --quiet --output "$out" >&2)
    echo "$out"
}

build_rpm() {
    local out=$CARGO_TARGET_DIR/generate-rpm/worker-watcher.rpm
    tool cargo-generate-rpm "$CARGO_GENERATE_RPM_VERSION"
    gzip_man_pages
    mkdir -p "$(dirname "$out")"
    log "cargo generate-rpm"
    (cd "$REPO" && cargo generate-rpm --output "$out" >&2)
    echo "$out"
}

main() {
    local what=${1:-all}
    case $what in
        all | deb | rpm) ;;
        *) echo "usage: packaging/build.sh [deb|rpm]" >&2; exit 2 ;;
    esac
    release_build
    if [[ $what == all || $what == deb ]]; then build_deb; fi
    if [[ $what == all || $what == rpm ]]; then build_rpm; fi
}

main "$@"
