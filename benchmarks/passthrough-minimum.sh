#!/bin/sh
# Where --passthrough-minimum-size pays: tar of 20,000 small shared files (12 layers, as benchmarks/vlfs.sh
# --quick), cold (after drop_caches, 3 rounds) and warm (7 rotated rounds), on two mounts of one build, every
# shared file passed through (0) against files under 128 KiB cached (131072), with each daemon's CPU time.
# Usage: benchmarks/passthrough-minimum.sh /path/to/strata   (root, /dev/fuse)
set -eu
strata=$1 ca="" cb=""
scratch=$(mktemp -d /var/tmp/strata-fast2-tar.XXXXXX)
export STRATA_HOME="$scratch/home"
python3 - "$scratch/layers" <<'PY'
import os, random, sys
random.seed(1)
root = sys.argv[1]
dirs = [f"tree/d{a:03}/s{b:02}" for a in range(100) for b in range(10)]
for layer in range(12):
    for i in range(20000 // 12):
        p = f"{root}/tree{layer:02}/{dirs[i % len(dirs)]}/l{layer:02}-{i}"
        os.makedirs(os.path.dirname(p), exist_ok=True)
        open(p, "wb").write(b"x" * random.randrange(0, 4096))
PY
"$strata" repo init "$scratch/repo" >/dev/null
"$strata" repo add main "$scratch/repo"
for layer in $(ls "$scratch/layers"); do "$strata" layer import main "$scratch/layers/$layer" --name $layer --version 1 >/dev/null; echo "main/$layer 1" >>"$scratch/t.ldf"; done
mkdir -p "$scratch/a" "$scratch/b"
"$strata" mount "$scratch/t.ldf" "$scratch/a" --name a --passthrough-minimum-size 0
"$strata" mount "$scratch/t.ldf" "$scratch/b" --name b --passthrough-minimum-size 131072
t() { s=$(date +%s.%N); tar -cf - -C "$1/tree" . | cat >/dev/null; awk -v s=$s -v e=$(date +%s.%N) 'BEGIN { printf "%.3f", e - s }'; }
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$(cat "$STRATA_HOME/vlfs/$1/daemon.pid")/stat"; }
for round in 1 2 3; do
  sync; echo 3 >/proc/sys/vm/drop_caches; ca="$ca $(t $scratch/a)"
  sync; echo 3 >/proc/sys/vm/drop_caches; cb="$cb $(t $scratch/b)"
done
ua=$(cpu a) ub=$(cpu b)
for round in 1 2 3 4 5 6 7; do wa="${wa:-} $(t $scratch/a)"; wb="${wb:-} $(t $scratch/b)"; done
ua=$(awk -v a=$ua -v b=$(cpu a) 'BEGIN { print b - a }'); ub=$(awk -v a=$ub -v b=$(cpu b) 'BEGIN { print b - a }')
echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "cold tar (after drop_caches), 3 rounds (s): 0:$ca | 131072:$cb"
echo "warm tar, 7 rotated rounds (s): 0:$wa | 131072:$wb"
echo "daemon CPU over the warm rounds: 0 $ua s, 131072 $ub s"
"$strata" umount "$scratch/a"; "$strata" umount "$scratch/b"
rm -rf "$scratch"
