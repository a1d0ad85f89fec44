#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# demo.sh BUILD-DIR KERNEL INITRD CMDLINE
#
# `make demo`: the demo guest booted through the daemon. A private vireod
# (--root in a temporary directory, so nothing of the host's state is
# touched) defines a domain for KERNEL/INITRD/CMDLINE, and `vireo` starts it
# with its console attached. Leaving the guest (poweroff) ends the console;
# the daemon and the temporary directory go away afterwards.
set -euo pipefail

die() { printf 'demo.sh: error: %s\n' "$*" >&2; exit 1; }

[[ $# -eq 4 ]] || die "usage: demo.sh BUILD-DIR KERNEL INITRD CMDLINE"
build=$(realpath "$1")
kernel=$(realpath "$2")
initrd=$(realpath "$3")
cmdline=$4
vireod=$build/daemon/vireod
vmm=$build/vmm/vireo-vmm
vireo=$build/cli/vireo
[[ -x $vireod && -x $vmm && -x $vireo ]] || die "build $build first"

root=$(mktemp -d /tmp/vireo-demo.XXXXXX)
sock=$root/run/vireo/vireo-sock
uri="vireo+unix:///system?socket=$sock"
pid=

cleanup() {
	"$vireo" -q -c "$uri" destroy demo >/dev/null 2>&1 || true
	[[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$root"
}
trap cleanup EXIT

"$vireod" --root "$root" --vmm "$vmm" 2>"$root/vireod.log" &
pid=$!
for _ in $(seq 100); do
	[[ -S $sock ]] && break
	kill -0 "$pid" 2>/dev/null || die "vireod did not start: $(cat "$root/vireod.log")"
	sleep 0.05
done
[[ -S $sock ]] || die "vireod did not create $sock"

esc() { sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' -e "s/'/\&apos;/g" <<<"$1"; }
cat >"$root/demo.xml" <<XML
<domain type='kvm'>
  <name>demo</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64'>hvm</type>
    <kernel>$(esc "$kernel")</kernel>
    <initrd>$(esc "$initrd")</initrd>
    <cmdline>$(esc "$cmdline")</cmdline>
  </os>
  <devices>
    <serial type='pty'/>
    <console type='pty'/>
  </devices>
</domain>
XML
"$vireo" -q -c "$uri" define "$root/demo.xml" >/dev/null
echo "vireod: $uri ($vireo -c '$uri' list, dominfo demo, ... from another terminal)"
"$vireo" -c "$uri" start --console demo
