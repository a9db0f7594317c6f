#!/bin/sh
# The demo, in three parts:
#  1. a repository with the sample layers and real Debian packages, listed, checked out and verified;
#  2. that repository served over HTTP by 'strata repo serve', and a second Strata home mounting a
#     sample appliance from it by URL (objects fetched on demand into its mirror);
#  3. a web server appliance composed from real Debian packages (debian/nginx-light), resolved,
#     mounted, its nginx run inside the VLFS and asked for a page with curl — then the same appliance
#     mounted again in the second home, its layers fetched by URL from the first;
#  4. with --netboot (a few minutes more): an appliance with an empty disk network-boots under qemu from
#     'strata boot serve', mounts its VLFS of Debian layers and serves a page that curl fetches.
# Everything it starts (servers, mounts, the machine) is stopped on exit, also on failure.
#
# usage: scripts/demo.sh [--netboot]
set -eu
cd "$(dirname "$0")/.."
command -v swift >/dev/null || PATH="/opt/swift/usr/bin:$PATH"
netboot=""
case "${1:-}" in
    --netboot) netboot=1 ;;
    "") ;;
    *) echo "usage: $0 [--netboot]" >&2; exit 2 ;;
esac
strata="$(swift build --show-bin-path)/strata"
demo="${DEMO_DIR:-/tmp/strata-demo}"
web_port="${DEMO_WEB_PORT:-8081}"
boot_port="${DEMO_BOOT_PORT:-8082}"
home1="$demo/home"
home2="$demo/appliance-home"

run() { printf '\n$ %s\n' "$*"; "$@"; }
say() { printf '\n# %s\n' "$*"; }

