#!/bin/sh
# Builds libfuse's own high-performance passthrough example (example/passthrough_hp.cc of the distribution's
# fuse3 source package, the version of the installed libfuse3) and prints the binary's path. It is the FUSE
# floor in benchmarks/vlfs.sh: a C++ daemon with no union, no permission checks (no default_permissions)
# and writeback caching, so its times are what any FUSE filesystem on this kernel pays for the round trips.
# The source comes through apt from the deb sources already configured (their deb-src twins, in a private
# list directory); the binary is cached under $CACHE.
# Usage: benchmarks/passthrough-hp.sh   (root; needs g++ and libfuse3-dev)
set -eu
cache="${CACHE:-/var/tmp/strata-bench-cache/passthrough-hp}"
binary="$cache/passthrough_hp"
if [ -x "$binary" ]; then echo "$binary"; exit 0; fi
apt_dir="$cache/apt"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/parts"
# Every deb822 paragraph of the system's sources that has deb in its Types, as deb-src (comments dropped).
for sources in /etc/apt/sources.list.d/*.sources; do
    [ -e "$sources" ] || continue
    awk 'BEGIN { RS = ""; FS = "\n" }
         /(^|\n)Types:[^\n]*deb( |$|\n)/ {
             print "Types: deb-src"
             for (i = 1; i <= NF; i++) if ($i !~ /^Types:/ && $i !~ /^#/) print $i
             print ""
         }' "$sources"
done >"$apt_dir/parts/sources.sources"
# One-line sources.list entries too.
if [ -f /etc/apt/sources.list ]; then
    sed -n 's/^deb \(.*\)$/deb-src \1/p' /etc/apt/sources.list >"$apt_dir/parts/sources.list"
fi
apt_options="-q -o Dir::Etc::SourceList=$apt_dir/none -o Dir::Etc::SourceParts=$apt_dir/parts -o Dir::State::Lists=$apt_dir/lists"
# shellcheck disable=SC2086
apt-get $apt_options update >&2
version=$(dpkg-query -W -f '${source:Version}' libfuse3-3)
work="$cache/source"
rm -rf "$work"
mkdir -p "$work"
chown _apt "$work" 2>/dev/null || true  # apt downloads as _apt where it can
# shellcheck disable=SC2086
(cd "$work" && apt-get $apt_options source --download-only "fuse3=$version" >&2)
tar -xf "$(ls "$work"/fuse3_*.orig.tar.* | grep -v "\.asc$")" -C "$work"
g++ -O2 -std=c++17 $(pkg-config --cflags fuse3) "$work"/fuse-*/example/passthrough_hp.cc -o "$binary.new" $(pkg-config --libs fuse3) -lpthread
mv "$binary.new" "$binary"
echo "$binary"
