// SPDX-License-Identifier: GPL-2.0
/*
 * Equivalence of the live program's lookup with the rule cache's reference
 * longest-prefix match, through the product path: rules go in with the
 * maps_* API (which keeps the flat tables in step with the tries) and the
 * real ipblock program judges frames by BPF_PROG_RUN.
 *
 * The random sets are shaped so that every case of the tables occurs:
 * addresses cluster in a few hot /8, /16 and /24 blocks (IPv6: /24 regions,
 * /48s and /64s), so rules nest (allow in deny in allow chains) and many
 * rules longer than /24 share a /24 region; /0, /1 and host routes are
 * there too.  Half of the hot IPv6 /24 regions take rules of any length
 * past /24, so they hold far more than the 8 distinct long lengths one
 * region can list and the tables split them into trees of nodes, with
 * allow-in-deny chains crossing the nodes' levels; the other IPv6 regions
 * keep to a palette of 8 long lengths (plain regions).  No random set
 * needs the trie: every check asserts that no region falls back and that
 * the tables split exactly the regions with more than 8 long lengths.  One
 * test crowds a region of its own and empties it again, rule by rule.
 *
 * Every check probes the first and last address of every rule and the
 * addresses just outside, plus random addresses inside rules, inside their
 * /24 regions and anywhere, and compares the per-verdict counters with
 * what the reference predicts.
 *
 * LOOKUP_SEED=n replays a run (the seed is printed first);
 * LOOKUP_ONLY=pattern[,pattern...] runs only the tests matching one of the
 * (fnmatch) patterns;
 * LOOKUP_SCALE=n divides the random sets, the churn and the capacity by n
 * (the kernel matrix's guests, where qemu's TCG makes compiling the tables
 * 10-40x slower); every test still runs and still probes every boundary of
 * every rule it loads.
 */
#include <errno.h>
#include <fnmatch.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <cmocka.h>
#include <linux/bpf.h>

#include "cidr.h"
#include "harness.h"
#include "trie.h"
#include "reference.h"
#include "rulecache.h"

/*
 * Per family.  Small enough that the hash of long rules (2 slots a rule of
 * capacity) is about a tenth full, so probe chains and tombstones occur;
 * large enough for every set below (at most ~4,500 rules per family).
 */
#define MAX_RULES 6000
#define BASE_V4	  3000
#define BASE_V6	  2000

/* Length in bits of the flat tables' regions (FLAT_V4/V6_TOP_BITS). */
#define REGION_BITS 24
/* Distinct long lengths a plain region can list (FLAT_MAX_LENS); more split it. */
#define REGION_LENS 8

typedef unsigned __int128 u128;

static uint64_t base_seed;

/* LOOKUP_SCALE: the divisor of the sizes marked scaled(). */
static unsigned int scale = 1;

static size_t scaled(size_t n)
{
	return n / scale ? n / scale : 1;
}

/* --- random numbers ------------------------------------------------------ */

struct rng {
	uint64_t s;
};

/* A stateless 64-bit finaliser: every input bit reaches every output bit. */
static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

static uint64_t rnd(struct rng *r)
{
	r->s = r->s * 6364136223846793005ull + 1442695040888963407ull;
	return mix64(r->s);
}

static uint32_t below(struct rng *r, uint32_t n)
{
	return (uint32_t)(rnd(r) % n);
}

static u128 rnd128(struct rng *r)
{
	u128 hi = rnd(r);

	return hi << 64 | rnd(r);
}

static void rng_init(struct rng *r, uint64_t salt)
{
	r->s = mix64(base_seed ^ mix64(salt));
}

/* --- addresses as numbers ------------------------------------------------ */

static unsigned int width(int family)
{
	return family == AF_INET ? 32 : 128;
}

/* The bits of an address past len (the host part) set. */
static u128 host_bits(int family, unsigned int len)
{
	unsigned int h = width(family) - len;

	return h >= 128 ? ~(u128)0 : ((u128)1 << h) - 1;
}

static u128 all_ones(int family)
{
	return host_bits(family, 0);
}

static u128 addr_get(int family, const uint8_t *a)
{
	u128 v = 0;

	for (unsigned int i = 0; i < width(family) / 8; i++)
		v = v << 8 | a[i];
	return v;
}

static void addr_put(int family, u128 v, uint8_t a[16])
{
	unsigned int n = width(family) / 8;

	memset(a, 0, 16);
	for (unsigned int i = 0; i < n; i++)
		a[n - 1 - i] = (uint8_t)(v >> (8 * i));
}

static struct cidr prefix_of(int family, u128 v, unsigned int len)
{
	struct cidr c = { .family = (uint8_t)family, .len = (uint8_t)len };

	addr_put(family, v & ~host_bits(family, len), c.addr);
	return c;
}

/* The top REGION_BITS bits: which entry of the top array judges v. */
static u128 region_of(int family, u128 v)
{
	return v >> (width(family) - REGION_BITS);
}

static const char *fmt_addr(int family, const uint8_t *a, char *buf, size_t len)
{
	struct cidr c = { .family = (uint8_t)family, .len = (uint8_t)width(family) };

	memcpy(c.addr, a, 16);
	return cidr_format(&c, buf, len);
}

static uint8_t other_action(uint8_t action)
{
	return action == IPBLOCK_ACTION_DENY ? IPBLOCK_ACTION_ALLOW : IPBLOCK_ACTION_DENY;
}

/* maps_rule_set() of p -> action. */
static int set_rule(struct harness *h, const struct cidr *p, uint8_t action)
{
	struct rule r = { .prefix = *p, .action = action };

	return maps_rule_set(&h->maps, &r);
}

/* --- rule sets: the reference and the sorted array the maps API takes ----- */

struct refset {
	struct rulecache *ref;
	struct rule *r; /* cidr_compare() order; refreshed by refset_sync() */
	size_t n;
};

static void refset_init(struct refset *s)
{
	s->ref = rulecache_new();
	assert_non_null(s->ref);
	s->r = NULL;
	s->n = 0;
}

static void refset_free(struct refset *s)
{
	rulecache_free(s->ref);
	free(s->r);
	s->ref = NULL;
	s->r = NULL;
	s->n = 0;
}

/* Rebuild the array from the reference after changes to it. */
static void refset_sync(struct refset *s)
{
	struct ruleset r = {};

	free(s->r);
	assert_int_equal(rulecache_rules(s->ref, &r), 0);
	assert_int_equal(r.n, rulecache_count(s->ref, AF_UNSPEC));
	s->r = r.r;
	s->n = r.n;
}

/* Set p's action in the reference; true if the prefix is new. */
static bool ref_set(struct rulecache *rc, const struct cidr *p, uint8_t action)
{
	struct rulecache_entry e = { .rule = { .prefix = *p, .action = action } };
	bool created = false;

	assert_int_equal(rulecache_insert(rc, &e, &created), 0);
	return created;
}

static bool ref_has(const struct rulecache *rc, const struct cidr *p)
{
	return rulecache_find(rc, p, NULL) == 0;
}

static void refset_copy(struct refset *dst, const struct refset *src)
{
	refset_init(dst);
	for (size_t i = 0; i < src->n; i++)
		ref_set(dst->ref, &src->r[i].prefix, src->r[i].action);
	refset_sync(dst);
}

/* --- the generator ---------------------------------------------------------- */

/*
 * The IPv6 region kept free of random rules: the crowded-region test fills
 * it with more lengths than a region can list.  2001:d00::/24 holds
 * 2001:db8::.
 */
#define CROWDED_REGION 0x20010dull

#define V4_HOT8	 4
#define V4_HOT16 12
#define V4_HOT24 48
#define V6_HOT24 8
#define V6_HOT48 24
#define V6_HOT64 48

struct hot {
	u128 v4_8[V4_HOT8], v4_16[V4_HOT16], v4_24[V4_HOT24];
	u128 v6_24[V6_HOT24], v6_48[V6_HOT48], v6_64[V6_HOT64];
};

struct gen {
	struct rng r;
	struct hot hs;
};

/* Where the base set's hot blocks are: later changes nest into them. */
static struct hot base_hot;

