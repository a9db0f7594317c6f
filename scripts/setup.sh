#!/bin/sh
# Installs what Strata needs on Debian 12 (only what is missing), then builds it.
set -eu
packages="pkg-config libfuse3-dev liburing-dev fuse3 libsolv-dev libsolvext-dev libsqlite3-dev libssl-dev libarchive-dev libcurl4-openssl-dev
          libapt-pkg-dev tinyproxy attr python3 python3-apt dpkg-dev xz-utils zstd curl gcc e2fsprogs mmdebstrap umoci skopeo
          qemu-system-x86 ipxe-qemu busybox-static cpio binutils erofs-utils"
missing=""
for package in $packages; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing="$missing $package"
done
if [ -n "$missing" ]; then
    echo "setup: installing$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q $missing
fi
command -v swift >/dev/null || PATH="/opt/swift/usr/bin:$PATH"
command -v swift >/dev/null || { echo "setup: swift not found (expected on PATH or at /opt/swift/usr/bin)" >&2; exit 1; }
cd "$(dirname "$0")/.."
swift build "$@"
