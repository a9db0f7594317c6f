#!/bin/sh
# VLFS daemon memory: resident set size of the daemon freshly mounted, after `find` over every entry of
# a VLFS of N files (default 10^6: 1,000 directories of 1,000 empty files in one shared layer, plus a
# private directory of 1,000), and after the kernel drops its caches (so it forgets its inodes, and the
# daemon should forget them too). Prints one table row per strata binary given, so two builds (say,
# before and after a change) are measured in the same run on the same layer.
#
#   benchmarks/memory.sh [STRATA...]        (default: .build/release/strata)
#   FILES=100000 benchmarks/memory.sh ...   (a smaller VLFS)
#
# Needs root (mounts, drop_caches). Work directory: $BENCH_DIR (default /tmp/strata-bench-memory).
set -eu
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- .build/release/strata
files=${FILES:-1000000}
directories=$(( (files + 999) / 1000 ))
work=${BENCH_DIR:-/tmp/strata-bench-memory}
mnt="$work/mnt"

cleanup() { mountpoint -q "$mnt" && umount "$mnt" || true; }
trap cleanup EXIT INT TERM

rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }

prepare() {
    [ -f "$work/tree.$files.done" ] && return
    rm -rf "$work" && mkdir -p "$work/tree/data" "$mnt"
    python3 - "$work/tree/data" "$directories" <<'EOF'
import os, sys
root, count = sys.argv[1], int(sys.argv[2])
for d in range(count):
    path = os.path.join(root, "d%04d" % d)
    os.mkdir(path)
    for f in range(1000):
        open(os.path.join(path, "f%04d" % f), "w").close()
EOF
    touch "$work/tree.$files.done"
}

prepare
printf '| binary | entries | fresh (MiB) | after find (MiB) | after drop_caches (MiB) | after / fresh |\n|---|---|---|---|---|---|\n'
for strata in "$@"; do
    home="$work/home-$(echo "$strata" | md5sum | cut -c1-8)"
    rm -rf "$home"
    export STRATA_HOME="$home"
    "$strata" repo init "$home/repo" >/dev/null
    "$strata" repo add main "$home/repo"
    "$strata" layer import main "$work/tree" --name tree --version 1 >/dev/null
    printf 'main/tree 1\n' > "$home/memory.ldf"
    "$strata" mount "$home/memory.ldf" "$mnt" --name memory
    mkdir "$mnt/private" && for f in $(seq 1000); do : > "$mnt/private/p$f"; done
    pid=$(cat "$home/vlfs/memory/daemon.pid")
    sync; echo 3 > /proc/sys/vm/drop_caches; sleep 2
    fresh=$(rss_kib "$pid")
    entries=$(find "$mnt" | wc -l)
    after_find=$(rss_kib "$pid")
    sync; echo 3 > /proc/sys/vm/drop_caches; sleep 5
    after_drop=$(rss_kib "$pid")
    umount "$mnt"
    awk -v b="$strata" -v e="$entries" -v f="$fresh" -v a="$after_find" -v d="$after_drop" \
        'BEGIN { printf "| %s | %d | %.1f | %.1f | %.1f | %.2f |\n", b, e, f/1024, a/1024, d/1024, d/f }'
done
