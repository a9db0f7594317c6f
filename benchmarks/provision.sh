#!/bin/bash
# Provisioning benchmark: `strata provision` of COUNT appliances from one template in one command,
# then `strata fleet status` and `appliance list --json` over them, each from a fresh home (no
# appliances yet). Prints a Markdown table of the best of RUNS runs.
#
# Usage: benchmarks/provision.sh [COUNT...]   (RUNS=3 by default; COUNT 10 100 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v swift >/dev/null || PATH="/opt/swift/usr/bin:$PATH"
swift build -c release -q --product strata
strata="$(swift build -c release --show-bin-path)/strata"
runs=${RUNS:-3}
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(10 100 1000)

work=$(mktemp -d /tmp/bench-provision.XXXXXX)
trap 'rm -rf "$work"' EXIT
now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }

echo "| appliances | provision (ms) | per appliance (ms) | fleet status (ms) | appliance list --json (ms) |"
echo "|---:|---:|---:|---:|---:|"
for count in "${counts[@]}"; do
    best_provision=0 best_status=0 best_list=0
    for run in $(seq "$runs"); do
        export STRATA_HOME="$work/home-$count-$run"
        "$strata" repo init "$work/repo-$count-$run" >/dev/null
        "$strata" repo add main "$work/repo-$count-$run"
        mkdir -p "$work/tree/etc" && echo x > "$work/tree/etc/x"
        "$strata" layer import main "$work/tree" --name base --version 1 >/dev/null
        printf 'main/base 1\n' > "$work/web.ldf"
        "$strata" template create web "$work/web.ldf" >/dev/null
        mapfile -t names < <(seq -f "app%05g" 1 "$count")
        start=$(now); "$strata" provision "${names[@]}" --template web >/dev/null; provision=$(ms "$start" "$(now)")
        start=$(now); "$strata" fleet status >/dev/null; status=$(ms "$start" "$(now)")
        start=$(now); "$strata" appliance list --json >/dev/null; list=$(ms "$start" "$(now)")
        if [ "$best_provision" -eq 0 ] || [ "$provision" -lt "$best_provision" ]; then best_provision=$provision; fi
        if [ "$best_status" -eq 0 ] || [ "$status" -lt "$best_status" ]; then best_status=$status; fi
        if [ "$best_list" -eq 0 ] || [ "$list" -lt "$best_list" ]; then best_list=$list; fi
    done
    per=$(awk -v t="$best_provision" -v n="$count" 'BEGIN { printf "%.2f", t / n }')
    echo "| $count | $best_provision | $per | $best_status | $best_list |"
done
