/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The packet-path reader of the flat tables (layout and encodings in
 * common/flat_format.h).  Every access is an array-map lookup, which the verifier
 * inlines into a bounds check and a load: a uniform /16 block costs one
 * load, a region without long rules two, and a long-rule hit a handful.
 *
 * The maps are passed in (one top and one data map per family and set), so
 * the program picks set A or B as it does for the tries, together with the
 * probe function of the same data map (DEFINE_FLAT_PROBE):
 *
 *	DEFINE_FLAT_PROBE(probe_v4_a, flat4_data)
 *	__u32 e = flat_lookup_v4(&flat4_top, &flat4_data, probe_v4_a, ip->saddr);
 *	if (e == FLAT_FALLBACK)
 *		... look the address up in the same set's trie ...
 *	else if (!e)       no rule
 *	else               rule flat_entry_id(e), deny if flat_entry_deny(e)
 *
 * Ordering: a block's summary is read before its top entry, a slot's word
 * before its key, and an ext record's length list before the slots or the
 * nodes it points to (nodes do not change once published).  User space
 * stores keys before words and slots before lists, so on x86 (loads are
 * not reordered with loads) a reader that sees a new word sees its key.
 * Weaker architectures would need load-acquire here.  The bloom word needs
 * no order: a bit seen late skips the probe of a rule being added, which
 * is the old verdict.
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

