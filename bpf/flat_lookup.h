/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The packet-path reader of the flat tables (layout and encodings in
 * common/flat_format.h).  Every access is an array-map lookup, which the
 * verifier inlines into a bounds check and a load, also for the inner
 * arrays of a pool's segments (they all have the template's size): a
 * uniform /16 block costs one load, a region without long rules three,
 * and a long-rule hit a handful more.  A segment's inner map is fetched
 * once per lookup while the accesses stay in it (struct flat_seg_cache),
 * and the first segment's as soon as the block turns out mixed.
 *
 * One family's maps are passed in (struct flat_maps, constant at every
 * call site), and the set to read is an index into them, so the verifier
 * walks one copy of the lookup for both sets:
 *
 *	__u32 e = flat_lookup_v4(&flat4_maps, set, ip->saddr);
 *	if (!e)            no rule
 *	else               rule flat_entry_id(e), deny if flat_entry_deny(e)
 *
 * A segment that is not there (never, unless user space is mid-way
 * through a bug) reads as "no rule".
 *
 * Ordering: a block's entry is read before its chunk, a chunk's entry
 * before the record it names, a slot's word before its key, and an ext
 * record's length list before the slots or the nodes it points to (nodes
 * do not change once published).  User space stores keys before words,
 * slots before lists, records before chunk entries and chunks before
 * block entries, so on x86 (loads are not reordered with loads) a reader
 * that sees a new word sees what it points to.  Weaker architectures would
 * need load-acquire here.  The bloom word needs no order: a bit seen late
 * skips the probe of a rule being added, which is the old verdict.
 */
#ifndef IPBLOCK_BPF_FLAT_LOOKUP_H
#define IPBLOCK_BPF_FLAT_LOOKUP_H

#include <linux/bpf.h>
#include <linux/in6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "ipblock.h"

/* Keep the compiler from moving loads across this point. */
#define flat_barrier() asm volatile("" ::: "memory")

/*
 * A slot probe of one family: flat_probe() as a global (non-static,
 * noinline) function.  The verifier checks a global function once, on its
 * own, and at a call only checks the arguments, which are scalars; inlined,
 * the probe's loop would be walked again inside every iteration of the
 * lookup's length loop and every tree level.  set_bits is set << 8 | the
 * slot bits (five arguments at most).
 */
typedef __u32 (*flat_probe_fn)(__u32 set_bits, __u64 h, __u64 hi, __u64 lo, __u32 len);

/* The maps of one family's tables (bpf/ipblock.bpf.c defines them). */
struct flat_maps {
	void *blocks;
	void *chunks;
	void *ext;
	void *slots;
	flat_probe_fn probe;
};

/* Element i of a pool whose segments hold 2^shift elements, in set's half of outer. */
static __always_inline void *flat_seg_elem(void *outer, __u32 set, __u32 i, const __u32 shift)
{
	__u32 k = set * FLAT_SEGS + (i >> shift);
	void *inner = bpf_map_lookup_elem(outer, &k);

	if (!inner)
		return NULL;
	k = i & ((1u << shift) - 1);
	return bpf_map_lookup_elem(inner, &k);
}

/*
 * The inner map of a pool's segment last used by one lookup, and its outer
 * index.  Consecutive accesses to a pool mostly land in the same segment
 * (a region's record and its tree's nodes; a small table's pools are one
 * segment each), and reusing the inner map takes the outer load and its
 * null check off the chain of dependent loads.  inner is checked to be a
 * map before the first access through the cache.
 */
struct flat_seg_cache {
	void *inner;
	__u32 k;
};

/* flat_seg_elem() through cache c, which holds the inner map of some segment of outer. */
static __always_inline void *flat_seg_elem_cached(void *outer, struct flat_seg_cache *c, __u32 set,
						  __u32 i, const __u32 shift)
{
	__u32 k = set * FLAT_SEGS + (i >> shift);

	if (k != c->k) {
		void *inner = bpf_map_lookup_elem(outer, &k);

		if (!inner)
			return NULL;
		c->inner = inner;
		c->k = k;
	}
	k = i & ((1u << shift) - 1);
	return bpf_map_lookup_elem(c->inner, &k);
}

/*
 * Start cache c at set's first segment of outer.  Every pool in use has its
 * first segment, so a caller that needs the pool can treat a null inner
 * map as "no rule"; one that may not need it checks only when it does.
 */
