// SPDX-License-Identifier: GPL-2.0
/*
 * Per-packet cost of ipblock's XDP program against an empty XDP program,
 * by BPF_PROG_RUN with repeat, for both ways the program can find a rule:
 * the flat tables (the default) and the LPM tries alone (--lookup trie,
 * the "before").
 *
 * A single frame run with repeat would judge one cached key.  Instead the
 * frame goes through tg_call (bench/trafficgen.bpf.c), which writes the next
 * of POOL random sources into it and tail-calls the program under test, so
 * every repetition judges another address.  The empty program sits behind
 * the same wrapper: the difference of the two is what ipblock adds.
 *
 * For each rule count and lookup one private copy of ipblock is loaded (no
 * pins, no interface), its maps sized by pins_obj_size() for the capacity a
 * default installation has, and filled with the list of bench/rulegen.h by
 * maps_replace_rules(), which compiles the flat tables as the tools do.
 * Sources (the same pools for both lookups):
 *   hit   a random address inside a random rule of the list (a deny rule);
 *   miss  a random address of the range the list's bulk is spread over
 *         (11.0.0.0-99.255.255.255, 2400::/6) that no rule covers.
 * These frames never leave BPF_PROG_RUN (no live-frames flag, no interface),
 * so their sources need not be documentation addresses; a walk through the
 * whole table is what the figure is about.
 *
 * Every measurement is checked: ipblock's own counters must have counted
 * exactly `repeat` drops (hit) or unmatched passes (miss).
 *
 *   bench_prog [-r REPEAT] [-n ROUNDS] [-p POOL] [-c CPU] [-o DATAFILE]
 *              [-s N,N,...] [-l trie,flat] [-C CAPACITY]
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>

#include "cli.h"
#include "flat.h"
#include "ipblock.skel.h"
#include "maps.h"
#include "tables.h"
#include "trie.h"
#include "rulegen.h"
#include "trafficgen.h"
#include "trafficgen.skel.h"
#include "bench_util.h" /* after ipblock.skel.h: bench_ipblock_open() */

#define MAX_SIZES   8
#define MAX_LOOKUPS 2
#define MAX_INST    (MAX_SIZES * MAX_LOOKUPS)
#define MAX_ROUNDS  BENCH_MAX_ROUNDS
#define FRAME_LEN   80 /* IPv6 + UDP + a little payload; IPv4 frames are padded alike */

enum src_kind { SRC_HIT, SRC_MISS };

struct instance {
	size_t rules;
	enum pins_lookup lookup;
	uint32_t capacity; /* rules per family the maps are sized for */
	struct ipblock_bpf *skel;
	struct pins pins;
	struct maps maps;	    /* changes to them, through the product's protocol */
	struct cidr *list4, *list6; /* the rules, kept to draw hit sources from */
	size_t n4, n6;
	double load_s;
	bool has_info; /* flat lookup with rules: info4/info6 hold set A's tables */
	struct tables_info info4, info6;
};

struct config {
	const char *label;
	struct instance *inst; /* NULL: the empty program */
	int family;
	enum src_kind kind;
	struct tg_source *pool;	     /* `pool` distinct sources */
	struct tg_source *warm_pool; /* `warm` distinct sources, repeated */
	double ns[MAX_ROUNDS];
	double warm_ns[MAX_ROUNDS];
};

struct bench {
	struct trafficgen_bpf *tg;
	uint32_t repeat, rounds, pool, warm, capacity;
	uint8_t frame4[FRAME_LEN], frame6[FRAME_LEN];
	size_t sizes[MAX_SIZES], nsizes;
	enum pins_lookup lookups[MAX_LOOKUPS];
	size_t nlookups;
	struct instance inst[MAX_INST];
	size_t ninst;
	struct config cfg[1 + MAX_INST * 4];
	size_t ncfg;
};

/* --- frames and pools --------------------------------------------------------- */

