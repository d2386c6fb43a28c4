# shellcheck shell=bash
# SPDX-License-Identifier: GPL-2.0
#
# Shared by selftests/kernels/*.sh: which Debian package a kernel series
# comes from, fetching and unpacking it into the cache, the initramfs, and
# how qemu runs here.
#
# The cache ($KERNEL_CACHE, default $BUILD/kernels) holds one directory per
# unpacked package, named after its kernel release (6.1.0-57-amd64), with the
# initramfs built for it; nothing is installed on the host.

KG_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KG_REPO=$(cd "$KG_DIR/../.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD == /* ]] || BUILD=$KG_REPO/$BUILD
KERNEL_CACHE=${KERNEL_CACHE:-$BUILD/kernels}
# The modules the guest needs before it can see the host's files, in the
# order given; their dependencies are found in modules.dep.  Built-in ones
# (modules.builtin) are skipped.
KG_BOOT_MODULES=(virtio_pci 9pnet_virtio 9p overlay)

# Why the last function returned false, one sentence.  The functions below
# set their results in variables, not on stdout, so that this survives.
KG_WHY=
# shellcheck disable=SC2034 # read by guest.sh
KG_REL=
KG_INITRD=

# kg_package_pattern SERIES: the regex of the package names of a series.
# 5.10 is Debian 11's kernel (bullseye), the oldest ipblock supports.
kg_package_pattern() {
	case $1 in
	5.10) echo '^linux-image-5\.10\.0-[0-9]+-amd64$' ;;
	6.1) echo '^linux-image-6\.1\.0-[0-9]+-amd64$' ;;
	6.12) echo '^linux-image-6\.12\.[0-9]+\+deb12-amd64$' ;;
	*) return 1 ;;
	esac
}

# kg_release_pattern SERIES: the glob of the kernel releases of a series.
kg_release_glob() {
	case $1 in
	5.10) echo '5.10.0-*-amd64' ;;
	6.1) echo '6.1.0-*-amd64' ;;
	6.12) echo '6.12.*+deb12-amd64' ;;
	*) return 1 ;;
	esac
}

# kg_apt_setup SERIES: KG_APT, apt's options for the series.  Bookworm's
# kernels come from the machine's own sources; bullseye's (5.10) from the
# same registry through a sources list and package lists of the cache's own,
# so the machine's apt configuration is never touched.
KG_APT=()
kg_apt_setup() {
	local d=$KERNEL_CACHE/apt-bullseye
	KG_APT=(-o APT::Sandbox::User=root)
	[[ $1 == 5.10 ]] || return 0
	mkdir -p "$d/lists/partial" "$d/cache/archives/partial" || return 1
	printf '%s\n' "deb http://deb.debian.org/debian bullseye main" \
		"deb http://deb.debian.org/debian-security bullseye-security main" >"$d/sources.list"
	KG_APT+=(-o "Dir::Etc::SourceList=$d/sources.list" -o Dir::Etc::SourceParts=/dev/null
		-o "Dir::State::Lists=$d/lists" -o "Dir::Cache=$d/cache")
}

# kg_newest_package SERIES: the newest package of SERIES apt knows.
kg_newest_package() {
	local re
	re=$(kg_package_pattern "$1") || return 1
	apt-cache "${KG_APT[@]}" pkgnames linux-image- 2>/dev/null | grep -E "$re" | sort -V |
		tail -n 1
}

# kg_cached SERIES: the newest unpacked release of SERIES in the cache.
kg_cached() {
	local glob d best=
	glob=$(kg_release_glob "$1") || return 1
	# shellcheck disable=SC2086 # the glob is meant to expand
	for d in "$KERNEL_CACHE"/$glob; do
		[[ -f $d/.unpacked ]] || continue
		best+="${d##*/}"$'\n'
	done
	[[ -n $best ]] || return 1
	printf '%s' "$best" | sort -V | tail -n 1
}

