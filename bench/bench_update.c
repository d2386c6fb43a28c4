// SPDX-License-Identifier: GPL-2.0
/*
 * Cost of one rule change: maps_rule_set() and maps_rule_delete() of an
 * IPv4 /8, /24 and /32 in a private ipblock instance holding N IPv4 rules
 * (default 1M, the list of bench/rulegen.h) against the same change in an
 * empty instance.  A rule of /24 or shorter is written into the block
 * entries or region entries it covers and its delete asks the trie for
 * what judges them next; a longer rule is one hash slot.  Both sets' tries
 * change too (set B, then set A).
 *
 * Two figures per change:
 *   warm  in a process that has already made a change (its mappings of the
 *         tables are set up), as in a long-running writer;
 *   first the first change after maps_release(), which is what every
 *         ipblock-rule -a / -d pays besides starting up.
 *
 * Rules are set with action allow, so that an address inside one is judged
 * by it or by a longer deny rule of the list.  After every change a few
 * addresses inside the prefix are judged by the program (BPF_PROG_RUN) and
 * compared with what the set's trie says: a difference is reported and
 * stops the bench.
 *
 * The instances are private (no pins, no interface); their frames never
 * leave BPF_PROG_RUN, so the addresses need not be documentation ones.
 *
 *   bench_update [-n ROUNDS] [-f FIRST_ROUNDS] [-s N] [-C CEILING] [-c CPU]
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>

#include "cli.h"
#include "ipblock.skel.h"
#include "maps.h"
#include "tables.h"
#include "trie.h"
#include "rulegen.h"
#include "bench_util.h" /* after ipblock.skel.h: bench_ipblock_open() */

#define MAX_ROUNDS BENCH_MAX_ROUNDS
#define NPREFIX	   3
#define NOPS	   (2 * NPREFIX) /* set and delete of each prefix */
#define NCHECK	   16		 /* addresses judged after each change */
#define FRAME_LEN  64
#define HEADROOM   64 /* rules a full instance has room for beyond its list */

struct instance {
	size_t rules;
	struct ipblock_bpf *skel;
	struct pins pins;
	struct maps maps; /* changes to them, through the product's protocol */
	double load_s;
	double warm[NOPS][MAX_ROUNDS]; /* µs */
	double first[NOPS][MAX_ROUNDS];
};

struct bench {
	uint32_t rounds, first_rounds, ceiling;
	size_t rules;
	struct instance inst[2]; /* empty, then full */
	size_t ninst;
	struct cidr prefix[NPREFIX];
	uint8_t frame[FRAME_LEN];
	uint64_t rng;
	size_t checked;
};

/* --- instances ------------------------------------------------------------------ */

struct list {
	struct rule *v;
	size_t n, cap;
};

static void collect(const struct cidr *p, void *ctx)
{
	struct list *l = ctx;

	if (l->n < l->cap)
		l->v[l->n++] = (struct rule){ .prefix = *p, .action = IPBLOCK_ACTION_DENY };
}

/* The ceiling asked for, or room for the list and the changes if more. */
static uint32_t instance_ceiling(size_t rules, uint32_t ceiling)
{
	return rules + HEADROOM > ceiling ? (uint32_t)(rules + HEADROOM) : ceiling;
}

static int instance_open(struct instance *in, size_t rules, uint32_t ceiling)
{
	struct maps_replace_stats st;
	struct list l = { 0 };
	double t0;
	int ret;

	in->rules = rules;
	ret = bench_ipblock_open(&in->skel, &in->pins, &in->maps, instance_ceiling(rules, ceiling));
	if (ret || !rules)
		return ret;
	l.cap = rules;
	l.v = calloc(rules, sizeof(*l.v));
	if (!l.v)
		return -ENOMEM;
	rulegen_run(AF_INET, rules, 1, collect, &l);
	t0 = now_s();
	ret = ruleset_sort(l.v, NULL, l.n);
	if (!ret)
		ret = maps_replace_rules(&in->maps, l.v, l.n, &st);
	in->load_s = now_s() - t0;
	free(l.v);
	return ret;
}

static void instance_close(struct instance *in)
{
	bench_ipblock_close(in->skel, &in->maps);
	memset(in, 0, sizeof(*in));
}

/* --- checking verdicts --------------------------------------------------------- */

/*
 * Judge NCHECK random addresses inside p by the program and by the active
 * set's trie (the rule store the tables are compiled from); they must agree.
 */