/* Pool entry for src in the frame of its family (checksums as on the wire). */
static void pool_entry(const struct bench *b, int family, const uint8_t *src, struct tg_source *out)
{
	uint8_t f[FRAME_LEN];

	memset(out, 0, sizeof(*out));
	if (family == AF_INET) {
		struct iphdr *ip = (struct iphdr *)(b->frame4 + sizeof(struct ethhdr));
		struct iphdr h = *ip;

		memcpy(out->addr, src, 4);
		memcpy(&h.saddr, src, 4);
		h.check = 0;
		out->ip_check = fold(sum16(&h, sizeof(h), 0));
		return;
	}
	size_t l4 = sizeof(struct ethhdr) + sizeof(struct ipv6hdr), l4len = FRAME_LEN - l4;
	uint32_t sum;

	memcpy(f, b->frame6, FRAME_LEN);
	memcpy(out->addr, src, 16);
	sum = sum16(src, 16, 0);
	sum = sum16(f + sizeof(struct ethhdr) + 24, 16, sum); /* destination */
	sum += (uint32_t)l4len + IPPROTO_UDP;
	sum = sum16(f + l4, l4len, sum);
	out->udp_check = fold(sum);
}

/* Whether the instance's trie has a rule covering addr. */
static bool covered(const struct instance *in, int family, const uint8_t *addr)
{
	struct ipblock_key_v6 key = { .prefixlen = family == AF_INET ? 32 : 128 };
	struct ipblock_rule val;

	memcpy(key.addr, addr, family == AF_INET ? 4 : 16);
	return bpf_map_lookup_elem(family == AF_INET ? in->pins.fd[IPBLOCK_MAP_V4]
						     : in->pins.fd[IPBLOCK_MAP_V6],
				   &key, &val) == 0;
}

static int pool_build(struct bench *b, struct config *c)
{
	static const struct cidr spread4 = { .family = AF_INET, .len = 0 };
	const struct instance *in = c->inst;
	/* Seeded by what the pool is for, so both lookups meet the same sources. */
	uint64_t rng = 0x1234 ^ (in ? in->rules : 0) << 8 ^ (uint64_t)c->family << 2 ^ c->kind;
	uint8_t a[16];

	c->pool = calloc(b->pool, sizeof(*c->pool));
	if (!c->pool)
		return -ENOMEM;
	for (uint32_t i = 0; i < b->pool; i++) {
		if (c->kind == SRC_HIT) {
			size_t n = c->family == AF_INET ? in->n4 : in->n6;
			const struct cidr *l = c->family == AF_INET ? in->list4 : in->list6;

			rg_random_in(&l[rg_rand(&rng) % n], &rng, a);
		} else if (c->family == AF_INET) {
			/* 11.0.0.0-99.255.255.255, where the list's bulk lies. */
			int tries = 0;

			do {
				rg_random_in(&spread4, &rng, a);
				a[0] = (uint8_t)(11 + rg_rand(&rng) % 89);
			} while (in && covered(in, AF_INET, a) && ++tries < 1000);
			if (in && covered(in, AF_INET, a))
				return -ENOSPC;
		} else {
			struct cidr s6 = { .family = AF_INET6, .len = 6, .addr = { 0x24 } };
			int tries = 0;

			do
				rg_random_in(&s6, &rng, a);
			while (in && covered(in, AF_INET6, a) && ++tries < 1000);
			if (in && covered(in, AF_INET6, a))
				return -ENOSPC;
		}
		pool_entry(b, c->family, a, &c->pool[i]);
	}
	c->warm_pool = calloc(b->pool, sizeof(*c->warm_pool));
	if (!c->warm_pool)
		return -ENOMEM;
	for (uint32_t i = 0; i < b->pool; i++)
		c->warm_pool[i] = c->pool[i % b->warm];
	return 0;
}

/* --- ipblock instances --------------------------------------------------------- */

struct list {
	struct cidr *v;
	size_t n, cap;
};

static void collect(const struct cidr *p, void *ctx)
{
	struct list *l = ctx;

	if (l->n < l->cap)
		l->v[l->n++] = *p;
}

/* Both families' lists as deny rules, through the API the tools use. */
static int fill(struct instance *in)
{
	size_t n = in->n4 + in->n6;
	struct rule *r = calloc(n, sizeof(*r));
	struct maps_replace_stats st;
	int ret;

	if (!r)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		r[i].prefix = i < in->n4 ? in->list4[i] : in->list6[i - in->n4];
		r[i].action = IPBLOCK_ACTION_DENY;
	}
	ret = ruleset_sort(r, NULL, n);
	if (!ret)
		ret = maps_replace_rules(&in->maps, r, n, &st);
	free(r);
	if (!ret && st.added != n)
		ret = -EPROTO;
	return ret;
}

