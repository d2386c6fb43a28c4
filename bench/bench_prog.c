// SPDX-License-Identifier: GPL-2.0
/*
 * Per-packet cost of ipblock's XDP program against an empty XDP program,
 * by BPF_PROG_RUN with repeat, beside the reference most XDP firewalls
 * are: a program that judges by a plain BPF LPM trie per family (tg_trie,
 * bench/trafficgen.bpf.c, the same parser as ipblock's).
 *
 * A single frame run with repeat would judge one cached key.  Instead the
 * frame goes through tg_call (bench/trafficgen.bpf.c), which writes the next
 * of POOL random sources into it and tail-calls the program under test, so
 * every repetition judges another address.  The empty program sits behind
 * the same wrapper: the difference of the two is what a filter adds.  So
 * does tg_src, which reads the headers and drops by source without any
 * lookup: the floor of a filter that judges by source address.
 *
 * For each rule count one private copy of ipblock is loaded (no pins, no
 * interface; its tries' ceiling -C, its tables growing with the rules) and
 * filled with the lists of bench/rulegen.h (N IPv4 and N IPv6 prefixes) by
 * maps_replace_rules(), as the tools do; and one copy of the LPM-trie filter,
 * its tries sized for and filled with the same lists.
 * Sources (the same pools for both filters):
 *   hit   a random address inside a random rule of the list (a deny rule);
 *   miss  a random address of the range the list's bulk is spread over
 *         (11.0.0.0-99.255.255.255, 2400::/6) that no rule covers.
 * Each is measured twice: with POOL (65,536) sources, so that a large
 * table's path misses the caches ("cold"), and with WARM (256) sources
 * cycled, so that it stays cached ("warm").
 * These frames never leave BPF_PROG_RUN (no live-frames flag, no interface),
 * so their sources need not be documentation addresses; a walk through the
 * whole table is what the figure is about.
 *
 * Every measurement is checked: the filter's own counters must have counted
 * exactly `repeat` drops (hit) or passes without a rule (miss).
 *
 * With -L RATE,SAMPLE ipblock's drop log is on in every instance (RATE
 * events a second per CPU, one in SAMPLE beyond), and a thread reads and
 * discards its events all along, as a service would: run with and without
 * it, the hit rows (every hit is a drop) show what the log costs.
 *
 *   bench_prog [-r REPEAT] [-n ROUNDS] [-p POOL] [-w WARM] [-c CPU]
 *              [-o DATAFILE] [-s N,N,...] [-C CEILING] [-L RATE,SAMPLE]
 */
#include <errno.h>
#include <pthread.h>
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
#include "droplog.h"
#include "flat.h"
#include "ipblock.skel.h"
#include "maps.h"
#include "tables.h"
#include "rulegen.h"
#include "trafficgen.h"
#include "trafficgen.skel.h"
#include "bench_util.h" /* after the skeletons: bench_ipblock_open(), tg_open_sized() */

#define MAX_SIZES  8
#define MAX_INST   (MAX_SIZES * 2)
#define MAX_ROUNDS BENCH_MAX_ROUNDS
#define FRAME_LEN  80 /* IPv6 + UDP + a little payload; IPv4 frames are padded alike */

enum src_kind { SRC_HIT, SRC_MISS };

enum filter { FILTER_TRIE, FILTER_IPBLOCK, FILTERS };

static const char *const filter_name[FILTERS] = { "trie", "ipblock" };

/* One rule count's lists, shared by its two instances. */
struct lists {
	size_t rules;
	struct cidr *v4, *v6;
	size_t n4, n6;
};

struct instance {
	enum filter filter;
	struct lists *lists;
	/* ipblock */
	struct ipblock_bpf *skel;
	struct pins pins;
	struct maps maps; /* changes to them, through the product's protocol */
	bool has_info;	  /* info4/info6 hold the active set's tables */
	struct tables_info info4, info6;
	/* the LPM-trie filter */
	struct trafficgen_bpf *tg;
	double load_s;
	uint64_t memlock;    /* the kernel's account of the instance's maps */
	struct droplog *log; /* -L: the reader of its drop log */
};

struct config {
	const char *label;
	const char *prog;      /* empty, src, trie, ipblock */
	struct instance *inst; /* NULL: a reference program of the wrapper's object */
	int family;
	enum src_kind kind;
	struct tg_source *pool;	     /* `pool` distinct sources */
	struct tg_source *warm_pool; /* `warm` distinct sources, repeated */
	double ns[MAX_ROUNDS];
	double warm_ns[MAX_ROUNDS];
};

