#!/bin/bash
# The appliance lifecycle at fleet scale, after the Strata paper's Table 2 and Figure 6: five templates
# of real Debian packages (nginx-light, openssh-server, postgresql, samba, and a large one), each
# configured once through its mount by its packages' own scripts and promoted; ten appliances
# provisioned from each; then every template's `tar` upgraded (Debian's tar rebuilt with a higher
# version), which reaches the 10 mounted appliances live and the 40 others at their next mount. The peer:
# the same tar upgrade done by hand with dpkg in a plain copy of an appliance. Last, what the 50
# appliances store beside the repository.
#
# Usage: benchmarks/lifecycle.sh   (root, /dev/fuse, apt sources; fetches about 100 MB of packages
#        into WORK, default /var/tmp/strata-bench-lifecycle, kept between runs)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v swift >/dev/null || PATH="/opt/swift/usr/bin:$PATH"
swift build -c release -q --product strata
strata="$(swift build -c release --show-bin-path)/strata"
work=${WORK:-/var/tmp/strata-bench-lifecycle}
export STRATA_HOME="$work/home"
templates=(web ssh sql files large)
declare -A packages=([web]="debian/nginx-light" [ssh]="debian/openssh-server" [sql]="debian/postgresql"
                     [files]="debian/samba" [large]="debian/python3 debian/perl debian/git")
now() { date +%s%N; }
seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b - a) / 1e9 }'; }
mounted=()
cleanup() { for m in "${mounted[@]}"; do "$strata" umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done; }
trap cleanup EXIT

# A fresh home (the Debian layers are kept: importing them is not what is measured).
if [ -d "$STRATA_HOME" ]; then
    for m in $(grep -o "$work/mnt/[^ ]*" /proc/mounts || true); do umount -l "$m"; done
    find "$STRATA_HOME" -mindepth 1 -maxdepth 1 ! -name debian ! -name cache -exec rm -rf {} +
fi
rm -rf "$work/mnt" "$work/main" "$work/ldf" "$work/by-hand"
mkdir -p "$STRATA_HOME" "$work/mnt" "$work/ldf"
"$strata" repo init "$work/main" >/dev/null
"$strata" repo add main "$work/main"
"$strata" repo add debian debian

# Debian's tar, rebuilt as VERSION+strata1 and +strata2 (the paper's own upgrade example).
cd "$work" && rm -f tar_*.deb && apt-get download -q tar >/dev/null 2>&1 && cd - >/dev/null
tar_deb=$(ls "$work"/tar_*.deb)
tar_version=$(dpkg-deb -f "$tar_deb" Version)
for build in 1 2; do
    rm -rf "$work/tar-$build" && dpkg-deb -R "$tar_deb" "$work/tar-$build"
    sed -i "s/^Version: .*/Version: $tar_version+strata$build/" "$work/tar-$build/DEBIAN/control"
    dpkg-deb -b "$work/tar-$build" "$work/tar-$build.deb" >/dev/null
    "$strata" layer import main "$work/tar-$build.deb" >/dev/null
done

echo "Resolving and fetching the templates' layers ..." >&2
for t in "${templates[@]}"; do
    printf '%s\nmain/tar %s\n' "$(echo ${packages[$t]} | tr ' ' '\n')" "$tar_version+strata1" >"$work/ldf/$t.ldf"
    "$strata" ldf resolve "$work/ldf/$t.ldf" --write --fetch >/dev/null
    "$strata" template create "$t" "$work/ldf/$t.ldf" >/dev/null
done

echo
echo "### Templates: configured through their mount, promoted"
echo
echo "| template | layers | configure at mount (s) | promote (s) |"
echo "|---|---:|---:|---:|"
for t in "${templates[@]}"; do
    mkdir -p "$work/mnt/template-$t"
    start=$(now); "$strata" template mount "$t" "$work/mnt/template-$t" 2>/dev/null; configured=$(now)
    mounted+=("$work/mnt/template-$t")
    echo "configured by the administrator of $t" >"$work/mnt/template-$t/etc/strata-fleet.conf"
    start2=$(now); "$strata" template promote "$t" --repo main >/dev/null; promoted=$(now)
    "$strata" umount "$work/mnt/template-$t"
    echo "| $t | $(grep -c / "$STRATA_HOME/templates/$t.ldf") | $(seconds "$start" "$configured") | $(seconds "$start2" "$promoted") |"
done

echo
start=$(now)
for t in "${templates[@]}"; do "$strata" provision $(seq -f "$t-%02g" 1 10) --template "$t" >/dev/null; done
provisioned=$(now)
echo "Provisioning 50 appliances (5 commands): $(seconds "$start" "$provisioned") s"