static int instance_open(struct instance *in, size_t rules, enum pins_lookup lookup,
			 uint32_t capacity)
{
	struct list l4 = { 0 }, l6 = { 0 };
	double t0;
	int ret;

	in->rules = rules;
	in->lookup = lookup;
	in->capacity = rules > capacity ? (uint32_t)rules : capacity;
	ret = bench_ipblock_open(&in->skel, &in->pins, &in->maps, in->capacity, lookup);
	if (ret || !rules)
		return ret;

	l4.cap = l6.cap = rules;
	l4.v = calloc(rules, sizeof(*l4.v));
	l6.v = calloc(rules, sizeof(*l6.v));
	if (!l4.v || !l6.v) {
		free(l4.v);
		free(l6.v);
		return -ENOMEM;
	}
	rulegen_run(AF_INET, rules, 1, collect, &l4);
	rulegen_run(AF_INET6, rules, 1, collect, &l6);
	in->list4 = l4.v;
	in->n4 = l4.n;
	in->list6 = l6.v;
	in->n6 = l6.n;
	t0 = now_s();
	ret = fill(in);
	in->load_s = now_s() - t0;
	if (ret || lookup != PINS_LOOKUP_FLAT)
		return ret;
	ret = tables_info(&in->maps.tables, &in->pins, AF_INET, 0, &in->info4);
	if (!ret)
		ret = tables_info(&in->maps.tables, &in->pins, AF_INET6, 0, &in->info6);
	in->has_info = !ret;
	return ret;
}

static void instance_close(struct instance *in)
{
	bench_ipblock_close(in->skel, &in->maps);
	free(in->list4);
	free(in->list6);
	memset(in, 0, sizeof(*in));
}

/* --- measuring ------------------------------------------------------------------ */

static int prog_fd_of(const struct bench *b, const struct config *c)
{
	return c->inst ? bpf_program__fd(c->inst->skel->progs.ipblock_xdp)
		       : bpf_program__fd(b->tg->progs.tg_pass);
}

/* One run of tg_call over pool; *ns gets ns per frame. */
static int measure(struct bench *b, struct config *c, const struct tg_source *pool, double *ns)
{
	struct ipblock_counter before[IPBLOCK_STAT_MAX], after[IPBLOCK_STAT_MAX];
	int slot_fd = bpf_map__fd(b->tg->maps.target), pool_fd = bpf_map__fd(b->tg->maps.pool);
	__u32 zero = 0, n = b->pool;
	int target = prog_fd_of(b, c), ret;
	uint32_t *keys = malloc(b->pool * sizeof(*keys));
	const uint8_t *frame = c->family == AF_INET ? b->frame4 : b->frame6;
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame, .data_size_in = FRAME_LEN,
		    .repeat = b->repeat);

	if (!keys)
		return -ENOMEM;
	for (uint32_t i = 0; i < b->pool; i++)
		keys[i] = i;
	ret = bpf_map_update_batch(pool_fd, keys, pool, &n, NULL) ? -errno : 0;
	free(keys);
	if (!ret && bpf_map_update_elem(slot_fd, &zero, &target, BPF_ANY))
		ret = -errno;
	if (!ret && c->inst)
		ret = pins_stats_read(&c->inst->pins, before);
	if (ret)
		return ret;
	if (bpf_prog_test_run_opts(bpf_program__fd(b->tg->progs.tg_call), &opts))
		return -errno;
	*ns = opts.duration;
	if (!c->inst)
		return opts.retval == XDP_PASS ? 0 : -EPROTO;

	/* The verdicts must be the ones the pool was built for, every time. */
	enum ipblock_stat want = c->kind == SRC_HIT ? IPBLOCK_STAT_DROP : IPBLOCK_STAT_PASS_NOMATCH;

	ret = pins_stats_read(&c->inst->pins, after);
	if (ret)
		return ret;
	for (int s = 0; s < IPBLOCK_STAT_MAX; s++) {
		uint64_t got = after[s].packets - before[s].packets;
		uint64_t exp = s == (int)want ? b->repeat : 0;

		if (got != exp) {
			fprintf(stderr, "bench_prog: %s: counter %s rose by %llu, expected %llu\n",
				c->label, pins_stat_name(s), (unsigned long long)got,
				(unsigned long long)exp);
			return -EPROTO;
		}
	}
	return 0;
}

static const char *rules_label(size_t n, char *buf, size_t len)
{
	if (n >= 1000000 && n % 1000000 == 0)
		snprintf(buf, len, "%zuM", n / 1000000);
	else if (n >= 1000 && n % 1000 == 0)
		snprintf(buf, len, "%zuk", n / 1000);
	else
		snprintf(buf, len, "%zu", n);
	return buf;
}

