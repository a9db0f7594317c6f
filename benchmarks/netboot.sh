#!/bin/bash
# Network boot: an appliance of real Debian layers (Boot/example-template.sh: Debian's busybox, whose
# httpd serves the page, Debian's cloud kernel, Debian's required base, a site layer) boots under qemu
# from `strata boot serve` on loopback: TCG, 1 vCPU, 1.5 GiB, user-mode network, virtio NIC and disk.
# For a first boot (empty disk: ext4 made, the VLFS's objects fetched into the disk's cache) and a
# second boot of the same disk it prints the time from qemu's start to the appliance's first HTTP
# answer through a port forward, the bytes that reached the machine (every Ethernet frame to its MAC,
# from qemu's filter-dump: iPXE's kernel and initramfs included) and the requests the service logged.
# Then the bytes of the same system as a compressed disk image: the template's tree composed by
# `strata mount`, made into ext4 by `mke2fs -d`, gzip'd and xz'd.
#
# Usage: benchmarks/netboot.sh [STRATA]   (STRATA: default this tree's release build with the Swift
#   runtime linked statically, in .build-static; RUNS=1 pairs of boots; WORK=/var/tmp/strata-bench-netboot)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v swift >/dev/null || PATH="/opt/swift/usr/bin:$PATH"
strata=${1:-}
if [ -z "$strata" ]; then
    swift build -c release -q --static-swift-stdlib --scratch-path .build-static --product strata
    strata="$(swift build -c release --static-swift-stdlib --scratch-path .build-static --show-bin-path)/strata"
fi
runs=${RUNS:-1}
work=${WORK:-/var/tmp/strata-bench-netboot}
export STRATA_HOME="$work/home"
name=netboot-bench mac=52:54:00:be:ec:01
mkdir -p "$work"
pids=()
cleanup() {
    set +e
    mountpoint -q "$work/image-mnt" && { "$strata" umount "$work/image-mnt" 2>/dev/null || umount -l "$work/image-mnt"; }
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
}
trap cleanup EXIT
now() { date +%s%N; }
seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1e9 }'; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'; }

echo "preparing the template (once per WORK) and the initramfs" >&2
Boot/example-template.sh "$strata" 1 >&2
sh Boot/build-initramfs.sh "$work/initramfs.cpio.gz" --strata "$strata"
[ -e "$STRATA_HOME/appliances/$name.ldf" ] || "$strata" provision "$name" --template web --mac "$mac" >/dev/null
# The appliance's LDF includes the template: its layers are the template's lines ('=' marks a pinned one).
layers=$(grep -c -E '^=?[a-z]' "$STRATA_HOME/templates/web.ldf" || true)

"$strata" boot serve --listen 127.0.0.1:0 --advertise 10.0.2.2 --initramfs "$work/initramfs.cpio.gz" \
    --builder Boot/build-initramfs.sh > "$work/serve.url" 2> "$work/serve.log" & pids+=($!)
for _ in $(seq 100); do [ -s "$work/serve.url" ] && break; sleep 0.1; done
url=$(head -n 1 "$work/serve.url")
local_base=$(echo "${url%/boot.ipxe}" | sed 's|//10.0.2.2:|//127.0.0.1:|')
# The service makes a kernel layer's modules archive at its first request: made here, not timed.
curl -s -f -o /dev/null "$local_base/modules.cpio.gz?appliance=$name"
kernel_url=$("$strata" boot show "$mac" --service "${url%/boot.ipxe}" --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["kernel"])' | sed 's|//10.0.2.2:|//127.0.0.1:|')
size_of() { curl -s -f -o /dev/null -w '%{size_download}' "$1"; }
boot_files=$(( $(stat -c %s "$work/initramfs.cpio.gz") + $(size_of "$kernel_url") + $(size_of "$local_base/modules.cpio.gz?appliance=$name") ))

# Bytes of the frames to (and from) MAC in a pcap file.
frame_bytes() { # PCAP MAC
    python3 - "$1" "$2" <<'PY'
import struct, sys
mac = bytes.fromhex(sys.argv[2].replace(":", ""))
down = up = 0
with open(sys.argv[1], "rb") as f:
    f.read(24)
    while len(header := f.read(16)) == 16:
        _, _, captured, length = struct.unpack("<IIII", header)
        frame = f.read(captured)
        if frame[0:6] == mac: down += length
        elif frame[6:12] == mac: up += length
print(down, up)
PY
}

