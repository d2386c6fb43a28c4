/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Small helpers shared by the bench programs: time, CPU pinning, IP
 * checksums and test frames, summaries of rounds, and (for the programs
 * that include ipblock.skel.h or trafficgen.skel.h first) a private
 * ipblock and the LPM-trie filter's tries.
 */
#ifndef IPBLOCK_BENCH_UTIL_H
#define IPBLOCK_BENCH_UTIL_H

#include <errno.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "cidr.h"
#include "cli.h"
#include "maps.h"

/* Rounds a bench keeps figures of: what summarise() can take. */
#define BENCH_MAX_ROUNDS 64

/* Monotonic time in seconds. */
static inline double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Ones' complement sum of 16-bit big-endian words, not yet folded. */
static inline uint32_t sum16(const void *data, size_t len, uint32_t sum)
{
	const uint8_t *p = data;

	for (; len > 1; p += 2, len -= 2)
		sum += (uint32_t)p[0] << 8 | p[1];
	if (len)
		sum += (uint32_t)p[0] << 8;
	return sum;
}

/* Fold a sum16() into the checksum field's value (network order). */
static inline uint16_t fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons((uint16_t)~sum);
}

/* Pin the calling thread to cpu; 0 or -errno. */
static inline int pin_cpu(uint32_t cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set) ? -errno : 0;
}

/*
 * A len-byte Ethernet + IP (family) + UDP frame from 02:00:00:00:00:01 to
 * 02:00:00:00:00:02, 198.19.255.254 or 2001:db8:1::1, port 40000 to 9; no
 * source address, no checksums.
 */
static inline void bench_frame_init(uint8_t *f, size_t len, int family)
{
	static const uint8_t dst4[4] = { 198, 19, 255, 254 };
	static const uint8_t dst6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 1, [15] = 1 };
	struct ethhdr *eth = (struct ethhdr *)f;
	struct udphdr *udp;

	memset(f, 0, len);
	memcpy(eth->h_dest, "\x02\x00\x00\x00\x00\x02", ETH_ALEN);
	memcpy(eth->h_source, "\x02\x00\x00\x00\x00\x01", ETH_ALEN);
	if (family == AF_INET) {
		struct iphdr *ip = (struct iphdr *)(eth + 1);

		eth->h_proto = htons(ETH_P_IP);
		ip->version = 4;
		ip->ihl = 5;
		ip->ttl = 64;
		ip->protocol = IPPROTO_UDP;
		ip->tot_len = htons(len - sizeof(*eth));
		memcpy(&ip->daddr, dst4, 4);
		udp = (struct udphdr *)(ip + 1);
		udp->len = htons(len - sizeof(*eth) - sizeof(*ip));
	} else {
		struct ipv6hdr *ip6 = (struct ipv6hdr *)(eth + 1);

		eth->h_proto = htons(ETH_P_IPV6);
		ip6->version = 6;
		ip6->hop_limit = 64;
		ip6->nexthdr = IPPROTO_UDP;
		ip6->payload_len = htons(len - sizeof(*eth) - sizeof(*ip6));
		memcpy(&ip6->daddr, dst6, 16);
		udp = (struct udphdr *)(ip6 + 1);
		udp->len = ip6->payload_len;
	}
	udp->source = htons(40000);
	udp->dest = htons(9);
}

static inline int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

struct summary {
	double med, min, max;
};

/* Median, min and max of n (1 to BENCH_MAX_ROUNDS) figures. */
static inline struct summary summarise(const double *v, uint32_t n)
{
	double s[BENCH_MAX_ROUNDS];

	memcpy(s, v, n * sizeof(*s));
	qsort(s, n, sizeof(*s), cmp_double);
	return (struct summary){ .med = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2,
				 .min = s[0],
				 .max = s[n - 1] };
}

/*
 * What a BPF_PROG_RUN bench does before it starts: check for root (1 if
 * not, said), quiet the library's progress messages and pin to cpu (a note
 * if it cannot).
 */
static inline int bench_start(uint32_t cpu)
{
	if (cli_require_root())
		return 1;
	cli_set_verbose(false);
	if (pin_cpu(cpu))
		cli_note("cannot pin to CPU %u: %s; running unpinned.", cpu, strerror(errno));
	return 0;
}

#ifdef __IPBLOCK_BPF_SKEL_H__
/*
 * Open and load a private copy of ipblock (no pins, no interface) whose
 * tries may hold up to ceiling rules per family (the loader's --max-rules;
 * the tables grow with the rules), and a change handle on it.  On failure
 * *skel may be set: ipblock_bpf__destroy() it.
 */
static inline int bench_ipblock_open(struct ipblock_bpf **skel, struct pins *pins,
				     struct maps *maps, uint32_t ceiling)
{
	int ret;

