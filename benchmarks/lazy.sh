#!/bin/bash
# Lazy fetch: a web server appliance of real Debian packages (debian/nginx-light and the closure the
# resolver adds) mounted in an empty home from a repository nginx serves on loopback, its packages
# configured at mount by their own scripts, its nginx started inside the VLFS and asked for a page.
# For each fetch mode of `strata mount` (before-mount: mirror everything first; lazy: serve at once,
# the rest in the background; on-open: only what is opened) it prints the time until `strata mount`
# returns (configuration included), until the first HTTP answer, and the objects and bytes the
# server sent by then (from its access log) — and for `lazy`, when the mirror was whole.
# A second mount of the lazy modes (`again`) starts in a new empty home given the first one's record of
# the files the appliance opened first: what the recorded prefetch buys.
#
# Usage: benchmarks/lazy.sh [STRATA]   (STRATA: default this tree's release build; RUNS=3; WORK=/var/tmp/strata-bench-lazy;
#        MODES="before-mount lazy on-open")
set -euo pipefail
cd "$(dirname "$0")/.."
command -v swift >/dev/null || PATH="/opt/swift/usr/bin:$PATH"
strata=${1:-}
if [ -z "$strata" ]; then
    swift build -c release -q --product strata
    strata="$(swift build -c release --show-bin-path)/strata"
fi
runs=${RUNS:-3}
work=${WORK:-/var/tmp/strata-bench-lazy}
. benchmarks/serve-nginx.sh
web_port=$((20000 + RANDOM % 20000)); port=$((web_port + 1))
mkdir -p "$work"
pids=()
mnt="$work/mnt"
cleanup() {
    [ -f "$mnt/run/nginx.pid" ] && kill "$(cat "$mnt/run/nginx.pid")" 2>/dev/null && sleep 0.3
    for inner in dev proc; do mountpoint -q "$mnt/$inner" && umount -l "$mnt/$inner"; done
    mountpoint -q "$mnt" && { "$strata" umount "$mnt" 2>/dev/null || umount -l "$mnt"; }
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
now() { date +%s%N; }
seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b - a) / 1e9 }'; }

# The served repository: Debian's packages of the appliance, imported once and kept in $work.
export STRATA_HOME="$work/server-home"
if [ ! -s "$work/web.ldf" ]; then
    "$strata" repo add debian debian >/dev/null
    printf 'debian/nginx-light\n' > "$work/web.ldf.new"
    "$strata" ldf resolve "$work/web.ldf.new" --write --fetch >/dev/null
    mv "$work/web.ldf.new" "$work/web.ldf"
fi
layers=$(grep -c '^debian/' "$work/web.ldf")
served_bytes=$(du -sb "$work/server-home/debian/objects" | cut -f1)

serve_with_nginx "$work" "$work/server-home/debian" "$port"
pids+=("$nginx_pid")

# Objects and bytes the server sent since the log was emptied.
sent() { awk '$1 ~ /^\/objects\// { n++; b += $2 } END { printf "%d objects, %.1f MB", n, b / 1e6 }' "$work/access.log"; }

# One mount of the appliance in the home $2 with mode $1, up to its first answer; prints a table row.
run_once() { # MODE HOME LABEL
    local mode=$1 home=$2 label=$3
    export STRATA_HOME="$home"
    : > "$work/access.log"
    mkdir -p "$mnt"
    local t0 t_mount t_answer t_whole=""
    t0=$(now)
    "$strata" mount "$work/web.ldf" "$mnt" --name web --fetch "$mode" 2>/dev/null
    t_mount=$(now)
    sed -i "s/listen 80 default_server;/listen 127.0.0.1:$web_port default_server;/; /listen \[::\]:80/d" "$mnt/etc/nginx/sites-available/default"
    mount -t proc proc "$mnt/proc"
    mount --bind /dev "$mnt/dev"
    chroot "$mnt" /usr/sbin/nginx
    for _ in $(seq 600); do curl -sf -o /dev/null "http://127.0.0.1:$web_port/" && break; sleep 0.05; done
    t_answer=$(now)
    local by_answer
    by_answer=$(sent)
    kill "$(cat "$mnt/run/nginx.pid")"; sleep 0.3
    umount "$mnt/dev" "$mnt/proc"
    if [ "$mode" = lazy ]; then
        for _ in $(seq 1200); do "$strata" mirror status debian | grep -q "^$layers of $layers layers local" && break; sleep 0.1; done
        t_whole=$(seconds "$t0" "$(now)")
    fi
    "$strata" umount "$mnt"
    echo "| $label | $(seconds "$t0" "$t_mount") | $(seconds "$t0" "$t_answer") | $by_answer | $(sent) | ${t_whole:--} |"
}

echo "$layers layers, $(awk -v b="$served_bytes" 'BEGIN { printf "%.1f MB", b / 1e6 }') of objects served; best of $runs runs by time to first answer"
echo
echo "| mode | \`strata mount\` returns (s) | first answer (s) | sent by the first answer | sent in all | mirror whole (s) |"
echo "|---|---:|---:|---|---|---:|"
for mode in ${MODES:-before-mount lazy on-open}; do
    labels=("$mode"); [ "$mode" = before-mount ] || labels+=("$mode, again")
    for label in "${labels[@]}"; do
        best=""
        for r in $(seq "$runs"); do
            home="$work/client-$mode"
            [ "$label" = "$mode" ] || home="$work/client-$mode-again"
            rm -rf "$home"
            STRATA_HOME="$home" "$strata" repo add debian "http://127.0.0.1:$port" >/dev/null
            if [ "$label" != "$mode" ]; then
                # A new home, empty but for the first run's record of what the appliance opened first.
                mkdir -p "$home/vlfs/web"
                cp "$work/client-$mode/vlfs/web/first-opens" "$home/vlfs/web/"
            fi
            row=$(run_once "$mode" "$home" "$label")
            answer=$(echo "$row" | cut -d'|' -f4)
            if [ -z "$best" ] || awk -v a="$answer" -v b="$(echo "$best" | cut -d'|' -f4)" 'BEGIN { exit !(a < b) }'; then best=$row; fi
        done
        echo "$best"
    done
done
