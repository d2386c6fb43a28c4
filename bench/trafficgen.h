/* SPDX-License-Identifier: GPL-2.0 */
/* What trafficgen.bpf.c and the programs that drive it agree on. */
#ifndef BENCH_TRAFFICGEN_H
#define BENCH_TRAFFICGEN_H

#include <linux/types.h>

/* Capacity of the source pool (a power of two). */
#define TG_POOL_MAX 65536

/* One source address and the checksums a frame carrying it needs. */
struct tg_source {
	__u8 addr[16];	 /* network order; IPv4 uses the first 4 bytes */
	__u16 ip_check;	 /* IPv4 header checksum, as stored in the header */
	__u16 udp_check; /* UDP checksum, as stored in the header */
	__u32 pad;
};

#endif /* BENCH_TRAFFICGEN_H */