# kg_fetch SERIES: make sure the newest kernel of SERIES is unpacked in the
# cache; its release in KG_REL.  Asks apt which is newest (updating its lists
# once if it knows none), downloads only a release not yet unpacked, and
# falls back to the newest cached one if the registry cannot be reached.
kg_fetch() {
	local series=$1 pkg rel dir tmp deb
	if ! kg_package_pattern "$series" >/dev/null; then
		KG_WHY="unknown kernel series '$series' (known: 5.10, 6.1, 6.12)"
		return 1
	fi
	if ! command -v apt-get >/dev/null; then
		KG_REL=$(kg_cached "$series") && return 0
		KG_WHY="no apt-get to fetch Debian's $series kernel, and none is cached in $KERNEL_CACHE"
		return 1
	fi
	mkdir -p "$KERNEL_CACHE" && kg_apt_setup "$series" || {
		KG_WHY="cannot create $KERNEL_CACHE"
		return 1
	}
	pkg=$(kg_newest_package "$series")
	local upd=
	if [[ -z $pkg ]]; then
		# Lists never fetched (a fresh container): once, then ask again.
		upd=$(apt-get "${KG_APT[@]}" update -qq 2>&1 | tail -n 1) && upd=
		pkg=$(kg_newest_package "$series")
	fi
	if [[ -z $pkg ]]; then
		KG_REL=$(kg_cached "$series") && return 0
		KG_WHY="apt knows no linux-image package of the $series series${upd:+ (apt-get update: $upd)}"
		return 1
	fi
	rel=${pkg#linux-image-}
	dir=$KERNEL_CACHE/$rel
	if [[ -f $dir/.unpacked ]]; then
		KG_REL=$rel
		return 0
	fi
	tmp=$(mktemp -d "$KERNEL_CACHE/.fetch.XXXXXX") || return 1
	# apt's sandbox user cannot write into a root-owned cache; say root.
	if ! (cd "$tmp" && apt-get "${KG_APT[@]}" download -q "$pkg") >"$tmp/log" 2>&1; then
		KG_WHY="apt-get download $pkg failed: $(tail -n 1 "$tmp/log")"
		rm -rf "$tmp"
		KG_REL=$(kg_cached "$series") || return 1
		echo "kernels: using the cached $KG_REL instead ($KG_WHY)" >&2
		return 0
	fi
	deb=$(echo "$tmp"/*.deb)
	mkdir -p "$tmp/root"
	if ! dpkg -x "$deb" "$tmp/root" || [[ ! -f $tmp/root/boot/vmlinuz-$rel ]]; then
		KG_WHY="cannot unpack $deb (no boot/vmlinuz-$rel)"
		rm -rf "$tmp"
		return 1
	fi
	# The package's postinst would run depmod; busybox's does the same
	# here, so that modprobe works inside the guest.
	if ! busybox depmod -b "$tmp/root" "$rel"; then
		KG_WHY="busybox depmod failed for $rel"
		rm -rf "$tmp"
		return 1
	fi
	rm -rf "$dir"
	mkdir -p "$dir"
	mv "$tmp/root/boot/vmlinuz-$rel" "$dir/vmlinuz"
	mv "$tmp/root/boot/config-$rel" "$dir/config"
	mv "$tmp/root/lib/modules/$rel" "$dir/modules"
	echo "$pkg ($(dpkg-deb -f "$deb" Version))" >"$dir/package"
	rm -rf "$tmp"
	touch "$dir/.unpacked"
	echo "kernels: unpacked $pkg into $dir" >&2
	KG_REL=$rel
}

# kg_mod_order MODDIR MODULE...: the .ko files (relative to MODDIR) to load,
# dependencies first, each once; built-in modules are left out.
kg_mod_order() {
	local moddir=$1
	shift
	declare -A seen=()
	local -a order=()
	kg__visit() {
		local name=$1 path line dep
		name=${name//-/_}
		path=$(awk -F: -v n="$name" '{
			f = $1; sub(/.*\//, "", f); sub(/\.ko(\.[a-z]+)?$/, "", f); gsub(/-/, "_", f)
			if (f == n) { print $1; exit }
		}' "$moddir/modules.dep")
		if [[ -z $path ]]; then
			if grep -qE "/${name//_/[-_]}\.ko$" "$moddir/modules.builtin"; then
				return 0
			fi
			KG_WHY="module $name is neither in modules.dep nor built in"
			return 1
		fi
		[[ -n ${seen[$path]:-} ]] && return 0
		seen[$path]=1
		line=$(grep -m 1 "^$path:" "$moddir/modules.dep")
		for dep in ${line#*:}; do
			dep=${dep##*/}
			kg__visit "${dep%%.ko*}" || return 1
		done
		order+=("$path")
	}
	local m
	for m in "$@"; do
		kg__visit "$m" || return 1
	done
	printf '%s\n' "${order[@]}"
}

