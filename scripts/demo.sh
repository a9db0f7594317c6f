#!/bin/sh
# The demo, in three parts:
#  1. a repository with the sample layers and real Debian packages, listed, checked out and verified;
#  2. that repository served over HTTP by 'strata repo serve', and a second Strata home mounting a
#     sample appliance from it by URL (objects fetched on demand into its mirror);
#  3. a web server appliance composed from real Debian packages (debian/nginx-light), resolved,
#     mounted, its nginx run inside the VLFS and asked for a page with curl — then the same appliance
#     mounted again in the second home, its layers fetched by URL from the first.
# Everything it starts (servers, mounts) is stopped on exit, also on failure.
set -eu
cd "$(dirname "$0")/.."
command -v swift >/dev/null || PATH="/opt/swift/usr/bin:$PATH"
strata="$(swift build --show-bin-path)/strata"
demo="${DEMO_DIR:-/tmp/strata-demo}"
web_port="${DEMO_WEB_PORT:-8081}"
home1="$demo/home"
home2="$demo/appliance-home"

run() { printf '\n$ %s\n' "$*"; "$@"; }
say() { printf '\n# %s\n' "$*"; }

serve_pids=""
mounts=""
cleanup() {
    set +e
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
