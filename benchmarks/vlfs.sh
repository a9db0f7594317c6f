#!/bin/sh
# VLFS benchmark: the same layers mounted as a strata VLFS, as kernel overlayfs, as fuse-overlayfs and
# as unionfs-fuse (and plain ext4 where that means something), each workload run on all of them in turn
# in one run. Prints one table with strata's ratios to each peer and the issues' goals, the FUSE
# requests each workload sent the VLFS daemon (from its `statistics` answer), then what passthrough
# changes: the read speed and warm tar without it (and with it for every shared file, small ones too), and the page
# cache two mounts cost; where the build and the kernel have it, the same VLFS taking its requests over
# FUSE's io_uring queues (--io-uring; enable_uring is set for the run and put back after), and with FUSE
# writeback caching (--writeback-cache: warm tar, copy-up and Postmark beside the default mount); last, the
# kernel path (`strata mount --kernel`: an EROFS metadata image under kernel overlayfs, no daemon)
# beside overlayfs and the VLFS, with its image's size and mount times. Where the build has
# --open-requests/--no-open-requests, the VLFS is mounted in the other mode too (the kernel opening regular
# files itself, or asking the daemon): its warm tar, Postmark, requests and 1 GiB reads warm and cold.
# And the FUSE floor in Postmark: libfuse's passthrough_hp example (benchmarks/passthrough-hp.sh builds
# it) over a plain directory, no union, where it builds.
# Usage: benchmarks/vlfs.sh [--quick]   (root, /dev/fuse; --quick takes about two minutes)
#        STRATA=/path/to/strata benchmarks/vlfs.sh ...   (another build, e.g. to compare before and after)
#        BASELINE=/path/to/old/strata benchmarks/vlfs.sh ...   (that build mounted too, in the warm tar and
#        Postmark rounds and the copy-up beside this one, with its requests and its daemon's CPU time: before and after in one run)
set -eu
quick=false
[ "${1:-}" = --quick ] && quick=true
cd "$(dirname "$0")/.."
command -v swift >/dev/null || PATH="/opt/swift/usr/bin:$PATH"
missing=""
for tool in postmark fuse-overlayfs; do command -v $tool >/dev/null || missing="$missing $tool"; done
command -v unionfs >/dev/null || missing="$missing unionfs-fuse"
[ -z "$missing" ] || { apt-get update -q && apt-get install -y -q $missing; }
if [ -z "${STRATA:-}" ]; then swift build -c release --product strata >/dev/null; fi
strata="${STRATA:-$(swift build -c release --show-bin-path)/strata}"

# Sizes. Full: a 10^5-file tree, Postmark's 20,000 files with transactions for about a minute on ext4.
tree_layers=12
copyup_files=1000
if $quick; then
    tree_files=20000 postmark_files=5000 postmark_transactions=5000 sources=24
else
    tree_files=100000 postmark_files=20000 postmark_transactions=auto sources=200
fi

