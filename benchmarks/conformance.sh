#!/bin/sh
# POSIX conformance of the VLFS: pjdfstest on a strata VLFS, on kernel overlayfs and on fuse-overlayfs
# (the same layer everywhere), then fsx on a file that starts in the VLFS's shared layer.
#
# Prints, and saves under $OUT (default /tmp/conformance-DATE):
#   - a pjdfstest table: filesystem, tests run, tests failed, files failed; then per filesystem the
#     failing test files with their failing test numbers (pjdfstest-FS.failures; the full TAP output is
#     pjdfstest-FS.log, one row per test file in pjdfstest-FS.tsv), and the strata failures that kernel
#     overlayfs does not have (pjdfstest-strata-only.failures);
#   - an fsx table: mode, pass/FAIL, operations, seconds, ops/s, for the VLFS mounted normally
#     (passthrough) and with --no-passthrough; on a failure, the tail of fsx's output, which ends with
#     its log of the last operations (fsx-MODE.log; fsx's own .fsxlog/.fsxgood/.fsxops in fsx-MODE/).
#   The daemons' logs are copied to $OUT/daemon-NAME.log. Exit status 1 when strata failed anything.
#
# Usage (root, /dev/fuse, Linux with overlayfs):
#   STRATA=/path/to/strata PJDFSTEST_SRC=/tmp/pjdfstest XFSTESTS_SRC=/tmp/xfstests-src benchmarks/conformance.sh
# where the sources are extracted trees, e.g.
#   git --git-dir=PJDFSTEST.git archive HEAD | tar -x -C /tmp/pjdfstest
#   git --git-dir=XFSTESTS.git archive HEAD | tar -x -C /tmp/xfstests-src
# The tools are built once into $TOOLS (default /tmp/strata-conformance-tools; REBUILD=1 rebuilds):
# pjdfstest with autoreconf/configure/make, fsx from xfstests' ltp/fsx.c alone with a stub config.h.
# Missing Debian packages (autoconf automake libtool fuse-overlayfs) are installed with apt-get.
# Other settings: OUT; SCRATCH_PARENT (default /var/tmp: the home, the overlay upper and work directories
# and the private layers all live there, on one disk); KEEP_SCRATCH=1 keeps the scratch directory;
# PJDFSTEST=0 or FSX=0 skips a part; PJDFSTEST_FS (default "overlayfs fuse-overlayfs strata");
# PJDFSTEST_TESTS (test files or directories under tests/, default all, e.g. "rename chmod/00.t");
# PJDFSTEST_PARALLEL=0 runs the filesystems one after the other (default: at once, each in its own
# process); PJDFSTEST_TIMEOUT seconds per test file (default 900); FSX_OPS (default 500000);
# FSX_SEED (default 1); FSX_MODES (default "passthrough no-passthrough"); FSX_EXTRA (more fsx flags,
# e.g. -f to flush and invalidate the page cache after every I/O); FSX_COMPARE=1 also runs fsx on
# overlayfs and fuse-overlayfs, for reference ops/s; FSX_UPDATE=1 (below).
#
# pjdfstest runs as root from a fresh directory (mode 0755) in each mount, one test file at a time
# through `prove -v` with a timeout, so that a hang costs one file. A test counts as failed when it says
# "not ok" (without TODO) or never ran (a file that died or timed out is also counted in files failed).
#
# fsx runs on data/fsx-file, 256 KiB of random bytes in the shared layer, with:
#   -k             keep the file: fsx starts from the shared layer's bytes (opening it read-write
#                  copies it up) and its size is the upper bound on the file size.
#   -N FSX_OPS -S FSX_SEED -c 100 -p N/10
#                  operations, seed, a close and reopen once in 100 operations (new opens of the now
#                  private file), a progress line every tenth of the run.
#   -P DIR         fsx's logs go to $OUT, not into the filesystem under test.
#   kept           read and write at any byte offset, mmap reads and writes (msync), truncate down and
#                  up, fallocate (extending and KEEP_SIZE), punch hole, zero range, copy_file_range
#                  within the file: all forwarded by FUSE, and implemented by the daemon (fallocate and
#                  copy_file_range on the private copy). fsx probes each at start and drops what the
#                  kernel refuses; its "disabling!" lines are printed under the table. RWF_DONTCACHE
#                  reads and writes are left to that probe (on 6.18 neither FUSE nor overlayfs has them).
#   -C -I -u       no collapse range, insert range, unshare range: FUSE's fallocate refuses every mode
#                  but KEEP_SIZE, PUNCH_HOLE and ZERO_RANGE before the daemon sees it.
#   -J -B -0       no clone range, dedupe range (FICLONERANGE, FIDEDUPERANGE) or XFS exchange range:
#                  ioctls the daemon does not implement (and this fsx is built without XFS headers).
#   -a             no RWF_ATOMIC writes: fsx needs O_DIRECT (-Z) for them, and the VLFS is tested
#                  through the page cache (strata does not claim O_DIRECT).
#   (fsx has a -T to drop RWF_DONTCACHE, but its getopt string lacks the letter; the probe suffices.)
# fsx's copy_file_range probe copies byte 0 of the file onto byte 1 without telling its model of the
# file, which with -k reads as corruption later; so fsx-file's first two bytes are equal.
#
# FSX_UPDATE=1 adds a run per mode in which, while fsx runs, a loop rewrites that VLFS's LDF to switch
# the shared layer between versions 1 and 2 and calls `strata update NAME`. data/fsx-file and
# data/reader-file hold the same bytes in both versions but other modification times, so each update
# counts them as changed; etc/shared-version says which version shows. Each round checks that
# etc/shared-version shows the new version and that data/reader-file (never written) still reads
# intact; the table's note says how many updates ran, failed, or showed wrong content.
set -eu
: "${STRATA:?set STRATA to a strata binary}" "${PJDFSTEST_SRC:?set PJDFSTEST_SRC to pjdfstest sources}"
: "${XFSTESTS_SRC:?set XFSTESTS_SRC to xfstests sources}"
STRATA=$(realpath "$STRATA") PJDFSTEST_SRC=$(realpath "$PJDFSTEST_SRC") XFSTESTS_SRC=$(realpath "$XFSTESTS_SRC")
TOOLS=${TOOLS:-/tmp/strata-conformance-tools}
OUT=${OUT:-/tmp/conformance-$(date +%Y%m%d-%H%M%S)}
PJDFSTEST=${PJDFSTEST:-1} FSX=${FSX:-1}
PJDFSTEST_FS=${PJDFSTEST_FS:-overlayfs fuse-overlayfs strata}
PJDFSTEST_PARALLEL=${PJDFSTEST_PARALLEL:-1} PJDFSTEST_TIMEOUT=${PJDFSTEST_TIMEOUT:-900}
FSX_OPS=${FSX_OPS:-500000} FSX_SEED=${FSX_SEED:-1} FSX_MODES=${FSX_MODES:-passthrough no-passthrough}
FSX_EXTRA=${FSX_EXTRA:-} FSX_COMPARE=${FSX_COMPARE:-0} FSX_UPDATE=${FSX_UPDATE:-0}
[ "$(id -u)" = 0 ] || { echo "conformance.sh: run as root" >&2; exit 2; }
mkdir -p "$OUT"
OUT=$(realpath "$OUT")