static struct config *find_cfg(struct bench *b, size_t rules, enum pins_lookup lookup, int family,
			       enum src_kind kind)
{
	for (size_t i = 0; i < b->ncfg; i++) {
		struct config *c = &b->cfg[i];

		if (c->inst && c->inst->rules == rules && c->inst->lookup == lookup &&
		    c->family == family && c->kind == kind)
			return c;
	}
	return NULL;
}

/* "ns min–max | Δ" of one lookup's row, or dashes when it was not run. */
static void print_cells(const struct bench *b, const struct config *c, double empty)
{
	struct summary s;

	if (!c) {
		printf(" – | – | – |");
		return;
	}
	s = summarise(c->ns, b->rounds);
	printf(" %.0f | %.0f–%.0f | **%+.0f** |", s.med, s.min, s.max, s.med - empty);
}

static void print_warm(const struct bench *b, const struct config *c, double empty)
{
	if (!c) {
		printf(" – |");
		return;
	}
	printf(" %+.0f |", summarise(c->warm_ns, b->rounds).med - empty);
}

static void report(struct bench *b, FILE *data)
{
	struct summary empty = summarise(b->cfg[0].ns, b->rounds);
	struct summary wempty = summarise(b->cfg[0].warm_ns, b->rounds);
	char rl[32];

	printf("Baseline: the empty program, %.0f ns per packet (min–max %.0f–%.0f; warm %.0f).  "
	       "Δ: what ipblock adds to it.\n\n",
	       empty.med, empty.min, empty.max, wempty.med);
	printf("| rules | family | sources | trie: ns/pkt | min–max | trie: Δ (ns) | flat: ns/pkt "
	       "| min–max | flat: Δ (ns) | flat ÷ trie | warm: trie Δ | warm: flat Δ |\n");
	printf("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
	for (size_t i = 0; i < b->nsizes; i++) {
		for (int f = 0; f < 2; f++) {
			for (int k = b->sizes[i] ? SRC_HIT : SRC_MISS; k <= SRC_MISS; k++) {
				int fam = f ? AF_INET6 : AF_INET;
				struct config *t =
					find_cfg(b, b->sizes[i], PINS_LOOKUP_TRIE, fam, k);
				struct config *l =
					find_cfg(b, b->sizes[i], PINS_LOOKUP_FLAT, fam, k);

				printf("| %s | IPv%d | %s |",
				       rules_label(b->sizes[i], rl, sizeof(rl)), f ? 6 : 4,
				       k == SRC_HIT ? "hit" : "miss");
				print_cells(b, t, empty.med);
				print_cells(b, l, empty.med);
				if (t && l)
					printf(" %.2f |", summarise(l->ns, b->rounds).med /
								  summarise(t->ns, b->rounds).med);
				else
					printf(" – |");
				print_warm(b, t, wempty.med);
				print_warm(b, l, wempty.med);
				printf("\n");
			}
		}
	}

	for (size_t i = 0; data && i < b->ncfg; i++) {
		struct config *c = &b->cfg[i];
		struct summary s = summarise(c->ns, b->rounds);
		struct summary w = summarise(c->warm_ns, b->rounds);

		fprintf(data, "%s %zu %d %s %s %.1f %.1f %.1f %.1f %.1f %.1f %.1f %.1f\n",
			c->inst ? "ipblock" : "empty", c->inst ? c->inst->rules : 0,
			c->family == AF_INET ? 4 : 6, c->kind == SRC_HIT ? "hit" : "miss",
			c->inst ? pins_lookup_name(c->inst->lookup) : "-", s.med, s.min, s.max,
			s.med - empty.med, w.med, w.min, w.max, w.med - wempty.med);
	}

	printf("\nEach row: %u interleaved rounds of %u frames; sources cycle through %u "
	       "random addresses (warm: %u, so the path to them stays in cache), the same for "
	       "both lookups.  Maps sized for %u rules per family (the default capacity); "
	       "flat tables and their bookkeeping: %.0f MiB of kernel memory per instance "
	       "(trie lookup: %.1f MiB), besides the tries.\n\n",
	       b->rounds, b->repeat, b->pool, b->warm, b->capacity,
	       pins_lookup_bytes(b->capacity, PINS_LOOKUP_FLAT) / 1048576.0,
	       pins_lookup_bytes(b->capacity, PINS_LOOKUP_TRIE) / 1048576.0);
	printf("| rules | lookup | loaded by maps_replace_rules (s) | IPv4: long rules | IPv4: "
	       "regions on the trie | IPv6: long rules | IPv6: crowded regions (nodes) | IPv6: "
	       "regions on the trie |\n");
	printf("|---:|---|---:|---:|---:|---:|---:|---:|\n");
	for (size_t i = 0; i < b->ninst; i++) {
		struct instance *in = &b->inst[i];

		if (!in->rules)
			continue;
		printf("| %s | %s | %.2f |", rules_label(in->rules, rl, sizeof(rl)),
		       pins_lookup_name(in->lookup), in->load_s);
		if (in->has_info)
			printf(" %u | %u | %u | %u (%u) | %u |\n", in->info4.long_rules,
			       in->info4.fallback_regions, in->info6.long_rules,
			       in->info6.split_regions, in->info6.nodes,
			       in->info6.fallback_regions);
		else
			printf(" – | all | – | – | all |\n");
	}
	printf("\n\"Long rules\" are longer than /24 and live in the flat tables' hash; a region "
	       "\"crowded\" has more than %d distinct long lengths and is split into a tree of "
	       "nodes of at most %d lengths each; a region \"on the trie\" is a /24 whose rules "
	       "the flat table cannot represent (a rule with no slot within the probe limit): its "
	       "addresses pay for the flat lookup and the trie's.\n",
	       FLAT_MAX_LENS, FLAT_NODE_LENS);
}

static const struct cli_opt options[] = {
	{ "repeat", 'r', "N", "frames per run (default 1000000)" },
	{ "rounds", 'n', "N", "interleaved rounds; the median is reported (default 5)" },
	{ "pool", 'p', "N", "distinct sources per run, a power of two (default 65536)" },
	{ "warm", 'w', "N", "distinct sources of the warm-cache runs (default 256)" },
	{ "sizes", 's', "N,N,...", "rule counts (default 0,1000,100000,1000000)" },
	{ "lookups", 'l', "L,L", "lookups to measure: trie, flat (default trie,flat)" },
	{ "capacity", 'C', "N", "rules per family the maps are sized for (default 1000000)" },
	{ "cpu", 'c', "CPU", "pin to CPU (default 0)" },
	{ "data", 'o', "FILE", "also write the figures as columns for gnuplot" },
	{ "help", 'h', NULL, "show this help" },
	{},
};

static int parse_sizes(const char *s, size_t *sizes, size_t *n)
{
	char *end;

	*n = 0;
	while (*s) {
		unsigned long long v = strtoull(s, &end, 10);

		if (end == s || v > 50000000 || *n == MAX_SIZES)
			return -EINVAL;
		sizes[(*n)++] = v;
		s = *end == ',' ? end + 1 : end;
		if (*end && *end != ',')
			return -EINVAL;
	}
	return *n ? 0 : -EINVAL;
}

static void add_config(struct bench *b, const char *label, struct instance *in, int family,
		       enum src_kind kind)
{
	b->cfg[b->ncfg++] =
		(struct config){ .label = label, .inst = in, .family = family, .kind = kind };
}

int main(int argc, char **argv)
{
	static struct bench b = { .repeat = 1000000,
				  .rounds = 5,
				  .pool = 65536,
				  .warm = 256,
				  .capacity = IPBLOCK_MAX_RULES_DEFAULT,
				  .sizes = { 0, 1000, 100000, 1000000 },
				  .nsizes = 4,
				  .lookups = { PINS_LOOKUP_TRIE, PINS_LOOKUP_FLAT },
				  .nlookups = 2 };
	static char labels[MAX_INST * 4][64];
	const char *data_path = NULL;
	uint32_t cpu = 0;
	FILE *data = NULL;
	int c, ret = 0;

	while ((c = cli_getopt(argc, argv, options)) != -1) {
		switch (c) {
		case 'r':
			if (cli_parse_u32("--repeat", optarg, 1000, 100000000, &b.repeat))
				return 2;
			break;
		case 'n':
			if (cli_parse_u32("--rounds", optarg, 1, MAX_ROUNDS, &b.rounds))
				return 2;
			break;
		case 'p':
			if (cli_parse_u32("--pool", optarg, 1, TG_POOL_MAX, &b.pool))
				return 2;
			break;
		case 'w':
			if (cli_parse_u32("--warm", optarg, 1, TG_POOL_MAX, &b.warm))
				return 2;
			break;
		case 's':
			if (parse_sizes(optarg, b.sizes, &b.nsizes)) {
				cli_err("--sizes takes up to %d counts separated by commas.",
					MAX_SIZES);
				return 2;
			}
			break;
		case 'l':
			if (cli_parse_lookups(optarg, b.lookups, MAX_LOOKUPS, &b.nlookups))
				return 2;
			break;
		case 'C':
			if (cli_parse_u32("--capacity", optarg, 1, 50000000, &b.capacity))
				return 2;
			break;
		case 'c':
			if (cli_parse_u32("--cpu", optarg, 0, CPU_SETSIZE - 1, &cpu))
				return 2;
			break;
		case 'o':
			data_path = optarg;
			break;
		case 'h':
			cli_usage(stdout, "[options]",
				  "Per-packet cost of ipblock's XDP program (BPF_PROG_RUN).",
				  options);
			return 0;
		default:
			return 2;
		}
	}
	if (b.pool & (b.pool - 1)) {
		cli_err("--pool must be a power of two.");
		return 2;
	}
	if (bench_start(cpu))
		return 1;

	bench_frame_init(b.frame4, FRAME_LEN, AF_INET);
	bench_frame_init(b.frame6, FRAME_LEN, AF_INET6);
	b.tg = trafficgen_bpf__open();
	if (!b.tg) {
		cli_err("cannot open the wrapper program: %s.", strerror(errno));
		return 1;
	}
	b.tg->rodata->pool_mask = b.pool - 1;
	ret = trafficgen_bpf__load(b.tg);
	if (ret) {
		cli_err("cannot load the wrapper program: %s.", strerror(-ret));
		goto out;
	}

	add_config(&b, "empty", NULL, AF_INET, SRC_MISS);
	for (size_t i = 0; i < b.nsizes; i++) {
		for (size_t j = 0; j < b.nlookups; j++) {
			struct instance *in = &b.inst[b.ninst];
			const char *ln = pins_lookup_name(b.lookups[j]);
			char rl[32];

			ret = instance_open(in, b.sizes[i], b.lookups[j], b.capacity);
			if (ret) {
				cli_err("cannot load ipblock (%s lookup) with %zu rules: %s.", ln,
					b.sizes[i], strerror(-ret));
				instance_close(in);
				goto out;
			}
			b.ninst++;
			fprintf(stderr, "bench_prog: %s rules, %s lookup: loaded in %.2f s\n",
				rules_label(b.sizes[i], rl, sizeof(rl)), ln, in->load_s);
			for (int f = 0; f < 2; f++) {
				for (int k = b.sizes[i] ? SRC_HIT : SRC_MISS; k <= SRC_MISS; k++) {
					char *l = labels[b.ncfg - 1];

					snprintf(l, sizeof(labels[0]), "%s %s IPv%d %s", ln,
						 rules_label(b.sizes[i], rl, sizeof(rl)), f ? 6 : 4,
						 k == SRC_MISS ? "miss" : "hit");
					add_config(&b, l, in, f ? AF_INET6 : AF_INET, k);
				}
			}
		}
	}
	for (size_t i = 0; i < b.ncfg; i++) {
		ret = pool_build(&b, &b.cfg[i]);
		if (ret) {
			cli_err("cannot build the sources of %s: %s.", b.cfg[i].label,
				strerror(-ret));
			goto out;
		}
	}

	/* Rounds interleave every row, starting each round one row further on. */
	for (uint32_t r = 0; r < b.rounds; r++) {
		for (size_t j = 0; j < b.ncfg; j++) {
			struct config *cf = &b.cfg[(j + r) % b.ncfg];

			ret = measure(&b, cf, cf->pool, &cf->ns[r]);
			if (!ret)
				ret = measure(&b, cf, cf->warm_pool, &cf->warm_ns[r]);
			if (ret) {
				cli_err("measuring %s failed: %s.", cf->label, strerror(-ret));
				goto out;
			}
		}
	}

	if (data_path) {
		data = fopen(data_path, "w");
		if (!data)
			cli_err("cannot write %s: %s.", data_path, strerror(errno));
	}
	report(&b, data);
	if (data)
		fclose(data);
out:
	for (size_t i = 0; i < b.ncfg; i++) {
		free(b.cfg[i].pool);
		free(b.cfg[i].warm_pool);
	}
	for (size_t i = 0; i < b.ninst; i++)
		instance_close(&b.inst[i]);
	trafficgen_bpf__destroy(b.tg);
	return ret ? 1 : 0;
}