serve_pids=""
mounts=""
machine=""
cleanup() {
    set +e
    [ -n "$machine" ] && kill "$machine" 2>/dev/null
    for m in $mounts; do
        [ -f "$m/run/nginx.pid" ] && kill "$(cat "$m/run/nginx.pid")" 2>/dev/null && sleep 0.5
        for inner in dev proc; do mountpoint -q "$m/$inner" && umount -l "$m/$inner"; done
        mountpoint -q "$m" && { "$strata" umount "$m" || umount -l "$m"; }
    done
    for pid in $serve_pids; do kill "$pid" 2>/dev/null; done
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# Serves a repository directory on a free port of 127.0.0.1 and sets $url (not in a subshell, so
# that cleanup knows the server's pid).
serve() { # DIRECTORY LABEL
    printf '\n$ strata repo serve %s --listen 127.0.0.1:0 &\n' "$1"
    "$strata" repo serve "$1" --listen 127.0.0.1:0 >"$demo/serve-$2.url" 2>"$demo/serve-$2.log" &
    serve_pids="$serve_pids $!"
    for _ in $(seq 50); do [ -s "$demo/serve-$2.url" ] && break; sleep 0.1; done
    url="$(head -n 1 "$demo/serve-$2.url")"
    echo "$url"
}

# Mounts an LDF with the given home, as a VLFS named after the mountpoint; remembered for cleanup.
mount_vlfs() { # HOME LDF MOUNTPOINT
    mkdir -p "$3"
    run "$strata" mount "$2" "$3" --name "$(basename "$3")" --home "$1"
    mounts="$3 $mounts"
}

# Runs nginx inside a mounted web appliance, fetches its page, stops it. Its packages were configured
# at mount by their own maintainer scripts (www-data, /etc/nginx, the default site); the one change is
# the administrator's: the default site listens on the demo's port, on loopback only.
run_web_appliance() { # MOUNTPOINT
    vlfs="$1"
    say "Configured by its packages' own scripts at mount: $(grep -c . "$STRATA_HOME/vlfs/$(basename "$vlfs")/configuration") lines of state; www-data: $(grep '^www-data:' "$vlfs/etc/passwd")"
    say "The administrator's change (to the private layer): the default site on 127.0.0.1:$web_port"
    sed -i "s/listen 80 default_server;/listen 127.0.0.1:$web_port default_server;/; /listen \[::\]:80/d" "$vlfs/etc/nginx/sites-available/default"
    mount -t proc proc "$vlfs/proc"
    mount --bind /dev "$vlfs/dev"
    run chroot "$vlfs" /usr/sbin/nginx
    for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$web_port/" && break; sleep 0.1; done
    run sh -c "curl -s 'http://127.0.0.1:$web_port/' | grep '<title>'"
    run kill "$(cat "$vlfs/run/nginx.pid")"
    sleep 0.5
    umount "$vlfs/dev" "$vlfs/proc"
    run "$strata" umount "$vlfs"
}

rm -rf "$demo"
mkdir -p "$demo/debs"

say "1. A repository of layers"
export STRATA_HOME="$home1"
run "$strata" repo init "$demo/repo"
run "$strata" repo add main "$demo/repo"
run "$strata" layer import main Layers/*
(cd "$demo/debs" && chmod 777 . && apt-get download -q bash coreutils libc6 nginx-light >/dev/null 2>&1) || echo "(apt-get download failed; continuing with the sample layers only)"
if ls "$demo/debs/"*.deb >/dev/null 2>&1; then run "$strata" layer import main "$demo/debs/"*.deb; fi
run "$strata" layer list main
run "$strata" layer show main tinyhttpd
run "$strata" layer checkout main tinyhttpd "$demo/checkout"
printf '\n$ find %s | head\n' "$demo/checkout"; find "$demo/checkout" | head
run "$strata" fsck

say "2. The repository served over HTTP, and a second home mounting from it by URL"
serve "$demo/repo" main
export STRATA_HOME="$home2"
run "$strata" repo add main "$url"
run "$strata" layer list main
cp LDF/web-template.ldf "$demo/web-template.ldf"
mount_vlfs "$home2" "$demo/web-template.ldf" "$demo/template-mnt"
run cat "$demo/template-mnt/etc/tinyhttpd/tinyhttpd.conf"
say "objects fetched into the mirror: $(find "$home2/mirrors/main/objects" -type f | wc -l) of $(find "$demo/repo/objects" -type f | wc -l) served"
run "$strata" umount "$demo/template-mnt"

say "3. A web server appliance from real Debian packages"
export STRATA_HOME="$home1"
ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1 || apt-get update -q
run "$strata" repo add debian debian
printf '# A small web server appliance: one explicit layer; the resolver adds the rest.\ndebian/nginx-light\n' >"$demo/web.ldf"
run "$strata" ldf resolve "$demo/web.ldf" --write --fetch
mount_vlfs "$home1" "$demo/web.ldf" "$demo/web"
run_web_appliance "$demo/web"

say "The same appliance in the second home, its layers fetched by URL from the first home's Debian layers"
serve "$home1/debian" debian
export STRATA_HOME="$home2"
run "$strata" repo add debian "$url"
mount_vlfs "$home2" "$demo/web.ldf" "$demo/web-by-url"
say "objects fetched into the mirror: $(find "$home2/mirrors/debian/objects" -type f | wc -l)"
run_web_appliance "$demo/web-by-url"

[ -n "$netboot" ] || { say "(run with --netboot for part 4: an appliance network-boots under qemu)"; exit 0; }

say "4. Network boot: an appliance with an empty disk boots under qemu from 'strata boot serve'"
export STRATA_HOME="$home1"
say "The template 'boot-web': Debian's busybox (its httpd), Debian's cloud kernel, the required base, a site layer; configured once and promoted"
# Not 'web': a template's VLFS takes its name, and part 3's appliance is named so.
export TEMPLATE=boot-web
run Boot/example-template.sh "$strata"
run head -n 4 "$home1/templates/boot-web.ldf"
say "... $(grep -c -E '^=?[a-z]' "$home1/templates/boot-web.ldf") layers in all: the explicit ones, the configuration layer, then what the resolver added"
run sh Boot/build-initramfs.sh "$demo/initramfs.cpio.gz" --strata "$strata"
run "$strata" provision web1 --template boot-web --mac 52:54:00:12:34:56
run "$strata" boot list
printf '\n$ strata boot serve --listen 127.0.0.1:0 --advertise 10.0.2.2 --initramfs ... --builder Boot/build-initramfs.sh &\n'
"$strata" boot serve --listen 127.0.0.1:0 --advertise 10.0.2.2 --initramfs "$demo/initramfs.cpio.gz" \
    --builder Boot/build-initramfs.sh >"$demo/boot-serve.url" 2>"$demo/boot-serve.log" &
serve_pids="$serve_pids $!"
for _ in $(seq 50); do [ -s "$demo/boot-serve.url" ] && break; sleep 0.1; done
bootfile="$(head -n 1 "$demo/boot-serve.url")"
echo "$bootfile"
say "A machine with an empty 2 GB disk, its NIC's iPXE booting from $bootfile (qemu's user network: 10.0.2.2 is this host's 127.0.0.1), port 80 forwarded to 127.0.0.1:$boot_port"
truncate -s 2G "$demo/disk.img"
rm -f "$demo/console.in"; mkfifo "$demo/console.in"
exec 3<>"$demo/console.in"
printf '\n$ qemu-system-x86_64 -boot n -netdev user,bootfile=%s,hostfwd=tcp:127.0.0.1:%s-:80 ... > %s\n' "$bootfile" "$boot_port" "$demo/console.log"
qemu-system-x86_64 -machine graphics=off -m 1536 -smp 1 -display none -no-reboot -monitor none -serial stdio -boot n \
    -netdev "user,id=n0,bootfile=$bootfile,hostfwd=tcp:127.0.0.1:$boot_port-:80" \
    -device virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56 -drive "file=$demo/disk.img,if=virtio,format=raw" \
    <"$demo/console.in" >"$demo/console.log" 2>&1 &
machine=$!
started=$(date +%s)
until curl -s -f -m 5 -o /dev/null "http://127.0.0.1:$boot_port/"; do
    kill -0 "$machine" 2>/dev/null || { tail -n 20 "$demo/console.log"; echo "the machine stopped" >&2; exit 1; }
    [ $(($(date +%s) - started)) -lt 1200 ] || { tail -n 20 "$demo/console.log"; echo "no page after 20 minutes" >&2; exit 1; }
    sleep 1
done
say "Up after $(($(date +%s) - started)) s; what the machine's console said:"
# iPXE's lines (Strata: …) and the initramfs's, without the console's escape sequences.
tr -d '\r' <"$demo/console.log" | grep -a -o -E '(Strata|strata-boot|strata boot|appliance): .*' || true
run curl -s "http://127.0.0.1:$boot_port/"
say "The service's log: $(grep -c ' GET ' "$demo/boot-serve.log") requests, of which $(grep -c ' GET /repos/[^ ]*/objects/' "$demo/boot-serve.log") objects (fetched into the disk's cache)"
say "Exiting the console's shell: the appliance asks for a clean poweroff"
echo exit >&3
for _ in $(seq 600); do kill -0 "$machine" 2>/dev/null || break; sleep 0.2; done
grep -a 'unmounted cleanly' "$demo/console.log" || true
