#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# cmdline.sh [EXTRA-ARG...]
#
# Print the kernel command line for Vireo's Linux test guest on this host.
# Extra arguments (e.g. vireo.test=poweroff) are appended.
#
# Base: the command line measured to boot on the nested-KVM CI hosts
# (shared reference test-kernel/cmdline.txt), without `reboot=t`: vireo-vmm
# treats a triple fault as a crash, so the kernel must use its default ACPI
# reset register / keyboard-controller reboot.  Note that with panic=-1 a
# kernel panic therefore shows up as a reboot (tests look for their marker).
#
#   noxsave, clearcpuid=..., nofsgsbase, nopcid: features whose instructions
#       that host cannot emulate at CPL0 (SMAP: the CLAC in the entry code).
#   lpj, tsc_early_khz, tsc=reliable, no_timer_check: skip the delay-loop and
#       TSC calibration (emulated CPL0 loops take seconds).
#   random.trust_bootloader=on: use vireo-vmm's boot_params RNG seed.
#
# The TSC frequency comes from $VIREO_TSC_KHZ if set, else from the host
# kernel's log ("tsc: Refined TSC clocksource calibration: X MHz", then
# "tsc: Detected X MHz processor"), else from /proc/cpuinfo ("cpu MHz").
# lpj = kHz * 1000 / HZ, and the test kernel has HZ=100.

set -euo pipefail

die() { printf 'cmdline.sh: error: %s\n' "$*" >&2; exit 1; }

# shellcheck disable=SC2054 # the commas are part of the arguments
base=(
	console=ttyS0
	earlyprintk=serial,ttyS0
	panic=-1
	noxsave
	clearcpuid=smap,cx16,erms,fsrm,rdrand,rdseed,popcnt,rdpid
	tsc=reliable
	no_timer_check
	nofsgsbase
	nopcid
	mitigations=off
	rodata=off
	random.trust_bootloader=on
)
hz=100

# "2596.142" (MHz) -> 2596142 (kHz), without floating point.
mhz_to_khz() {
	local mhz=$1 int frac
	[[ $mhz =~ ^([0-9]+)(\.([0-9]*))?$ ]] || return 1
	int=${BASH_REMATCH[1]}
	frac=${BASH_REMATCH[3]:-}
	frac=${frac}000
	echo $((10#$int * 1000 + 10#${frac:0:3}))
}

tsc_khz() {
	local log mhz
	if [[ -n ${VIREO_TSC_KHZ:-} ]]; then
		[[ $VIREO_TSC_KHZ =~ ^[0-9]+$ ]] || die "VIREO_TSC_KHZ must be an integer (kHz)"
		echo "$VIREO_TSC_KHZ"
		return
	fi
	if log=$(dmesg 2>/dev/null) && [[ -n $log ]]; then
		mhz=$(sed -n 's/.*tsc: Refined TSC clocksource calibration: \([0-9.]*\) MHz.*/\1/p' <<<"$log" | tail -n1)
		[[ -n $mhz ]] ||
			mhz=$(sed -n 's/.*tsc: Detected \([0-9.]*\) MHz processor.*/\1/p' <<<"$log" | tail -n1)
		if [[ -n $mhz ]]; then
			mhz_to_khz "$mhz" && return
		fi
	fi
	mhz=$(sed -n 's/^cpu MHz[[:space:]]*:[[:space:]]*\([0-9.]*\).*/\1/p' /proc/cpuinfo 2>/dev/null | head -n1)
	[[ -n $mhz ]] || die "cannot find the TSC frequency (dmesg, /proc/cpuinfo); set VIREO_TSC_KHZ"
	mhz_to_khz "$mhz" || die "cannot parse 'cpu MHz: $mhz'"
}

khz=$(tsc_khz)
((khz > 0)) || die "bad TSC frequency: $khz kHz"
lpj=$((khz * 1000 / hz))

printf '%s\n' "${base[*]} lpj=$lpj tsc_early_khz=$khz${*:+ $*}"