# kg_initramfs REL: build (once) the initramfs of release REL; its path in
# KG_INITRD.
kg_initramfs() {
	local rel=$1 dir=$KERNEL_CACHE/$1 out tmp bb f b
	out=$dir/initramfs.cpio
	# Rebuilt when init.sh or this file changes.
	# shellcheck disable=SC2034 # read by guest.sh
	KG_INITRD=$out
	if [[ -f $out && $out -nt $KG_DIR/init.sh && $out -nt $KG_DIR/lib.sh ]]; then
		return 0
	fi
	bb=$(command -v busybox) || {
		KG_WHY="busybox is not installed (Debian package busybox-static)"
		return 1
	}
	if ldd "$bb" >/dev/null 2>&1; then
		KG_WHY="$bb is dynamically linked; the initramfs needs busybox-static"
		return 1
	fi
	tmp=$(mktemp -d "$dir/.initramfs.XXXXXX") || return 1
	mkdir -p "$tmp/root/bin" "$tmp/root/mods"
	cp "$bb" "$tmp/root/bin/busybox"
	install -m 0755 "$KG_DIR/init.sh" "$tmp/root/init"
	if ! kg_mod_order "$dir/modules" "${KG_BOOT_MODULES[@]}" >"$tmp/order"; then
		rm -rf "$tmp"
		return 1
	fi
	# Unpacked here: busybox's insmod hands a compressed module to the
	# kernel first, which logs "Invalid ELF header magic" for each.
	while read -r f; do
		b=${f##*/}
		case $f in
		*.ko.xz) busybox unxz -c "$dir/modules/$f" >"$tmp/root/mods/${b%.xz}" ;;
		*.ko.gz) gzip -dc "$dir/modules/$f" >"$tmp/root/mods/${b%.gz}" ;;
		*) cp "$dir/modules/$f" "$tmp/root/mods/" ;;
		esac || {
			KG_WHY="cannot copy module $f into the initramfs"
			rm -rf "$tmp"
			return 1
		}
		echo "${b%.ko*}.ko" >>"$tmp/root/mods/order"
	done <"$tmp/order"
	touch "$tmp/root/mods/order"
	if ! (cd "$tmp/root" && find . | busybox cpio -o -H newc -R 0:0 2>/dev/null) >"$tmp/cpio"; then
		KG_WHY="cannot write the initramfs"
		rm -rf "$tmp"
		return 1
	fi
	mv "$tmp/cpio" "$out"
	rm -rf "$tmp"
}

# kg_accel: the qemu acceleration arguments for this machine.  KVM only when
# /dev/kvm is usable and is not kvm_pvm (nested PVM runs only PVM-built
# guests: a stock kernel crawls under it); GUEST_ACCEL=kvm|tcg overrides.
kg_accel() {
	local want=${GUEST_ACCEL:-auto}
	if [[ $want == auto ]]; then
		want=tcg
		if [[ -r /dev/kvm && -w /dev/kvm && ! -d /sys/module/kvm_pvm ]] &&
			[[ -d /sys/module/kvm_intel || -d /sys/module/kvm_amd ]]; then
			want=kvm
		fi
	fi
	case $want in
	kvm) echo "-accel kvm -cpu host" ;;
	tcg) echo "-accel tcg,thread=multi -cpu max" ;;
	*) return 1 ;;
	esac
}
