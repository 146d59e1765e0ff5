#!/usr/bin/env bash
# syslog-ng for the syslog output's tests, beside rsyslog: Debian's syslog-ng-core conflicts
# with rsyslog, so it is downloaded (not installed) and unpacked with dpkg -x into
# .pytest_cache/syslog-ng/ (or $1), where tests/outputs/syslog/conftest.py runs it from with
# LD_LIBRARY_PATH and --module-path. Its shared-library dependencies are ordinary packages.
# json-parser is in syslog-ng-core itself; Debian 12's syslog-ng 3.38 has no cef-parser.
set -euo pipefail
dest="${1:-$(dirname "$0")/../.pytest_cache/syslog-ng}"
apt-get install -y --no-install-recommends libivykis0 libnet1 libpcre3 libwrap0 libjson-c5 \
    libglib2.0-0 libcap2 libssl3 libsystemd0
mkdir -p "$dest"
dest="$(cd "$dest" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
chmod 777 "$work"   # apt's download user must be able to write there
(cd "$work" && apt-get download syslog-ng-core)
for deb in "$work"/*.deb; do dpkg -x "$deb" "$dest/root"; done
"$dest/root/usr/sbin/syslog-ng" --version >/dev/null 2>&1 \
    || LD_LIBRARY_PATH="$dest/root/usr/lib/syslog-ng" "$dest/root/usr/sbin/syslog-ng" --version | head -1
echo "syslog-ng unpacked in $dest/root"
