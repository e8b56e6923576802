#!/bin/bash
# Prints the path of a valkey-server 8 binary, fetching it first if needed: Debian
# bookworm-backports' valkey-server and valkey-tools packages, downloaded with a private apt
# list (the machine's sources are not changed) and unpacked with dpkg -x (nothing installed;
# its libraries are those redis-server already pulls in). Exits 1 with a reason on stderr
# when it cannot. Used by .ci/run to run the engine tests on Valkey too (WW_REDIS_SERVER).
set -euo pipefail
cache=${VALKEY_CACHE:-/var/cache/worker-watcher-valkey}
bin=$cache/root/usr/bin/valkey-server
if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then echo "$bin"; exit 0; fi
mkdir -p "$cache/lists/partial" "$cache/archives/partial"
echo "deb http://deb.debian.org/debian bookworm-backports main" >"$cache/sources.list"
apt_opts=(-o "Dir::Etc::sourcelist=$cache/sources.list" -o Dir::Etc::sourceparts=/nonexistent
    -o "Dir::State::Lists=$cache/lists" -o "Dir::Cache=$cache" -o "Dir::Cache::archives=$cache/archives"
    -o APT::Sandbox::User=root)
apt-get "${apt_opts[@]}" update -qq >&2
cd "$cache/archives"
apt-get "${apt_opts[@]}" download valkey-server valkey-tools >&2
rm -rf "$cache/root"
for deb in "$cache"/archives/valkey-*.deb; do dpkg -x "$deb" "$cache/root"; done
"$bin" --version >&2
echo "$bin"