/* A random IPv6 address in 2000::/3 outside CROWDED_REGION. */
static u128 v6_global(struct rng *r)
{
	u128 v;

	do {
		v = rnd128(r) >> 3 | (u128)1 << 125;
	} while (region_of(AF_INET6, v) == CROWDED_REGION);
	return v;
}

/*
 * Whether an IPv6 region takes rules of any length past /24 (else only
 * its palette's, below): a coin per region and run.  hot_init() makes half
 * of the hot /24 regions such, so every random set has crowded regions.
 */
static bool v6_unrestricted(u128 region)
{
	return mix64((uint64_t)region ^ mix64(base_seed ^ 0x5eed)) & 1;
}

static void hot_init(struct hot *hs, struct rng *r)
{
	for (int i = 0; i < V4_HOT8; i++)
		hs->v4_8[i] = rnd(r) & 0xff000000u;
	for (int i = 0; i < V4_HOT16; i++)
		hs->v4_16[i] = hs->v4_8[below(r, V4_HOT8)] | (rnd(r) & 0x00ff0000u);
	for (int i = 0; i < V4_HOT24; i++)
		hs->v4_24[i] = hs->v4_16[below(r, V4_HOT16)] | (rnd(r) & 0x0000ff00u);
	for (int i = 0; i < V6_HOT24; i++) {
		bool any = i < V6_HOT24 / 2;

		do
			hs->v6_24[i] = v6_global(r) & ~host_bits(AF_INET6, 24);
		while (v6_unrestricted(region_of(AF_INET6, hs->v6_24[i])) != any);
	}
	for (int i = 0; i < V6_HOT48; i++)
		hs->v6_48[i] = hs->v6_24[below(r, V6_HOT24)] |
			       (rnd128(r) & host_bits(AF_INET6, 24) & ~host_bits(AF_INET6, 48));
	for (int i = 0; i < V6_HOT64; i++)
		hs->v6_64[i] = hs->v6_48[below(r, V6_HOT48)] |
			       (rnd128(r) & host_bits(AF_INET6, 48) & ~host_bits(AF_INET6, 64));
}

static void gen_init(struct gen *g, uint64_t salt)
{
	rng_init(&g->r, salt);
	hot_init(&g->hs, &g->r);
}

/*
 * The long lengths a restricted IPv6 region may use: five common ones and
 * three that depend on the region and the run's seed.  At most 8 distinct,
 * so such a region stays plain (one length list, no tree).
 */
#define PALETTE REGION_LENS

static void v6_palette(u128 region, uint8_t pal[PALETTE])
{
	static const uint8_t common[] = { 32, 48, 64, 120, 128 };
	uint64_t x = mix64((uint64_t)region ^ base_seed);

	memcpy(pal, common, sizeof(common));
	for (size_t i = sizeof(common); i < PALETTE; i++) {
		x = mix64(x + i);
		pal[i] = (uint8_t)(REGION_BITS + 1 + x % (127 - REGION_BITS));
	}
}

/* len if the region of v allows it, else one of the region's lengths. */
static unsigned int v6_fit_len(struct rng *r, u128 v, unsigned int len)
{
	u128 region = region_of(AF_INET6, v);
	uint8_t pal[PALETTE];

	if (len <= REGION_BITS || v6_unrestricted(region))
		return len;
	v6_palette(region, pal);
	for (int i = 0; i < PALETTE; i++)
		if (pal[i] == len)
			return len;
	return pal[below(r, PALETTE)];
}

/* An address: tier 0 in a hot /24 (/64), 1 a hot /16 (/48), 2 a hot /8 (/24), 3 anywhere. */
static u128 gen_addr(struct gen *g, int family, int tier)
{
	struct rng *r = &g->r;
	u128 base, any = rnd128(r);
	unsigned int keep;

	if (family == AF_INET) {
		static const unsigned int keeps[] = { 24, 16, 8 };

		if (tier == 3)
			return any & all_ones(AF_INET);
		keep = keeps[tier];
		base = tier == 0   ? g->hs.v4_24[below(r, V4_HOT24)]
		       : tier == 1 ? g->hs.v4_16[below(r, V4_HOT16)]
				   : g->hs.v4_8[below(r, V4_HOT8)];
	} else {
		static const unsigned int keeps[] = { 64, 48, 24 };

		if (tier == 3)
			return v6_global(r);
		keep = keeps[tier];
		base = tier == 0   ? g->hs.v6_64[below(r, V6_HOT64)]
		       : tier == 1 ? g->hs.v6_48[below(r, V6_HOT48)]
				   : g->hs.v6_24[below(r, V6_HOT24)];
	}
	return base | (any & host_bits(family, keep));
}

/*
 * Any length, rarely one below 8: a rule of length L < 24 is written into
 * 2^(24 - L) top entries of each set, so every very short rule costs
 * milliseconds per add, change or compile (/0 and /1 come from the named
 * lengths below).
 */
static unsigned int spread_len(struct rng *r, int family)
{
	if (below(r, 32) == 0)
		return below(r, 8);
	return 8 + below(r, width(family) - 7);
}

static const uint8_t v4_named[] = { 0, 1, 8, 16, 23, 24, 25, 31, 32 };
static const uint8_t v6_named[] = { 0, 1, 8, 16, 23, 24, 32, 48, 64, 120, 128 };

static struct cidr gen_prefix(struct gen *g, int family)
{
	struct rng *r = &g->r;
	unsigned int k = below(r, 100), len;
	bool v4 = family == AF_INET;
	u128 a;

	if (k < 35) {
		/* Long rules sharing hot /24 regions (IPv6: nested in hot /64s). */
		a = gen_addr(g, family, 0);
		len = v4 ? 25 + below(r, 8) : 25 + below(r, 104);
	} else if (k < 55) {
		a = gen_addr(g, family, 1);
		len = v4 ? 16 + below(r, 17) : 48 + below(r, 81);
	} else if (k < 70) {
		a = gen_addr(g, family, 2);
		len = v4 ? 8 + below(r, 25) : 24 + below(r, 105);
	} else if (k < 80) {
		a = gen_addr(g, family, (int)below(r, 4));
		len = v4 ? v4_named[below(r, sizeof(v4_named))]
			 : v6_named[below(r, sizeof(v6_named))];
	} else {
		a = gen_addr(g, family, 3);
		len = spread_len(r, family);
	}
	if (!v4)
		len = v6_fit_len(r, a, len);
	return prefix_of(family, a, len);
}

static uint8_t gen_action(struct gen *g)
{
	return below(&g->r, 100) < 55 ? IPBLOCK_ACTION_DENY : IPBLOCK_ACTION_ALLOW;
}

/* 3 to 7 nested prefixes of one address, actions alternating. */
static void gen_chain(struct gen *g, int family, struct rulecache *rc)
{
	struct rng *r = &g->r;
	u128 a = gen_addr(g, family, (int)below(r, 2));
	unsigned int n = 3 + below(r, 5), lens[7];
	uint8_t action = gen_action(g);

	for (unsigned int i = 0; i < n; i++) {
		lens[i] = spread_len(r, family);
		if (family == AF_INET6)
			lens[i] = v6_fit_len(r, a, lens[i]);
		for (unsigned int j = i; j > 0 && lens[j - 1] > lens[j]; j--) {
			unsigned int t = lens[j];

			lens[j] = lens[j - 1];
			lens[j - 1] = t;
		}
	}
	for (unsigned int i = 0; i < n; i++) {
		struct cidr p = prefix_of(family, a, lens[i]);

		if (i && lens[i] == lens[i - 1])
			continue;
		ref_set(rc, &p, action);
		action = other_action(action);
	}
}

/* Add add4 + add6 new prefixes (and chains) to rc. */
static void gen_fill(struct gen *g, struct rulecache *rc, size_t add4, size_t add6, int chains4,
		     int chains6)
{
	size_t want4 = rulecache_count(rc, AF_INET) + add4;
	size_t want6 = rulecache_count(rc, AF_INET6) + add6;
	const int fams[2] = { AF_INET, AF_INET6 };
	const size_t want[2] = { want4, want6 };

	for (int i = 0; i < chains4; i++)
		gen_chain(g, AF_INET, rc);
	for (int i = 0; i < chains6; i++)
		gen_chain(g, AF_INET6, rc);
	for (int f = 0; f < 2; f++) {
		size_t tries = 0;

		while (rulecache_count(rc, fams[f]) < want[f]) {
			struct cidr p = gen_prefix(g, fams[f]);

			assert_true(++tries < 100 * want[f]);
			if (!ref_has(rc, &p))
				ref_set(rc, &p, gen_action(g));
		}
	}
}

