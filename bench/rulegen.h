/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Deterministic rule lists for the benchmarks, shaped like FireHOL level1:
 * a block of /32 (/128) hosts, /24-ish blocks cut in assorted pieces, a few
 * huge bogon-style prefixes and, for the bulk, prefixes of random length
 * spread evenly over a wide range.  No two prefixes overlap, so every set
 * type (nft interval sets in particular) accepts the list as it is.
 *
 * Layout, so that traffic can pick its sources without consulting the list:
 *
 *   IPv4  198.18.0.0/16   fully covered by the list (a "denied" source is any
 *                         address in it)
 *         198.19.0.0/16   never covered (a "passing" source)
 *         bogons          0/8 10/8 100.64/10 127/8 169.254/16 172.16/12
 *                         192.168/16 224/3
 *         filler          inside 11.0.0.0-99.255.255.255
 *   IPv6  2001:db8::/48   fully covered;  2001:db8:1::/48 never covered
 *         filler          inside 2400::/6
 *
 * The same (family, count, seed) always gives the same list on any machine.
 */
#ifndef BENCH_RULEGEN_H
#define BENCH_RULEGEN_H

#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "cidr.h"

typedef unsigned __int128 rg_u128;

/* Lists shorter than this are one covering prefix plus filler. */
#define RG_SMALL   256
#define RG_RESERVE 128

/* Called once per prefix, in list order. */
typedef void (*rulegen_emit_fn)(const struct cidr *p, void *ctx);

struct rulegen {
	int family;
	unsigned int bits; /* 32 or 128 */
	uint64_t rng;
	size_t emitted;
	rulegen_emit_fn emit;
	void *ctx;
};

/* splitmix64: small, fast, and the same everywhere. */
static inline uint64_t rg_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline rg_u128 rg_rand128(uint64_t *s)
{
	rg_u128 hi = rg_rand(s);

	return hi << 64 | rg_rand(s);
}

/* An address as a number (network order bytes, most significant first). */
static inline rg_u128 rg_addr_value(int family, const uint8_t *addr)
{
	unsigned int n = family == AF_INET ? 4 : 16;
	rg_u128 v = 0;

	for (unsigned int i = 0; i < n; i++)
		v = v << 8 | addr[i];
	return v;
}

static inline void rg_value_addr(int family, rg_u128 v, uint8_t *addr)
{
	unsigned int n = family == AF_INET ? 4 : 16;

	for (unsigned int i = n; i-- > 0;) {
		addr[i] = (uint8_t)v;
		v >>= 8;
	}
}

static inline rg_u128 rg_block(unsigned int host_bits)
{
	return (rg_u128)1 << host_bits;
}

static inline void rg_emit(struct rulegen *g, rg_u128 base, unsigned int len)
{
	struct cidr p;

	memset(&p, 0, sizeof(p));
	p.family = (uint8_t)g->family;
	p.len = (uint8_t)len;
	rg_value_addr(g->family, base, p.addr);
	g->emitted++;
	g->emit(&p, g->ctx);
}

/* Cover [lo, hi) exactly with the fewest aligned prefixes. */
static inline void rg_emit_range(struct rulegen *g, rg_u128 lo, rg_u128 hi)
{
	while (lo < hi) {
		unsigned int hb = 0;

		while (hb + 1 < g->bits && !(lo & rg_block(hb)) && lo + rg_block(hb + 1) <= hi)
			hb++;
		rg_emit(g, lo, g->bits - hb);
		lo += rg_block(hb);
	}
}

/* One block of 2^hb addresses, cut in one of a few FireHOL-like ways. */
static inline void rg_emit_block(struct rulegen *g, rg_u128 base, unsigned int hb)
{
	unsigned int depth = hb < 8 ? hb : 8, i;
	rg_u128 at = base;

	switch (rg_rand(&g->rng) % 4) {
	case 0:
	case 1: /* the whole block */
		rg_emit(g, base, g->bits - hb);
		break;
	case 2: /* two halves */
		rg_emit(g, base, g->bits - hb + 1);
		rg_emit(g, base + rg_block(hb - 1), g->bits - hb + 1);
		break;
	default: /* halving pieces: /25 /26 ... /32 /32 for a /24 */
		for (i = 1; i <= depth; i++) {
			rg_emit(g, at, g->bits - hb + i);
			at += rg_block(hb - i);
		}
		rg_emit(g, at, g->bits - hb + depth);
		break;
	}
}

/* The denied region: hosts, cut blocks, and whatever remains as prefixes. */
static inline void rg_covered_region(struct rulegen *g, size_t n)
{
	const unsigned int region_hb = g->family == AF_INET ? 16 : 80;
	const unsigned int block_hb = g->family == AF_INET ? 8 : 64;
	uint8_t a[16] = { 198, 18 };
	uint8_t a6[16] = { 0x20, 0x01, 0x0d, 0xb8 };
	rg_u128 base = rg_addr_value(g->family, g->family == AF_INET ? a : a6);
	rg_u128 end = base + rg_block(region_hb), at;
	size_t hosts = n / 4 < 4096 ? n / 4 : 4096, blocks;

	/*
	 * A cut block is at most 9 prefixes and the two ranges below at most
	 * about 100 (IPv6): the region never takes more than n - 8 rules.
	 */
	blocks = (n - hosts - RG_RESERVE) / 9;
	if (blocks > 240)
		blocks = 240;

	for (size_t i = 0; i < hosts; i++)
		rg_emit(g, base + i, g->bits);
	/* The rest of the host area (4096 addresses), then whole blocks. */
	at = base + 4096;
	if (at & (rg_block(block_hb) - 1))
		at = (at | (rg_block(block_hb) - 1)) + 1;
	rg_emit_range(g, base + hosts, at);
	for (size_t i = 0; i < blocks; i++, at += rg_block(block_hb))
		rg_emit_block(g, at, block_hb);
	rg_emit_range(g, at, end);
}

