#!/bin/bash
# What a lazy mount fetches before anything is opened: the trees, blobs and layer manifests in a new
# home's mirror after `strata mount --fetch on-open` of benchmarks/lazy.sh's appliance, without and
# with configuration, and the requests the server saw (duplicates would show as requests > unique).
# Run benchmarks/lazy.sh first: it imports the served repository into WORK.
#
# Usage: benchmarks/lazy-trees.sh STRATA   (WORK=/var/tmp/strata-bench-lazy)
set -euo pipefail
strata=$(realpath "$1")
work=${WORK:-/var/tmp/strata-bench-lazy}
[ -s "$work/web.ldf" ] || { echo "no $work/web.ldf: run benchmarks/lazy.sh first" >&2; exit 1; }
cd "$(dirname "$0")/.."
. benchmarks/serve-nginx.sh
exp=$(mktemp -d /var/tmp/strata-lazy-trees.XXXXXX)
port=$((20000 + RANDOM % 20000))
serve_with_nginx "$exp" "$work/server-home/debian" "$port"
trap 'mountpoint -q "$exp/mnt" && "$strata" umount "$exp/mnt"; kill $nginx_pid; rm -rf "$exp"' EXIT
# Objects of a store by kind: manifests start with "STRM", version 1, then the kind (1 tree, 2 layer,
# 4 path list).
kinds() {
    python3 - "$1" <<'PY'
import os, sys
names = {1: "trees", 2: "layer manifests", 3: "images", 4: "path lists"}
counts = {"trees": 0, "blobs": 0, "layer manifests": 0, "path lists": 0}
sizes = dict.fromkeys(counts, 0)
for directory, _, files in os.walk(sys.argv[1]):
    for name in files:
        path = os.path.join(directory, name)
        with open(path, "rb") as f:
            head = f.read(6)
        kind = "blobs" if head[:4] != b"STRM" else names.get(head[5], "other")
        counts[kind] = counts.get(kind, 0) + 1
        sizes[kind] = sizes.get(kind, 0) + os.path.getsize(path)
print(", ".join(f"{n} {kind} ({sizes[kind] / 1e3:.0f} KB)" for kind, n in counts.items()), end="")
PY
}
echo "served: $(kinds "$work/server-home/debian/objects")"
for configure in no yes; do
    export STRATA_HOME="$exp/home-$configure"
    mkdir -p "$exp/mnt"
    "$strata" repo add debian "http://127.0.0.1:$port" >/dev/null
    : > "$exp/access.log"
    flags=(--fetch on-open); [ $configure = no ] && flags+=(--no-configure)
    "$strata" mount "$work/web.ldf" "$exp/mnt" --name web "${flags[@]}" 2>/dev/null
    sleep 1
    echo "mount, configure=$configure: $(grep -c '^/objects/' "$exp/access.log") requests ($(grep '^/objects/' "$exp/access.log" | sort -u | wc -l) unique); mirror: $(kinds "$STRATA_HOME/mirrors/debian/objects")"
    "$strata" umount "$exp/mnt"
done
