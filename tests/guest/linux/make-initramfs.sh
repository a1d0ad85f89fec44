#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# make-initramfs.sh OUT.cpio | OUT.cpio.gz [PROGRAM...]
#
# Build the initramfs of Vireo's Linux test guest: Debian's static busybox,
# symlinks for the applets /init and the shell use, /init (this directory's
# `init`) and the busybox acpid configuration.  Works without root (GNU cpio,
# owner forced to 0:0; /dev/console comes from the kernel's built-in
# initramfs).  The output is byte-for-byte reproducible: sorted entries,
# fixed mtimes (SOURCE_DATE_EPOCH, default 0), gzip without name or time.
#
# OUT.cpio is uncompressed, and that is what the tests boot: on a host whose
# KVM emulates guest kernel code (kvm_pvm), the kernel's inflate of a 1 MB
# gzip archive took 37 s, copying the 2 MB plain archive 3.6 s.
#
# Each PROGRAM (a static executable, such as tests/guest/vsock-echo.c) goes
# into /bin.

set -euo pipefail
umask 022

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
busybox=${BUSYBOX:-/bin/busybox}
epoch=${SOURCE_DATE_EPOCH:-0}

log() { printf 'make-initramfs: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $# -ge 1 ]] || { echo "usage: $0 OUT.cpio|OUT.cpio.gz [PROGRAM...]" >&2; exit 2; }
out=$1
shift
case $out in
*.cpio.gz) compress=(gzip -9 -n) ;;
*.cpio) compress=(cat) ;;
*) die "output must end in .cpio (uncompressed) or .cpio.gz" ;;
esac

for cmd in cpio gzip; do
	command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' not found: install the Debian package '$cmd'"
done
[[ -x $busybox ]] || die "$busybox not found: install the Debian package 'busybox-static'"
if command -v readelf >/dev/null 2>&1 && readelf -l "$busybox" 2>/dev/null | grep -q INTERP; then
	die "$busybox is dynamically linked: install the Debian package 'busybox-static'"
fi

# Applets that get a symlink: everything /init, the acpid handler and the
# interactive shell's basics run.  (Debian's static busybox also finds its
# applets without symlinks when run from its own sh, and `busybox --install`
# at boot would cost seconds of emulated CPU.)
applets=(
	sh ash cat date echo kill mkdir mount nproc setsid sleep sync uname
	cttyhack acpid halt poweroff reboot
	dmesg free grep ls ps rm umount vi
	ip ping nc
)

stage=$(mktemp -d)
tmp_out=$out.tmp.$$
trap 'rm -rf "$stage" "$tmp_out"' EXIT

mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,root,tmp,var/log,var/run} \
	"$stage"/etc/acpi/PWRF
chmod 0700 "$stage/root"
chmod 1777 "$stage/tmp"

install -m 0755 "$busybox" "$stage/bin/busybox"
install -m 0755 "$here/init" "$stage/init"
for prog in "$@"; do
	install -m 0755 "$prog" "$stage/bin/${prog##*/}"
done

# Put each applet where busybox itself says it lives (/bin, /sbin, /usr/bin...).
declare -A where=()
while IFS= read -r path; do
	where[${path##*/}]=$path
done < <("$busybox" --list-full)
for a in "${applets[@]}"; do
	[[ -n ${where[$a]:-} ]] || die "$busybox has no '$a' applet"
	[[ ${where[$a]} == bin/busybox ]] && continue
	ln -s /bin/busybox "$stage/${where[$a]}"
done
[[ -L $stage/bin/sh ]] || die "no /bin/sh symlink (busybox --list-full changed?)"

cat >"$stage/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
EOF
cat >"$stage/etc/group" <<'EOF'
root:x:0:
EOF
cat >"$stage/etc/profile" <<'EOF'
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
export PS1='vireo-guest:\w\$ '
EOF

# busybox acpid: an evdev KEY_POWER event (the ACPI power button) maps to the
# description "button/power PWRF 00000080"; /etc/acpid.conf maps its "PWRF"
# to the action "PWRF/00000080", which acpid runs from /etc/acpi.
cat >"$stage/etc/acpid.conf" <<'EOF'
# key (substring of the event description)    action (path under /etc/acpi)
PWRF	PWRF/00000080
EOF
cat >"$stage/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
# Run by acpid when the ACPI power button is pressed (QMP system_powerdown):
# a graceful power-off through init.
echo "VIREO-INIT: power button pressed" >/dev/console
exec poweroff
EOF
chmod 0755 "$stage/etc/acpi/PWRF/00000080"

find "$stage" -exec touch -h -d "@$epoch" {} +

(
	cd "$stage"
	find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort |
		cpio --create --format=newc --owner=0:0 --reproducible --quiet
) | "${compress[@]}" >"$tmp_out"
mv -f "$tmp_out" "$out"
log "wrote $out ($(stat -c %s "$out") bytes)"