static inline void rg_bogons(struct rulegen *g)
{
	static const struct {
		uint8_t addr[4];
		uint8_t len;
	} v4[] = {
		{ { 0 }, 8 },	      { { 10 }, 8 },	   { { 100, 64 }, 10 },	 { { 127 }, 8 },
		{ { 169, 254 }, 16 }, { { 172, 16 }, 12 }, { { 192, 168 }, 16 }, { { 224 }, 3 }
	};
	static const struct {
		uint8_t addr[4]; /* the first four bytes; the rest are zero */
		uint8_t len;
	} v6[] = { { { 0 }, 8 },	   { { 0x01 }, 64 },	   { { 0x20, 0x01, 0, 0x10 }, 28 },
		   { { 0x20, 0x02 }, 16 }, { { 0x3f, 0xfe }, 16 }, { { 0xfc }, 7 },
		   { { 0xfe, 0x80 }, 10 }, { { 0xfe, 0xc0 }, 10 }, { { 0xff }, 8 } };
	uint8_t a[16] = { 0 };

	if (g->family == AF_INET) {
		for (size_t i = 0; i < sizeof(v4) / sizeof(v4[0]); i++)
			rg_emit(g, rg_addr_value(AF_INET, v4[i].addr), v4[i].len);
		return;
	}
	for (size_t i = 0; i < sizeof(v6) / sizeof(v6[0]); i++) {
		memcpy(a, v6[i].addr, 4);
		rg_emit(g, rg_addr_value(AF_INET6, a), v6[i].len);
	}
}

/* n prefixes of random length, one per equal slice of the filler range. */
static inline void rg_filler(struct rulegen *g, size_t n)
{
	uint8_t lo4[4] = { 11 }, hi4[4] = { 100 }, lo6[16] = { 0x24 }, hi6[16] = { 0x28 };
	rg_u128 lo = rg_addr_value(g->family, g->family == AF_INET ? lo4 : lo6);
	rg_u128 hi = rg_addr_value(g->family, g->family == AF_INET ? hi4 : hi6);
	unsigned int cb = 0, min_len;

	if (!n)
		return;
	/* The largest power-of-two slice such that n of them fit. */
	while (cb + 1 < g->bits && rg_block(cb + 1) * n <= hi - lo)
		cb++;
	min_len = g->bits - cb;
	if (min_len < (g->family == AF_INET ? 8u : 16u))
		min_len = g->family == AF_INET ? 8 : 16;
	for (size_t i = 0; i < n; i++) {
		uint64_t r = rg_rand(&g->rng);
		unsigned int len, span = g->bits - min_len; /* lengths min_len..bits-1 */

		if (!span)
			len = g->bits;
		else if (g->family == AF_INET)
			len = r % 10 < 6 ? 32 : min_len + (unsigned int)((r >> 8) % span);
		else if (r % 10 < 4)
			len = 128;
		else if (r % 10 < 7 && min_len <= 64)
			len = 64;
		else
			len = min_len + (unsigned int)((r >> 8) % (span < 48 ? span : 48));
		/* A random aligned place inside the slice. */
		rg_u128 slots = rg_block(cb - (g->bits - len));
		rg_u128 off = (rg_rand128(&g->rng) % slots) << (g->bits - len);

		rg_emit(g, lo + rg_block(cb) * i + off, len);
	}
}

/* Emit exactly n prefixes of family; returns n. */
static inline size_t rulegen_run(int family, size_t n, uint64_t seed, rulegen_emit_fn emit,
				 void *ctx)
{
	struct rulegen g = { .family = family,
			     .bits = family == AF_INET ? 32 : 128,
			     .rng = seed ^ (family == AF_INET ? 0x4 : 0x6),
			     .emit = emit,
			     .ctx = ctx };

	if (!n)
		return 0;
	if (n < RG_SMALL) {
		uint8_t a[16] = { 198, 18 }, a6[16] = { 0x20, 0x01, 0x0d, 0xb8 };

		rg_emit(&g, rg_addr_value(family, family == AF_INET ? a : a6),
			family == AF_INET ? 16 : 48);
		rg_filler(&g, n - 1);
		return g.emitted;
	}
	rg_covered_region(&g, n);
	rg_bogons(&g);
	rg_filler(&g, n - g.emitted);
	return g.emitted;
}

/* A uniformly random address inside p (4 or 16 bytes by family). */
static inline void rg_random_in(const struct cidr *p, uint64_t *rng, uint8_t *addr)
{
	unsigned int bits = p->family == AF_INET ? 32 : 128;
	rg_u128 base = rg_addr_value(p->family, p->addr), host = 0;

	if (p->len < bits)
		host = rg_rand128(rng) & (((rg_u128)1 << (bits - p->len)) - 1);
	rg_value_addr(p->family, base | host, addr);
}

#endif /* BENCH_RULEGEN_H */