# Everything (layers, repository, upper and private layers, the ext4 runs) lives on a fresh journaled
# ext4 on a loop device: on a disk that others use, and without a journal, ext4 scans past recently
# deleted inodes when it creates files, and Postmark times came to depend on who deleted what before.
scratch="$(mktemp -d /var/tmp/strata-bench-vlfs.XXXXXX)"
work="$scratch/fs"
ovl="$work/overlayfs/mnt" fovl="$work/fuse-overlayfs/mnt" ufs="$work/unionfs-fuse/mnt" vlfs="$work/vlfs/mnt" ext4="$work/ext4"
# The same VLFS served without passthrough: every read answered by the daemon (spliced from the blob).
served="$work/served/mnt"
# The same LDF on the kernel path.
kvlfs="$work/kernel/mnt"
# And with passthrough for every shared file, where the build has the option (by default only files of 128
# KiB and more pass through).
allpass="$work/allpass/mnt"
# The BASELINE build's VLFS, when asked for.
base="$work/baseline/mnt"
# And with FUSE writeback caching (no passthrough then: Linux does not combine them), where the build has it.
wb="$work/writeback/mnt"
# The same VLFS in the other open mode (--no-open-requests or --open-requests, whichever is not the default).
other="$work/other/mnt"
# And over FUSE's io_uring queues, where the build and the kernel have them.
ring="$work/ring/mnt" enable_uring=/sys/module/fuse/parameters/enable_uring
enable_uring_before=$(cat "$enable_uring" 2>/dev/null || true)
# The FUSE floor, where libfuse's passthrough_hp builds.
floor="$work/floor/mnt"
# Second mounts of the same layers, as a second appliance on the host would have, for the memory line.
ovl2="$work/overlayfs2/mnt" fovl2="$work/fuse-overlayfs2/mnt" vlfs2="$work/vlfs2/mnt" served2="$work/served2/mnt"
cleanup() {
    set +e
    for mnt in "$vlfs" "$served" "$allpass" "$ring" "$wb" "$other" "$vlfs2" "$served2" "$kvlfs" "$base"; do mountpoint -q "$mnt" && { "$strata" umount "$mnt" || umount -l "$mnt"; }; done
    for mnt in "$floor" "$fovl" "$ufs" "$ovl" "$fovl2" "$ovl2" "$work"; do mountpoint -q "$mnt" && { umount "$mnt" || umount -l "$mnt"; }; done
    rm -rf "$scratch"
    [ -z "$enable_uring_before" ] || echo "$enable_uring_before" >"$enable_uring"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
truncate -s 16G "$scratch/ext4.img"
mkfs.ext4 -q "$scratch/ext4.img"
mkdir "$work"
mount -o loop "$scratch/ext4.img" "$work"
export STRATA_HOME="$work/home"

now() { date +%s.%N; }
# Seconds (wall clock) a command takes; its output is discarded, a failure stops the benchmark.
timed() {
    start=$(now)
    "$@" >/dev/null 2>"$work/err" || { echo "failed: $*" >&2; cat "$work/err" >&2; exit 1; }
    awk -v s="$start" -v e="$(now)" 'BEGIN { printf "%.3f", e - s }'
}
best() { printf '%s\n' "$@" | sort -g | head -1; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "Generating layers in $work ..." >&2
python3 - "$work/layers" "$tree_layers" "$tree_files" "$copyup_files" "$sources" <<'EOF'
import os, random, sys
root, layers, files, copyups, sources = sys.argv[1], *map(int, sys.argv[2:])
random.seed(1)
def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f: f.write(data)
# A tree whose 1,000 directories every layer provides (they merge), with distinct files in each.
directories = [f"tree/d{a:03}/s{b:02}" for a in range(100) for b in range(10)]
for layer in range(layers):
    for i in range(files // layers):
        write(f"{root}/tree{layer:02}/{directories[i % len(directories)]}/l{layer:02}-{i}", b"x" * random.randrange(0, 4096))
os.makedirs(f"{root}/big/big")
with open(f"{root}/big/big/shared.bin", "wb") as f:
    for _ in range(1024): f.write(os.urandom(1 << 20))
for i in range(copyups):
    write(f"{root}/copyup/copyup/f{i:04}", os.urandom(4096))
# A C project: units of arithmetic-heavy functions, a header declaring them all, a main, a Makefile.
units = [f"unit{u:03}" for u in range(sources)]
write(f"{root}/src/src/common.h", ("#include <math.h>\n#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n"
      + "".join(f"double {u}(double);\n" for u in units)).encode())
for u in units:
    body = ['#include "common.h"']
    for k in range(40):
        body.append(f"""static double {u}_f{k}(double x) {{
    double a[64]; for (int i = 0; i < 64; i++) a[i] = sin(x * i + {k}) * (i % {k % 7 + 2});
    double s = 0; for (int i = 0; i < 64; i++) for (int j = i; j < 64; j += {k % 5 + 1}) s += a[i] * a[j] / (1 + fabs(a[j]));
    switch ((int)s % 4) {{ case 0: s += {k}; break; case 1: s *= 1.5; break; case 2: s -= x; break; default: s /= 2; }}
    return s;
}}""")
    body.append(f"double {u}(double x) {{ return " + " + ".join(f"{u}_f{k}(x)" for k in range(40)) + "; }")
    write(f"{root}/src/src/{u}.c", "\n".join(body).encode())
write(f"{root}/src/src/main.c", ('#include "common.h"\nint main(void) { double s = 0;\n'
      + "".join(f"    s += {u}(1.0);\n" for u in units) + '    printf("%f\\n", s); return 0; }\n').encode())
write(f"{root}/src/src/Makefile", b"OBJECTS := $(patsubst %.c,%.o,$(wildcard *.c))\nprogram: $(OBJECTS)\n\t$(CC) -o $@ $^ -lm\n"
      b"%.o: %.c common.h\n\t$(CC) -O2 -c $< -o $@\nclean:\n\trm -f *.o program\n")
EOF
layers=$(cd "$work/layers" && ls)

echo "Importing them into a strata repository and mounting ..." >&2
"$strata" repo init "$work/repo" >/dev/null
"$strata" repo add main "$work/repo"
for layer in $layers; do
    "$strata" layer import main "$work/layers/$layer" --name "$layer" --version 1 >/dev/null
    echo "main/$layer 1" >>"$work/bench.ldf"
done
lowerdir=$(for layer in $layers; do printf '%s:' "$work/layers/$layer"; done | sed 's/:$//')
for fs in overlayfs fuse-overlayfs unionfs-fuse overlayfs2 fuse-overlayfs2; do mkdir -p "$work/$fs/upper" "$work/$fs/work" "$work/$fs/mnt"; done
mkdir -p "$vlfs" "$served" "$allpass" "$ring" "$other" "$vlfs2" "$served2" "$kvlfs"
mount -t overlay overlay -o "lowerdir=$lowerdir,upperdir=$work/overlayfs/upper,workdir=$work/overlayfs/work" "$ovl"
mount -t overlay overlay -o "lowerdir=$lowerdir,upperdir=$work/overlayfs2/upper,workdir=$work/overlayfs2/work" "$ovl2"
fuse-overlayfs -o "lowerdir=$lowerdir,upperdir=$work/fuse-overlayfs/upper,workdir=$work/fuse-overlayfs/work" "$fovl"
fuse-overlayfs -o "lowerdir=$lowerdir,upperdir=$work/fuse-overlayfs2/upper,workdir=$work/fuse-overlayfs2/work" "$fovl2"
# unionfs-fuse: the upper directory first and writable, copying shared files up on write (cow).
unionfs -o cow "$work/unionfs-fuse/upper=RW:$(echo "$lowerdir" | sed 's/:/=RO:/g')=RO" "$ufs"
floor_binary=$(benchmarks/passthrough-hp.sh 2>"$work/floor.err" || true)
# It keeps a descriptor for every inode the kernel knows: a tree's worth is more than root may open here,
# so it serves an empty directory, for Postmark.
if [ -n "$floor_binary" ]; then mkdir -p "$floor" "$work/floor/directory"; sh -c 'ulimit -n "$(ulimit -Hn)" && exec "$0" "$@"' "$floor_binary" "$work/floor/directory" "$floor"; else echo "No FUSE floor: passthrough_hp did not build (see benchmarks/passthrough-hp.sh)" >&2; fi
mount_vlfs=$(timed "$strata" mount "$work/bench.ldf" "$vlfs" --name bench)
# The kernel path: the first mount builds the metadata image, the second finds it in the home's cache.
kernel_first=$(timed "$strata" mount --kernel "$work/bench.ldf" "$kvlfs" --name "kernel-$$")
"$strata" umount "$kvlfs"
kernel_second=$(timed "$strata" mount --kernel "$work/bench.ldf" "$kvlfs" --name "kernel-$$")
kernel_image_kib=$(du -k "$STRATA_HOME"/cache/erofs/*.erofs | awk '{ s += $1 } END { print s }')
kernel_entries=$(find "$kvlfs" | wc -l)
"$strata" mount "$work/bench.ldf" "$vlfs2" --name bench2
"$strata" mount "$work/bench.ldf" "$served" --name served --no-passthrough
"$strata" mount "$work/bench.ldf" "$served2" --name served2 --no-passthrough
if "$strata" mount --help | grep -q passthrough-minimum-size; then
    "$strata" mount "$work/bench.ldf" "$allpass" --name allpass --passthrough-minimum-size 0
fi
if [ -n "$enable_uring_before" ] && "$strata" mount --help | grep -q io-uring; then
    echo Y >"$enable_uring"
    "$strata" mount "$work/bench.ldf" "$ring" --name ring --io-uring
fi
if "$strata" mount --help | grep -q writeback-cache; then
    mkdir -p "$wb"
    "$strata" mount "$work/bench.ldf" "$wb" --name writeback --writeback-cache
fi
# The default mode, as `strata mount --help` says it, and the other one.
default_mode=$("$strata" mount --help | tr -s ' \n' ' ' | grep -o 'Default: --[a-z-]*open-requests' | sed 's/Default: //' || true)
case "$default_mode" in
    --open-requests) other_mode=--no-open-requests ;;
    --no-open-requests) other_mode=--open-requests ;;
    *) other_mode= ;;
esac
[ -z "$other_mode" ] || "$strata" mount "$work/bench.ldf" "$other" --name other "$other_mode"
if [ -n "${BASELINE:-}" ]; then mkdir -p "$base"; "$BASELINE" mount "$work/bench.ldf" "$base" --name baseline; fi
# ext4: the layer directories themselves for reading, copies of them for writing.
mkdir -p "$ext4"
cp -a "$work/layers/copyup/copyup" "$work/layers/src/src" "$ext4/"

# Warm sequential read of the 1 GiB file (best of 3 after a warming read), GB/s.
seqread() {
    timed dd if="$1" of=/dev/null bs=1M >/dev/null
    t=$(best "$(timed dd if="$1" of=/dev/null bs=1M)" "$(timed dd if="$1" of=/dev/null bs=1M)" "$(timed dd if="$1" of=/dev/null bs=1M)")
    awk -v t="$t" 'BEGIN { printf "%.2f", 1.073741824 / t }'
}
# Cold sequential read of the 1 GiB file, GB/s: the file's pages and its blob's dropped first (with
# POSIX_FADV_DONTNEED, through the mount and on every large file of the run: layers, repository, store), best of 3.
coldread_once() {
    dd if="$1" iflag=nocache count=0 2>/dev/null
    find "$work" -xdev -type f -size +512M -exec dd if={} iflag=nocache count=0 \; 2>/dev/null
    timed dd if="$1" of=/dev/null bs=1M
}
coldread() {
    t=$(best "$(coldread_once "$1")" "$(coldread_once "$1")" "$(coldread_once "$1")")
    awk -v t="$t" 'BEGIN { printf "%.2f", 1.073741824 / t }'
}
# Warm find + du over the tree (best of 3 after a warming pass), seconds.
finddu_once() { timed sh -c 'find "$@" && du -s "$@"' finddu "$@"; }
finddu() {
    finddu_once "$@" >/dev/null
    best "$(finddu_once "$@")" "$(finddu_once "$@")" "$(finddu_once "$@")"
}
# Tar of the whole tree, seconds: every file opened and read once. Through a pipe, since GNU tar reads
# nothing when it writes to /dev/null itself.
# tar's complaints (a file it could not read) fail the benchmark, which a pipe's status would hide.
tar_once() { timed sh -c 'tar -cf - "$@" 2>"$0" | cat >/dev/null; if [ -s "$0" ]; then cat "$0" >&2; exit 1; fi' "$work/tar.err" "$@"; }
# Append a byte to the shared files whose names end in one of the digits $2 (a fifth of them): one
# copy-up each, seconds.
copyup() { timed sh -c 'for f in "$1"/copyup/*[$2]; do printf x >>"$f"; done' copyup "$1" "$2"; }
# The median of five rounds' times, times five: the seconds all the files would take.
five_rounds() { awk -v m="$(median "$@")" 'BEGIN { printf "%.3f", 5 * m }'; }
postmark_in() {
    mkdir -p "$1/postmark"
    printf 'set size 512 10000\nset number %s\nset transactions %s\nset location %s\nrun\nquit\n' "$postmark_files" "$2" "$1/postmark" >"$work/postmark.cfg"
    # Postmark reports files it could not create or delete and still exits 0.
    timed sh -c 'postmark "$0" >"$0.out" 2>&1; if grep "^Error" "$0.out" >&2; then exit 1; fi' "$work/postmark.cfg"
}
compile() { make -C "$1/src" -s clean >/dev/null; timed make -C "$1/src" -j2 -s; }
# Postmark on the VLFS named $1 mounted at $2, its requests printed as the row $3; the time in $postmark_time.
postmark_counted() {
    counts=$(requests "$1")
    postmark_time=$(postmark_in "$2" "$postmark_transactions")
    request_row "$3" "$((postmark_files + postmark_transactions))" "$counts" "$(requests "$1")"
}

if [ "$postmark_transactions" = auto ]; then
    # Transactions for about a minute on ext4: time without transactions, then with 100,000.
    mkdir -p "$ext4/calibration"
    base=$(postmark_in "$ext4/calibration" 0)
    with=$(postmark_in "$ext4/calibration" 100000)
    postmark_transactions=$(awk -v a="$base" -v b="$with" 'BEGIN { r = (b - a) / 100000; printf "%d", (60 - a) / (r > 0 ? r : 1e-5) }')
    echo "Postmark: $postmark_transactions transactions" >&2
fi

# Field $2 of the `statistics` answer of the strata daemon of the VLFS named $1 (empty if it has none).
statistic() {
    python3 - "$STRATA_HOME/vlfs/$1/control.sock" "$2" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"statistics\n")
reply = b""
while not reply.endswith(b"\n"):
    chunk = s.recv(4096)
    if not chunk: break
    reply += chunk
field = sys.argv[2] + "="
print(next((w[len(field):] for w in reply.decode().split() if w.startswith(field)), ""))
PY
}
# Its request counts by operation (`lookup:120,open:3`; empty from a build that does not count): those
# of the VLFS named $1, bench by default.
requests() { statistic "${1:-bench}" requests; }
# CPU seconds the daemon of the VLFS named $1 has used so far.
daemon_cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$(cat "$STRATA_HOME/vlfs/$1/daemon.pid")/stat"; }
# A row of the requests table: WORKLOAD FILES BEFORE AFTER [RUNS], the requests one run sent, in all,
# per file and by operation.
request_row() {
    awk -v w="$1" -v files="$2" -v a="$3" -v b="$4" -v runs="${5:-1}" 'BEGIN {
        if (b == "") { printf "| %s | n/a: this build does not count requests | | |\n", w; exit }
        n = split(a, x, ","); for (i = 1; i <= n; i++) { split(x[i], p, ":"); before[p[1]] = p[2] }
        n = split(b, y, ","); total = 0; ops = ""
        for (i = 1; i <= n; i++) {
            split(y[i], p, ":"); d = (p[2] - before[p[1]]) / runs
            if (d > 0) { total += d; ops = ops (ops == "" ? "" : ", ") sprintf("%s %g (%.2f)", p[1], d, d / files) }
        }
        printf "| %s | %g | %.2f | %s |\n", w, total, total / files, ops
    }' >>"$work/requests"
}

echo "Measuring ..." >&2
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
read_ext4=$(seqread "$work/layers/big/big/shared.bin")
read_ovl=$(seqread "$ovl/big/shared.bin")
read_fovl=$(seqread "$fovl/big/shared.bin")
read_ufs=$(seqread "$ufs/big/shared.bin")
counts=$(requests)
read_vlfs=$(seqread "$vlfs/big/shared.bin")
request_row "sequential read, 1 GiB" 1 "$counts" "$(requests)" 4
read_served=$(seqread "$served/big/shared.bin")
cold_ovl=$(coldread "$ovl/big/shared.bin")
cold_vlfs=$(coldread "$vlfs/big/shared.bin")
if mountpoint -q "$other"; then
    counts=$(requests other)
    read_other=$(seqread "$other/big/shared.bin")
    request_row "sequential read, 1 GiB, $other_mode" 1 "$counts" "$(requests other)" 4
    cold_other=$(coldread "$other/big/shared.bin")
fi
read_kernel=$(seqread "$kvlfs/big/shared.bin")
tree_ext4=$(for layer in $layers; do case $layer in tree*) echo "$work/layers/$layer/tree";; esac; done)
find_ext4=$(finddu $tree_ext4)
find_ovl=$(finddu "$ovl/tree")
find_fovl=$(finddu "$fovl/tree")
find_ufs=$(finddu "$ufs/tree")
find_vlfs=$(finddu "$vlfs/tree")
find_kernel=$(finddu "$kvlfs/tree")
counts=$(requests)
finddu_once "$vlfs/tree" >/dev/null
request_row "find + du, warm" "$tree_files" "$counts" "$(requests)"
# Warm tar: a warming pass on each mount, then 5 rounds that visit every mount in turn (median), since
# round trips to a daemon suffer most from other load on the machine. The VLFS daemons' requests are
# counted over the 5 rounds.
tar_trees() { tar_once $(for tree in "$@"; do echo "-C $tree ."; done); }
tar_mounts="$ovl $fovl $ufs $vlfs $served $kvlfs $(mountpoint -q "$allpass" && echo "$allpass" || true) $(mountpoint -q "$ring" && echo "$ring" || true) $(mountpoint -q "$wb" && echo "$wb" || true) $(mountpoint -q "$other" && echo "$other" || true) $(mountpoint -q "$base" && echo "$base" || true)"
for mnt in $tar_mounts; do tar_trees "$mnt/tree" >/dev/null; done
tar_trees $tree_ext4 >/dev/null
counts=$(requests) counts_served=$(requests served) counts_allpass=$(mountpoint -q "$allpass" && requests allpass || true) counts_ring=$(mountpoint -q "$ring" && requests ring || true)
counts_base=$(mountpoint -q "$base" && requests baseline || true) counts_wb=$(mountpoint -q "$wb" && requests writeback || true) counts_other=$(mountpoint -q "$other" && requests other || true)
cpu_vlfs=$(daemon_cpu bench) cpu_allpass=$(mountpoint -q "$allpass" && daemon_cpu allpass || true) cpu_base=$(mountpoint -q "$base" && daemon_cpu baseline || true)
for round in 1 2 3 4 5; do
    tar_ext4="${tar_ext4:-} $(tar_trees $tree_ext4)"
    tar_ovl="${tar_ovl:-} $(tar_trees "$ovl/tree")"
    tar_fovl="${tar_fovl:-} $(tar_trees "$fovl/tree")"
    tar_ufs="${tar_ufs:-} $(tar_trees "$ufs/tree")"
    tar_vlfs="${tar_vlfs:-} $(tar_trees "$vlfs/tree")"
    tar_served="${tar_served:-} $(tar_trees "$served/tree")"
    tar_kernel="${tar_kernel:-} $(tar_trees "$kvlfs/tree")"
    if mountpoint -q "$ring"; then tar_ring="${tar_ring:-} $(tar_trees "$ring/tree")"; fi
    if mountpoint -q "$other"; then tar_other="${tar_other:-} $(tar_trees "$other/tree")"; fi
    if mountpoint -q "$allpass"; then tar_allpass="${tar_allpass:-} $(tar_trees "$allpass/tree")"; fi
    if mountpoint -q "$base"; then tar_base="${tar_base:-} $(tar_trees "$base/tree")"; fi
    if mountpoint -q "$wb"; then tar_wb="${tar_wb:-} $(tar_trees "$wb/tree")"; fi
done
cpu_vlfs=$(awk -v a="$cpu_vlfs" -v b="$(daemon_cpu bench)" 'BEGIN { printf "%.2f", b - a }')
request_row "tar of the tree, warm" "$tree_files" "$counts" "$(requests)" 5
request_row "tar of the tree, warm, --no-passthrough" "$tree_files" "$counts_served" "$(requests served)" 5
tar_ext4=$(median $tar_ext4) tar_ovl=$(median $tar_ovl) tar_fovl=$(median $tar_fovl) tar_ufs=$(median $tar_ufs)
tar_vlfs=$(median $tar_vlfs) tar_served=$(median $tar_served) tar_kernel=$(median $tar_kernel)
if [ -n "${tar_allpass:-}" ]; then
    request_row "tar of the tree, warm, --passthrough-minimum-size 0" "$tree_files" "$counts_allpass" "$(requests allpass)" 5
    tar_allpass=$(median $tar_allpass)
    cpu_allpass=$(awk -v a="$cpu_allpass" -v b="$(daemon_cpu allpass)" 'BEGIN { printf "%.2f", b - a }')
else
    tar_allpass=n/a
fi
if [ -n "${tar_base:-}" ]; then
    request_row "tar of the tree, warm, BASELINE build" "$tree_files" "$counts_base" "$(requests baseline)" 5
    tar_base=$(median $tar_base) cpu_base=$(awk -v a="$cpu_base" -v b="$(daemon_cpu baseline)" 'BEGIN { printf "%.2f", b - a }')
fi
if [ -n "${tar_wb:-}" ]; then
    request_row "tar of the tree, warm, --writeback-cache" "$tree_files" "$counts_wb" "$(requests writeback)" 5
    tar_wb=$(median $tar_wb)
fi
if [ -n "${tar_other:-}" ]; then
    request_row "tar of the tree, warm, $other_mode" "$tree_files" "$counts_other" "$(requests other)" 5
    tar_other=$(median $tar_other)
fi
if [ -n "${tar_ring:-}" ]; then
    request_row "tar of the tree, warm, --io-uring" "$tree_files" "$counts_ring" "$(requests ring)" 5
    tar_ring=$(median $tar_ring)
else
    tar_ring=n/a
fi
# Copy-up in 5 rounds of a fifth of the files, each visiting every mount in turn: one pass per mount, one
# mount after another, measured mostly which mount ran while the machine was busiest.
counts=$(requests) counts_base=$(mountpoint -q "$base" && requests baseline || true) counts_wb=$(mountpoint -q "$wb" && requests writeback || true)
for digits in 01 23 45 67 89; do
    copyup_ext4="${copyup_ext4:-} $(copyup "$ext4" $digits)"
    copyup_ovl="${copyup_ovl:-} $(copyup "$ovl" $digits)"
    copyup_fovl="${copyup_fovl:-} $(copyup "$fovl" $digits)"
    copyup_ufs="${copyup_ufs:-} $(copyup "$ufs" $digits)"
    copyup_vlfs="${copyup_vlfs:-} $(copyup "$vlfs" $digits)"
    if mountpoint -q "$base"; then copyup_base="${copyup_base:-} $(copyup "$base" $digits)"; fi
    if mountpoint -q "$wb"; then copyup_wb="${copyup_wb:-} $(copyup "$wb" $digits)"; fi
done
request_row "copy-up" "$copyup_files" "$counts" "$(requests)"
copyup_ext4=$(five_rounds $copyup_ext4) copyup_ovl=$(five_rounds $copyup_ovl) copyup_fovl=$(five_rounds $copyup_fovl)
copyup_ufs=$(five_rounds $copyup_ufs) copyup_vlfs=$(five_rounds $copyup_vlfs)
if [ -n "${copyup_base:-}" ]; then
    request_row "copy-up, BASELINE build" "$copyup_files" "$counts_base" "$(requests baseline)"
    copyup_base=$(five_rounds $copyup_base)
fi
if [ -n "${copyup_wb:-}" ]; then
    request_row "copy-up, --writeback-cache" "$copyup_files" "$counts_wb" "$(requests writeback)"
    copyup_wb=$(five_rounds $copyup_wb)
fi
postmark_ext4=$(postmark_in "$ext4" "$postmark_transactions")
postmark_ovl=$(postmark_in "$ovl" "$postmark_transactions")
postmark_fovl=$(postmark_in "$fovl" "$postmark_transactions")
postmark_ufs=$(postmark_in "$ufs" "$postmark_transactions")
postmark_counted bench "$vlfs" "Postmark (per file created + transaction)"; postmark_vlfs=$postmark_time
postmark_kernel=$(postmark_in "$kvlfs" "$postmark_transactions")
if mountpoint -q "$floor"; then postmark_floor=$(postmark_in "$floor" "$postmark_transactions"); fi
if mountpoint -q "$wb"; then postmark_counted writeback "$wb" "Postmark, --writeback-cache"; postmark_wb=$postmark_time; fi
if mountpoint -q "$ring"; then
    postmark_counted ring "$ring" "Postmark, --io-uring"; postmark_ring=$postmark_time
    ring_requests=$(statistic ring ring-requests)
else
    postmark_ring=n/a
fi
if mountpoint -q "$other"; then postmark_counted other "$other" "Postmark, $other_mode"; postmark_other=$postmark_time; fi
if mountpoint -q "$base"; then postmark_counted baseline "$base" "Postmark, BASELINE build"; postmark_base=$postmark_time; fi
# CPU-bound, so the most sensitive to other load on the machine: best of 3 interleaved rounds.
counts=$(requests)
for round in 1 2 3; do
    compile_ext4="${compile_ext4:-} $(compile "$ext4")"
    compile_ovl="${compile_ovl:-} $(compile "$ovl")"
    compile_fovl="${compile_fovl:-} $(compile "$fovl")"
    compile_ufs="${compile_ufs:-} $(compile "$ufs")"
    compile_vlfs="${compile_vlfs:-} $(compile "$vlfs")"
done
request_row "compile (per source file)" "$((sources + 1))" "$counts" "$(requests)" 3
compile_ext4=$(best $compile_ext4) compile_ovl=$(best $compile_ovl) compile_fovl=$(best $compile_fovl)
compile_ufs=$(best $compile_ufs) compile_vlfs=$(best $compile_vlfs)
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
# Page cache that the 1 GiB file costs when two mounts of the same layers (two appliances on one host)
# read it from cold, MiB. Last, since it empties the page cache.
cached_mib() { awk '/^Cached:/ { printf "%d", $2 / 1024 }' /proc/meminfo; }
pagecache() {
    sync
    echo 3 >/proc/sys/vm/drop_caches
    before=$(cached_mib)
    cat "$1/big/shared.bin" "$2/big/shared.bin" >/dev/null
    echo $(($(cached_mib) - before))
}
memory_ext4=$(pagecache "$work/layers/big" "$work/layers/big")
memory_ovl=$(pagecache "$ovl" "$ovl2")
memory_fovl=$(pagecache "$fovl" "$fovl2")
memory_vlfs=$(pagecache "$vlfs" "$vlfs2")
memory_served=$(pagecache "$served" "$served2")

tree_dirs=$(find "$ovl/tree" -type d | wc -l)
echo
echo "VLFS benchmark$($quick && echo ' (--quick)'): $(nproc) cores, Linux $(uname -r), fresh ext4 on a loop device,"
echo "$tree_layers tree layers + 3 others, warm page cache; load average $load_start at the start, $load_end at the end"
echo
echo "| workload | ext4 | kernel overlayfs | fuse-overlayfs | unionfs-fuse | strata VLFS | strata/overlayfs | strata/fuse-overlayfs | strata/unionfs-fuse |"
echo "|---|---|---|---|---|---|---|---|---|"
row() {
    awk -v w="$1" -v e="$2" -v o="$3" -v f="$4" -v u="$5" -v v="$6" \
        'BEGIN { printf "| %s | %s | %s | %s | %s | %s | %.2f | %.2f | %.2f |\n", w, e, o, f, u, v, v / o, v / f, v / u }'
}
row "sequential read, 1 GiB, dd bs=1M (GB/s, higher is better)" "$read_ext4" "$read_ovl" "$read_fovl" "$read_ufs" "$read_vlfs"
row "find + du, $tree_files files in $tree_dirs directories (s)" "$find_ext4" "$find_ovl" "$find_fovl" "$find_ufs" "$find_vlfs"
row "tar of the same tree, warm, median of 5 rotated rounds (s)" "$tar_ext4" "$tar_ovl" "$tar_fovl" "$tar_ufs" "$tar_vlfs"
row "copy-up: append a byte to $copyup_files shared 4 KiB files, 5 rotated rounds (median x 5, s)" "$copyup_ext4" "$copyup_ovl" "$copyup_fovl" "$copyup_ufs" "$copyup_vlfs"
row "Postmark, $postmark_files files of 512 B-10 KB, $postmark_transactions transactions (s)" "$postmark_ext4" "$postmark_ovl" "$postmark_fovl" "$postmark_ufs" "$postmark_vlfs"
row "compile $((sources + 1)) generated C files, make -j2, best of 3 (s)" "$compile_ext4" "$compile_ovl" "$compile_fovl" "$compile_ufs" "$compile_vlfs"
echo
echo "FUSE requests the strata daemon answered, one run of each workload (by operation: count, and per file):"
echo
echo "| workload | requests | per file | by operation |"
echo "|---|---|---|---|"
cat "$work/requests"
echo
awk -v s="$read_served" -v o="$read_ovl" -v t="$tar_served" -v to="$tar_ovl" -v m="$tar_allpass" 'BEGIN {
    printf "The same VLFS mounted --no-passthrough (daemon-served): sequential read %s GB/s, %.2f of overlayfs; warm tar %s s, %.2fx overlayfs.\n", s, s / o, t, t / to
    if (m != "n/a") printf "Mounted --passthrough-minimum-size 0 (every shared file passed through, small ones too): warm tar %s s, %.2fx overlayfs.\n", m, m / to
}'
awk -v t="$tar_ring" -v to="$tar_ovl" -v tv="$tar_vlfs" -v p="$postmark_ring" -v po="$postmark_ovl" -v pv="$postmark_vlfs" -v n="${ring_requests:-0}" 'BEGIN {
    if (t != "n/a") printf "Mounted --io-uring (requests over FUSE'"'"'s io_uring queues, %s of them): warm tar %s s, %.2fx overlayfs, %.2fx the /dev/fuse mount; Postmark %s s, %.2fx overlayfs, %.2fx the /dev/fuse mount.\n", n, t, t / to, t / tv, p, p / po, p / pv
}'
if [ -n "${tar_wb:-}" ]; then
    awk -v t="$tar_wb" -v to="$tar_ovl" -v tv="$tar_vlfs" -v p="$postmark_wb" -v po="$postmark_ovl" -v pv="$postmark_vlfs" \
        -v c="$copyup_wb" -v co="$copyup_ovl" -v cv="$copyup_vlfs" -v r="$read_served" -v rv="$read_vlfs" 'BEGIN {
        printf "Mounted --writeback-cache (writes cached by the kernel, no passthrough): Postmark %s s, %.2fx overlayfs, %.2fx the default mount; copy-up %s s, %.2fx overlayfs, %.2fx the default mount; warm tar %s s, %.2fx overlayfs, %.2fx the default mount; its sequential read is that of --no-passthrough (%s GB/s against %s).\n", p, p / po, p / pv, c, c / co, c / cv, t, t / to, t / tv, r, rv
    }'
fi
if [ -n "${tar_other:-}" ]; then
    awk -v m="$other_mode" -v d="$default_mode" -v t="$tar_other" -v tv="$tar_vlfs" -v to="$tar_ovl" -v p="$postmark_other" -v pv="$postmark_vlfs" -v po="$postmark_ovl" \
        -v r="$read_other" -v rv="$read_vlfs" -v ro="$read_ovl" -v c="$cold_other" -v cv="$cold_vlfs" -v co="$cold_ovl" 'BEGIN {
        printf "Open modes, the default (%s) beside %s in the same rounds:\n\n", d, m
        printf "| workload | kernel overlayfs | strata %s | strata %s | %s/overlayfs | %s/overlayfs |\n|---|---|---|---|---|---|\n", d, m, d, m
        printf "| tar of the tree, warm (s) | %s | %s | %s | %.2f | %.2f |\n", to, tv, t, tv / to, t / to
        printf "| Postmark (s) | %s | %s | %s | %.2f | %.2f |\n", po, pv, p, pv / po, p / po
        printf "| sequential read, 1 GiB, warm (GB/s) | %s | %s | %s | %.2f | %.2f |\n", ro, rv, r, rv / ro, r / ro
        printf "| sequential read, 1 GiB, cold (GB/s) | %s | %s | %s | %.2f | %.2f |\n\n", co, cv, c, cv / co, c / co
    }'
fi
if [ -n "${postmark_floor:-}" ]; then
    awk -v p="$postmark_floor" -v po="$postmark_ovl" -v pv="$postmark_vlfs" 'BEGIN {
        printf "The FUSE floor, libfuse'"'"'s passthrough_hp over a plain directory (no union, no permission checks, writeback caching): Postmark %s s, %.2fx overlayfs (strata %.2fx of it).\n", p, p / po, pv / p
    }'
fi
echo "Daemon CPU over the 5 warm tar rounds ($((5 * tree_files)) files): strata VLFS $cpu_vlfs s$([ "$tar_allpass" = n/a ] || echo ", --passthrough-minimum-size 0 $cpu_allpass s")."
if [ -n "${tar_base:-}" ]; then
    awk -v t="$tar_base" -v tv="$tar_vlfs" -v to="$tar_ovl" -v c="$cpu_base" -v cv="$cpu_vlfs" -v p="$postmark_base" -v pv="$postmark_vlfs" -v po="$postmark_ovl" \
        -v k="$copyup_base" -v kv="$copyup_vlfs" -v ko="$copyup_ovl" 'BEGIN {
        printf "BASELINE build (%s) in the same rounds: warm tar %s s (%.2fx overlayfs; this build %.2fx, %.2f of it), its daemon CPU %s s (this build %.2f of it); Postmark %s s (%.2fx overlayfs; this build %.2fx, %.2f of it); copy-up %s s (%.2fx overlayfs; this build %.2fx, %.2f of it).\n",
            ENVIRON["BASELINE"], t, t / to, tv / to, tv / t, c, cv / c, p, p / po, pv / po, pv / p, k, k / ko, kv / ko, kv / k
    }'
fi
echo "Page cache for the 1 GiB file read through two mounts of the same layers (MiB, lower is better): kernel overlayfs $memory_ovl, fuse-overlayfs $memory_fovl, strata VLFS $memory_vlfs, strata --no-passthrough $memory_served; reading it once on the ext4 itself: $memory_ext4 (the loop device caches a copy too)."
awk -v ro="$read_ovl" -v rf="$read_fovl" -v ru="$read_ufs" -v rv="$read_vlfs" -v fo="$find_ovl" -v ff="$find_fovl" -v fu="$find_ufs" -v fv="$find_vlfs" \
    -v to="$tar_ovl" -v tf="$tar_fovl" -v tu="$tar_ufs" -v tv="$tar_vlfs" -v cf="$copyup_fovl" -v cu="$copyup_ufs" -v cv="$copyup_vlfs" \
    -v po="$postmark_ovl" -v pf="$postmark_fovl" -v pu="$postmark_ufs" -v pv="$postmark_vlfs" \
    -v me="$compile_ext4" -v mf="$compile_fovl" -v mu="$compile_ufs" -v mv="$compile_vlfs" 'BEGIN {
    printf "Goals: sequential read within 10%% of overlayfs: %s (%.0f%%); ", (rv >= 0.9 * ro) ? "met" : "missed", 100 * rv / ro
    printf "warm tar within 1.5x of overlayfs: %s (%.2fx); ", (tv <= 1.5 * to) ? "met" : "missed", tv / to
    printf "Postmark within 1.5x of overlayfs: %s (%.2fx); ", (pv <= 1.5 * po) ? "met" : "missed", pv / po
    printf "faster than fuse-overlayfs: %d of 6 workloads; ", (rv > rf) + (fv < ff) + (tv < tf) + (cv < cf) + (pv < pf) + (mv < mf)
    printf "faster than unionfs-fuse: %d of 6 workloads; ", (rv > ru) + (fv < fu) + (tv < tu) + (cv < cu) + (pv < pu) + (mv < mu)
    printf "compile within 5%% of ext4: %s (%+.1f%%)\n", (mv <= 1.05 * me) ? "met" : "missed", 100 * (mv / me - 1)
}'
echo
echo "The kernel path (strata mount --kernel: EROFS metadata image of the composed layers, kernel overlayfs over the CAS, no daemon):"
echo
echo "| workload | kernel overlayfs | strata VLFS | strata --kernel | --kernel/overlayfs | --kernel/VLFS |"
echo "|---|---|---|---|---|---|"
krow() { awk -v w="$1" -v o="$2" -v v="$3" -v k="$4" 'BEGIN { printf "| %s | %s | %s | %s | %.2f | %.2f |\n", w, o, v, k, k / o, k / v }'; }
krow "sequential read, 1 GiB (GB/s, higher is better)" "$read_ovl" "$read_vlfs" "$read_kernel"
krow "find + du, $tree_files files (s)" "$find_ovl" "$find_vlfs" "$find_kernel"
krow "tar of the tree, warm, median of 5 rotated rounds (s)" "$tar_ovl" "$tar_vlfs" "$tar_kernel"
krow "Postmark, $postmark_files files, $postmark_transactions transactions (s)" "$postmark_ovl" "$postmark_vlfs" "$postmark_kernel"
echo
echo "Kernel path mounts: first (builds the $kernel_image_kib KiB metadata image for $kernel_entries entries) $kernel_first s, second (image cached) $kernel_second s; the FUSE VLFS mounts in $mount_vlfs s."