# One boot of DISK: qemu started, the port forward polled until the page answers, then the console's
# shell told to exit (the appliance powers off cleanly). Prints a table row.
boot() { # DISK KEY LABEL
    local disk=$1 label=$3 port=$((20000 + RANDOM % 20000)) pcap="$work/$2.pcap" console="$work/console-$2.log"
    local lines t0 t1 answer="" qemu
    lines=$(wc -l < "$work/serve.log")
    rm -f "$work/console.in" "$pcap"; mkfifo "$work/console.in"
    exec 3<>"$work/console.in"
    t0=$(now)
    qemu-system-x86_64 -machine graphics=off -m 1536 -smp 1 -display none -no-reboot -monitor none -serial stdio -boot n \
        -netdev "user,id=n0,bootfile=$url,hostfwd=tcp:127.0.0.1:$port-:80" \
        -object "filter-dump,id=dump0,netdev=n0,file=$pcap" \
        -device "virtio-net-pci,netdev=n0,mac=$mac" -drive "file=$disk,if=virtio,format=raw" \
        < "$work/console.in" > "$console" 2>&1 &
    qemu=$!; pids+=($qemu)
    while kill -0 "$qemu" 2>/dev/null && [ $(( ($(now) - t0) / 1000000000 )) -lt 1200 ]; do
        if answer=$(curl -s -f -m 5 "http://127.0.0.1:$port/"); then break; fi
        sleep 0.5
    done
    t1=$(now)
    [ "$answer" = "site 1" ] || { echo "$label: no page after $(seconds "$t0" "$t1") s; console: $console" >&2; kill "$qemu"; exit 1; }
    echo exit >&3
    for _ in $(seq 600); do kill -0 "$qemu" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$qemu" 2>/dev/null && { echo "$label: no clean poweroff; console: $console" >&2; kill "$qemu"; }
    wait "$qemu" 2>/dev/null || true
    exec 3>&-
    read -r down up < <(frame_bytes "$pcap" "$mac")
    local requests objects
    requests=$(tail -n +$((lines + 1)) "$work/serve.log" | grep -c ' GET ' || true)
    objects=$(tail -n +$((lines + 1)) "$work/serve.log" | grep -c ' GET /repos/[^ ]*/objects/' || true)
    printf '| %s | %s s | %s MB | %s MB | %s | %s |\n' "$label" "$(seconds "$t0" "$t1")" "$(mb "$down")" "$(mb "$up")" "$requests" "$objects"
    rm -f "$pcap"
}

# The same system as a disk image: the template composed by strata mount, copied into ext4 by mke2fs.
image_row() {
    local mnt="$work/image-mnt" image="$work/image.ext4" used
    mkdir -p "$mnt"
    "$strata" mount "$STRATA_HOME/templates/web.ldf" "$mnt" --name netboot-image >/dev/null 2>&1
    used=$(du -sxm "$mnt" | cut -f1)
    rm -f "$image"
    # Room for ext4's metadata and a little free space, as a disk image would have.
    mke2fs -q -t ext4 -d "$mnt" "$image" "$((used * 3 / 2 + 64))M" >/dev/null
    "$strata" umount "$mnt"
    printf '| ext4 image of the same tree (%s MB of files, %s MB image) | gzip -6: %s MB | xz -6: %s MB |\n' \
        "$used" "$(mb "$(stat -c %s "$image")")" "$(mb "$(gzip -6 -c "$image" | wc -c)")" "$(mb "$(xz -6 -T2 -c "$image" | wc -c)")"
    rm -f "$image"
}

echo
echo "appliance $name: $layers layers; boot files (kernel, initramfs, modules) $(mb "$boot_files") MB; strata $strata"
echo
echo "| boot | power-on to first HTTP answer | MB to the machine | MB from it | requests | of which objects |"
echo "|---|---:|---:|---:|---:|---:|"
for run in $(seq "$runs"); do
    disk="$work/disk.img"
    rm -f "$disk"; truncate -s 3G "$disk"
    boot "$disk" "first-$run" "first (empty disk)"
    boot "$disk" "second-$run" "second (same disk)"
done
rm -f "$work/disk.img"
echo
image_row
