/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Small helpers shared by the bench programs: time, CPU pinning, IP
 * checksums and test frames, summaries of rounds, option parsing, and
 * (for the programs that include ipblock.skel.h first) a private ipblock.
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

/* "trie,flat": up to max distinct lookups into l[], their count in *n. */
static inline int parse_lookups(const char *s, enum pins_lookup *l, size_t max, size_t *n)
{
	char buf[64], *save = NULL, *tok;

	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	*n = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (*n == max || pins_lookup_parse(tok, &l[*n]))
			return -EINVAL;
		for (size_t i = 0; i < *n; i++)
			if (l[i] == l[*n])
				return -EINVAL;
		(*n)++;
	}
	return *n ? 0 : -EINVAL;
}

/* --lookups, as cli_parse_u32() does for numbers: 0, or -EINVAL once said why. */
static inline int cli_parse_lookups(const char *s, enum pins_lookup *l, size_t max, size_t *n)
{
	int ret = parse_lookups(s, l, max, n);

	if (ret)
		cli_err("--lookups takes trie, flat or both, separated by a comma.");
	return ret;
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
 * Open and load a private copy of ipblock (no pins, no interface), its maps
 * sized by pins_obj_size() for capacity rules per family, and a change
 * handle on them.  On failure *skel may be set: ipblock_bpf__destroy() it.
 */
static inline int bench_ipblock_open(struct ipblock_bpf **skel, struct pins *pins,
				     struct maps *maps, uint32_t capacity, enum pins_lookup lookup)
{
	int ret;

	*pins = (struct pins)PINS_INIT;
	maps_init(maps, pins);
	*skel = ipblock_bpf__open();
	if (!*skel)
		return -errno;
	ret = pins_obj_size((*skel)->obj, capacity, lookup);
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

#endif /* IPBLOCK_BENCH_UTIL_H */
