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

/*
 * The LPM-trie filter's keys (prefixlen, then the address in network
 * order, as BPF_MAP_TYPE_LPM_TRIE wants) and value: TG_DENY drops, any
 * other value passes.
 */
struct tg_key4 {
	__u32 prefixlen;
	__u8 addr[4];
};

struct tg_key6 {
	__u32 prefixlen;
	__u8 addr[16];
};

#define TG_DENY 1

/* The LPM-trie filter's per-CPU verdict counters. */
enum tg_stat {
	TG_STAT_PASS,
	TG_STAT_DROP,
	TG_STATS,
};

struct tg_counter {
	__u64 packets;
	__u64 bytes;
};

#endif /* BENCH_TRAFFICGEN_H */