struct bench {
	struct trafficgen_bpf *tg; /* the wrapper and the reference programs */
	uint32_t repeat, rounds, pool, warm, ceiling;
	uint32_t log_rate, log_sample; /* -L */
	uint64_t log_events;
	volatile int log_stop;
	uint8_t frame4[FRAME_LEN], frame6[FRAME_LEN];
	size_t sizes[MAX_SIZES], nsizes;
	struct lists lists[MAX_SIZES];
	struct instance inst[MAX_INST];
	size_t ninst;
	struct config cfg[3 + MAX_INST * 4];
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

/*
 * Whether a rule of the instance covers addr: a lookup in its trie of the
 * family (ipblock's active set's, or the filter's own; both keyed by
 * prefixlen and address).
 */
static bool covered(const struct instance *in, int family, const uint8_t *addr)
{
	struct {
		__u32 prefixlen;
		__u8 addr[16];
	} key = { .prefixlen = family == AF_INET ? 32 : 128 };
	uint8_t val[64];
	uint32_t active = 0;
	int fd;

	if (in->filter == FILTER_IPBLOCK)
		fd = pins_active_set(&in->pins, &active)
			     ? -1
			     : pins_trie_fd(&in->pins, (int)active, family);
	else
		fd = bpf_map__fd(family == AF_INET ? in->tg->maps.trie4 : in->tg->maps.trie6);
	memcpy(key.addr, addr, family == AF_INET ? 4 : 16);
	return bpf_map_lookup_elem(fd, &key, val) == 0;
}

static int pool_build(struct bench *b, struct config *c)
{
	static const struct cidr spread4 = { .family = AF_INET, .len = 0 };
	const struct instance *in = c->inst;
	const struct lists *l = in ? in->lists : NULL;
	/* Seeded by what the pool is for, so both filters meet the same sources. */
	uint64_t rng = 0x1234 ^ (l ? l->rules : 0) << 8 ^ (uint64_t)c->family << 2 ^ c->kind;
	uint8_t a[16];

	c->pool = calloc(b->pool, sizeof(*c->pool));
	if (!c->pool)
		return -ENOMEM;
	for (uint32_t i = 0; i < b->pool; i++) {
		if (c->kind == SRC_HIT) {
			size_t n = c->family == AF_INET ? l->n4 : l->n6;
			const struct cidr *v = c->family == AF_INET ? l->v4 : l->v6;

			rg_random_in(&v[rg_rand(&rng) % n], &rng, a);
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

/* --- the lists and the instances --------------------------------------------------- */

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

static int lists_make(struct lists *ls, size_t rules)
{
	struct list l4 = { .cap = rules }, l6 = { .cap = rules };

	ls->rules = rules;
	if (!rules)
		return 0;
	l4.v = calloc(rules, sizeof(*l4.v));
	l6.v = calloc(rules, sizeof(*l6.v));
	if (!l4.v || !l6.v) {
		free(l4.v);
		free(l6.v);
		return -ENOMEM;
	}
	rulegen_run(AF_INET, rules, 1, collect, &l4);
	rulegen_run(AF_INET6, rules, 1, collect, &l6);
	ls->v4 = l4.v;
	ls->n4 = l4.n;
	ls->v6 = l6.v;
	ls->n6 = l6.n;
	return 0;
}

/* Both families' lists as deny rules, through the API the tools use. */
static int ipblock_fill(struct instance *in)
{
	const struct lists *ls = in->lists;
	size_t n = ls->n4 + ls->n6;
	struct rule *r = calloc(n, sizeof(*r));
	struct maps_replace_stats st;
	int ret;

	if (!r)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		r[i].prefix = i < ls->n4 ? ls->v4[i] : ls->v6[i - ls->n4];
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

static int ipblock_open(struct instance *in, uint32_t ceiling)
{
	uint32_t active = 0;
	int ret = bench_ipblock_open(&in->skel, &in->pins, &in->maps, ceiling);

	if (!ret && in->lists->rules)
		ret = ipblock_fill(in);
	if (ret || !in->lists->rules)
		return ret;
	ret = pins_active_set(&in->pins, &active);
	if (!ret)
		ret = tables_info(&in->maps.tables, &in->pins, AF_INET, (int)active, &in->info4);
	if (!ret)
		ret = tables_info(&in->maps.tables, &in->pins, AF_INET6, (int)active, &in->info6);
	in->has_info = !ret;
	return ret;
}

static int trie_open(struct instance *in)
{
	const struct lists *ls = in->lists;
	int ret;

	in->tg = tg_open_sized(ls->n4, ls->n6, 1);
	if (!in->tg)
		return -errno;
	ret = tg_trie_fill(in->tg, AF_INET, ls->v4, ls->n4);
	if (!ret)
		ret = tg_trie_fill(in->tg, AF_INET6, ls->v6, ls->n6);
	return ret;
}

static int instance_open(struct instance *in, enum filter f, struct lists *ls, uint32_t ceiling)
{
	struct tables_memory mem;
	double t0 = now_s();
	int ret;

	in->filter = f;
	in->lists = ls;
	ret = f == FILTER_IPBLOCK ? ipblock_open(in, ceiling) : trie_open(in);
	in->load_s = now_s() - t0;
	if (ret)
		return ret;
	if (f == FILTER_TRIE)
		return tg_trie_memlock(in->tg, &in->memlock);
	ret = tables_memory(&in->pins, &mem);
	in->memlock = mem.total;
	return ret;
}

static void instance_close(struct instance *in)
{
	if (in->filter == FILTER_IPBLOCK)
		bench_ipblock_close(in->skel, &in->maps);
	else
		trafficgen_bpf__destroy(in->tg);
	memset(in, 0, sizeof(*in));
}

/* --- measuring ------------------------------------------------------------------ */

static int prog_fd_of(const struct bench *b, const struct config *c)
{
	if (!c->inst)
		return bpf_program__fd(strcmp(c->prog, "src") ? b->tg->progs.tg_pass
							      : b->tg->progs.tg_src);
	if (c->inst->filter == FILTER_IPBLOCK)
		return bpf_program__fd(c->inst->skel->progs.ipblock_xdp);
	return bpf_program__fd(c->inst->tg->progs.tg_trie);
}

/* What the instance's own counters say so far: passed without a rule, dropped, anything else. */
struct verdicts {
	uint64_t pass, drop, other;
};

static int verdicts_read(const struct instance *in, struct verdicts *v)
{
	int ret;

	if (in->filter == FILTER_IPBLOCK) {
		struct ipblock_counter c[IPBLOCK_STAT_MAX];

		ret = pins_stats_read(&in->pins, c);
		*v = (struct verdicts){ .pass = c[IPBLOCK_STAT_PASS_NOMATCH].packets,
					.drop = c[IPBLOCK_STAT_DROP].packets,
					.other = c[IPBLOCK_STAT_PASS_ALLOW].packets +
						 c[IPBLOCK_STAT_PASS_OTHER].packets };
		return ret;
	}

	struct tg_counter c[TG_STATS];

	ret = tg_trie_stats(bpf_map__fd(in->tg->maps.trie_stats), c);
	*v = (struct verdicts){ .pass = c[TG_STAT_PASS].packets, .drop = c[TG_STAT_DROP].packets };
	return ret;
}

/* One run of tg_call over pool; *ns gets ns per frame. */
static int measure(struct bench *b, struct config *c, const struct tg_source *pool, double *ns)
{
	int slot_fd = bpf_map__fd(b->tg->maps.target), pool_fd = bpf_map__fd(b->tg->maps.pool);
	__u32 zero = 0, n = b->pool;
	int target = prog_fd_of(b, c), ret;
	struct verdicts v0 = { 0 }, v1 = { 0 };
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
		ret = verdicts_read(c->inst, &v0);
	if (ret)
		return ret;
	if (bpf_prog_test_run_opts(bpf_program__fd(b->tg->progs.tg_call), &opts))
		return -errno;
	*ns = opts.duration;
	if (!c->inst) {
		uint32_t want = strcmp(c->prog, "src") ? XDP_PASS : XDP_DROP;

		return opts.retval == want ? 0 : -EPROTO;
	}

	/* The verdicts must be the ones the pool was built for, every time. */
	ret = verdicts_read(c->inst, &v1);
	if (ret)
		return ret;
	if (v1.pass - v0.pass != (c->kind == SRC_MISS ? b->repeat : 0) ||
	    v1.drop - v0.drop != (c->kind == SRC_HIT ? b->repeat : 0) || v1.other != v0.other) {
		fprintf(stderr,
			"bench_prog: %s: of %u frames %llu passed without a rule, %llu dropped, "
			"%llu judged otherwise; expected every one %s\n",
			c->label, b->repeat, (unsigned long long)(v1.pass - v0.pass),
			(unsigned long long)(v1.drop - v0.drop),
			(unsigned long long)(v1.other - v0.other),
			c->kind == SRC_HIT ? "dropped" : "passed without a rule");
		return -EPROTO;
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

static struct config *find_cfg(struct bench *b, size_t rules, enum filter f, int family,
			       enum src_kind kind)
{
	for (size_t i = 0; i < b->ncfg; i++) {
		struct config *c = &b->cfg[i];

		if (c->inst && c->inst->lists->rules == rules && c->inst->filter == f &&
		    c->family == family && c->kind == kind)
			return c;
	}
	return NULL;
}

static struct config *find_ref(struct bench *b, const char *prog, int family)
{
	for (size_t i = 0; i < b->ncfg; i++)
		if (!b->cfg[i].inst && !strcmp(b->cfg[i].prog, prog) && b->cfg[i].family == family)
			return &b->cfg[i];
	return NULL;
}

/* "ns | min–max | Δ" of one filter's row. */
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
	struct config *e = find_ref(b, "empty", AF_INET);
	struct summary empty = summarise(e->ns, b->rounds);
	struct summary wempty = summarise(e->warm_ns, b->rounds);
	char rl[32];

	printf("Baseline: the empty program, %.0f ns per packet (min–max %.0f–%.0f; warm %.0f).  "
	       "Δ: what a filter adds to it.",
	       empty.med, empty.min, empty.max, wempty.med);
	for (int f = 0; f < 2; f++) {
		struct config *s = find_ref(b, "src", f ? AF_INET6 : AF_INET);

		if (s)
			printf("%s IPv%d %+.0f ns",
			       f ? ","
				 : "  Reading the headers and dropping "
				   "by source (tg_src, no lookup):",
			       f ? 6 : 4, summarise(s->ns, b->rounds).med - empty.med);
	}
	printf(".\n\n");
	printf("| rules | family | sources | LPM trie: ns/pkt | min–max | LPM trie: Δ (ns) | "
	       "ipblock: ns/pkt | min–max | ipblock: Δ (ns) | ipblock ÷ trie | warm: trie Δ | "
	       "warm: ipblock Δ |\n");
	printf("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
	for (size_t i = 0; i < b->nsizes; i++) {
		for (int f = 0; f < 2; f++) {
			for (int k = b->sizes[i] ? SRC_HIT : SRC_MISS; k <= SRC_MISS; k++) {
				int fam = f ? AF_INET6 : AF_INET;
				struct config *t = find_cfg(b, b->sizes[i], FILTER_TRIE, fam, k);
				struct config *l = find_cfg(b, b->sizes[i], FILTER_IPBLOCK, fam, k);

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

	/* prog rules family kind median min max delta warm_median warm_min warm_max warm_delta */
	for (size_t i = 0; data && i < b->ncfg; i++) {
		struct config *c = &b->cfg[i];
		struct summary s = summarise(c->ns, b->rounds);
		struct summary w = summarise(c->warm_ns, b->rounds);

		fprintf(data, "%s %zu %d %s %.1f %.1f %.1f %.1f %.1f %.1f %.1f %.1f\n", c->prog,
			c->inst ? c->inst->lists->rules : 0, c->family == AF_INET ? 4 : 6,
			c->kind == SRC_HIT ? "hit" : "miss", s.med, s.min, s.max, s.med - empty.med,
			w.med, w.min, w.max, w.med - wempty.med);
	}

	printf("\nEach row: %u interleaved rounds of %u frames; sources cycle through %u "
	       "random addresses (warm: %u, so the path to them stays in cache), the same for "
	       "both filters.  N rules is N IPv4 and N IPv6 prefixes.  ipblock's tries have a "
	       "ceiling of %u rules per family; its tables grow with the rules.\n\n",
	       b->rounds, b->repeat, b->pool, b->warm, b->ceiling);
	printf("| rules | ipblock: loaded by maps_replace_rules (s) | LPM trie: filled (s) | "
	       "ipblock: kernel MiB | LPM tries: kernel MiB | IPv4: long rules (regions) | "
	       "IPv4: mixed /16 blocks | IPv6: long rules (regions) | IPv6: crowded regions "
	       "(nodes) | IPv6: mixed /16 blocks |\n");
	printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
	for (size_t i = 0; i < b->nsizes; i++) {
		const struct instance *ib = NULL, *tr = NULL;

		for (size_t j = 0; j < b->ninst; j++) {
			if (b->inst[j].lists->rules != b->sizes[i])
				continue;
			if (b->inst[j].filter == FILTER_IPBLOCK)
				ib = &b->inst[j];
			else
				tr = &b->inst[j];
		}
		if (!ib || !tr)
			continue;
		printf("| %s | %.2f | %.2f | %.1f | %.1f |",
		       rules_label(b->sizes[i], rl, sizeof(rl)), ib->load_s, tr->load_s,
		       ib->memlock / 1048576.0, tr->memlock / 1048576.0);
		if (ib->has_info)
			printf(" %u (%u) | %u | %u (%u) | %u (%u) | %u |\n", ib->info4.long_rules,
			       ib->info4.ext_regions, ib->info4.mixed_blocks, ib->info6.long_rules,
			       ib->info6.ext_regions, ib->info6.split_regions, ib->info6.nodes,
			       ib->info6.mixed_blocks);
		else
			printf(" – | – | – | – | – |\n");
	}
	printf("\nKernel MiB: memlock as bpftool shows it, every map of the instance (ipblock: "
	       "tables_memory(), the inner segment maps and its four tries included; the "
	       "filter: its two tries).  \"Long rules\" are longer than /24 and live in the "
	       "tables' hash; a \"mixed\" /16 block has a chunk of region entries; a "
	       "\"crowded\" region has more than %d distinct long lengths and is split into a "
	       "tree of nodes of at most %d lengths each.\n",
	       FLAT_MAX_LENS, FLAT_NODE_LENS);
}

static int log_discard(const struct droplog_event *ev, void *ctx)
{
	(void)ev;
	++*(uint64_t *)ctx;
	return 0;
}

/* -L: drain every ipblock instance's drop log until told to stop. */
static void *log_reader(void *arg)
{
	struct bench *b = arg;
	cpu_set_t other;

	/* Off the measuring CPU (-c), where there is another. */
	CPU_ZERO(&other);
	CPU_SET(1, &other);
	sched_setaffinity(0, sizeof(other), &other);
	while (!b->log_stop)
		for (size_t i = 0; i < b->ninst; i++)
			if (b->inst[i].log)
				droplog_poll(b->inst[i].log, 1);
	return NULL;
}

static const struct cli_opt options[] = {
	{ "log", 'L', "RATE,SAMPLE",
	  "turn ipblock's drop log on (RATE a second per CPU, 1 in SAMPLE beyond) and read it" },
	{ "repeat", 'r', "N", "frames per run (default 1000000)" },
	{ "rounds", 'n', "N", "interleaved rounds; the median is reported (default 5)" },
	{ "pool", 'p', "N", "distinct sources per run, a power of two (default 65536)" },
	{ "warm", 'w', "N", "distinct sources of the warm-cache runs (default 256)" },
	{ "sizes", 's', "N,N,...", "rule counts per family (default 0,1000,100000,1000000)" },
	{ "ceiling", 'C', "N", "ipblock's ceiling of rules per family (default 4000000)" },
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

static void add_config(struct bench *b, const char *label, const char *prog, struct instance *in,
		       int family, enum src_kind kind)
{
	b->cfg[b->ncfg++] = (struct config){
		.label = label, .prog = prog, .inst = in, .family = family, .kind = kind
	};
}

int main(int argc, char **argv)
{
	static struct bench b = { .repeat = 1000000,
				  .rounds = 5,
				  .pool = 65536,
				  .warm = 256,
				  .ceiling = IPBLOCK_MAX_RULES_DEFAULT,
				  .sizes = { 0, 1000, 100000, 1000000 },
				  .nsizes = 4 };
	static char labels[sizeof(b.cfg) / sizeof(b.cfg[0])][64];
	const char *data_path = NULL;
	bool reading = false;
	pthread_t reader;
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
		case 'C':
			if (cli_parse_u32("--ceiling", optarg, 1, 100000000, &b.ceiling))
				return 2;
			break;
		case 'c':
			if (cli_parse_u32("--cpu", optarg, 0, CPU_SETSIZE - 1, &cpu))
				return 2;
			break;
		case 'o':
			data_path = optarg;
			break;
		case 'L':
			if (sscanf(optarg, "%u,%u", &b.log_rate, &b.log_sample) != 2) {
				cli_err("--log takes RATE,SAMPLE.");
				return 2;
			}
			break;
		case 'h':
			cli_usage(stdout, "[options]",
				  "Per-packet cost of ipblock's XDP program and of an LPM-trie "
				  "filter (BPF_PROG_RUN).",
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
	for (size_t i = 0; i < b.nsizes; i++) {
		if (b.sizes[i] > b.ceiling) {
			cli_err("%zu rules per family are above the ceiling (--ceiling %u).",
				b.sizes[i], b.ceiling);
			return 2;
		}
	}
	if (bench_start(cpu))
		return 1;

	bench_frame_init(b.frame4, FRAME_LEN, AF_INET);
	bench_frame_init(b.frame6, FRAME_LEN, AF_INET6);
	b.tg = tg_open_sized(0, 0, b.pool);
	if (!b.tg) {
		cli_err("cannot load the wrapper program: %s.", strerror(errno));
		return 1;
	}

	add_config(&b, "empty", "empty", NULL, AF_INET, SRC_MISS);
	/* Sources as the misses' (no list to hit); tg_src drops them all. */
	add_config(&b, "src IPv4", "src", NULL, AF_INET, SRC_MISS);
	add_config(&b, "src IPv6", "src", NULL, AF_INET6, SRC_MISS);
	for (size_t i = 0; i < b.nsizes; i++) {
		char rl[32];

		rules_label(b.sizes[i], rl, sizeof(rl));
		ret = lists_make(&b.lists[i], b.sizes[i]);
		if (ret) {
			cli_err("cannot generate the %s-rule lists: %s.", rl, strerror(-ret));
			goto out;
		}
		for (int f = 0; f < FILTERS; f++) {
			struct instance *in = &b.inst[b.ninst];

			ret = instance_open(in, (enum filter)f, &b.lists[i], b.ceiling);
			if (ret) {
				cli_err("cannot load %s with %s rules: %s.", filter_name[f], rl,
					strerror(-ret));
				instance_close(in);
				goto out;
			}
			b.ninst++;
			fprintf(stderr, "bench_prog: %s rules, %s: loaded in %.2f s\n", rl,
				filter_name[f], in->load_s);
			for (int fam = 0; fam < 2; fam++) {
				for (int k = b.sizes[i] ? SRC_HIT : SRC_MISS; k <= SRC_MISS; k++) {
					char *l = labels[b.ncfg];

					snprintf(l, sizeof(labels[0]), "%s %s IPv%d %s",
						 filter_name[f], rl, fam ? 6 : 4,
						 k == SRC_MISS ? "miss" : "hit");
					add_config(&b, l, filter_name[f], in,
						   fam ? AF_INET6 : AF_INET, k);
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

	for (size_t i = 0; i < b.ninst && (b.log_rate || b.log_sample); i++) {
		if (b.inst[i].filter != FILTER_IPBLOCK)
			continue;
		ret = droplog_set(&b.inst[i].pins, b.log_rate, b.log_sample);
		if (!ret)
			ret = droplog_open(&b.inst[i].pins, log_discard, &b.log_events,
					   &b.inst[i].log);
		if (ret) {
			cli_err("cannot turn the drop log on: %s.", strerror(-ret));
			goto out;
		}
	}
	if (b.log_rate || b.log_sample)
		reading = !pthread_create(&reader, NULL, log_reader, &b);
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

	if (reading) {
		b.log_stop = 1;
		pthread_join(reader, NULL);
		reading = false;
		fprintf(stderr,
			"bench_prog: drop log on (%u/s per CPU, 1 in %u beyond): %llu events "
			"read\n",
			b.log_rate, b.log_sample, (unsigned long long)b.log_events);
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
	if (reading) {
		b.log_stop = 1;
		pthread_join(reader, NULL);
	}
	for (size_t i = 0; i < b.ninst; i++)
		droplog_close(b.inst[i].log);
	for (size_t i = 0; i < b.ncfg; i++) {
		free(b.cfg[i].pool);
		free(b.cfg[i].warm_pool);
	}
	for (size_t i = 0; i < b.ninst; i++)
		instance_close(&b.inst[i]);
	for (size_t i = 0; i < b.nsizes; i++) {
		free(b.lists[i].v4);
		free(b.lists[i].v6);
	}
	trafficgen_bpf__destroy(b.tg);
	return ret ? 1 : 0;
}