/* The set every test starts from, made once per run. */
static struct refset base;

static void make_base_set(void)
{
	struct gen g;
	struct cidr p;

	gen_init(&g, 1);
	base_hot = g.hs;
	refset_init(&base);
	p = prefix_of(AF_INET, 0, 0);
	ref_set(base.ref, &p, gen_action(&g));
	p = prefix_of(AF_INET6, 0, 0);
	ref_set(base.ref, &p, gen_action(&g));
	gen_fill(&g, base.ref, scaled(BASE_V4) - 1, scaled(BASE_V6) - 1, (int)scaled(150),
		 (int)scaled(100));
	refset_sync(&base);
}

/* --- probing: the program against the reference ------------------------------ */

static size_t frame_bytes[2]; /* harness_verdict_src()'s frame length: IPv4, IPv6 */

static size_t frame_len(int family)
{
	struct frame_spec s = { .family = family, .payload = 18 };
	uint8_t buf[256];

	return frame_build(&s, buf, sizeof(buf));
}

/*
 * One round of probes: the verdicts, and the counters they must have moved,
 * against the reference.
 */
struct tally {
	const char *phase;
	struct harness *h;
	const struct rulecache *ref;
	bool quiet; /* mismatches expected: do not print them */
	size_t probes, hits, long_hits, mismatches;
	uint64_t pkts[IPBLOCK_STAT_MAX], bytes[IPBLOCK_STAT_MAX];
	struct ipblock_counter before[IPBLOCK_STAT_MAX];
};

static void tally_begin(struct tally *t, struct harness *h, const struct rulecache *ref,
			const char *phase)
{
	memset(t, 0, sizeof(*t));
	t->phase = phase;
	t->h = h;
	t->ref = ref;
	assert_int_equal(pins_stats_read(&h->pins, t->before), 0);
}

static void probe(struct tally *t, int family, const uint8_t *a)
{
	struct rulecache_entry e;
	bool hit = reference_lookup(t->ref, family, a, &e) == 0;
	bool deny = hit && e.rule.action == IPBLOCK_ACTION_DENY;
	int want = deny ? XDP_DROP : XDP_PASS, got = -1;
	int slot = !hit	  ? IPBLOCK_STAT_PASS_NOMATCH
		   : deny ? IPBLOCK_STAT_DROP
			  : IPBLOCK_STAT_PASS_ALLOW;
	char x[CIDR_STRLEN], y[CIDR_STRLEN];

	assert_int_equal(harness_verdict_src(t->h, family, a, &got), 0);
	t->probes++;
	t->hits += hit;
	t->long_hits += hit && e.rule.prefix.len > REGION_BITS;
	t->pkts[slot]++;
	t->bytes[slot] += frame_bytes[family == AF_INET6];
	if (got == want)
		return;
	if (t->mismatches++ < 8 && !t->quiet)
		print_error("%s: %s judged %s, reference %s by %s\n", t->phase,
			    fmt_addr(family, a, x, sizeof(x)), got == XDP_DROP ? "DROP" : "PASS",
			    deny ? "DROP" : "PASS",
			    hit ? cidr_format(&e.rule.prefix, y, sizeof(y)) : "no rule");
}

static void probe_value(struct tally *t, int family, u128 v)
{
	uint8_t a[16];

	addr_put(family, v & all_ones(family), a);
	probe(t, family, a);
}

/* First and last address of p, and the neighbours just outside it. */
static void probe_bounds(struct tally *t, const struct cidr *p)
{
	u128 first = addr_get(p->family, p->addr);
	u128 last = first | host_bits(p->family, p->len);

	probe_value(t, p->family, first);
	probe_value(t, p->family, last);
	probe_value(t, p->family, first - 1);
	probe_value(t, p->family, last + 1);
}

static void probe_all_bounds(struct tally *t, const struct refset *s)
{
	for (size_t i = 0; i < s->n; i++)
		probe_bounds(t, &s->r[i].prefix);
}

/*
 * n random addresses: inside a random rule of s, in its /24 region (where
 * the long lengths listed may all miss), or anywhere.
 */
static void probe_random(struct tally *t, const struct refset *s, struct rng *r, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned int k = below(r, 100);
		u128 v = rnd128(r);
		int family;

		if (k < 70 && s->n) {
			const struct cidr *p = &s->r[below(r, (uint32_t)s->n)].prefix;
			u128 first = addr_get(p->family, p->addr);
			unsigned int keep = k < 45 ? p->len : REGION_BITS;

			family = p->family;
			v = (first & ~host_bits(family, keep)) | (v & host_bits(family, keep));
		} else if (k < 85) {
			family = AF_INET;
		} else {
			family = AF_INET6;
			if (k < 95)
				v = v6_global(r);
		}
		probe_value(t, family, v);
	}
}