# Two appliances of each template mounted (the first mount of an appliance runs no script: its
# template's configuration layer carries the configuration).
start=$(now)
for t in "${templates[@]}"; do
    for n in 01 02; do
        mkdir -p "$work/mnt/$t-$n"
        "$strata" mount "$STRATA_HOME/appliances/$t-$n.ldf" "$work/mnt/$t-$n" --name "$t-$n" 2>/dev/null
        mounted+=("$work/mnt/$t-$n")
    done
done
echo "Mounting 10 of them: $(seconds "$start" "$(now)") s"
# The peer's starting point: a plain copy of one appliance of each template, before the upgrade.
mkdir -p "$work/by-hand"
for t in "${templates[@]}"; do
    "$strata" image snapshot "$t-01" --image "$t-01-copy" >/dev/null
    "$strata" image checkout "$t-01-copy" "$work/by-hand/$t" >/dev/null
done

echo
echo "### The tar upgrade reaching all 50 appliances"
echo
start=$(now)
for t in "${templates[@]}"; do "$strata" ldf upgrade "$STRATA_HOME/templates/$t.ldf" main/tar >/dev/null; done
# The mounted ones follow live (their daemons watch the template): wait until each has configured tar 2.
for t in "${templates[@]}"; do
    for n in 01 02; do
        until "$strata" configure "$t-$n" | grep -qx "tar $tar_version+strata2 installed"; do sleep 0.05; done
    done
done
live=$(now)
# The others at their next mount (mounted, then unmounted again).
for t in "${templates[@]}"; do
    for n in $(seq -f "%02g" 3 10); do
        mkdir -p "$work/mnt/$t-$n"
        "$strata" mount "$STRATA_HOME/appliances/$t-$n.ldf" "$work/mnt/$t-$n" --name "$t-$n" 2>/dev/null
        "$strata" umount "$work/mnt/$t-$n"
    done
done
later=$(now)
grep -L "strata2" "$STRATA_HOME"/vlfs/*-[0-9][0-9]/composed | sed 's/^/NOT UPDATED: /' >&2 || true

# By hand: dpkg -i of the new tar in a plain copy of one appliance of each template.
by_hand=0
for t in "${templates[@]}"; do
    mount -t proc proc "$work/by-hand/$t/proc"
    cp "$work/tar-2.deb" "$work/by-hand/$t/tmp/tar.deb"
    s=$(now); chroot "$work/by-hand/$t" dpkg -i /tmp/tar.deb >/dev/null; e=$(now)
    umount "$work/by-hand/$t/proc"
    by_hand=$((by_hand + e - s))
done
per_hand=$(awk -v t="$by_hand" 'BEGIN { printf "%.2f", t / 5 / 1e9 }')
echo "| step | appliances | time (s) | per appliance (s) |"
echo "|---|---:|---:|---:|"
echo "| live, mounted (template LDF rewritten → daemons recompose, run tar's scripts) | 10 | $(seconds "$start" "$live") | $(awk -v a="$start" -v b="$live" 'BEGIN { printf "%.2f", (b - a) / 10 / 1e9 }') |"
echo "| at next mount (mount + umount) | 40 | $(seconds "$live" "$later") | $(awk -v a="$live" -v b="$later" 'BEGIN { printf "%.2f", (b - a) / 40 / 1e9 }') |"
echo "| all 50 | 50 | $(seconds "$start" "$later") | $(awk -v a="$start" -v b="$later" 'BEGIN { printf "%.2f", (b - a) / 50 / 1e9 }') |"
echo "| by hand: dpkg -i of the new tar in a plain copy of an appliance (mean of 5) | 1 | $per_hand | $per_hand |"

echo
echo "### Storage"
echo
kib() { du -sk "$@" 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'; }
repository=$(kib "$STRATA_HOME/debian" "$work/main")
appliances=$(kib "$STRATA_HOME"/vlfs/*-[0-9][0-9])
templates_state=$(kib $(printf "$STRATA_HOME/vlfs/%s " "${templates[@]}"))
store=$(kib "$STRATA_HOME/store")
echo "| what | MiB |"
echo "|---|---:|"
echo "| the repository (Debian layers + main, with the 5 configuration layers) | $(awk -v k="$repository" 'BEGIN { printf "%.1f", k / 1024 }') |"
echo "| the 50 appliances' state (private layers, whiteouts, configuration) | $(awk -v k="$appliances" 'BEGIN { printf "%.1f", k / 1024 }') |"
echo "| the 5 templates' state | $(awk -v k="$templates_state" 'BEGIN { printf "%.1f", k / 1024 }') |"
echo "| the home store (generated dpkg databases, snapshots for the by-hand copies) | $(awk -v k="$store" 'BEGIN { printf "%.1f", k / 1024 }') |"
echo "| (repository + appliances + templates) / repository | $(awk -v r="$repository" -v a="$appliances" -v t="$templates_state" 'BEGIN { printf "%.3f", (r + a + t) / r }') |"
