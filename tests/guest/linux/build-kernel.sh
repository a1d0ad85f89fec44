#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Build Vireo's Linux test kernel from Debian's linux-source-6.1 and print the
# directory holding the result (vmlinux, bzImage, config, System.map) on
# stdout.  Everything else goes to stderr.
#
# The result is cached in
#   ${VIREO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vireo}/test-kernel/<key>/
# where <key> is the sha256 of the config fragment, the patches, this script
# and the linux-source-6.1 package version; a cached build is reused at once.

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
self=$here/$(basename "${BASH_SOURCE[0]}")
fragment=$here/vireo-6.1.config
tarball=/usr/src/linux-source-6.1.tar.xz
src_pkg=linux-source-6.1
arch=x86_64

log() { printf 'build-kernel: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- Inputs --------------------------------------------------------------------
[[ -f $fragment ]] || die "config fragment $fragment is missing"
shopt -s nullglob
patches=("$here"/patches/*.patch)
shopt -u nullglob

command -v dpkg-query >/dev/null 2>&1 ||
	die "dpkg-query not found: this script builds from Debian's $src_pkg package"
pkg_version=$(dpkg-query -W -f='${Version}' "$src_pkg" 2>/dev/null || true)
[[ -n $pkg_version && -f $tarball ]] ||
	die "$tarball not found: install the Debian package '$src_pkg' (apt-get install $src_pkg)"

# --- Cache key and fast path ---------------------------------------------------------
key=$(
	{
		printf 'vireo test kernel v1\n'
		printf '== fragment\n'; cat "$fragment"
		for p in "${patches[@]}"; do
			printf '== patch %s\n' "$(basename "$p")"; cat "$p"
		done
		printf '== build-kernel.sh\n'; cat "$self"
		printf '== %s %s\n' "$src_pkg" "$pkg_version"
	} | sha256sum | cut -d' ' -f1
)
cache_root=${VIREO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vireo}
out=$cache_root/test-kernel/$key

if [[ -f $out/vmlinux && -f $out/bzImage ]]; then
	log "cached: $out"
	printf '%s\n' "$out"
	exit 0
fi

# --- Build dependencies ----------------------------------------------------------------
missing=()
need() { # need COMMAND DEBIAN-PACKAGE
	command -v "$1" >/dev/null 2>&1 || missing+=("$2 (for '$1')")
}
need gcc gcc
need make make
need flex flex
need bison bison
need bc bc
need xz xz-utils
need patch patch
need perl perl
need tar tar
if command -v gcc >/dev/null 2>&1 &&
	! printf '#include <libelf.h>\n' | gcc -E -x c - >/dev/null 2>&1; then
	missing+=("libelf-dev (for <libelf.h>, needed by objtool)")
fi
if ((${#missing[@]})); then
	for m in "${missing[@]}"; do log "missing build dependency: $m"; done
	die "install the missing Debian packages (apt-get install ${missing[*]%% *}) and retry"
fi

# --- Build ---------------------------------------------------------------------------------
mkdir -p "$cache_root/test-kernel"
# Tests start in parallel: one builds, the others wait for its result.
exec {lock_fd}>"$cache_root/test-kernel/.lock-$key"
if ! flock -n "$lock_fd"; then
	log "another build of this kernel is running; waiting for it"
	flock "$lock_fd"
fi
if [[ -f $out/vmlinux && -f $out/bzImage ]]; then
	log "cached: $out"
	printf '%s\n' "$out"
	exit 0
fi
work=$(mktemp -d "$cache_root/test-kernel/.build-$key.XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start=$SECONDS
log "building $src_pkg $pkg_version in $work"
log "extracting $tarball"
tar -xf "$tarball" -C "$work"
src=$work/linux-source-6.1
[[ -f $src/Makefile ]] || die "$tarball did not contain linux-source-6.1/"

for p in "${patches[@]}"; do
	log "applying $(basename "$p")"
	patch -d "$src" -p1 --forward --batch --quiet <"$p" >&2 ||
		die "patch $(basename "$p") does not apply to $src_pkg $pkg_version"
done

# Fixed build metadata, so that rebuilding the same key gives the same kernel.
export KBUILD_BUILD_USER=vireo KBUILD_BUILD_HOST=vireo KBUILD_BUILD_VERSION=1
export KBUILD_BUILD_TIMESTAMP="Thu Jan  1 00:00:00 UTC 1970"
kmake() { make -C "$src" ARCH=$arch "$@" >&2; }

log "configuring: tinyconfig + $(basename "$fragment")"
kmake -s tinyconfig
(cd "$src" && ARCH=$arch ./scripts/kconfig/merge_config.sh -m .config "$fragment" >&2)
kmake -s olddefconfig

# merge_config.sh only warns when a dependency drops an option: make it fatal.
check_config() { # check_config FRAGMENT CONFIG
	local frag=$1 cfg=$2 line name want got bad=0
	local re_set='^(CONFIG_[A-Za-z0-9_]+)=(.*)$'
	local re_unset='^# (CONFIG_[A-Za-z0-9_]+) is not set$'
	while IFS= read -r line; do
		if [[ $line =~ $re_set ]]; then
			name=${BASH_REMATCH[1]} want=${BASH_REMATCH[2]}
			got=$(grep -m1 "^$name=" "$cfg" | cut -d= -f2- || true)
			if [[ $got != "$want" ]]; then
				log "config: requested $name=$want, final .config has ${got:+$name=}${got:-it unset}"
				bad=1
			fi
		elif [[ $line =~ $re_unset ]]; then
			name=${BASH_REMATCH[1]}
			got=$(grep -m1 "^$name=" "$cfg" | cut -d= -f2- || true)
			if [[ -n $got && $got != n ]]; then
				log "config: requested $name off, final .config has $name=$got"
				bad=1
			fi
		fi
	done <"$frag"
	return $bad
}
check_config "$fragment" "$src/.config" ||
	die "the final .config does not match $(basename "$fragment") (a dependency is missing or an option is selected by another one)"
log "config: all options in $(basename "$fragment") are in effect"

jobs=$(nproc 2>/dev/null || echo 2)
log "make -j$jobs vmlinux bzImage"
kmake -j"$jobs" vmlinux bzImage

stage=$work/out
mkdir "$stage"
cp "$src/vmlinux" "$stage/vmlinux"
cp "$src/arch/x86/boot/bzImage" "$stage/bzImage"
cp "$src/.config" "$stage/config"
cp "$src/System.map" "$stage/System.map"
chmod 0755 "$stage"
# Atomic publication: a concurrent build of the same key may have won.
if ! mv -T "$stage" "$out" 2>/dev/null; then
	[[ -f $out/vmlinux && -f $out/bzImage ]] || die "cannot move the result to $out"
	log "another build published $out first; using it"
fi
log "built in $((SECONDS - start)) s: $out"
printf '%s\n' "$out"
