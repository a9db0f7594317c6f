#!/bin/sh
# The demo: a repository with the sample layers and real Debian packages, listed, checked out and verified.
set -eu
cd "$(dirname "$0")/.."
command -v swift >/dev/null || PATH="/opt/swift/usr/bin:$PATH"
strata="$(swift build --show-bin-path)/strata"
demo="${DEMO_DIR:-/tmp/strata-demo}"
rm -rf "$demo"
mkdir -p "$demo/debs"
export STRATA_HOME="$demo/home"

run() { printf '\n$ %s\n' "$*"; "$@"; }

run "$strata" repo init "$demo/repo"
run "$strata" repo add main "$demo/repo"
run "$strata" layer import main Layers/*
(cd "$demo/debs" && chmod 777 . && apt-get download -q bash coreutils libc6 nginx-light >/dev/null 2>&1) || echo "(apt-get download failed; continuing with the sample layers only)"
if ls "$demo/debs/"*.deb >/dev/null 2>&1; then run "$strata" layer import main "$demo/debs/"*.deb; fi
run "$strata" layer list main
run "$strata" layer show main tinyhttpd
run "$strata" layer checkout main tinyhttpd "$demo/checkout"
printf '\n$ find %s | head\n' "$demo/checkout"; find "$demo/checkout" | head
run "$strata" fsck