	*pins = (struct pins)PINS_INIT;
	maps_init(maps, pins);
	*skel = ipblock_bpf__open();
	if (!*skel)
		return -errno;
	ret = pins_obj_size((*skel)->obj, ceiling);
	if (!ret)
		ret = ipblock_bpf__load(*skel);
	if (!ret)
		ret = pins_from_obj((*skel)->obj, pins);
	return ret;
}

static inline void bench_ipblock_close(struct ipblock_bpf *skel, struct maps *maps)
{
	maps_release(maps);
	ipblock_bpf__destroy(skel);
}
#endif

#ifdef __TRAFFICGEN_BPF_SKEL_H__
#include "trafficgen.h"

/*
 * Open the generator's object for the LPM-trie filter: its tries sized for
 * n4 and n6 rules, the source pool for pool entries (a power of two), then
 * loaded.  NULL with errno set on failure.
 */
static inline struct trafficgen_bpf *tg_open_sized(size_t n4, size_t n6, uint32_t pool)
{
	struct trafficgen_bpf *skel = trafficgen_bpf__open();
	int ret;

	if (!skel)
		return NULL;
	skel->rodata->pool_mask = pool - 1;
	ret = bpf_map__set_max_entries(skel->maps.pool, pool);
	if (!ret)
		ret = bpf_map__set_max_entries(skel->maps.trie4, n4 ? (uint32_t)n4 : 1);
	if (!ret)
		ret = bpf_map__set_max_entries(skel->maps.trie6, n6 ? (uint32_t)n6 : 1);
	if (!ret)
		ret = trafficgen_bpf__load(skel);
	if (ret) {
		trafficgen_bpf__destroy(skel);
		errno = -ret;
		return NULL;
	}
	return skel;
}

/* Rules per update syscall when filling a trie. */
#define TG_FILL_BATCH 8192

/*
 * Put v[0..n) (all of one family) into that family's trie as deny rules:
 * in batches, or one by one where the kernel has no batch update for LPM
 * tries.  0 or -errno.
 */
static inline int tg_trie_fill(struct trafficgen_bpf *skel, int family, const struct cidr *v,
			       size_t n)
{
	size_t ksz = family == AF_INET ? sizeof(struct tg_key4) : sizeof(struct tg_key6);
	int fd = bpf_map__fd(family == AF_INET ? skel->maps.trie4 : skel->maps.trie6);
	uint8_t *keys = calloc(TG_FILL_BATCH, ksz);
	uint32_t *vals = calloc(TG_FILL_BATCH, sizeof(*vals));
	bool batch = true;
	int ret = 0;

	if (!keys || !vals) {
		free(keys);
		free(vals);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n && !ret; i += TG_FILL_BATCH) {
		__u32 cnt = n - i < TG_FILL_BATCH ? (__u32)(n - i) : TG_FILL_BATCH;

		for (__u32 j = 0; j < cnt; j++) {
			uint8_t *k = keys + j * ksz;
			__u32 len = v[i + j].len;

			memcpy(k, &len, sizeof(len));
			memcpy(k + sizeof(len), v[i + j].addr, family == AF_INET ? 4 : 16);
			vals[j] = TG_DENY;
		}
		if (batch) {
			LIBBPF_OPTS(bpf_map_batch_opts, opts);
			__u32 done = cnt;

			if (!bpf_map_update_batch(fd, keys, vals, &done, &opts))
				continue;
			ret = -errno;
			if (done || (ret != -EINVAL && ret != -EOPNOTSUPP && ret != -524))
				break;
			batch = false;
			ret = 0;
		}
		for (__u32 j = 0; j < cnt && !ret; j++)
			if (bpf_map_update_elem(fd, keys + j * ksz, &vals[j], BPF_ANY))
				ret = -errno;
	}
	free(keys);
	free(vals);
	return ret;
}

/* Kernel memory (memlock, as bpftool shows) of the filter's two tries, in *bytes. */
static inline int tg_trie_memlock(struct trafficgen_bpf *skel, uint64_t *bytes)
{
	int ret;

	*bytes = 0;
	ret = pins_memlock(bpf_map__fd(skel->maps.trie4), bytes);
	if (!ret)
		ret = pins_memlock(bpf_map__fd(skel->maps.trie6), bytes);
	return ret;
}

/* The filter's verdict counters, summed over CPUs: out[TG_STATS]. */
static inline int tg_trie_stats(int fd, struct tg_counter *out)
{
	int ncpu = libbpf_num_possible_cpus();
	struct tg_counter *v;
	int ret = 0;

	if (ncpu < 0)
		return ncpu;
	v = calloc((size_t)ncpu, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (__u32 s = 0; s < TG_STATS && !ret; s++) {
		out[s] = (struct tg_counter){ 0 };
		if (bpf_map_lookup_elem(fd, &s, v)) {
			ret = -errno;
			break;
		}
		for (int c = 0; c < ncpu; c++) {
			out[s].packets += v[c].packets;
			out[s].bytes += v[c].bytes;
		}
	}
	free(v);
	return ret;
}
#endif

#endif /* IPBLOCK_BENCH_UTIL_H */