/* The entry of slot-hash key (hi, lo, len), whose flat_hash() is h, or 0 when it is not there. */
static __always_inline __u32 flat_probe(void *data, __u32 bits, __u64 h, __u64 hi, __u64 lo,
					__u32 len)
{
	__u32 home = h >> (64 - bits), mask = (1u << bits) - 1;

	for (__u32 n = 0; n < FLAT_MAX_PROBE; n++) {
		__u32 k = FLAT_SLOT_BASE + ((home + n) & mask);
		struct flat_slot *s = bpf_map_lookup_elem(data, &k);
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

/*
 * A probe of one data map's slot hash: flat_probe() with the map fixed, as
 * a global (non-static, noinline) function, one per data map.
 *
 * Why: the verifier checks a global function once, on its own, and at a
 * call only checks the arguments, which are scalars.  Inlined, the probe's
 * loop is walked again inside every iteration of the lookup's length loop,
 * every tree level and both sets, which took Linux 6.1's verifier past its
 * limit of a million instructions.  The map is fixed inside because a global
 * function cannot take a map as an argument.
 */
typedef __u32 (*flat_probe_fn)(__u32 bits, __u64 h, __u64 hi, __u64 lo, __u32 len);

#define DEFINE_FLAT_PROBE(name, data_map)                                                          \
	__attribute__((noinline)) __u32 name(__u32 bits, __u64 h, __u64 hi, __u64 lo, __u32 len)   \
	{                                                                                          \
		return flat_probe(&data_map, bits, h, hi, lo, len);                                \
	}

/*
 * flat_probe() with its first slot read inline: at load 1/2 most probes end
 * there (an empty slot, or the key), so only a collision pays the call.
 * One slot inline adds little for the verifier to walk; the whole loop
 * inline is what it could not afford.
 */
static __always_inline __u32 flat_probe_fast(void *data, flat_probe_fn probe, __u32 bits, __u64 h,
					     __u64 hi, __u64 lo, __u32 len)
{
	__u32 k = FLAT_SLOT_BASE + (__u32)(h >> (64 - bits));
	struct flat_slot *s = bpf_map_lookup_elem(data, &k);
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
	return probe(bits, h, hi, lo, len);
}

/*
 * The entry judging address (hi, lo) (host order, IPv4 in the top 32 bits
 * of hi) in one table: 0, rule_id << 1 | deny, or FLAT_FALLBACK.  probe
 * is data's probe function; always the same constant at a call site, so
 * once inlined it is a direct call.
 */
static __always_inline __u32 flat_lookup(void *top, void *data, flat_probe_fn probe, __u32 top_bits,
					 __u64 hi, __u64 lo, const int v6)
{
	__u32 r = hi >> (64 - top_bits), b = r >> FLAT_SUM_SHIFT, e, bits, k, bloom = ~0u;
	struct flat_ext *x;
	__u32 *pair;
	__u64 lens, more = 0;

	/* The block's summary, after top in the same map: most blocks are uniform. */
	k = (1u << (top_bits - 1)) + (b >> 1);
	pair = bpf_map_lookup_elem(top, &k);
	if (!pair)
		return FLAT_FALLBACK;
	e = pair[b & 1];
	if (!(e & FLAT_EXT))
		return e;
	k = r >> 1;
	pair = bpf_map_lookup_elem(top, &k);
	if (!pair)
		return FLAT_FALLBACK;
	e = pair[r & 1];
	if (e == FLAT_FALLBACK || !(e & FLAT_EXT))
		return e;
	k = e & ~FLAT_EXT;
	x = bpf_map_lookup_elem(data, &k);
	if (!x)
		return FLAT_FALLBACK;
	lens = *(volatile __u64 *)&x->lens;
	flat_barrier();
	if ((lens & 0xff) == FLAT_LENS_FALLBACK)
		return FLAT_FALLBACK;
	bits = x->slot_bits & 31;

	/*
	 * IPv4 has 8 lengths past /24, so its regions are never split; not
	 * compiling the walk for it halves what the verifier explores.
	 */
	if ((lens & 0xff) == FLAT_LENS_SPLIT && !v6)
		return FLAT_FALLBACK;
	/* An IPv4 region's only long rule, kept in its record: no probe. */
	if (!v6 && flat_lens_is_inline(lens))
		return flat_inline_entry(lens, hi >> 32, x->base);
	if ((lens & 0xff) == FLAT_LENS_SPLIT) {
		/* A crowded region: walk its tree down to the deepest node. */
		k = (__u32)(lens >> 8);
		x = bpf_map_lookup_elem(data, &k);
		if (!x)
			return FLAT_FALLBACK;
		for (int d = 1; d < FLAT_MAX_NODES; d++) {
			__u32 c = x->child;
			__u64 mh = hi, ml = lo;

			if (!c)
				break;
			flat_mask(&mh, &ml, c & 0x7f);
			k = flat_probe_fast(data, probe, bits, flat_hash(mh, ml, FLAT_TAG_NODE | c),
					    mh, ml, FLAT_TAG_NODE | c);
			if (!k)
				break;
			x = bpf_map_lookup_elem(data, &k);
			if (!x)
				return FLAT_FALLBACK;
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
		v = bloom & flat_bloom_bit(h) ? flat_probe_fast(data, probe, bits, h, mh, ml, len)
					      : 0;
		if (v)
			return v;
	}
	return x->base;
}

/* IPv4 source address as it sits in the header. */
static __always_inline __u32 flat_lookup_v4(void *top, void *data, flat_probe_fn probe,
					    __be32 saddr)
{
	return flat_lookup(top, data, probe, FLAT_V4_TOP_BITS, (__u64)bpf_ntohl(saddr) << 32, 0, 0);
}

/* IPv6 source address as it sits in the header. */
static __always_inline __u32 flat_lookup_v6(void *top, void *data, flat_probe_fn probe,
					    const struct in6_addr *a)
{
	__u64 hi = (__u64)bpf_ntohl(a->in6_u.u6_addr32[0]) << 32 | bpf_ntohl(a->in6_u.u6_addr32[1]);
	__u64 lo = (__u64)bpf_ntohl(a->in6_u.u6_addr32[2]) << 32 | bpf_ntohl(a->in6_u.u6_addr32[3]);

	return flat_lookup(top, data, probe, FLAT_V6_TOP_BITS, hi, lo, 1);
}

#endif /* IPBLOCK_BPF_FLAT_LOOKUP_H */