static int check(struct bench *b, struct instance *in, const struct cidr *p, const char *after)
{
	struct iphdr *ip = (struct iphdr *)(b->frame + sizeof(struct ethhdr));
	int prog = bpf_program__fd(in->skel->progs.ipblock_xdp);
	char buf[CIDR_STRLEN], abuf[INET_ADDRSTRLEN];
	uint32_t active = 0;
	int trie, err = pins_active_set(&in->pins, &active);

	if (err)
		return err;
	trie = pins_trie_fd(&in->pins, (int)active, AF_INET);
	for (int i = 0; i < NCHECK; i++) {
		struct ipblock_key_v4 key = { .prefixlen = 32 };
		struct ipblock_rule val;
		LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = b->frame, .data_size_in = FRAME_LEN,
			    .repeat = 1);
		uint32_t want;

		rg_random_in(p, &b->rng, key.addr);
		memcpy(&ip->saddr, key.addr, 4);
		if (bpf_map_lookup_elem(trie, &key, &val))
			want = XDP_PASS;
		else
			want = val.action == IPBLOCK_ACTION_DENY ? XDP_DROP : XDP_PASS;
		if (bpf_prog_test_run_opts(prog, &opts))
			return -errno;
		b->checked++;
		if (opts.retval != want) {
			fprintf(stderr,
				"bench_update: %zu rules, after %s %s: %s judged %s, "
				"the trie says %s\n",
				in->rules, after, cidr_format(p, buf, sizeof(buf)),
				inet_ntop(AF_INET, key.addr, abuf, sizeof(abuf)),
				opts.retval == XDP_DROP ? "drop" : "pass",
				want == XDP_DROP ? "drop" : "pass");
			return -EPROTO;
		}
	}
	return 0;
}

/* --- measuring ------------------------------------------------------------------ */

/* Op i: set (even) or delete (odd) of prefix i / 2; *us gets its time. */
static int run_op(struct bench *b, struct instance *in, int op, bool first, double *us)
{
	const struct cidr *p = &b->prefix[op / 2];
	const struct rule allow = { .prefix = *p, .action = IPBLOCK_ACTION_ALLOW };
	double t0;
	int ret;

	if (first)
		maps_release(&in->maps);
	t0 = now_s();
	ret = op % 2 ? maps_rule_delete(&in->maps, p) : maps_rule_set(&in->maps, &allow);
	*us = (now_s() - t0) * 1e6;
	if (ret) {
		fprintf(stderr, "bench_update: %zu rules: %s failed: %s\n", in->rules,
			op % 2 ? "delete" : "set", strerror(-ret));
		return ret;
	}
	return check(b, in, p, op % 2 ? "deleting" : "setting");
}

/* One round: every instance, each starting one further on, all six ops. */
static int round_run(struct bench *b, uint32_t r, bool first, bool keep)
{
	for (size_t j = 0; j < b->ninst; j++) {
		struct instance *in = &b->inst[(j + r) % b->ninst];

		for (int op = 0; op < NOPS; op++) {
			double us;
			int ret = run_op(b, in, op, first, &us);

			if (ret)
				return ret;
			if (keep)
				(first ? in->first : in->warm)[op][r] = us;
		}
	}
	return 0;
}

/* Prefixes in the list's filler range that are not rules of the list. */
static int pick_prefixes(struct bench *b)
{
	static const uint8_t lens[NPREFIX] = { 8, 24, 32 };
	const struct instance *full = NULL;

	for (size_t i = 0; i < b->ninst; i++)
		if (b->inst[i].rules)
			full = &b->inst[i];
	for (int i = 0; i < NPREFIX; i++) {
		struct cidr *p = &b->prefix[i];
		struct rule val;
		int tries = 0;

		do {
			uint32_t a = lens[i] == 8 ? (42u + (uint32_t)tries) << 24
				     : lens[i] == 24
					     ? 0x2ac80000 + ((uint32_t)tries << 8) /* 42.200.x.0 */
					     : 0x2ac90000 + ((uint32_t)tries << 8) + 77;

			memset(p, 0, sizeof(*p));
			p->family = AF_INET;
			p->len = lens[i];
			a = htonl(a);
			memcpy(p->addr, &a, 4);
		} while (full && trie_get(&full->pins, 0, p, &val) == 0 && ++tries < 32);
		if (full && trie_get(&full->pins, 0, p, &val) == 0)
			return -EEXIST;
	}
	return 0;
}

/* --- report ------------------------------------------------------------------------ */

/* µs as a table cell: whole numbers from 100 up, one decimal below. */
static const char *fmt_us(double us, char *buf, size_t len)
{
	snprintf(buf, len, us >= 100 ? "%.0f" : "%.1f", us);
	return buf;
}

static void print_row(const struct bench *b, int op, bool first)
{
	const struct instance *e = &b->inst[0], *f = &b->inst[1];
	uint32_t n = first ? b->first_rounds : b->rounds;
	struct summary se = summarise(first ? e->first[op] : e->warm[op], n);
	struct summary sf = summarise(first ? f->first[op] : f->warm[op], n);
	char b1[32], b2[32], b3[32], b4[32], b5[32], b6[32], pb[CIDR_STRLEN];

	printf("| %s %s | %s | %s | %s–%s | %s | %s–%s | %.1f |\n", op % 2 ? "delete" : "set",
	       cidr_format(&b->prefix[op / 2], pb, sizeof(pb)), first ? "first" : "warm",
	       fmt_us(se.med, b1, sizeof(b1)), fmt_us(se.min, b2, sizeof(b2)),
	       fmt_us(se.max, b3, sizeof(b3)), fmt_us(sf.med, b4, sizeof(b4)),
	       fmt_us(sf.min, b5, sizeof(b5)), fmt_us(sf.max, b6, sizeof(b6)), sf.med / se.med);
}