static double pct(size_t part, size_t whole)
{
	return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

static void tally_end(struct tally *t)
{
	struct ipblock_counter after[IPBLOCK_STAT_MAX];
	int bad = 0;

	print_message("%-44s %6zu probes (%4.1f%% no rule, %4.1f%% > /24), %zu mismatches\n",
		      t->phase, t->probes, pct(t->probes - t->hits, t->probes),
		      pct(t->long_hits, t->probes), t->mismatches);
	if (t->mismatches)
		fail_msg("%s: %zu of %zu verdicts differ from the reference (LOOKUP_SEED=%llu)",
			 t->phase, t->mismatches, t->probes, (unsigned long long)base_seed);
	assert_int_equal(pins_stats_read(&t->h->pins, after), 0);
	for (int s = 0; s < IPBLOCK_STAT_MAX; s++) {
		uint64_t dp = after[s].packets - t->before[s].packets;
		uint64_t db = after[s].bytes - t->before[s].bytes;

		if (dp != t->pkts[s] || db != t->bytes[s]) {
			print_error(
				"%s: counter %s moved by %llu packets %llu bytes, want %llu %llu\n",
				t->phase, pins_stat_name(s), (unsigned long long)dp,
				(unsigned long long)db, (unsigned long long)t->pkts[s],
				(unsigned long long)t->bytes[s]);
			bad++;
		}
	}
	if (bad)
		fail_msg("%s: %d counters disagree with the verdicts (LOOKUP_SEED=%llu)", t->phase,
			 bad, (unsigned long long)base_seed);
}

/* Every boundary of s and n random probes, as one round. */
static void check_set(struct harness *h, const struct refset *s, struct rng *r, size_t n,
		      const char *phase)
{
	struct tally t;

	tally_begin(&t, h, s->ref, phase);
	probe_all_bounds(&t, s);
	probe_random(&t, s, r, n);
	tally_end(&t);
}

/* --- what the flat tables say about themselves ---------------------------------- */

static int u128_cmp(const void *a, const void *b)
{
	u128 x = *(const u128 *)a, y = *(const u128 *)b;

	return x < y ? -1 : x > y;
}

static int u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* The rules of one set (0 = A, 1 = B), sorted. */
static void read_set(const struct harness *h, int set, struct rule **r, size_t *n)
{
	struct ruleset rs = {};

	assert_int_equal(trie_read_set(&h->pins, set, &rs), 0);
	*r = rs.r; /* the caller frees it */
	*n = rs.n;
}

static void assert_at_rest(const struct harness *h);

/* The rules of the set judged now, sorted. */
static void read_active(const struct harness *h, struct rule **r, size_t *n)
{
	uint32_t active = 0;

	assert_int_equal(pins_active_set(&h->pins, &active), 0);
	read_set(h, (int)active, r, n);
}

/*
 * The active set holds exactly s, every rule with a nonzero id distinct
 * within its family; the other set holds no prefix s lacks, each with the
 * same id (its action may lag until the next replace).
 */
static void assert_rule_ids(const struct harness *h, const struct refset *s)
{
	struct rule *a;
	size_t na, n4 = 0, n6 = 0;
	uint32_t *ids4 = calloc(s->n + 1, sizeof(*ids4)), *ids6 = calloc(s->n + 1, sizeof(*ids6));
	char x[CIDR_STRLEN];

	assert_non_null(ids4);
	assert_non_null(ids6);
	read_active(h, &a, &na);
	assert_int_equal(na, s->n);
	for (size_t i = 0; i < s->n; i++) {
		const struct cidr *p = &s->r[i].prefix;

		if (cidr_compare(&a[i].prefix, p) || a[i].action != s->r[i].action)
			fail_msg("rule %zu: the active trie does not hold %s %s", i,
				 cidr_format(p, x, sizeof(x)), ruleset_action_name(s->r[i].action));
		if (!a[i].id)
			fail_msg("%s: no rule id (LOOKUP_SEED=%llu)", cidr_format(p, x, sizeof(x)),
				 (unsigned long long)base_seed);
		if (p->family == AF_INET)
			ids4[n4++] = a[i].id;
		else
			ids6[n6++] = a[i].id;
	}
	qsort(ids4, n4, sizeof(*ids4), u32_cmp);
	qsort(ids6, n6, sizeof(*ids6), u32_cmp);
	for (size_t i = 1; i < n4; i++)
		if (ids4[i] == ids4[i - 1])
			fail_msg("IPv4 rule id %u is used twice", ids4[i]);
	for (size_t i = 1; i < n6; i++)
		if (ids6[i] == ids6[i - 1])
			fail_msg("IPv6 rule id %u is used twice", ids6[i]);
	free(a);
	assert_at_rest(h);
	free(ids4);
	free(ids6);
}

/*
 * What tables_info() must say of a set holding s with no region falling
 * back: a region is split into a tree when its rules use more than
 * REGION_LENS distinct lengths past /24.
 */
struct flat_want {
	uint32_t rules, long_rules, ext_regions, split_regions;
};

static struct flat_want flat_expect(const struct refset *s, int family)
{
	u128 *keys = calloc(s->n + 1, sizeof(*keys)); /* region << 8 | length */
	struct flat_want w = {};
	unsigned int lens = 0;

	assert_non_null(keys);
	for (size_t i = 0; i < s->n; i++) {
		const struct cidr *p = &s->r[i].prefix;

		if (p->family != family)
			continue;
		w.rules++;
		if (p->len > REGION_BITS)
			keys[w.long_rules++] =
				region_of(family, addr_get(family, p->addr)) << 8 | p->len;
	}
	qsort(keys, w.long_rules, sizeof(*keys), u128_cmp);
	for (uint32_t i = 0; i < w.long_rules; i++) {
		if (!i || keys[i] >> 8 != keys[i - 1] >> 8) {
			w.ext_regions++;
			lens = 0;
		}
		if (!i || keys[i] != keys[i - 1])
			w.split_regions += ++lens == REGION_LENS + 1;
	}
	free(keys);
	return w;
}

/*
 * The active set's tables of both families as flat_expect() says, without
 * the rule ids; the inactive set has none (at rest only the active set
 * has memory).  A split region has at least its root node; a root listing
 * all of the region's lengths (at most 16) is a leaf, so one node can be
 * all (common in small sets).  Returns IPv6's figures.
 */
static struct tables_info assert_flat_counts(struct harness *h, const struct refset *s)
{
	const int fams[2] = { AF_INET, AF_INET6 };
	struct tables_info v6 = {};
	uint32_t active = 0;

	assert_int_equal(pins_active_set(&h->pins, &active), 0);
	for (int f = 0; f < 2; f++) {
		struct flat_want w = flat_expect(s, fams[f]);
		struct tables_info info;
		int ret;

		memset(&info, 0xa5, sizeof(info));
		ret = tables_info(&h->maps.tables, &h->pins, fams[f], (int)active, &info);
		/* A family without rules may have no table at all: its blocks say "no rule". */
		if (ret == -ENOENT && !w.rules)
			continue;
		assert_int_equal(ret, 0);
		if (info.long_rules != w.long_rules || info.ext_regions != w.ext_regions ||
		    info.split_regions != w.split_regions || info.ids_used != w.rules ||
		    info.nodes < info.split_regions)
			fail_msg("IPv%d set %c: long_rules %u ext_regions %u split_regions %u "
				 "nodes %u ids_used %u, want %u %u %u >=%u %u (LOOKUP_SEED=%llu)",
				 f ? 6 : 4, active ? 'B' : 'A', info.long_rules, info.ext_regions,
				 info.split_regions, info.nodes, info.ids_used, w.long_rules,
				 w.ext_regions, w.split_regions, w.split_regions, w.rules,
				 (unsigned long long)base_seed);
		assert_int_equal(tables_info(&h->maps.tables, &h->pins, fams[f], !active, &info),
				 -ENOENT);
		if (f)
			v6 = info;
	}
	return v6;
}

/*
 * The program reads the flat tables for s in full: no fallback, the
 * crowded regions split, every id in place.  Returns the IPv6 table's figures.
 */
static struct tables_info assert_flat_state(struct harness *h, const struct refset *s)
{
	struct tables_info v6 = assert_flat_counts(h, s);

	print_message("flat IPv6: %u long rules in %u regions, %u of them split (%u nodes)\n",
		      v6.long_rules, v6.ext_regions, v6.split_regions, v6.nodes);
	assert_rule_ids(h, s);
	return v6;
}

/*
 * Every prefix of before[0..nb) (the active set as read earlier) still in the maps
 * has kept its rule id: per-rule counters follow a rule through updates
 * and replaces.  Returns how many were compared.
 */
static size_t assert_ids_kept(const struct harness *h, const struct rule *before, size_t nb)
{
	struct rule *now;
	size_t nn, i = 0, j = 0, kept = 0;
	char x[CIDR_STRLEN];

	read_active(h, &now, &nn);
	while (i < nb && j < nn) {
		int c = cidr_compare(&before[i].prefix, &now[j].prefix);

		if (c) {
			i += c < 0;
			j += c > 0;
			continue;
		}
		if (before[i].id != now[j].id)
			fail_msg("%s: rule id %u became %u (LOOKUP_SEED=%llu)",
				 cidr_format(&now[j].prefix, x, sizeof(x)), before[i].id, now[j].id,
				 (unsigned long long)base_seed);
		kept++;
		i++;
		j++;
	}
	free(now);
	return kept;
}

/*
 * At rest the inactive set's trie holds no prefix the active one lacks,
 * each with the same id; its action may lag until the next replace.
 */
static void assert_at_rest(const struct harness *h)
{
	struct rule *a, *b;
	size_t na, nb, j = 0;
	uint32_t active = 0;
	char x[CIDR_STRLEN];

	assert_int_equal(pins_active_set(&h->pins, &active), 0);
	read_set(h, (int)active, &a, &na);
	read_set(h, !active, &b, &nb);
	for (size_t i = 0; i < nb; i++) {
		while (j < na && cidr_compare(&a[j].prefix, &b[i].prefix) < 0)
			j++;
		if (j == na || cidr_compare(&a[j].prefix, &b[i].prefix))
			fail_msg("the inactive trie holds %s, which the active one lacks",
				 cidr_format(&b[i].prefix, x, sizeof(x)));
		if (a[j].id != b[i].id)
			fail_msg("%s: rule id %u in the active set, %u in the other "
				 "(LOOKUP_SEED=%llu)",
				 cidr_format(&b[i].prefix, x, sizeof(x)), a[j].id, b[i].id,
				 (unsigned long long)base_seed);
	}
	free(a);
	free(b);
}

/* --- fixtures -------------------------------------------------------------------- */

/*
 * One harness for the whole run, as a daemon's maps live through many
 * changes: each test starts by flushing what the one before left.  Opening
 * a harness costs about half a second (the verifier, 256 MiB of top arrays).
 */
static struct harness h;

static int reset(void **state)
{
	(void)state;
	return maps_flush(&h.maps, NULL) ? -1 : 0;
}

static int group_setup(void **state)
{
	(void)state;
	frame_bytes[0] = frame_len(AF_INET);
	frame_bytes[1] = frame_len(AF_INET6);
	if (!frame_bytes[0] || !frame_bytes[1])
		return -1;
	if (harness_open_capacity(&h, (uint32_t)scaled(MAX_RULES)))
		return -1;
	make_base_set();
	print_message("base set: %zu IPv4 and %zu IPv6 rules\n", rulecache_count(base.ref, AF_INET),
		      rulecache_count(base.ref, AF_INET6));
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	harness_close(&h);
	refset_free(&base);
	return 0;
}

static void load(const struct refset *s)
{
	struct maps_replace_stats st;

	assert_int_equal(maps_replace_rules(&h.maps, s->r, s->n, &st), 0);
	assert_at_rest(&h);
}

/* --- 1. a random set loaded at once ------------------------------------------------ */

static void test_replaced_set_matches_the_reference(void **state)
{
	struct maps_replace_stats st;
	struct rng r;

	(void)state;
	rng_init(&r, 11);
	assert_int_equal(maps_replace_rules(&h.maps, base.r, base.n, &st), 0);
	assert_int_equal(st.added, base.n);
	assert_int_equal(st.v4, scaled(BASE_V4));
	assert_int_equal(st.v6, scaled(BASE_V6));
	assert_at_rest(&h);
	check_set(&h, &base, &r, 5000, "replace: every boundary + 5000 random");
	/* Half of the hot IPv6 regions take any length: some must be trees. */
	if (!assert_flat_state(&h, &base).split_regions)
		fail_msg("no IPv6 region of the base set is split (LOOKUP_SEED=%llu)",
			 (unsigned long long)base_seed);
}

/* --- 2. one rule at a time, then churn ---------------------------------------------- */

#define CHURN_OPS   3000
#define CHURN_CHECK 50 /* ops between two sample checks */

static void test_rule_by_rule_and_churn_match_the_reference(void **state)
{
	const size_t churn_ops = scaled(CHURN_OPS);
	struct cidr *live = calloc(base.n + churn_ops, sizeof(*live));
	struct cidr *touched = calloc(churn_ops, sizeof(*touched));
	size_t *order = calloc(base.n, sizeof(*order));
	size_t nlive = 0, adds = 0, dels = 0, flips = 0;
	struct refset s, touched_set;
	struct tally t;
	struct gen g;

	(void)state;
	assert_non_null(live);
	assert_non_null(touched);
	assert_non_null(order);
	gen_init(&g, 21);
	g.hs = base_hot;
	refset_init(&s);

	/* The base set in random order, so long rules often come before their parents. */
	for (size_t i = 0; i < base.n; i++) {
		size_t j = below(&g.r, (uint32_t)(i + 1));

		order[i] = order[j];
		order[j] = i;
	}
	tally_begin(&t, &h, s.ref, "rule by rule: sampled while adding");
	for (size_t i = 0; i < base.n; i++) {
		const struct rule *m = &base.r[order[i]];

		assert_int_equal(maps_rule_set(&h.maps, m), 0);
		ref_set(s.ref, &m->prefix, m->action);
		live[nlive++] = m->prefix;
		if (i % 250 == 249) {
			/* The last 250 rules' boundaries and some random addresses. */
			for (size_t k = i - 249; k <= i; k++)
				probe_bounds(&t, &base.r[order[k]].prefix);
			refset_sync(&s);
			probe_random(&t, &s, &g.r, 100);
		}
	}
	tally_end(&t);
	refset_sync(&s);
	check_set(&h, &s, &g.r, 3000, "rule by rule: every boundary + 3000 random");
	assert_true(assert_flat_state(&h, &s).split_regions > 0);

	/* Adds (some of existing prefixes), deletes and action flips. */
	tally_begin(&t, &h, s.ref, "churn: sampled every 50 ops");
	for (size_t op = 0; op < churn_ops; op++) {
		unsigned int k = below(&g.r, 100);
		uint8_t action;
		struct cidr p;

		if (k < 40 || !nlive) {
			p = gen_prefix(&g, below(&g.r, 10) < 6 ? AF_INET : AF_INET6);
			action = gen_action(&g);
			assert_int_equal(set_rule(&h, &p, action), 0);
			if (ref_set(s.ref, &p, action))
				live[nlive++] = p;
			adds++;
		} else if (k < 70) {
			size_t i = below(&g.r, (uint32_t)nlive);

			p = live[i];
			live[i] = live[--nlive];
			assert_int_equal(maps_rule_delete(&h.maps, &p), 0);
			assert_int_equal(rulecache_remove(s.ref, &p), 0);
			dels++;
		} else {
			struct rule before, after;
			struct rulecache_entry e;

			p = live[below(&g.r, (uint32_t)nlive)];
			assert_int_equal(rulecache_find(s.ref, &p, &e), 0);
			assert_int_equal(trie_get(&h.pins, 0, &p, &before), 0);
			action = other_action(e.rule.action);
			assert_int_equal(set_rule(&h, &p, action), 0);
			ref_set(s.ref, &p, action);
			/* An action change keeps the rule's id. */
			assert_int_equal(trie_get(&h.pins, 0, &p, &after), 0);
			assert_int_equal(after.id, before.id);
			assert_int_equal(after.action, action);
			flips++;
		}
		touched[op] = p;
		if (op % CHURN_CHECK == CHURN_CHECK - 1) {
			for (size_t i = op + 1 - CHURN_CHECK; i <= op; i++)
				probe_bounds(&t, &touched[i]);
			refset_sync(&s);
			probe_random(&t, &s, &g.r, 100);
		}
	}
	tally_end(&t);
	print_message("churn: %zu adds, %zu deletes, %zu flips; %zu rules left\n", adds, dels,
		      flips, nlive);
	refset_sync(&s);
	assert_int_equal(s.n, nlive);
	check_set(&h, &s, &g.r, 3000, "churn: every boundary + 3000 random");

	/* Deleted prefixes must not linger anywhere. */
	touched_set.ref = s.ref;
	touched_set.r = calloc(churn_ops, sizeof(*touched_set.r));
	assert_non_null(touched_set.r);
	for (size_t i = 0; i < churn_ops; i++)
		touched_set.r[i].prefix = touched[i];
	touched_set.n = churn_ops;
	check_set(&h, &touched_set, &g.r, 0, "churn: boundaries of every changed prefix");
	free(touched_set.r);
	assert_flat_state(&h, &s);

	refset_free(&s);
	free(live);
	free(touched);
	free(order);
}

/* --- 3. import, replace to other sets, flush ----------------------------------------- */

struct diff_count {
	size_t add, update, del;
};

/* Both sets are in sync with their references (refset_sync()). */
static struct diff_count diff_of(const struct refset *from, const struct refset *to)
{
	struct ruleset_delta d;

	ruleset_delta(from->r, from->n, to->r, to->n, &d);
	return (struct diff_count){ .add = d.added, .update = d.changed, .del = d.gone };
}

/*
 * Keep a share of from's rules (flipping some) and add new ones from g;
 * then drop every rule shorter than min_len.
 */
static void derive_set(struct refset *to, const struct refset *from, struct gen *g,
		       unsigned int keep_pct, unsigned int min_len, size_t add4, size_t add6)
{
	refset_init(to);
	for (size_t i = 0; i < from->n; i++) {
		uint8_t action = from->r[i].action;

		if (below(&g->r, 100) >= keep_pct)
			continue;
		if (below(&g->r, 5) == 0)
			action = other_action(action);
		ref_set(to->ref, &from->r[i].prefix, action);
	}
	gen_fill(g, to->ref, add4, add6, (int)scaled(30), (int)scaled(20));
	refset_sync(to);
	for (size_t i = 0; i < to->n; i++)
		if (to->r[i].prefix.len < min_len)
			assert_int_equal(rulecache_remove(to->ref, &to->r[i].prefix), 0);
	refset_sync(to);
}

static void test_import_replace_and_flush_match_the_reference(void **state)
{
	struct refset cur, imp, s2, s3, empty;
	struct rule *ids;
	size_t nids;
	struct maps_replace_stats st;
	struct diff_count d;
	size_t changes = 0, removed = 0;
	struct gen g, other;
	struct rng r;

	(void)state;
	rng_init(&r, 31);
	gen_init(&g, 32);
	g.hs = base_hot;
	load(&base);
	refset_copy(&cur, &base);

	/* Import: existing prefixes (some flipped) and new ones nested in the same hot blocks. */
	refset_init(&imp);
	for (size_t i = 0; i < scaled(300); i++) {
		const struct rule *m = &base.r[below(&g.r, (uint32_t)base.n)];

		ref_set(imp.ref, &m->prefix, below(&g.r, 2) ? other_action(m->action) : m->action);
	}
	gen_fill(&g, imp.ref, scaled(300), scaled(200), (int)scaled(20), (int)scaled(20));
	refset_sync(&imp);
	for (size_t i = 0; i < imp.n; i++)
		ref_set(cur.ref, &imp.r[i].prefix, imp.r[i].action);
	refset_sync(&cur);
	d = diff_of(&base, &cur);
	read_active(&h, &ids, &nids);
	assert_int_equal(maps_import_rules(&h.maps, imp.r, imp.n, &st), 0);
	assert_int_equal(assert_ids_kept(&h, ids, nids), base.n);
	free(ids);
	assert_int_equal(st.added, d.add);
	assert_int_equal(st.updated, d.update);
	assert_int_equal(st.deleted, 0);
	assert_at_rest(&h);
	check_set(&h, &cur, &r, 2000, "import: every boundary + 2000 random");
	assert_flat_state(&h, &cur);

	/*
	 * Replace by a set with other hot blocks, keeping half of the rules
	 * but no /0 or /1, so that some addresses match no rule.
	 */
	gen_init(&other, 33);
	derive_set(&s2, &cur, &other, 50, 2, scaled(1500), scaled(1000));
	d = diff_of(&cur, &s2);
	read_active(&h, &ids, &nids);
	assert_int_equal(maps_replace_rules(&h.maps, s2.r, s2.n, &st), 0);
	assert_int_equal(assert_ids_kept(&h, ids, nids), s2.n - d.add);
	free(ids);
	assert_int_equal(st.added, d.add);
	assert_int_equal(st.updated, d.update);
	assert_int_equal(st.deleted, d.del);
	assert_at_rest(&h);
	check_set(&h, &s2, &r, 2000, "replace to another set: every boundary");
	{
		/* The old set's boundaries, judged by the new set. */
		struct tally t;

		tally_begin(&t, &h, s2.ref, "replace to another set: old boundaries");
		probe_all_bounds(&t, &cur);
		tally_end(&t);
	}
	assert_flat_state(&h, &s2);

	/* Replace with a rule cache's rules: drop 30%, add some. */
	derive_set(&s3, &s2, &other, 70, 0, scaled(400), scaled(300));
	d = diff_of(&s2, &s3);
	read_active(&h, &ids, &nids);
	assert_int_equal(maps_replace_rules(&h.maps, s3.r, s3.n, &st), 0);
	changes = st.added + st.updated + st.deleted;
	assert_int_equal(assert_ids_kept(&h, ids, nids), s3.n - d.add);
	free(ids);
	assert_int_equal(changes, d.add + d.update + d.del);
	assert_at_rest(&h);
	check_set(&h, &s3, &r, 2000, "replace from a rule cache: every boundary");
	assert_flat_state(&h, &s3);

	/* Flush: nothing matches any more, in either family or set. */
	assert_int_equal(maps_flush(&h.maps, &removed), 0);
	assert_int_equal(removed, s3.n);
	refset_init(&empty);
	{
		struct tally t;

		tally_begin(&t, &h, empty.ref, "flush: old boundaries + random");
		probe_all_bounds(&t, &s3);
		probe_random(&t, &s3, &r, 2000);
		tally_end(&t);
		assert_int_equal(t.hits, 0);
	}
	refset_sync(&empty);
	assert_flat_state(&h, &empty);

	/* And the emptied tables take rules again. */
	{
		struct cidr p = prefix_of(AF_INET, 0xc6120007u, 32); /* 198.18.0.7 */

		assert_int_equal(set_rule(&h, &p, IPBLOCK_ACTION_DENY), 0);
		ref_set(empty.ref, &p, IPBLOCK_ACTION_DENY);
		refset_sync(&empty);
		check_set(&h, &empty, &r, 200, "after flush: one /32");
		assert_flat_state(&h, &empty);
	}

	refset_free(&cur);
	refset_free(&imp);
	refset_free(&s2);
	refset_free(&s3);
	refset_free(&empty);
}

/* --- 5. a region with more long lengths than it can list ------------------------------ */

/* 2001:d00::/24 deny; 2001:db8::/25../40 alternating; a /48 and a /128 further in. */
static size_t crowded_rules(struct rule *out)
{
	uint8_t a[16] = { 0x20, 0x01, 0x0d, 0xb8 };
	u128 v = addr_get(AF_INET6, a);
	uint8_t action = IPBLOCK_ACTION_ALLOW;
	size_t n = 0;

	out[n++] = (struct rule){ .prefix = prefix_of(AF_INET6, v, 24),
				  .action = IPBLOCK_ACTION_DENY };
	for (unsigned int len = 25; len <= 40; len++) {
		out[n++] = (struct rule){ .prefix = prefix_of(AF_INET6, v, len), .action = action };
		action = other_action(action);
	}
	v |= (u128)1 << 80; /* 2001:db8:1:: */
	out[n++] = (struct rule){ .prefix = prefix_of(AF_INET6, v, 48),
				  .action = IPBLOCK_ACTION_ALLOW };
	out[n++] = (struct rule){ .prefix = prefix_of(AF_INET6, v | 7, 128),
				  .action = IPBLOCK_ACTION_DENY };
	return n;
}

#define CROWDED_MAX 20

static void probe_crowded(struct tally *t, const struct rule *c, size_t n, struct rng *r)
{
	u128 region = (u128)CROWDED_REGION << 104;

	for (size_t i = 0; i < n; i++)
		probe_bounds(t, &c[i].prefix);
	for (int i = 0; i < 64; i++) {
		const struct cidr *p = &c[below(r, (uint32_t)n)].prefix;
		u128 first = addr_get(AF_INET6, p->addr);

		probe_value(t, AF_INET6, region | (rnd128(r) & host_bits(AF_INET6, 24)));
		probe_value(t, AF_INET6, first | (rnd128(r) & host_bits(AF_INET6, p->len)));
	}
}

/*
 * No region of either family or set falls back, and the tables split
 * exactly the regions flat_expect() says: those of the base set and, when
 * split, the crowded one.  Returns the IPv6 table's figures.
 */
static struct tables_info assert_crowded(struct refset *s, uint32_t base_split, bool split,
					 const char *phase)
{
	struct tables_info v6;

	refset_sync(s);
	v6 = assert_flat_counts(&h, s);
	if (v6.split_regions != base_split + split)
		fail_msg("%s: IPv6 split_regions %u, want %u (LOOKUP_SEED=%llu)", phase,
			 v6.split_regions, base_split + split, (unsigned long long)base_seed);
	return v6;
}

/* Distinct lengths past /24 among c[0..n). */
static unsigned int long_lens(const struct rule *c, size_t n)
{
	unsigned int k = 0;

	for (size_t i = 0; i < n; i++) {
		bool seen = c[i].prefix.len <= REGION_BITS;

		for (size_t j = 0; j < i && !seen; j++)
			seen = c[j].prefix.len == c[i].prefix.len;
		k += !seen;
	}
	return k;
}

static void test_crowded_region_gets_a_tree(void **state)
{
	struct rule crowded[CROWDED_MAX];
	size_t nc = crowded_rules(crowded);
	struct tables_info before, info;
	struct refset s;
	struct tally t;
	struct rng r;

	(void)state;
	rng_init(&r, 51);
	load(&base);
	refset_copy(&s, &base);
	refset_sync(&s);
	before = assert_flat_counts(&h, &s); /* the base set's own trees */

	/* Rule by rule: the 9th long length splits the region, and it stays off the trie. */
	tally_begin(&t, &h, s.ref, "crowded: rule by rule, after every add");
	for (size_t i = 0; i < nc; i++) {
		assert_int_equal(maps_rule_set(&h.maps, &crowded[i]), 0);
		ref_set(s.ref, &crowded[i].prefix, crowded[i].action);
		probe_crowded(&t, crowded, nc, &r);
		assert_crowded(&s, before.split_regions, long_lens(crowded, i + 1) > REGION_LENS,
			       "crowded: adding");
	}
	tally_end(&t);
	info = assert_crowded(&s, before.split_regions, true, "crowded: added");
	print_message("crowded: %u long lengths, IPv6 split_regions %u -> %u, nodes %u -> %u\n",
		      long_lens(crowded, nc), before.split_regions, info.split_regions,
		      before.nodes, info.nodes);
	assert_true(info.nodes >= before.nodes + 2);
	check_set(&h, &s, &r, 2000, "crowded: every boundary, rule by rule");

	/* The same set compiled in bulk. */
	assert_int_equal(maps_flush(&h.maps, NULL), 0);
	load(&s);
	info = assert_crowded(&s, before.split_regions, true, "crowded: replaced");
	print_message("crowded, replaced: IPv6 split_regions %u, nodes %u\n", info.split_regions,
		      info.nodes);
	check_set(&h, &s, &r, 2000, "crowded: every boundary, replaced");
	assert_flat_state(&h, &s);

	/* Deleting down to 8 long lengths makes it a plain region again ... */
	tally_begin(&t, &h, s.ref, "crowded: deleting down to 8 lengths");
	for (size_t i = nc; i-- > 1;) {
		if (crowded[i].prefix.len <= 32)
			break;
		assert_int_equal(maps_rule_delete(&h.maps, &crowded[i].prefix), 0);
		assert_int_equal(rulecache_remove(s.ref, &crowded[i].prefix), 0);
		probe_crowded(&t, crowded, nc, &r);
		assert_crowded(&s, before.split_regions, long_lens(crowded, i) > REGION_LENS,
			       "crowded: deleting");
	}
	tally_end(&t);
	info = assert_crowded(&s, before.split_regions, false, "crowded: deleted");
	print_message("after the deletes: IPv6 split_regions %u, nodes %u\n", info.split_regions,
		      info.nodes);
	check_set(&h, &s, &r, 2000, "crowded: every boundary, 8 lengths");
	assert_flat_state(&h, &s);

	/* ... and a rebuild changes nothing. */
	assert_int_equal(maps_flat_rebuild(&h.maps), 0);
	assert_crowded(&s, before.split_regions, false, "crowded: rebuilt");
	check_set(&h, &s, &r, 2000, "crowded: rebuilt with 8 lengths");
	assert_flat_state(&h, &s);
	refset_free(&s);
}

/* --- 7. tables left stale by a writer that bypassed maps.c ----------------------------------- */

enum recovery {
	RECOVER_DIRTY_SET,    /* IPBLOCK_CONFIG_DIRTY, then maps_rule_set() */
	RECOVER_DIRTY_DELETE, /* IPBLOCK_CONFIG_DIRTY, then maps_rule_delete() */
	RECOVER_REBUILD,      /* maps_flat_rebuild() */
};

/* Write p straight into both sets' tries, as a process dying in maps.c would. */
static void trie_write(const struct cidr *p, uint8_t action)
{
	struct ipblock_rule v = { .action = action, .prefixlen = p->len };
	int fds[2] = { p->family == AF_INET ? h.pins.fd[IPBLOCK_MAP_V4] : h.pins.fd[IPBLOCK_MAP_V6],
		       p->family == AF_INET ? h.pins.fd[IPBLOCK_MAP_V4_B]
					    : h.pins.fd[IPBLOCK_MAP_V6_B] };

	for (int i = 0; i < 2; i++) {
		if (p->family == AF_INET) {
			struct ipblock_key_v4 k = { .prefixlen = p->len };

			memcpy(k.addr, p->addr, sizeof(k.addr));
			assert_int_equal(bpf_map_update_elem(fds[i], &k, &v, BPF_ANY), 0);
		} else {
			struct ipblock_key_v6 k = { .prefixlen = p->len };

			memcpy(k.addr, p->addr, sizeof(k.addr));
			assert_int_equal(bpf_map_update_elem(fds[i], &k, &v, BPF_ANY), 0);
		}
	}
}

/*
 * A new prefix that decides its own first address: long (in the /24 region
 * of an existing long rule) or short (anywhere).  Its action is the
 * opposite of the verdict there now, so a stale table shows.  It must not
 * touch the first address of the n bypassed before it, nor have its own
 * judged by one of them.
 */
static void pick_bypass(struct gen *g, const struct refset *s, const struct cidr *earlier, int n,
			bool longer, int family, struct cidr *p, uint8_t *action)
{
	for (int tries = 0; tries < 100000; tries++) {
		const struct cidr *q = &s->r[below(&g->r, (uint32_t)s->n)].prefix;
		struct rulecache_entry e, b;
		unsigned int len;
		bool clash = false;
		int found;
		u128 v;

		if (longer) {
			if (q->family != family || q->len <= REGION_BITS)
				continue;
			v = addr_get(family, q->addr) & ~host_bits(family, REGION_BITS);
			v |= rnd128(&g->r) & host_bits(family, REGION_BITS);
			len = family == AF_INET ? 25 + below(&g->r, 8)
						: v6_fit_len(&g->r, v, 25 + below(&g->r, 104));
		} else {
			v = gen_addr(g, family, 3);
			len = family == AF_INET ? 16 + below(&g->r, 9) : 8 + below(&g->r, 17);
		}
		*p = prefix_of(family, v, len);
		for (int i = 0; i < n; i++)
			clash |= earlier[i].family == family && cidr_contains(p, earlier[i].addr);
		if (clash || ref_has(s->ref, p))
			continue;
		found = reference_lookup(s->ref, family, p->addr, &e);
		if (found != reference_lookup(base.ref, family, p->addr, &b) ||
		    (!found &&
		     (cidr_compare(&e.rule.prefix, &b.rule.prefix) || e.rule.prefix.len >= len)))
			continue;
		*action = found ? IPBLOCK_ACTION_DENY : other_action(e.rule.action);
		return;
	}
	fail_msg("found no prefix to bypass maps.c with");
}

static uint32_t config_flags(void)
{
	struct ipblock_config cfg;
	__u32 zero = 0;

	assert_int_equal(bpf_map_lookup_elem(h.pins.fd[IPBLOCK_MAP_CONFIG], &zero, &cfg), 0);
	return cfg.flags;
}

static void set_dirty(void)
{
	struct ipblock_config cfg;
	__u32 zero = 0;

	assert_int_equal(bpf_map_lookup_elem(h.pins.fd[IPBLOCK_MAP_CONFIG], &zero, &cfg), 0);
	cfg.flags |= IPBLOCK_CONFIG_DIRTY;
	assert_int_equal(bpf_map_update_elem(h.pins.fd[IPBLOCK_MAP_CONFIG], &zero, &cfg, BPF_ANY),
			 0);
}

static void stale_tables_are_recompiled(enum recovery how)
{
	static const char *names[] = { "dirty + maps_rule_set", "dirty + maps_rule_delete",
				       "maps_flat_rebuild" };
	struct cidr bypass[4];
	uint8_t actions[4];
	struct refset s;
	struct tally t;
	struct gen g;
	char phase[96];

	rng_init(&g.r, 71 + how);
	g.hs = base_hot;
	load(&base);
	refset_copy(&s, &base);
	for (int i = 0; i < 4; i++) {
		pick_bypass(&g, &s, bypass, i, i % 2, i < 2 ? AF_INET : AF_INET6, &bypass[i],
			    &actions[i]);
		trie_write(&bypass[i], actions[i]);
		ref_set(s.ref, &bypass[i], actions[i]);
	}
	refset_sync(&s);

	/* The tables did not see it: each bypassed rule's first address is judged the old way. */
	tally_begin(&t, &h, s.ref, "bypassed: stale");
	t.quiet = true;
	for (int i = 0; i < 4; i++)
		probe_value(&t, bypass[i].family, addr_get(bypass[i].family, bypass[i].addr));
	assert_int_equal(t.mismatches, 4);

	if (how == RECOVER_REBUILD) {
		assert_int_equal(maps_flat_rebuild(&h.maps), 0);
	} else {
		set_dirty();
		assert_true(config_flags() & IPBLOCK_CONFIG_DIRTY);
		if (how == RECOVER_DIRTY_SET) {
			struct cidr p = prefix_of(AF_INET, 0xc0000200u, 24); /* 192.0.2.0/24 */

			assert_int_equal(set_rule(&h, &p, IPBLOCK_ACTION_DENY), 0);
			ref_set(s.ref, &p, IPBLOCK_ACTION_DENY);
		} else {
			/* Any rule that is not one of the bypassed ones. */
			const struct cidr *p = &base.r[base.n / 2].prefix;

			assert_int_equal(maps_rule_delete(&h.maps, p), 0);
			assert_int_equal(rulecache_remove(s.ref, p), 0);
		}
		assert_false(config_flags() & IPBLOCK_CONFIG_DIRTY);
	}
	refset_sync(&s);
	snprintf(phase, sizeof(phase), "recovered by %s", names[how]);
	tally_begin(&t, &h, s.ref, phase);
	for (int i = 0; i < 4; i++)
		probe_bounds(&t, &bypass[i]);
	probe_all_bounds(&t, &s);
	probe_random(&t, &s, &g.r, 2000);
	tally_end(&t);
	assert_flat_state(&h, &s);
	refset_free(&s);
}

static void test_dirty_flag_then_rule_set_recompiles(void **state)
{
	(void)state;
	stale_tables_are_recompiled(RECOVER_DIRTY_SET);
}

static void test_dirty_flag_then_rule_delete_recompiles(void **state)
{
	(void)state;
	stale_tables_are_recompiled(RECOVER_DIRTY_DELETE);
}

static void test_flat_rebuild_recompiles(void **state)
{
	(void)state;
	stale_tables_are_recompiled(RECOVER_REBUILD);
}

/* --- 8. counters on the flat path --------------------------------------------------------- */

/* A rule of s of family whose first address it judges, long or short, deny or allow. */
static const struct rule *pick_judging(const struct refset *s, struct rng *r, int family,
				       bool longer, uint8_t action)
{
	for (int tries = 0; tries < 1000000; tries++) {
		const struct rule *m = &s->r[below(r, (uint32_t)s->n)];
		struct rulecache_entry e;

		if (m->prefix.family != family || (m->prefix.len > REGION_BITS) != longer ||
		    m->action != action)
			continue;
		if (reference_lookup(s->ref, family, m->prefix.addr, &e) == 0 &&
		    !cidr_compare(&e.rule.prefix, &m->prefix))
			return m;
	}
	fail_msg("no such rule in the set");
	return NULL;
}

static void test_counters_count_flat_verdicts(void **state)
{
	struct ipblock_counter before[IPBLOCK_STAT_MAX], after[IPBLOCK_STAT_MAX];
	const uint8_t acts[2] = { IPBLOCK_ACTION_DENY, IPBLOCK_ACTION_ALLOW };
	const int fams[2] = { AF_INET, AF_INET6 };
	struct tables_info info;
	struct rng r;
	char x[CIDR_STRLEN];

	(void)state;
	rng_init(&r, 81);
	load(&base);
	for (int f = 0; f < 2; f++) {
		uint32_t active = 0;

		assert_int_equal(pins_active_set(&h.pins, &active), 0);
		assert_int_equal(tables_info(&h.maps.tables, &h.pins, fams[f], (int)active, &info),
				 0);
		/* The base set's IPv6 tables hold trees as well as plain regions. */
		if (fams[f] == AF_INET6)
			assert_true(info.split_regions > 0);
		for (int longer = 0; longer < 2; longer++) {
			for (int a = 0; a < 2; a++) {
				const struct rule *m =
					pick_judging(&base, &r, fams[f], longer, acts[a]);
				int slot = acts[a] == IPBLOCK_ACTION_DENY ? IPBLOCK_STAT_DROP
									  : IPBLOCK_STAT_PASS_ALLOW;
				int verdict = -1;

				assert_int_equal(pins_stats_read(&h.pins, before), 0);
				assert_int_equal(
					harness_verdict_src(&h, fams[f], m->prefix.addr, &verdict),
					0);
				assert_int_equal(verdict, acts[a] == IPBLOCK_ACTION_DENY
								  ? XDP_DROP
								  : XDP_PASS);
				assert_int_equal(pins_stats_read(&h.pins, after), 0);
				for (int s = 0; s < IPBLOCK_STAT_MAX; s++) {
					uint64_t want = s == slot;

					if (after[s].packets - before[s].packets != want ||
					    after[s].bytes - before[s].bytes !=
						    want * frame_bytes[f])
						fail_msg("%s %s: counter %s moved by %llu",
							 cidr_format(&m->prefix, x, sizeof(x)),
							 ruleset_action_name(acts[a]),
							 pins_stat_name(s),
							 (unsigned long long)(after[s].packets -
									      before[s].packets));
				}
			}
		}
	}
	/* Without the /0 rules some addresses match nothing: counted as such. */
	{
		struct cidr z4 = prefix_of(AF_INET, 0, 0), z6 = prefix_of(AF_INET6, 0, 0);
		struct refset s;
		struct tally t;

		refset_copy(&s, &base);
		assert_int_equal(maps_rule_delete(&h.maps, &z4), 0);
		assert_int_equal(maps_rule_delete(&h.maps, &z6), 0);
		assert_int_equal(rulecache_remove(s.ref, &z4), 0);
		assert_int_equal(rulecache_remove(s.ref, &z6), 0);
		refset_sync(&s);
		tally_begin(&t, &h, s.ref, "counters: without /0, random");
		probe_random(&t, &s, &r, 3000);
		tally_end(&t);
		assert_true(t.pkts[IPBLOCK_STAT_PASS_NOMATCH] > 0);
		assert_true(t.pkts[IPBLOCK_STAT_DROP] > 0);
		assert_true(t.pkts[IPBLOCK_STAT_PASS_ALLOW] > 0);
		refset_free(&s);
	}
}

/* The tests whose name matches one of the comma-separated patterns (all without). */
static size_t select_tests(const struct CMUnitTest *all, size_t n, const char *patterns,
			   struct CMUnitTest *out)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		const char *p = patterns;
		bool take = !p;

		while (p && !take) {
			size_t len = strcspn(p, ",");
			char pat[128];

			snprintf(pat, sizeof(pat), "%.*s", (int)len, p);
			take = fnmatch(pat, all[i].name, 0) == 0;
			p = p[len] ? p + len + 1 : NULL;
		}
		if (take)
			out[k++] = all[i];
	}
	return k;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_replaced_set_matches_the_reference, reset),
		cmocka_unit_test_setup(test_rule_by_rule_and_churn_match_the_reference, reset),
		cmocka_unit_test_setup(test_import_replace_and_flush_match_the_reference, reset),
		cmocka_unit_test_setup(test_crowded_region_gets_a_tree, reset),
		cmocka_unit_test_setup(test_dirty_flag_then_rule_set_recompiles, reset),
		cmocka_unit_test_setup(test_dirty_flag_then_rule_delete_recompiles, reset),
		cmocka_unit_test_setup(test_flat_rebuild_recompiles, reset),
		cmocka_unit_test_setup(test_counters_count_flat_verdicts, reset),
	};
	struct CMUnitTest chosen[sizeof(tests) / sizeof(tests[0])];
	const char *env = getenv("LOOKUP_SEED");
	size_t n;

	base_seed = env ? strtoull(env, NULL, 0)
			: mix64((uint64_t)time(NULL) << 20 ^ (uint64_t)getpid());
	printf("# LOOKUP_SEED=%llu\n", (unsigned long long)base_seed);
	env = getenv("LOOKUP_SCALE");
	if (env && *env) {
		char *end;
		unsigned long v = strtoul(env, &end, 10);

		if (*end || v < 1 || v > 100) {
			fprintf(stderr, "LOOKUP_SCALE must be 1 to 100, not '%s'\n", env);
			return 2;
		}
		scale = (unsigned int)v;
	}
	if (scale > 1)
		printf("# LOOKUP_SCALE=%u: random sets, churn and capacity cut to 1/%u "
		       "(%zu IPv4 + %zu IPv6 base rules, %zu churn ops)\n",
		       scale, scale, scaled(BASE_V4), scaled(BASE_V6), scaled(CHURN_OPS));
	n = select_tests(tests, sizeof(tests) / sizeof(tests[0]), getenv("LOOKUP_ONLY"), chosen);
	return _cmocka_run_group_tests("test_lookup", chosen, n, group_setup, group_teardown);
}
