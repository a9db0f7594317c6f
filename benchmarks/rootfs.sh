#!/bin/bash
# Rootfs import (issue 13): Debian 12 machines made by `mmdebstrap --variant=minbase bookworm` from the
# machine's apt sources, each given its own hostname and a file of its own, imported one after the
# other into one repository with `strata import rootfs --verify`. Prints VM2Docker's storage table
# (its Tables 5.4–5.10: the bare machine, the package layers it uses, its configuration layer, the
# repository after it) and its package-reduction table (Table 5.11: installed packages, apt's manual
# set, the minimal explicit set of section 4.3.2, the LDF's explicit set), then `strata ldf storage` of the machines.
#
# Usage: benchmarks/rootfs.sh [INCLUDES...]   one machine per argument, the packages apt installs on top
#   of minbase, comma-separated (default: nginx-light,procps,less twice, then openssh-server,curl).
#   STRATA=PATH uses that binary instead of a release build. Machines are cached in /tmp/strata-bench-rootfs,
#   and the Debian package layers in DEBIAN_CACHE (default /tmp/strata-bench-rootfs/debian-merged-usr).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${STRATA:-}" ]; then
    command -v swift >/dev/null || PATH="/opt/swift/usr/bin:$PATH"
    swift build -c release -q --product strata
    STRATA="$(swift build -c release --show-bin-path)/strata"
fi
machines=("$@")
[ ${#machines[@]} -gt 0 ] || machines=(nginx-light,procps,less nginx-light,procps,less openssh-server,curl)
sources=/etc/apt/sources.list.d/debian.sources
[ -f "$sources" ] || sources=/etc/apt/sources.list

cache=/tmp/strata-bench-rootfs
mkdir -p "$cache"
work=$(mktemp -d /tmp/bench-rootfs.XXXXXX)
trap 'rm -rf "$work"' EXIT
export STRATA_HOME="$work/home"
debian_cache=${DEBIAN_CACHE:-$cache/debian-merged-usr}
mkdir -p "$debian_cache" "$STRATA_HOME" && ln -s "$debian_cache" "$STRATA_HOME/debian"
"$STRATA" repo init "$work/repo" >/dev/null
"$STRATA" repo add machines "$work/repo"
"$STRATA" repo add debian debian
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1000000 }'; }
# The bytes of the layers named by an LDF's lines (`machines/NAME VERSION`, `=` for pinned) read on stdin.
layer_bytes() { "$STRATA" layer list machines --json > "$work/layers.json"; python3 -c "
import json, sys
layers = json.load(open(sys.argv[1]))
names = {line.strip().lstrip('=').split('/', 1)[1] for line in sys.stdin if line.strip() and not line.startswith('#')}
print(sum(l['bytes'] for l in layers if l['name'] + ' ' + l['version'] in names))" "$work/layers.json"; }

storage="| machine | packages | bare machine β (MB) | its package layers (MB) | its configuration layer (MB) | verified | repository after (MB) | machines as bare trees (MB) |
|---|---:|---:|---:|---:|---|---:|---:|"
reduction="| machine | installed | apt's manual set | minimal explicit set (VM2Docker) | LDF's explicit set | dropped from the list |
|---|---:|---:|---:|---:|---:|"
bare_total=0
for index in "${!machines[@]}"; do
    includes=${machines[$index]}
    name="m$((index + 1))"
    tarball="$cache/bookworm-minbase-${includes//,/-}.tar"
    [ -f "$tarball" ] || mmdebstrap --quiet --format=tar --variant=minbase --include="$includes" bookworm "$tarball.part" "$sources"
    [ -f "$tarball" ] || mv "$tarball.part" "$tarball"
    root="$work/$name"
    mkdir -p "$root" && tar -C "$root" --numeric-owner --xattrs --xattrs-include='*' -xpf "$tarball"
    echo "$name" > "$root/etc/hostname" && mkdir -p "$root/srv" && echo "data of $name" > "$root/srv/$name"
    bare=$(du -sb --exclude=./proc --exclude=./sys "$root" | cut -f1)
    bare_total=$((bare_total + bare))
    output=$("$STRATA" import rootfs "$root" --repo machines --ldf "$work/$name.ldf" --verify)
    different=$(echo "$output" | awk '$1 == "different" { print $2 }')
    config=$(echo "$output" | head -n 1 | cut -d' ' -f1,2)
    package_bytes=$(grep -v -e '^=' -e '^#' "$work/$name.ldf" | layer_bytes)
    installed=$(grep -c -v -e '^=' -e '^#' -e '^$' "$work/$name.ldf")
    manual=$(chroot "$root" apt-mark showmanual | wc -l)
    minimal=$(echo "$output" | sed -n 's/.*minimal set \([0-9]*\).*/\1/p')
    explicit=$(sed -n '/^$/q; /^[^#=]/p' "$work/$name.ldf" | wc -l)
    repository=$(du -sb "$work/repo/objects" | cut -f1)
    storage+="
| $name ($includes) | $installed | $(mb "$bare") | $(mb "$package_bytes") | $(mb "$(echo "machines/$config" | layer_bytes)") | $([ "$different" = 0 ] && echo equal || echo "$different differ") | $(mb "$repository") | $(mb "$bare_total") |"
    reduction+="
| $name ($includes) | $installed | $manual | $minimal | $explicit | $(awk -v a="$installed" -v b="$explicit" 'BEGIN { printf "%.1f %%", 100 * (a - b) / a }') |"
done
echo "$storage"
echo
echo "$reduction"
echo
# The same machines as `strata ldf storage` prints them: each one's cost beside the others (χ), and in total.
"$STRATA" ldf storage $(for index in "${!machines[@]}"; do echo "$work/m$((index + 1)).ldf"; done)
