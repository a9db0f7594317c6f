#!/bin/sh
# Builds Strata's network-boot initramfs from the distribution's own parts:
#   busybox-static (the shell, udhcpc, modprobe, switch_root), e2fsprogs' mke2fs (ext4 on a new disk),
#   the strata binary (Swift runtime linked statically) with the shared libraries ldd names,
#   Boot/init and Boot/udhcpc.script,
#   and, with --kernel, the kernel layer's modules the boot needs (FUSE, the NIC, the disk) with every
#   module they depend on, as that kernel's own modules.dep says (made with busybox depmod).
#
# usage: Boot/build-initramfs.sh OUT --strata BINARY [--kernel KERNEL_TREE]
#   KERNEL_TREE: a checkout of the kernel's layer (strata layer checkout REPO linux-image-… DIR), holding
#   lib/modules/VERSION. Without it the archive holds no modules: give the kernel's modules as a second
#   initrd (iPXE loads both, the kernel unpacks both), built with --modules-only.
# OUT is a gzip'd newc cpio, written to a temporary name and renamed.
set -eu
usage() { echo "usage: $0 OUT --strata BINARY [--kernel KERNEL_TREE] | $0 OUT --modules-only --kernel KERNEL_TREE" >&2; exit 2; }
[ $# -ge 1 ] || usage
out=$1; shift
strata="" kernel="" modules_only=""
while [ $# -gt 0 ]; do
    case "$1" in
        --strata) strata=$2; shift 2 ;;
        --kernel) kernel=$2; shift 2 ;;
        --modules-only) modules_only=1; shift ;;
        *) usage ;;
    esac
done
[ -n "$modules_only" ] || [ -n "$strata" ] || usage
[ -z "$modules_only" ] || [ -n "$kernel" ] || usage
here=$(cd "$(dirname "$0")" && pwd)
busybox=/bin/busybox
# The modules the init loads; the rest of what it needs (AF_PACKET for udhcpc, devtmpfs) is built in.
boot_modules="e1000 virtio_net virtio_pci virtio_blk ext4 fuse crc32c_generic"

work=$(mktemp -d "${TMPDIR:-/tmp}/strata-initramfs.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"

if [ -z "$modules_only" ]; then
    [ -x "$strata" ] || { echo "$0: --strata $strata: not an executable" >&2; exit 1; }
    "$busybox" --list | grep -qx switch_root || { echo "$0: $busybox is not busybox-static (apt-get install busybox-static)" >&2; exit 1; }
    mke2fs=$(command -v mke2fs) || { echo "$0: mke2fs not found (apt-get install e2fsprogs)" >&2; exit 1; }
    mkdir -p "$root/bin" "$root/sbin" "$root/etc" "$root/proc" "$root/sys" "$root/dev" "$root/run" "$root/tmp" "$root/disk" "$root/root"
    cp "$busybox" "$root/bin/busybox"
    for applet in $("$busybox" --list); do [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"; done
    # modprobe where the kernel calls it (request_module), for crc32c and friends.
    ln -sf ../bin/busybox "$root/sbin/modprobe"
    # strata stripped (symbols are two thirds of it), mke2fs, and the libraries each loads.
    strip -o "$root/bin/strata" "$strata"
    cp "$mke2fs" "$root/sbin/mke2fs"
    for binary in "$root/bin/strata" "$root/sbin/mke2fs"; do
        ldd "$binary" | awk '/=> \//{ print $3 } /^\t\/.*ld-linux/{ print $1 }' | while read -r library; do
            [ -e "$root$library" ] && continue
            mkdir -p "$root$(dirname "$library")"
            cp -L "$library" "$root$library"
            strip --strip-unneeded "$root$library" 2>/dev/null || true
        done
    done
    # glibc's loader also looks in /lib64 for itself.
    [ -e "$root/lib64/ld-linux-x86-64.so.2" ] || { mkdir -p "$root/lib64"; ln -sf /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$root/lib64/ld-linux-x86-64.so.2"; }
    # libcurl verifies https:// boot services against the distribution's CA store.
    [ -f /etc/ssl/certs/ca-certificates.crt ] && mkdir -p "$root/etc/ssl/certs" && cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
    install -m 0755 "$here/init" "$root/init"
    install -m 0755 "$here/udhcpc.script" "$root/etc/udhcpc.script"
    echo "root:x:0:0:root:/root:/bin/sh" > "$root/etc/passwd"
    echo "root:x:0:" > "$root/etc/group"
fi

if [ -n "$kernel" ]; then
    set -- "$kernel"/lib/modules/*/modules.order
    [ -f "$1" ] || { echo "$0: --kernel $kernel: no lib/modules/VERSION/modules.order (a checkout of a kernel layer?)" >&2; exit 1; }
    version=$(basename "$(dirname "$1")")
    # A copy of the kernel's module tree, for depmod to write modules.dep into (the .deb ships none:
    # Debian's postinst makes it).
    mkdir -p "$work/kernel/lib/modules"
    cp -a "$kernel/lib/modules/$version" "$work/kernel/lib/modules/"
    "$busybox" depmod -b "$work/kernel" "$version"
    dep=$work/kernel/lib/modules/$version/modules.dep
    # The closure: each wanted module's line in modules.dep lists everything it needs.
    needed=$(for module in $boot_modules; do
        grep -E "(^|/)$(echo "$module" | sed 's/[_-]/[_-]/g')\.ko(\.[a-z]+)?:" "$dep" | sed 's/://' | tr ' ' '\n'
    done | sort -u)
    [ -n "$needed" ] || { echo "$0: none of $boot_modules in $dep" >&2; exit 1; }
    for file in $needed; do
        mkdir -p "$root/lib/modules/$version/$(dirname "$file")"
        cp "$work/kernel/lib/modules/$version/$file" "$root/lib/modules/$version/$file"
    done
    # modules.dep restricted to what is shipped, so modprobe never reaches for a missing file.
    for file in $needed; do grep -E "^$file:" "$dep"; done > "$root/lib/modules/$version/modules.dep"
    cp "$work/kernel/lib/modules/$version/modules.builtin" "$work/kernel/lib/modules/$version/modules.order" "$root/lib/modules/$version/" 2>/dev/null || true
    mkdir -p "$root/etc"
    echo "$boot_modules" > "$root/etc/strata-modules"
fi

(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -6 > "$out.tmp.$$"
sync "$out.tmp.$$" 2>/dev/null || true
mv "$out.tmp.$$" "$out"