static __always_inline void flat_seg_cache_init(void *outer, struct flat_seg_cache *c, __u32 set)
{
	__u32 k = set * FLAT_SEGS;

	c->inner = bpf_map_lookup_elem(outer, &k);
	c->k = k;
}

/*
 * Slots from home that flat_probe_fast() reads inline.  With linear
 * probing at a load near 1/2, a miss reads 2.5 slots on average and many
 * keys sit one past their home: two inline reads leave the call to the
 * long runs.
 */
#define FLAT_FAST_PROBES 2

/*
 * The entry of slot-hash key (hi, lo, len), whose flat_hash() is h, or 0
 * when it is not there; the slots before FLAT_FAST_PROBES are read already.
 */
static __always_inline __u32 flat_probe(void *slots, __u32 set, __u32 bits, __u64 h, __u64 hi,
					__u64 lo, __u32 len)
{
	__u32 home = h >> (64 - bits), mask = (1u << bits) - 1;

	for (__u32 n = FLAT_FAST_PROBES; n < FLAT_MAX_PROBE; n++) {
		struct flat_slot *s =
			flat_seg_elem(slots, set, (home + n) & mask, FLAT_SLOT_SEG_SHIFT);
		__u64 w;
		__u32 tag;

		if (!s)
			return 0;
		w = *(volatile __u64 *)&s->word;
		flat_barrier();
		tag = w >> 32;
		if (!tag)
			return 0;
		if (tag == len && s->hi == hi && s->lo == lo)
			return (__u32)w;
	}
	return 0;
}

#define DEFINE_FLAT_PROBE(name, slots_map)                                                         \
	__attribute__((noinline)) __u32 name(__u32 set_bits, __u64 h, __u64 hi, __u64 lo,          \
					     __u32 len)                                            \
	{                                                                                          \
		return flat_probe(&slots_map, set_bits >> 8, set_bits & 31, h, hi, lo, len);       \
	}

/*
 * flat_probe() with its first FLAT_FAST_PROBES slots read inline: most
 * probes end there (an empty slot, or the key), so only a long run pays
 * the call.  The slot test is written out here and in flat_probe() on
 * purpose: one helper returning "go on" as a third value made the older
 * verifiers (5.10, 6.1) walk a fifth more of the program.
 */
static __always_inline __u32 flat_probe_fast(const struct flat_maps *m, struct flat_seg_cache *sc,
					     __u32 set, __u32 bits, __u64 h, __u64 hi, __u64 lo,
					     __u32 len)
{
	__u32 home = h >> (64 - bits), mask = (1u << bits) - 1;

#pragma unroll
	for (__u32 n = 0; n < FLAT_FAST_PROBES; n++) {
		struct flat_slot *s = flat_seg_elem_cached(m->slots, sc, set, (home + n) & mask,
							   FLAT_SLOT_SEG_SHIFT);
		__u64 w;
		__u32 tag;

		if (!s)
			return 0;
		w = *(volatile __u64 *)&s->word;
		flat_barrier();
		tag = w >> 32;
		if (!tag)
			return 0;
		if (tag == len && s->hi == hi && s->lo == lo)
			return (__u32)w;
	}
	return m->probe(set << 8 | bits, h, hi, lo, len);
}

/* The region entry of region r (a block's region: the block's entry is FLAT_EXT | c). */
static __always_inline __u32 flat_chunk_entry(const struct flat_maps *m, struct flat_seg_cache *cc,
					      __u32 set, __u32 c, __u32 r)
{
	__u32 i = (c << (FLAT_REGION_BITS - FLAT_BLOCK_BITS - 1)) |
		  (r & (FLAT_CHUNK_ENTRIES - 1)) >> 1;
	__u32 *pair = flat_seg_elem_cached(m->chunks, cc, set, i, FLAT_CHUNK_SEG_SHIFT + 7);

	return pair ? pair[r & 1] : 0;
}

/*
 * The entry judging address (hi, lo) (host order, IPv4 in the top 32 bits
 * of hi) in set's table: 0 or rule_id << 1 | deny.
 */
