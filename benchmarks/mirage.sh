#!/bin/sh
# Mirage benchmark, in one run: `strata image diff` of two 10^5-file images that differ in 10 files
# against `ostree diff` of the same trees committed to an ostree repository; `strata search` across
# 100 images; `strata gc` over a store of 100 images of which 50 are deleted.
# Usage: benchmarks/mirage.sh   (run as root on a quiet machine; needs python3, installs ostree)
set -eu
cd "$(dirname "$0")/.."
command -v swift >/dev/null || PATH="/opt/swift/usr/bin:$PATH"
command -v ostree >/dev/null || { apt-get update -q && apt-get install -y -q ostree; }
swift build -c release --product strata >/dev/null
swift build -c release --product strata-bench >/dev/null
bin="$(swift build -c release --show-bin-path)"
strata="$bin/strata"
work="$(mktemp -d /var/tmp/strata-bench-mirage.XXXXXX)"
trap '"$strata" umount "$work/mnt" 2>/dev/null || true; rm -rf "$work"' EXIT
export STRATA_HOME="$work/home"

# Best wall-clock time of N runs of a command, in milliseconds (output discarded).
best() {
    runs=$1; shift
    python3 - "$runs" "$@" <<'EOF'
import subprocess, sys, time
runs, command = int(sys.argv[1]), sys.argv[2:]
times = []
for _ in range(runs):
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
    times.append(time.perf_counter() - start)
print(f"{min(times) * 1000:.1f}")
EOF
}

# Two trees of 100 x 10 directories of 100 small files; the second differs in 10 files' contents.
python3 - "$work/a" <<'EOF'
import os, sys
root = sys.argv[1]
for d in range(100):
    for s in range(10):
        directory = f"{root}/d{d:03}/s{s}"
        os.makedirs(directory)
        for f in range(100):
            with open(f"{directory}/file-{f:05}.txt", "w") as out:
                out.write(f"{d} {s} {f}\n")
EOF
cp -a "$work/a" "$work/b"
for i in 0 1 2 3 4 5 6 7 8 9; do echo "changed $i" > "$(printf '%s/b/d%03d/s%d/file-%05d.txt' "$work" $((i * 9 + 3)) "$i" $((i * 7 + 10)))"; done
files=$(find "$work/a" -type f | wc -l)

checkin_a=$(best 1 "$strata" image checkin "$work/a" --name big)
checkin_b=$(best 1 "$strata" image checkin "$work/b" --name big)
strata_changes=$("$strata" image diff big@1 big@2 | wc -l)
strata_diff=$(best 5 "$strata" image diff big@1 big@2)

# A VLFS of the same tree as one layer, with 10 files written into its private layer, snapshotted live.
"$strata" repo init "$work/repo" >/dev/null
"$strata" repo add bench "$work/repo"
"$strata" layer import bench "$work/a" --name big-tree --version 1 >/dev/null
echo "bench/big-tree 1" > "$work/big.ldf"
mkdir -p "$work/mnt"
"$strata" mount "$work/big.ldf" "$work/mnt" --name big-vlfs
for i in 0 1 2 3 4 5 6 7 8 9; do echo "private $i" > "$(printf '%s/mnt/d%03d/s%d/file-%05d.txt' "$work" $((i * 9 + 3)) "$i" $((i * 7 + 10)))"; done
snapshot_first=$(best 1 "$strata" image snapshot big-vlfs --image big-vlfs)
snapshot_again=$(best 5 "$strata" image snapshot big-vlfs --image big-vlfs)
"$strata" umount "$work/mnt"

ostree --repo="$work/ostree" init --mode=bare
ostree_commit=$(best 1 ostree --repo="$work/ostree" commit --branch=a --tree=dir="$work/a")
ostree --repo="$work/ostree" commit --branch=b --tree=dir="$work/b" >/dev/null
ostree_changes=$(ostree --repo="$work/ostree" diff a b | wc -l)
ostree_diff=$(best 5 ostree --repo="$work/ostree" diff a b)

# 98 more images of the family, each with 10 files changed and an openssl layer 3.0.(N mod 20).
derive=$(best 1 "$bin/strata-bench" derive "$STRATA_HOME" big@1 98 10)
images=$("$strata" image list --json | python3 -c 'import json,sys; print(sum(i["activeVersions"] for i in json.load(sys.stdin)))')
digest=$("$strata" image diff big@1 family-42 --json | python3 -c 'import json,sys; print(next(c["new"]["digest"] for c in json.load(sys.stdin) if c["change"] == "modified"))')
by_path_hits=$("$strata" search --path /d050/s5/file-00042.txt | wc -l)
by_path=$(best 5 "$strata" search --path /d050/s5/file-00042.txt)
by_glob=$(best 5 "$strata" search --path '/d050/*/file-0009?.txt')
by_digest_hits=$("$strata" search --digest "$digest" | wc -l)
by_digest=$(best 5 "$strata" search --digest "$digest")
by_layer_hits=$("$strata" search --layer 'openssl (<< 3.0.10)' | wc -l)
by_layer=$(best 5 "$strata" search --layer 'openssl (<< 3.0.10)')
catalog_size=$(du -k "$STRATA_HOME/catalog.sqlite" | cut -f1)

for n in $(seq 1 49); do "$strata" image delete "family-$n" >/dev/null; done
"$strata" image delete big@1 >/dev/null
objects=$(find "$STRATA_HOME/store/objects" -type f | wc -l)
gc_dry=$(best 3 "$strata" gc --dry-run)
freed=$("$strata" gc --dry-run | sed -n 's/.*would free \([0-9]*\).*/\1/p' | head -1)
gc_run=$(best 1 "$strata" gc)
"$strata" fsck >/dev/null

cat <<EOF
Image diff: two images of $files files (100 x 10 directories of 100 files), differing in 10 files;
check-in of the first $checkin_a ms, of the second $checkin_b ms; ostree commit of the first $ostree_commit ms.

| tool | changes listed | diff, best of 5 (ms) |
|---|---:|---:|
| strata image diff | $strata_changes | $strata_diff |
| ostree diff | $ostree_changes | $ostree_diff |

Snapshot of a mounted VLFS of the same $files files (one layer, 10 files changed in its private layer):
the first snapshot also copies the layer's objects into the home store ($snapshot_first ms); later
ones reuse them and the layer's unchanged subtrees: $snapshot_again ms (best of 5), against ostree
commit of the tree, $ostree_commit ms.

Search across $images images (big@1, big@2 and 98 derived with strata-bench in $derive ms; catalog $catalog_size KiB):

| query | hits | best of 5 (ms) |
|---|---:|---:|
| --path /d050/s5/file-00042.txt (which images hold this file?) | $by_path_hits | $by_path |
| --path '/d050/*/file-0009?.txt' | $("$strata" search --path '/d050/*/file-0009?.txt' | wc -l) | $by_glob |
| --digest (a file changed in one image) | $by_digest_hits | $by_digest |
| --layer 'openssl (<< 3.0.10)' | $by_layer_hits | $by_layer |

GC over the home store of those 100 images with 50 deleted ($objects objects):

| operation | objects freed | time (ms) |
|---|---:|---:|
| strata gc --dry-run (best of 3) | $freed | $gc_dry |
| strata gc | $freed | $gc_run |
EOF