# Tools: Debian packages, then pjdfstest and fsx built from the given sources into $TOOLS.
missing=""
for tool in autoreconf:autoconf aclocal:automake libtoolize:libtool fuse-overlayfs:fuse-overlayfs prove:perl gcc:gcc make:make; do
    command -v "${tool%%:*}" >/dev/null || missing="$missing ${tool#*:}"
done
[ -z "$missing" ] || { apt-get update -q && apt-get install -y -q $missing; } >&2
pjdfstest="$TOOLS/pjdfstest" fsx="$TOOLS/fsx/fsx"
if [ "${REBUILD:-0}" = 1 ] || [ ! -x "$pjdfstest/pjdfstest" ] || [ "$(cat "$pjdfstest/.source" 2>/dev/null)" != "$PJDFSTEST_SRC" ]; then
    echo "Building pjdfstest from $PJDFSTEST_SRC into $pjdfstest ..." >&2
    rm -rf "$pjdfstest" && mkdir -p "$pjdfstest"
    cp -a "$PJDFSTEST_SRC/." "$pjdfstest/"
    (cd "$pjdfstest" && { [ -x configure ] || autoreconf -ifs; } && { [ -f Makefile ] || ./configure; } && make) >"$TOOLS/pjdfstest-build.log" 2>&1 ||
        { cat "$TOOLS/pjdfstest-build.log" >&2; exit 2; }
    echo "$PJDFSTEST_SRC" >"$pjdfstest/.source"
