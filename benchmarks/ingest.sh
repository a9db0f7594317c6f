#!/bin/sh
# Ingest benchmark: `strata layer import` of a large real tree against `ostree commit` of the same
# tree into a fresh bare repository, and the SHA-256 limit of this machine, all in one run.
# Usage: benchmarks/ingest.sh [TREE]   (default /usr; run as root on a quiet machine)
set -eu
tree="${1:-/usr}"
cd "$(dirname "$0")/.."
command -v swift >/dev/null || PATH="/opt/swift/usr/bin:$PATH"
command -v ostree >/dev/null || { apt-get update -q && apt-get install -y -q ostree; }
swift build -c release --product strata >/dev/null
strata="$(swift build -c release --show-bin-path)/strata"
work="$(mktemp -d /var/tmp/strata-bench-ingest.XXXXXX)"
trap 'rm -rf "$work"' EXIT

files=$(find "$tree" -xdev -type f | wc -l)
bytes=$(find "$tree" -xdev -type f -printf '%s\n' | awk '{s+=$1} END {print s}')

# Seconds (wall clock) taken by a command; its output is discarded.
timed() { /usr/bin/time -f '%e %P' -o "$work/time" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }; cat "$work/time"; }

warm() { find "$tree" -xdev -type f -print0 | xargs -0 cat >/dev/null 2>&1 || true; sync; }

"$strata" repo init "$work/strata" >/dev/null
ostree --repo="$work/ostree" init --mode=bare
warm
set -- $(timed "$strata" layer import "$work/strata" "$tree" --name tree --version 1); strata_first=$1; strata_cpu=$2
set -- $(timed "$strata" layer import "$work/strata" "$tree" --name tree --version 2); strata_again=$1
warm
set -- $(timed ostree --repo="$work/ostree" commit --branch=tree --tree=dir="$tree"); ostree_first=$1; ostree_cpu=$2
set -- $(timed ostree --repo="$work/ostree" commit --branch=tree --tree=dir="$tree"); ostree_again=$1
sha_limit=$(openssl speed -evp sha256 -seconds 2 2>/dev/null | awk '/^sha256/ {print $NF}' | tr -d k)

awk -v files="$files" -v bytes="$bytes" -v sf="$strata_first" -v sa="$strata_again" -v of="$ostree_first" -v oa="$ostree_again" \
    -v sc="$strata_cpu" -v oc="$ostree_cpu" -v sha="$sha_limit" -v tree="$tree" 'BEGIN {
    mb = bytes / 1e6
    printf "Ingest of %s: %d files, %.0f MB (warm page cache)\n\n", tree, files, mb
    printf "| tool | first ingest (s) | files/s | MB/s | CPU | re-ingest unchanged (s) |\n|---|---|---|---|---|---|\n"
    printf "| strata layer import | %.2f | %.0f | %.0f | %s | %.2f |\n", sf, files / sf, mb / sf, sc, sa
    printf "| ostree commit (bare) | %.2f | %.0f | %.0f | %s | %.2f |\n", of, files / of, mb / of, oc, oa
    printf "| SHA-256 limit, one core (openssl speed -evp sha256, 16 KiB blocks) | | | %.0f | | |\n\n", sha / 1000
    printf "strata vs ostree: first ingest %.1fx faster, re-ingest %.1fx faster\n", of / sf, oa / sa
}'
