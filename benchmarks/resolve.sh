#!/bin/bash
# Resolution benchmark: `strata ldf resolve` against `apt-get -s install`, on the machine's apt
# indexes, from nothing installed. Prints a Markdown table (docs/BENCHMARKS.md, "Resolution").
#
# Both solve the same problem: the target plus Debian's base set (Essential: yes and Priority:
# required, which Strata always includes), no Recommends (layer metadata has none), an empty dpkg
# status. apt gets its binary cache (pkgcache.bin), which this machine's apt configuration turns
# off; times are the best of RUNS runs of the whole command, index load included.
#
# Usage: benchmarks/resolve.sh [TARGET...]   (RUNS=5 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v swift >/dev/null || PATH="/opt/swift/usr/bin:$PATH"
swift build -c release -q
strata="$(swift build -c release --show-bin-path)/strata"
runs=${RUNS:-5}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(mariadb-server nginx apache2 postgresql openssh-server python3 perl git curl rsyslog cron)

work=$(mktemp -d /tmp/bench-resolve.XXXXXX)
trap 'rm -rf "$work"' EXIT
export STRATA_HOME="$work/home"
"$strata" repo add debian debian
: > "$work/empty-status"
apt_options=(-s -q -o "Dir::State::status=$work/empty-status" -o APT::Install-Recommends=false
             -o "Dir::Cache::pkgcache=$work/pkgcache.bin" -o "Dir::Cache::srcpkgcache=$work/srcpkgcache.bin")
base=$(for file in $(apt-get indextargets --format '$(FILENAME)' 'Identifier: Packages'); do
           [ -f "$file" ] && /usr/lib/apt/apt-helper cat-file "$file"
       done | awk '/^Package:/ { name = $2 } /^(Essential: yes|Priority: required)$/ { print name }' | sort -u)

now() { date +%s%N; }
# best TIME-IN-MS of running "$@" $runs times (output discarded)
best() {
    local best_ns=0 start elapsed
    for _ in $(seq "$runs"); do
        start=$(now); "$@" >/dev/null 2>&1; elapsed=$(( $(now) - start ))
        if [ $best_ns -eq 0 ] || [ $elapsed -lt $best_ns ]; then best_ns=$elapsed; fi
    done
    echo $(( best_ns / 1000000 ))
}

cold=$(best "$strata" repo index debian --rebuild)
packages=$("$strata" repo index debian)
cached=$(best "$strata" repo index debian)
apt-get "${apt_options[@]}" install base-files >/dev/null 2>&1 # builds apt's binary cache once

echo "| target | strata closure | strata ms | apt closure | apt ms | apt ÷ strata |"
echo "|---|---:|---:|---:|---:|---:|"
for target in "${targets[@]}"; do
    printf 'debian/%s\n' "$target" > "$work/$target.ldf"
    strata_closure=$("$strata" ldf resolve "$work/$target.ldf" | grep -c '^debian/')
    strata_ms=$(best "$strata" ldf resolve "$work/$target.ldf")
    # shellcheck disable=SC2086
    apt_closure=$(apt-get "${apt_options[@]}" install "$target" $base | grep -c '^Inst ')
    # shellcheck disable=SC2086
    apt_ms=$(best apt-get "${apt_options[@]}" install "$target" $base)
    ratio=$(awk -v a="$apt_ms" -v s="$strata_ms" 'BEGIN { printf "%.1f×", a / (s > 0 ? s : 1) }')
    echo "| $target | $strata_closure | $strata_ms | $apt_closure | $apt_ms | $ratio |"
done
echo
echo "Suite index ($packages packages): cold from the Packages files ${cold} ms; from the .solv cache ${cached} ms (\`strata repo index debian [--rebuild]\`)."