static void report(const struct bench *b)
{
	char rl[32];

	snprintf(rl, sizeof(rl), b->rules % 1000000 ? "%zu" : "%zuM",
		 b->rules % 1000000 ? b->rules : b->rules / 1000000);
	printf("| change | process | empty table: µs | min–max | %s rules: µs | min–max | "
	       "× empty |\n",
	       rl);
	printf("|---|---|---:|---:|---:|---:|---:|\n");
	for (int op = 0; op < NOPS; op++)
		print_row(b, op, false);
	for (int op = 0; op < NOPS && b->first_rounds; op++)
		print_row(b, op, true);
	printf("\nWarm: median of %u interleaved rounds; first: of %u (maps_release() before "
	       "the change).  The %s rules (IPv4 only) were loaded by maps_replace_rules() in "
	       "%.2f s.  Ceiling %u rules per family (the tables grow with the rules).  After "
	       "every change %d addresses inside the prefix were judged by the program and by "
	       "the trie: %zu checks, all agreed.\n",
	       b->rounds, b->first_rounds, rl, b->inst[1].load_s,
	       instance_ceiling(b->rules, b->ceiling), NCHECK, b->checked);
}

/* --- main ---------------------------------------------------------------------------- */

static const struct cli_opt options[] = {
	{ "rounds", 'n', "N", "warm rounds; the median is reported (default 9)" },
	{ "first", 'f', "N", "rounds of first changes after maps_release() (default 3)" },
	{ "size", 's', "N", "IPv4 rules in the full instance (default 1000000)" },
	{ "ceiling", 'C', "N", "ceiling of rules per family (default 4000000)" },
	{ "cpu", 'c', "CPU", "pin to CPU (default 0)" },
	{ "help", 'h', NULL, "show this help" },
	{},
};

int main(int argc, char **argv)
{
	static struct bench b = { .rounds = 9,
				  .first_rounds = 3,
				  .ceiling = IPBLOCK_MAX_RULES_DEFAULT,
				  .rules = 1000000,
				  .rng = 0x5eed };
	uint32_t cpu = 0, rules;
	int c, ret = 0;

	while ((c = cli_getopt(argc, argv, options)) != -1) {
		switch (c) {
		case 'n':
			if (cli_parse_u32("--rounds", optarg, 1, MAX_ROUNDS, &b.rounds))
				return 2;
			break;
		case 'f':
			if (cli_parse_u32("--first", optarg, 0, MAX_ROUNDS, &b.first_rounds))
				return 2;
			break;
		case 's':
			if (cli_parse_u32("--size", optarg, 1000, 50000000, &rules))
				return 2;
			b.rules = rules;
			break;
		case 'C':
			if (cli_parse_u32("--ceiling", optarg, 1, 100000000, &b.ceiling))
				return 2;
			break;
		case 'c':
			if (cli_parse_u32("--cpu", optarg, 0, CPU_SETSIZE - 1, &cpu))
				return 2;
			break;
		case 'h':
			cli_usage(stdout, "[options]",
				  "Cost of one rule change in a full table against an empty one.",
				  options);
			return 0;
		default:
			return 2;
		}
	}
	if (bench_start(cpu))
		return 1;
	bench_frame_init(b.frame, FRAME_LEN, AF_INET); /* only the source is judged */

	for (int full = 0; full < 2; full++) {
		struct instance *in = &b.inst[b.ninst];

		ret = instance_open(in, full ? b.rules : 0, b.ceiling);
		if (ret) {
			cli_err("cannot load ipblock with %zu rules: %s.", full ? b.rules : 0,
				strerror(-ret));
			instance_close(in);
			goto out;
		}
		b.ninst++;
		if (full)
			fprintf(stderr, "bench_update: %zu rules: loaded in %.2f s\n", b.rules,
				in->load_s);
	}
	ret = pick_prefixes(&b);
	if (ret) {
		cli_err("no free prefix for the changes in the generated list.");
		goto out;
	}
	/* One untimed round: every process's first change sets up its mappings. */
	ret = round_run(&b, 0, false, false);
	for (uint32_t r = 0; r < b.rounds && !ret; r++)
		ret = round_run(&b, r, false, true);
	for (uint32_t r = 0; r < b.first_rounds && !ret; r++)
		ret = round_run(&b, r, true, true);
	if (!ret)
		report(&b);
out:
	for (size_t i = 0; i < b.ninst; i++)
		instance_close(&b.inst[i]);
	return ret ? 1 : 0;
}