static __always_inline __u32 flat_lookup(const struct flat_maps *m, __u32 set, __u64 hi, __u64 lo,
					 const int v6)
{
	__u32 r = hi >> (64 - FLAT_REGION_BITS), b = r >> (FLAT_REGION_BITS - FLAT_BLOCK_BITS);
	__u32 e, bits, k, bloom = ~0u;
	struct flat_seg_cache cc, xc, sc;
	struct flat_ext *x;
	__u32 *pair;
	__u64 lens, more = 0;

	/* The block's entry: most blocks are uniform. */
	k = set << (FLAT_BLOCK_BITS - 1) | b >> 1;
	pair = bpf_map_lookup_elem(m->blocks, &k);
	if (!pair)
		return 0;
	e = pair[b & 1];
	if (!(e & FLAT_EXT))
		return e;
	/*
	 * A mixed block.  The pools' first inner maps are fetched now, as
	 * their index is known: their loads overlap the dependent ones below
	 * instead of adding to them whenever an access lands there.
	 */
	flat_seg_cache_init(m->chunks, &cc, set);
	flat_seg_cache_init(m->ext, &xc, set);
	flat_seg_cache_init(m->slots, &sc, set);
	if (!cc.inner)
		return 0;
	e = flat_chunk_entry(m, &cc, set, e & ~FLAT_EXT, r);
	if (!(e & FLAT_EXT))
		return e;
	if (!xc.inner)
		return 0;
	x = flat_seg_elem_cached(m->ext, &xc, set, e & ~FLAT_EXT, FLAT_EXT_SEG_SHIFT);
	if (!x)
		return 0;
	lens = *(volatile __u64 *)&x->lens;
	flat_barrier();
	bits = x->slot_bits & 31;

	/*
	 * IPv4 has 8 lengths past /24, so its regions are never split; not
	 * compiling the walk for it halves what the verifier explores.
	 */
	if (!v6 && flat_lens_is_inline(lens))
		return flat_inline_entry(lens, hi >> 32, x->base);
	if (!sc.inner)
		return 0;
	if (v6 && (lens & 0xff) == FLAT_LENS_SPLIT) {
		/* A crowded region: walk its tree down to the deepest node. */
		x = flat_seg_elem_cached(m->ext, &xc, set, (__u32)(lens >> 8), FLAT_EXT_SEG_SHIFT);
		if (!x)
			return 0;
		for (int d = 1; d < FLAT_MAX_NODES; d++) {
			__u32 c = x->child;
			__u64 mh = hi, ml = lo;

			if (!c)
				break;
			flat_mask(&mh, &ml, c & 0x7f);
			k = flat_probe_fast(m, &sc, set, bits, flat_hash(mh, ml, FLAT_TAG_NODE | c),
					    mh, ml, FLAT_TAG_NODE | c);
			if (!k)
				break;
			x = flat_seg_elem_cached(m->ext, &xc, set, k, FLAT_EXT_SEG_SHIFT);
			if (!x)
				return 0;
		}
		lens = x->lens;
		more = x->more;
	} else {
		bloom = x->bloom;
	}

	/* Longest length first: the first hit is the longest match. */
	for (int i = 0; i < FLAT_NODE_LENS; i++) {
		__u32 len = lens & 0xff, v;
		__u64 mh = hi, ml = lo, h;

		if (!len)
			break;
		lens = lens >> 8 | more << 56;
		more >>= 8;
		flat_mask(&mh, &ml, len);
		h = flat_hash(mh, ml, len);
		/* A clear bloom bit: no rule of the region has this key. */
		v = bloom & flat_bloom_bit(h) ? flat_probe_fast(m, &sc, set, bits, h, mh, ml, len)
					      : 0;
		if (v)
			return v;
	}
	return x->base;
}

/* IPv4 source address as it sits in the header. */
static __always_inline __u32 flat_lookup_v4(const struct flat_maps *m, __u32 set, __be32 saddr)
{
	return flat_lookup(m, set, (__u64)bpf_ntohl(saddr) << 32, 0, 0);
}

/* IPv6 source address as it sits in the header. */
static __always_inline __u32 flat_lookup_v6(const struct flat_maps *m, __u32 set,
					    const struct in6_addr *a)
{
	__u64 hi = (__u64)bpf_ntohl(a->in6_u.u6_addr32[0]) << 32 | bpf_ntohl(a->in6_u.u6_addr32[1]);
	__u64 lo = (__u64)bpf_ntohl(a->in6_u.u6_addr32[2]) << 32 | bpf_ntohl(a->in6_u.u6_addr32[3]);

	return flat_lookup(m, set, hi, lo, 1);
}

#endif /* IPBLOCK_BPF_FLAT_LOOKUP_H */
