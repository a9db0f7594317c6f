#!/bin/sh
# The strata daemon's own system calls and CPU per request, two builds side by side (issue 14): Postmark
# in the private layer and a warm tar of small shared files, on one fresh ext4 on a loop device.
# Each build mounts the same LDF; rounds alternate between them. Prints, per workload and build, the
# median wall time and daemon CPU (utime + stime of all its threads, from /proc, ticks of 10 ms) and,
# from one `strace -c -f` run each, the daemon's system calls per request other than reading
# requests from /dev/fuse and writing replies (strace 6.1 does not count getxattrat, syscall 464,
# under -c: it is counted from a full trace).
# Usage: BASELINE=/old/strata STRATA=/new/strata benchmarks/daemon-syscalls.sh [ROUNDS]   (root)
set -eu
rounds=${1:-9}
: "${BASELINE:?BASELINE=/path/to/old/strata}" "${STRATA:?STRATA=/path/to/new/strata}"
for tool in postmark strace; do command -v $tool >/dev/null || { apt-get update -q && apt-get install -y -q $tool; }; done
scratch=$(mktemp -d /var/tmp/strata-daemon-syscalls.XXXXXX)
work=$scratch/fs
cleanup() {
    for build in baseline new; do mountpoint -q "$work/$build/mnt" && STRATA_HOME=$work/$build/home "$BASELINE" umount "$work/$build/mnt" || true; done
    mountpoint -q "$work" && umount "$work" || true
    rm -rf "$scratch"
}
trap cleanup EXIT INT TERM
truncate -s 4G "$scratch/img" && mkfs.ext4 -q "$scratch/img" && mkdir -p "$work" && mount -o loop "$scratch/img" "$work"

# 5,000 small shared files (20 directories of 250, 100 B to 8 KiB) for the tar; Postmark writes the private layer.
python3 - "$work/layers/tree/tree" <<'EOF'
import os, random, sys
r = random.Random(14)
for d in range(20):
    os.makedirs(f"{sys.argv[1]}/d{d:02}", exist_ok=True)
    for f in range(250):
        open(f"{sys.argv[1]}/d{d:02}/f{f:03}", "wb").write(r.randbytes(r.randrange(100, 8192)))
EOF
for build in baseline new; do
    binary=$([ $build = baseline ] && echo "$BASELINE" || echo "$STRATA")
    export STRATA_HOME=$work/$build/home
    "$binary" repo init "$work/$build/repo" >/dev/null && "$binary" repo add main "$work/$build/repo"
    "$binary" layer import main "$work/layers/tree" --name tree --version 1 >/dev/null
    echo "main/tree 1" > "$work/$build/vlfs.ldf" && mkdir -p "$work/$build/mnt"
    "$binary" mount "$work/$build/vlfs.ldf" "$work/$build/mnt" --name $build >/dev/null
done
unset STRATA_HOME

daemon() { for p in /proc/[0-9]*; do case "$( (tr '\0' ' ' < $p/cmdline) 2>/dev/null)" in "strata mount "*" $work/$1/mnt "*) echo ${p#/proc/};; esac; done | head -1; }
cpu() { awk '{ print $14 + $15 }' /proc/$1/stat; }
now() { date +%s.%N; }
postmark_run() {
    mkdir -p "$work/$1/mnt/postmark" && rm -rf "$work/$1/mnt/postmark/"*
    printf 'set size 512 10000\nset number 5000\nset transactions 5000\nset location %s\nrun\nquit\n' "$work/$1/mnt/postmark" > "$scratch/pm-$1.cfg"
    postmark "$scratch/pm-$1.cfg" >/dev/null
}
tar_run() { tar -cf - -C "$work/$1/mnt/tree" . | cat >/dev/null; }
# "wall cpu_ms" of one run of workload $1 on build $2.
measured() {
    pid=$(daemon $2) ticks=$(getconf CLK_TCK) c0=$(cpu $pid) s=$(now)
    ${1}_run $2
    e=$(now) c1=$(cpu $pid)
    echo "$(echo "$e - $s" | bc) $(( (c1 - c0) * 1000 / ticks ))"
}
for build in baseline new; do tar_run $build; done
for round in $(seq "$rounds"); do
    for workload in postmark tar; do
        for build in baseline new; do echo "$workload $build $(measured $workload $build)" >> "$scratch/times"; done
    done
done
# One traced run each: counts by call, and syscall 464 (getxattrat) from the full trace.
for workload in postmark tar; do
    for build in baseline new; do
        strace -c -f -p "$(daemon $build)" -o "$scratch/strace-$workload-$build" 2>/dev/null & tracer=$!
        sleep 1; ${workload}_run $build; sleep 1; kill -INT $tracer; wait $tracer || true
        strace -f -p "$(daemon $build)" -e trace=all -o "$scratch/full-$workload-$build" 2>/dev/null & tracer=$!
        sleep 1; ${workload}_run $build; sleep 1; kill -INT $tracer; wait $tracer || true
        grep -c 'syscall_0x1d0(' "$scratch/full-$workload-$build" > "$scratch/getxattrat-$workload-$build" || true
        rm -f "$scratch/full-$workload-$build"
    done
done
echo "Daemon system calls and CPU, $(nproc) cores, Linux $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
echo "baseline: $BASELINE; new: $STRATA; $rounds alternating rounds, medians"
python3 - "$scratch" <<'EOF'
import statistics, sys
scratch = sys.argv[1]
times = {}
for line in open(f"{scratch}/times"):
    workload, build, wall, cpu = line.split()
    times.setdefault((workload, build), []).append((float(wall), int(cpu)))
infrastructure = {"read", "writev", "epoll_wait", "epoll_ctl", "futex", "timerfd_settime", "restart_syscall", "madvise", "mmap", "munmap",
                  "mprotect", "brk", "clone3", "rt_sigprocmask", "set_robust_list", "rseq", "gettid", "accept", "pipe2", "fcntl"}
def calls(workload, build):
    counts = {}
    for line in open(f"{scratch}/strace-{workload}-{build}"):
        fields = line.split()
        if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] != "total":
            counts[fields[-1]] = int(fields[3])
    counts["getxattrat"] = int(open(f"{scratch}/getxattrat-{workload}-{build}").read() or 0)
    requests = counts.get("read", 0)
    own = {name: n for name, n in counts.items() if name not in infrastructure and n}
    return requests, own
print("| workload | build | wall (s) | daemon CPU (ms) | requests | daemon's own calls | per request | largest |")
print("|---|---|---:|---:|---:|---:|---:|---|")
for workload in ("postmark", "tar"):
    for build in ("baseline", "new"):
        walls = [w for w, _ in times[(workload, build)]]
        cpus = [c for _, c in times[(workload, build)]]
        requests, own = calls(workload, build)
        total = sum(own.values())
        largest = ", ".join(f"{name} {n}" for name, n in sorted(own.items(), key=lambda x: -x[1])[:6])
        print(f"| {workload} | {build} | {statistics.median(walls):.3f} | {statistics.median(cpus):.0f} | {requests} | {total} | {total / max(requests, 1):.2f} | {largest} |")
for workload in ("postmark", "tar"):
    ratio = lambda f: statistics.median(f(x) for x in times[(workload, "new")]) / max(statistics.median(f(x) for x in times[(workload, "baseline")]), 1e-9)
    print(f"{workload}: new/baseline wall {ratio(lambda x: x[0]):.2f}, daemon CPU {ratio(lambda x: x[1]):.2f}")
EOF
