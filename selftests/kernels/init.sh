#!/bin/busybox sh
# shellcheck shell=dash
# SPDX-License-Identifier: GPL-2.0
#
# /init of the guest's initramfs (built by lib.sh, run by guest.sh).  Busybox
# only: the guest has nothing else until the host's root is mounted.
#
# Stage 1 (in the initramfs): load the modules listed in /mods/order, mount
# the host's / read-only over 9p under a tmpfs overlay, copy this script,
# busybox and the job (ipbk.job= on the kernel command line, a directory on
# the host) into the overlay, show the overlay's upper layer at
# /.ipbk/upper, and switch_root into it.
#
# Stage 2 (PID 1 in the host's tree): mount proc, sys, dev, bpffs, cgroup2,
# a fresh /run and /tmp, show the guest kernel's modules at
# /lib/modules/$(uname -r) and point kernel.modprobe at busybox's modprobe,
# run the job with its output on ttyS1, print "@@ipbk-exit STATUS" there and
# power off.  Kernel messages go to ttyS0.

BB=/bin/busybox

die() {
	echo "ipbk-init: $*" >&2
	[ -c /dev/ttyS1 ] && echo "ipbk-init: $*" >/dev/ttyS1 && echo "@@ipbk-exit 125" >/dev/ttyS1
	$BB sync
	$BB poweroff -f
	# poweroff -f does not return; should it, PID 1 exiting panics and
	# panic=-1 with qemu's -no-reboot ends the run as well.
	exit 1
}

# param NAME: the value of NAME= on the kernel command line.
param() {
	local w
	for w in $($BB cat /proc/cmdline); do
		case $w in "$1"=*) echo "${w#*=}" ;; esac
	done
}

stage1() {
	$BB mkdir -p /proc /sys /dev /lower /upper /newroot
	$BB mount -t proc proc /proc
	$BB mount -t sysfs sys /sys
	$BB mount -t devtmpfs dev /dev
	$BB --install -s /bin

	local m
	while read -r m; do
		[ -n "$m" ] || continue
		insmod "/mods/$m" || die "cannot load module $m"
	done </mods/order

	local share tries=0
	share=$(param ipbk.share)
	until mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=524288,cache=loose \
		"$share" /lower; do
		# The virtio device may still be probing.
		tries=$((tries + 1))
		[ $tries -lt 20 ] || die "cannot mount the host's root (9p tag $share)"
		sleep 0.2
	done
	mount -t tmpfs -o mode=0755 upper /upper || die "cannot mount the overlay's tmpfs"
	mkdir -p /upper/data /upper/work
	mount -t overlay -o lowerdir=/lower,upperdir=/upper/data,workdir=/upper/work \
		overlay /newroot || die "cannot mount the overlay"

	local job
	job=$(param ipbk.job)
	[ -d "/lower$job" ] || die "job directory $job not found on the host's share"
	mkdir -p /newroot/.ipbk
	cp -a "/lower$job" /newroot/.ipbk/job || die "cannot copy the job"
	cp /init /newroot/.ipbk/init
	cp $BB /newroot/.ipbk/busybox
	ln -s busybox /newroot/.ipbk/modprobe
	# The overlay's upper layer, where anything written to the host's
	# files lands: in-guest.sh checks that the tests wrote nothing there.
	mkdir -p /newroot/.ipbk/upper
	mount --bind /upper /newroot/.ipbk/upper

	umount /proc /sys
	mount --move /dev /newroot/dev 2>/dev/null || umount /dev
	exec switch_root /newroot /.ipbk/busybox sh /.ipbk/init stage2
}

stage2() {
	BB=/.ipbk/busybox
	export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
	export HOME=/root TERM=dumb LANG=C.UTF-8
	$BB mount -t proc proc /proc
	$BB mount -t sysfs sys /sys
	$BB grep -q "^[^ ]* /dev " /proc/mounts || $BB mount -t devtmpfs dev /dev
	$BB mkdir -p /dev/pts /dev/shm
	# What udev would make: bash's <(...) needs /dev/fd.
	$BB ln -sfn /proc/self/fd /dev/fd
	$BB ln -sfn /proc/self/fd/0 /dev/stdin
	$BB ln -sfn /proc/self/fd/1 /dev/stdout
	$BB ln -sfn /proc/self/fd/2 /dev/stderr
	$BB mount -t devpts devpts /dev/pts
	$BB mount -t tmpfs shm /dev/shm
	$BB mount -t tmpfs -o mode=0755 run /run
	# The job's settings: VER, MODDIR, WORKDIR.
	# shellcheck disable=SC1091 # written by guest.sh
	. /.ipbk/job/env
	# A fresh /tmp would hide a repository or kernel cache kept under the
	# host's /tmp (a CI clone, say): their top directories stay visible,
	# bound from the overlay's /tmp.
	$BB mkdir -p /.ipbk/hosttmp
	$BB mount --bind /tmp /.ipbk/hosttmp
	$BB mount -t tmpfs -o mode=1777 tmp /tmp
	local d top
	for d in "$WORKDIR" "$MODDIR"; do
		case $d in
		/tmp/?*)
			top=${d#/tmp/}
			top=${top%%/*}
			[ -d "/tmp/$top" ] && continue
			$BB mkdir -p "/tmp/$top"
			$BB mount --bind "/.ipbk/hosttmp/$top" "/tmp/$top" ||
				die "cannot show /tmp/$top in the guest"
			;;
		esac
	done
	$BB mount -t bpf bpf /sys/fs/bpf
	$BB mount -t cgroup2 cgroup2 /sys/fs/cgroup
	$BB mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
	$BB mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null

	[ -c /dev/ttyS1 ] || die "no second serial port for the output"
	$BB stty -F /dev/ttyS1 raw -echo

	$BB mkdir -p "/lib/modules/$VER"
	$BB mount --bind "$MODDIR" "/lib/modules/$VER" || die "cannot show the modules at /lib/modules/$VER"
	echo /.ipbk/modprobe >/proc/sys/kernel/modprobe
	$BB hostname "ipbk-$VER"
	$BB ip link set lo up

	local rc
	cd "$WORKDIR" || die "no directory $WORKDIR in the guest"
	/bin/bash /.ipbk/job/cmd </dev/null >/dev/ttyS1 2>&1
	rc=$?
	echo "@@ipbk-exit $rc" >/dev/ttyS1
	$BB sync
	$BB poweroff -f
}

case ${1:-} in
stage2) stage2 ;;
*) stage1 ;;
esac