fi
if [ "${REBUILD:-0}" = 1 ] || [ ! -x "$fsx" ] || [ "$(cat "$TOOLS/fsx/.source" 2>/dev/null)" != "$XFSTESTS_SRC" ]; then
    echo "Building fsx from $XFSTESTS_SRC/ltp/fsx.c into $fsx ..." >&2
    rm -rf "$TOOLS/fsx" && mkdir -p "$TOOLS/fsx"
    # What xfstests' configure would say about glibc Linux, as far as fsx.c and global.h ask. Without
    # XFS (no xfsprogs headers: -x preallocation and exchange range go), without AIO and io_uring.
    cat >"$TOOLS/fsx/config.h" <<'EOF'
#define HAVE_SYS_TYPES_H 1
#define HAVE_SYS_STAT_H 1
#define HAVE_SYS_STATVFS_H 1
#define HAVE_SYS_TIME_H 1
#define HAVE_SYS_IOCTL_H 1
#define HAVE_SYS_WAIT_H 1
#define HAVE_MALLOC_H 1
#define HAVE_DIRENT_H 1
#define HAVE_STDLIB_H 1
#define HAVE_UNISTD_H 1
#define HAVE_ERRNO_H 1
#define HAVE_STRING_H 1
#define HAVE_SYS_FCNTL_H 1
#define HAVE_SYS_PARAM_H 1
#define HAVE_LIBGEN_H 1
#define HAVE_ASSERT_H 1
#define HAVE_ERR_H 1
#define HAVE_LINUX_FALLOC_H 1
EOF
    gcc -O2 -g -D_GNU_SOURCE -DFALLOCATE -DHAVE_COPY_FILE_RANGE -include getopt.h -I"$TOOLS/fsx" \
        -I"$XFSTESTS_SRC/src" -I"$XFSTESTS_SRC/include" -o "$fsx" "$XFSTESTS_SRC/ltp/fsx.c" >"$TOOLS/fsx/build.log" 2>&1 ||
        { cat "$TOOLS/fsx/build.log" >&2; exit 2; }
    echo "$XFSTESTS_SRC" >"$TOOLS/fsx/.source"
fi

