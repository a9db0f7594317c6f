#!/bin/sh
# Makes the example network-boot template (`web`, or $TEMPLATE) in the Strata home $STRATA_HOME, as the demo and
# benchmarks/netboot.sh boot it: Debian's busybox (its httpd is the web server), Debian's cloud kernel
# (virtio drivers; the kernel is a layer, so upgrading it is an LDF edit), Debian's required base the
# resolver adds, and a site layer `main/boot-site VERSION`: index.html saying "site VERSION" and the
# appliance's init, which starts httpd on port 80, gives the console a shell and, when that shell
# ends, asks the initramfs's keeper for a clean poweroff. The template is configured once (the
# packages' own scripts) and promoted, so appliances provisioned from it run no script at boot.
# Layers, template and repository already there are kept: a second run changes nothing.
#
# usage: STRATA_HOME=HOME [TEMPLATE=NAME] Boot/example-template.sh STRATA [VERSION...]   (VERSION: default 1)
#   STRATA: the strata binary; each VERSION of main/boot-site is imported, the first goes into the template.
#   TEMPLATE: the template's name (default web; a template's VLFS takes its name, so it must be free).
set -eu
[ $# -ge 1 ] || { echo "usage: STRATA_HOME=HOME $0 STRATA [VERSION...]" >&2; exit 2; }
[ -n "${STRATA_HOME:-}" ] || { echo "$0: set STRATA_HOME" >&2; exit 2; }
strata=$1; shift
[ $# -ge 1 ] || set -- 1
first=$1
home=$STRATA_HOME
template=${TEMPLATE:-web}
mkdir -p "$home"

if ! "$strata" repo list 2>/dev/null | grep -q '^main\b'; then
    [ -e "$home/main/strata-repository" ] || "$strata" repo init "$home/main" >/dev/null
    "$strata" repo add main "$home/main" >/dev/null
fi
"$strata" repo list 2>/dev/null | grep -q '^debian\b' || "$strata" repo add debian debian >/dev/null

for version in "$@"; do
    "$strata" layer show main "boot-site=$version" >/dev/null 2>&1 && continue
    tree=$home/site-$version
    rm -rf "$tree"
    # usr/sbin, not sbin: Debian's layers are merged-/usr (/sbin is base-files' symlink to usr/sbin).
    mkdir -p "$tree/usr/sbin" "$tree/srv/www"
    cat > "$tree/usr/sbin/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox mount -t tmpfs tmpfs /tmp
/bin/busybox httpd -p 80 -h /srv/www
echo "appliance: httpd serving $(/bin/busybox cat /srv/www/index.html)"
/bin/busybox sh
echo poweroff > /run/strata-shutdown
exec /bin/busybox sleep 3600
INIT
    chmod 0755 "$tree/usr/sbin/init"
    echo "site $version" > "$tree/srv/www/index.html"
    "$strata" layer import main "$tree" --name boot-site --version "$version" >/dev/null
    rm -rf "$tree"
done

source=$home/$template-source.ldf
if [ ! -e "$home/templates/$template.ldf" ]; then
    printf 'debian/busybox\ndebian/linux-image-cloud-amd64\nmain/boot-site %s\n' "$first" > "$source"
    "$strata" ldf resolve "$source" --write --fetch
    "$strata" template create "$template" "$source"
fi
# Promotion adds NAME-config to the template: until then (also after an interrupted run) configure it.
if ! grep -q "/$template-config " "$home/templates/$template.ldf"; then
    mountpoint=$home/template-mount
    mkdir -p "$mountpoint"
    "$strata" template mount "$template" "$mountpoint"
    # Debian's initramfs, made by the kernel's postinst, is not the one that boots: not shipped.
    rm -f "$mountpoint"/boot/initrd.img-*
    "$strata" template promote "$template" --repo main
    "$strata" umount "$mountpoint"
fi