# Scratch: a Strata home with repository `main` holding `shared` 1 and 2, a checkout of version 1 for
# the overlays, and every mount. Removed at the end, whatever happens.
mkdir -p "${SCRATCH_PARENT:-/var/tmp}"
scratch=$(mktemp -d "${SCRATCH_PARENT:-/var/tmp}/strata-conformance.XXXXXX")
chmod 755 "$scratch"
export STRATA_HOME="$scratch/home"
vlfs_mounts="" kernel_mounts="" background=""
cleanup() {
    status=$?
    set +e
    for pid in $background; do kill "$pid" 2>/dev/null; done
    for mnt in $vlfs_mounts; do
        mountpoint -q "$mnt" && { "$STRATA" umount "$mnt" >/dev/null 2>&1 || umount -l "$mnt"; }
    done
    for mnt in $kernel_mounts; do mountpoint -q "$mnt" && { umount "$mnt" || umount -l "$mnt"; }; done
    for log in "$STRATA_HOME"/vlfs/*/daemon.log; do
        [ -f "$log" ] && cp "$log" "$OUT/daemon-$(basename "$(dirname "$log")").log"
    done
    if [ "${KEEP_SCRATCH:-0}" = 1 ]; then echo "Scratch kept in $scratch" >&2; else rm -rf "$scratch"; fi
    exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

echo "Making the shared layer in $scratch ..." >&2
for version in 1 2; do
    tree="$scratch/trees/shared_$version"
    mkdir -p "$tree/etc" "$tree/usr/bin" "$tree/usr/share/doc/shared" "$tree/var/lib/shared" "$tree/data" "$tree/home"
    echo conformance >"$tree/etc/hostname"
    echo "$version" >"$tree/etc/shared-version"
    printf '#!/bin/sh\necho tool\n' >"$tree/usr/bin/tool"
    chmod 755 "$tree/usr/bin/tool"
    echo "A layer for benchmarks/conformance.sh." >"$tree/usr/share/doc/shared/README"
    ln -s ../share/doc/shared/README "$tree/usr/bin/readme"
done
# The same bytes in both versions: fsx-file (first two bytes equal, see above) and reader-file. Their
# modification times differ, so that a live update between the versions counts them as changed paths
# (and invalidates them) although their contents are the same blobs.
{ printf 'ss'; head -c $((256 * 1024 - 2)) /dev/urandom; } >"$scratch/trees/shared_1/data/fsx-file"
head -c $((256 * 1024)) /dev/urandom >"$scratch/trees/shared_1/data/reader-file"
cp -a "$scratch/trees/shared_1/data/." "$scratch/trees/shared_2/data/"
touch -d @1577836800 "$scratch/trees/shared_2/data/fsx-file" "$scratch/trees/shared_2/data/reader-file"
"$STRATA" repo init "$scratch/repo" >/dev/null
"$STRATA" repo add main "$scratch/repo" >/dev/null
for version in 1 2; do
    "$STRATA" layer import main "$scratch/trees/shared_$version" --name shared --version "$version" >/dev/null
done
"$STRATA" layer checkout main shared=1 "$scratch/lower" >/dev/null

# A VLFS of `shared` 1, with its own LDF (a daemon follows rewrites of its LDF) and private layer.
mount_vlfs() { # NAME [strata mount options]
    name=$1
    shift
    mkdir -p "$scratch/$name/mnt"
    echo "main/shared 1" >"$scratch/$name/vlfs.ldf"
    vlfs_mounts="$vlfs_mounts $scratch/$name/mnt"
    "$STRATA" mount "$scratch/$name/vlfs.ldf" "$scratch/$name/mnt" --name "$name" "$@"
}
mount_overlay() { # overlayfs|fuse-overlayfs
    mkdir -p "$scratch/$1/upper" "$scratch/$1/work" "$scratch/$1/mnt"
    kernel_mounts="$scratch/$1/mnt $kernel_mounts"
    options="lowerdir=$scratch/lower,upperdir=$scratch/$1/upper,workdir=$scratch/$1/work"
    if [ "$1" = overlayfs ]; then mount -t overlay overlay -o "$options" "$scratch/$1/mnt"; else fuse-overlayfs -o "$options" "$scratch/$1/mnt"; fi
}
mount_overlay overlayfs
mount_overlay fuse-overlayfs
mountpoint_of() { case $1 in strata) echo "$scratch/vlfs/mnt" ;; *) echo "$scratch/$1/mnt" ;; esac; }

failed=0

pjdfstest_files() { (cd "$pjdfstest/tests" && find ${PJDFSTEST_TESTS:-.} -name '*.t' | sed 's|^\./||' | sort); }
# pjdfstest, one test file at a time; FS.tsv holds: file, planned, run, failed, exit status, failing numbers.
pjdfstest_in() { # FS
    dir="$(mountpoint_of "$1")/pjdfstest.$$"
    mkdir "$dir"
    chmod 755 "$dir"
    : >"$OUT/pjdfstest-$1.log"
    : >"$OUT/pjdfstest-$1.tsv"
    for test in $(pjdfstest_files); do
        status=0
        (cd "$dir" && timeout -k 10 "$PJDFSTEST_TIMEOUT" prove -v "$pjdfstest/tests/$test") >"$OUT/pjdfstest-$1.out" 2>&1 || status=$?
        { echo "=== $test (exit $status)"; cat "$OUT/pjdfstest-$1.out"; } >>"$OUT/pjdfstest-$1.log"
        awk -v test="$test" -v status="$status" '
            /^1\.\.[0-9]+/ { split($0, p, "\\.\\."); planned = p[2] + 0 }
            /^(not )?ok [0-9]+/ {
                number = ($1 == "not") ? $3 : $2
                run++
                if ($1 == "not" && $0 !~ /# TODO/) { bad++; numbers = numbers " " number }
            }
            END {
                missing = planned - run
                if (missing > 0) { bad += missing; numbers = numbers " (" missing " never ran)" }
                printf "%s\t%d\t%d\t%d\t%s\t%s\n", test, planned, run, bad, status, numbers
            }' "$OUT/pjdfstest-$1.out" >>"$OUT/pjdfstest-$1.tsv"
    done
    rm -f "$OUT/pjdfstest-$1.out"
    # Failing files with their numbers, then every "not ok" line with what it tried.
    awk -F'\t' '$4 > 0 || $5 != 0 { printf "%s: failed%s%s\n", $1, $6, ($5 != 0 && $5 != 1 ? " (exit " $5 ")" : "") }' \
        "$OUT/pjdfstest-$1.tsv" >"$OUT/pjdfstest-$1.failures"
    # Long path arguments (pjdfstest's PATH_MAX tests) are shortened to their length.
    { echo; grep -E '^=== |^not ok' "$OUT/pjdfstest-$1.log" | grep -v '# TODO' |
        awk '/^=== / { header = $0; next }
             { for (i = 1; i <= NF; i++) if (length($i) > 100) {
                   w = $i; pre = ""; post = ""
                   if (w ~ /^\047/) { pre = "\047"; w = substr(w, 2) }
                   while (w ~ /[\047,]$/) { post = substr(w, length(w)) post; w = substr(w, 1, length(w) - 1) }
                   $i = pre "<" length(w) "-char path>" post
               }
               if (header) print header; header = ""; print }'; } >>"$OUT/pjdfstest-$1.failures"
}
if [ "$PJDFSTEST" = 1 ]; then
    case " $PJDFSTEST_FS " in *" strata "*) mount_vlfs vlfs ;; esac
    echo "Running pjdfstest on:$PJDFSTEST_FS ($(pjdfstest_files | wc -l) test files each) ..." >&2
    jobs=""
    for fs in $PJDFSTEST_FS; do
        if [ "$PJDFSTEST_PARALLEL" = 1 ]; then
            pjdfstest_in "$fs" &
            jobs="$jobs $!" background="$background $!"
        else
            pjdfstest_in "$fs"
        fi
    done
    for job in $jobs; do wait "$job"; done
    {
        echo "pjdfstest from $PJDFSTEST_SRC, run as root"
        printf '%-16s %10s %13s %13s\n' filesystem "tests run" "tests failed" "files failed"
        for fs in $PJDFSTEST_FS; do
            awk -F'\t' -v fs="$fs" '{ run += $3; bad += $4; if ($4 > 0 || $5 != 0) files++; all++ }
                END { printf "%-16s %10d %13d %9d/%d\n", fs, run, bad, files, all }' "$OUT/pjdfstest-$fs.tsv"
        done
        for fs in $PJDFSTEST_FS; do
            echo
            echo "Failing pjdfstest files on $fs (test numbers):"
            sed '/^$/q' "$OUT/pjdfstest-$fs.failures" | sed '/^$/d; s/^/  /'
        done
    } | tee "$OUT/pjdfstest-summary.txt"
    case " $PJDFSTEST_FS " in *" strata "*)
        [ -z "$(awk -F'\t' '$4 > 0 || $5 != 0' "$OUT/pjdfstest-strata.tsv")" ] || failed=1
        case " $PJDFSTEST_FS " in *" overlayfs "*)
            # Failures of strata that kernel overlayfs does not share: file and test number pairs.
            pairs() { awk -F'\t' '{ n = split($6, f, " "); for (i = 1; i <= n; i++) if (f[i] ~ /^[0-9]+$/) print $1 " " f[i]; if ($6 ~ /never ran/ || ($5 != 0 && $5 != 1)) print $1 " died" }' "$1" | sort -u; }
            # (comm needs the lexical order; the list is then put back in numeric order.)
            pairs "$OUT/pjdfstest-overlayfs.tsv" >"$OUT/.overlayfs-pairs"
            pairs "$OUT/pjdfstest-strata.tsv" | comm -23 - "$OUT/.overlayfs-pairs" |
                sort -k1,1 -k2,2n | awk '{ if ($1 != last) { if (last) print line; line = $1 ":"; last = $1 } line = line " " $2 } END { if (last) print line }' \
                >"$OUT/pjdfstest-strata-only.failures"
            rm -f "$OUT/.overlayfs-pairs"
            { echo; echo "Failing on strata but not on overlayfs:"; sed 's/^/  /' "$OUT/pjdfstest-strata-only.failures"; } | tee -a "$OUT/pjdfstest-summary.txt"
            ;;
        esac ;;
    esac
    echo
fi

# fsx on data/fsx-file: fsx_in SLUG LABEL MOUNTPOINT [VLFS-NAME-TO-UPDATE]
fsx_flags="-k -N $FSX_OPS -S $FSX_SEED -c 100 -p $((FSX_OPS / 10 > 0 ? FSX_OPS / 10 : 1)) -C -I -u -J -B -0 -a $FSX_EXTRA"
fsx_in() {
    slug=$1 label=$2 mnt=$3 name=${4:-}
    rm -rf "$OUT/fsx-$slug" && mkdir -p "$OUT/fsx-$slug"
    note=""
    if [ -n "$name" ]; then
        update_loop "$name" "$mnt" "$OUT/fsx-$slug" &
        updater=$! background="$background $!"
    fi
    start=$(date +%s.%N)
    status=0
    # shellcheck disable=SC2086
    (cd "$OUT/fsx-$slug" && "$fsx" $fsx_flags -P "$OUT/fsx-$slug" "$mnt/data/fsx-file") >"$OUT/fsx-$slug.log" 2>&1 || status=$?
    end=$(date +%s.%N)
    result=pass
    grep -q 'operations completed A-OK' "$OUT/fsx-$slug.log" && [ "$status" = 0 ] || result="FAIL (exit $status)"
    if [ -n "$name" ]; then
        touch "$OUT/fsx-$slug/stop"
        wait "$updater" || true
        note=$(cat "$OUT/fsx-$slug/updates")
        [ "$result" != pass ] || grep -q ': 0 failed, 0 wrong' "$OUT/fsx-$slug/updates" || result="FAIL (updates)"
    fi
    [ "$result" = pass ] || fsx_failed="$fsx_failed $slug"
    awk -v l="$label" -v r="$result" -v n="$FSX_OPS" -v s="$start" -v e="$end" -v note="$note" \
        'BEGIN { printf "%-34s %-14s %10d %9.1f %9.0f  %s\n", l, r, n, e - s, n / (e - s), note }' >>"$OUT/fsx-summary.txt"
}
# While fsx runs: switch the shared layer between versions 1 and 2 under VLFS NAME, checking each round.
update_loop() { # NAME MOUNTPOINT DIR
    version=1 rounds=0 bad=0 wrong=0
    while [ ! -e "$3/stop" ]; do
        version=$((3 - version))
        echo "main/shared $version" >"$scratch/$1/vlfs.ldf.new"
        mv "$scratch/$1/vlfs.ldf.new" "$scratch/$1/vlfs.ldf"
        if "$STRATA" update "$1" >>"$3/update.log" 2>&1; then
            [ "$(cat "$2/etc/shared-version" 2>>"$3/update.log")" = "$version" ] ||
                { wrong=$((wrong + 1)); echo "round $rounds: etc/shared-version is not $version" >>"$3/update.log"; }
            cmp -s "$2/data/reader-file" "$scratch/trees/shared_1/data/reader-file" ||
                { wrong=$((wrong + 1)); echo "round $rounds: data/reader-file differs" >>"$3/update.log"; }
        else
            bad=$((bad + 1))
            echo "round $rounds: strata update $1 failed" >>"$3/update.log"
        fi
        rounds=$((rounds + 1))
        sleep 0.2
    done
    echo "$rounds layer swaps: $bad failed, $wrong wrong reads" >"$3/updates"
}
if [ "$FSX" = 1 ]; then
    fsx_failed=""
    echo "fsx $fsx_flags" >"$OUT/fsx-summary.txt"
    printf '%-34s %-14s %10s %9s %9s\n' "filesystem (mode)" result operations seconds "ops/s" >>"$OUT/fsx-summary.txt"
    for mode in $FSX_MODES; do
        case $mode in passthrough) options="" ;; no-passthrough) options=--no-passthrough ;; *) echo "unknown FSX_MODES entry $mode" >&2; exit 2 ;; esac
        echo "fsx on strata ($mode), $FSX_OPS operations ..." >&2
        mount_vlfs "fsx-$mode" $options
        fsx_in "strata-$mode" "strata ($mode)" "$scratch/fsx-$mode/mnt"
        if [ "$FSX_UPDATE" = 1 ]; then
            echo "fsx on strata ($mode) under live updates ..." >&2
            mount_vlfs "fsx-$mode-update" $options
            fsx_in "strata-$mode-update" "strata ($mode, updates)" "$scratch/fsx-$mode-update/mnt" "fsx-$mode-update"
        fi
    done
    if [ "$FSX_COMPARE" = 1 ]; then
        for fs in overlayfs fuse-overlayfs; do
            echo "fsx on $fs ..." >&2
            fsx_in "$fs" "$fs" "$scratch/$fs/mnt"
        done
    fi
    for log in "$OUT"/fsx-*.log; do
        probes=$(grep -h 'disabling' "$log" | sort -u | sed 's/^/    /')
        [ -z "$probes" ] || printf '  %s: fsx dropped:\n%s\n' "$(basename "$log" .log)" "$probes"
    done >>"$OUT/fsx-summary.txt"
    for slug in $fsx_failed; do
        printf '\nfsx failed on %s; the end of its output (%s):\n' "$slug" "$OUT/fsx-$slug.log"
        tail -n 40 "$OUT/fsx-$slug.log"
        [ ! -f "$OUT/fsx-$slug/update.log" ] || { echo "updates:"; tail -n 10 "$OUT/fsx-$slug/update.log"; }
    done >>"$OUT/fsx-summary.txt"
    cat "$OUT/fsx-summary.txt"
    case "$fsx_failed" in *strata*) failed=1 ;; esac
fi
echo "Outputs in $OUT" >&2
exit $failed
