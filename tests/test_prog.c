// SPDX-License-Identifier: GPL-2.0
/*
 * The XDP program's verdicts, by BPF_PROG_RUN: crafted frames against a fixed
 * rule set, one table row per behaviour, plus counters and map semantics.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <linux/bpf.h>

#include "cidr.h"
#include "harness.h"
#include "hits.h"
#include "tables.h"
#include "trie.h"
#include "rulecache.h"

static struct harness h;

static void add_rule(const char *text, uint8_t action)
{
	struct rule r = { .action = action };
	char err[CIDR_ERRLEN];

	if (cidr_parse(text, &r.prefix, NULL, err, sizeof(err)))
		fail_msg("bad rule in test: %s", err);
	assert_int_equal(maps_rule_set(&h.maps, &r), 0);
}

static void parse_addr(int family, const char *text, uint8_t *out)
{
	struct cidr p;

	assert_int_equal(cidr_parse(text, &p, NULL, NULL, 0), 0);
	assert_int_equal(p.family, family);
	memcpy(out, p.addr, 16);
}

/*
 * The table's rule set: three levels of nesting in each family.
 *   198.18.0.0/16 allow > 198.18.1.0/24 deny > 198.18.1.7/32 allow
 *                       > 198.18.2.9/32 deny
 *   2001:db8::/34 allow > 2001:db8:1::/48 deny > 2001:db8:1::7/128 allow
 *                       > 2001:db8:2::9/128 deny
 */
static int setup_table(void **state)
{
	(void)state;
	if (harness_open(&h))
		return -1;
	add_rule("198.18.0.0/16", IPBLOCK_ACTION_ALLOW);
	add_rule("198.18.1.0/24", IPBLOCK_ACTION_DENY);
	add_rule("198.18.1.7", IPBLOCK_ACTION_ALLOW);
	add_rule("198.18.2.9", IPBLOCK_ACTION_DENY);
	add_rule("2001:db8::/34", IPBLOCK_ACTION_ALLOW);
	add_rule("2001:db8:1::/48", IPBLOCK_ACTION_DENY);
	add_rule("2001:db8:1::7", IPBLOCK_ACTION_ALLOW);
	add_rule("2001:db8:2::9", IPBLOCK_ACTION_DENY);
	return 0;
}

static int setup_empty(void **state)
{
	(void)state;
	return harness_open(&h) ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	harness_close(&h);
	return 0;
}

#define Q  FRAME_VLAN_8021Q
#define AD FRAME_VLAN_8021AD

struct row {
	const char *name;
	int family; /* AF_INET, AF_INET6, or 0 with ethertype */
	uint16_t ethertype;
	const char *src;
	uint16_t tags[3]; /* a third tag is written by hand */
	uint8_t ip_options;
	int cut; /* >0: keep only this many bytes; <0: drop this many from the end */
	int ihl; /* override the IPv4 IHL when non-zero */
	int expect;
};

/*
 * Frames shorter than an Ethernet header cannot be run: BPF_PROG_RUN on this
 * kernel refuses them (-EINVAL), even behind XDP metadata.  The shortest row
 * is a bare 14-byte Ethernet header; the same bounds check (DEFINE_PARSE)
 * guards every header, and the verifier rejects any read without it.
 */
static const struct row rows[] = {
	{ "v4 deny /24", AF_INET, 0, "198.18.1.1", {}, 0, 0, 0, XDP_DROP },
	{ "v4 allow /32 inside deny /24", AF_INET, 0, "198.18.1.7", {}, 0, 0, 0, XDP_PASS },
	{ "v4 deny /32 inside allow /16", AF_INET, 0, "198.18.2.9", {}, 0, 0, 0, XDP_DROP },
	{ "v4 neighbour of deny /32 keeps the /16 allow",
	  AF_INET,
	  0,
	  "198.18.2.10",
	  {},
	  0,
	  0,
	  0,
	  XDP_PASS },
	{ "v4 first address of deny /24", AF_INET, 0, "198.18.1.0", {}, 0, 0, 0, XDP_DROP },
	{ "v4 last address of deny /24", AF_INET, 0, "198.18.1.255", {}, 0, 0, 0, XDP_DROP },
	{ "v4 one past deny /24", AF_INET, 0, "198.18.2.0", {}, 0, 0, 0, XDP_PASS },
	{ "v4 no match", AF_INET, 0, "198.19.0.1", {}, 0, 0, 0, XDP_PASS },
	{ "v6 deny /48", AF_INET6, 0, "2001:db8:1::1", {}, 0, 0, 0, XDP_DROP },
	{ "v6 allow /128 inside deny /48", AF_INET6, 0, "2001:db8:1::7", {}, 0, 0, 0, XDP_PASS },
	{ "v6 deny /128 inside allow /34", AF_INET6, 0, "2001:db8:2::9", {}, 0, 0, 0, XDP_DROP },
	{ "v6 last address of deny /48",
	  AF_INET6,
	  0,
	  "2001:db8:1:ffff:ffff:ffff:ffff:ffff",
	  {},
	  0,
	  0,
	  0,
	  XDP_DROP },
	{ "v6 no match", AF_INET6, 0, "2001:db8:c000::1", {}, 0, 0, 0, XDP_PASS },
	{ "802.1Q v4 deny", AF_INET, 0, "198.18.1.1", { Q }, 0, 0, 0, XDP_DROP },
	{ "802.1Q v4 allow inside deny", AF_INET, 0, "198.18.1.7", { Q }, 0, 0, 0, XDP_PASS },
	{ "802.1ad then 802.1Q v4 deny", AF_INET, 0, "198.18.1.1", { AD, Q }, 0, 0, 0, XDP_DROP },
	{ "802.1Q then 802.1ad v4 deny", AF_INET, 0, "198.18.1.1", { Q, AD }, 0, 0, 0, XDP_DROP },
	{ "802.1ad alone v4 deny", AF_INET, 0, "198.18.1.1", { AD }, 0, 0, 0, XDP_DROP },
	{ "802.1Q v6 deny", AF_INET6, 0, "2001:db8:1::1", { Q }, 0, 0, 0, XDP_DROP },
	{ "QinQ v6 deny", AF_INET6, 0, "2001:db8:1::1", { AD, Q }, 0, 0, 0, XDP_DROP },
	{ "QinQ v6 no match", AF_INET6, 0, "2001:db8:c000::1", { AD, Q }, 0, 0, 0, XDP_PASS },
	{ "three tags pass unjudged", AF_INET, 0, "198.18.1.1", { AD, Q, Q }, 0, 0, 0, XDP_PASS },
	{ "Ethernet header only", AF_INET, 0, "198.18.1.1", {}, 0, 14, 0, XDP_PASS },
	{ "truncated VLAN tag", AF_INET, 0, "198.18.1.1", { Q }, 0, 16, 0, XDP_PASS },
	{ "truncated inner VLAN tag", AF_INET, 0, "198.18.1.1", { AD, Q }, 0, 20, 0, XDP_PASS },
	{ "truncated IPv4 header", AF_INET, 0, "198.18.1.1", {}, 0, 14 + 19, 0, XDP_PASS },
	{ "truncated IPv6 header", AF_INET6, 0, "2001:db8:1::1", {}, 0, 14 + 39, 0, XDP_PASS },
	{ "IPv4 header, nothing after", AF_INET, 0, "198.18.1.1", {}, 0, 14 + 20, 0, XDP_DROP },
	{ "IPv6 header, nothing after", AF_INET6, 0, "2001:db8:1::1", {}, 0, 14 + 40, 0, XDP_DROP },
	{ "IPv4 with options deny", AF_INET, 0, "198.18.1.1", {}, 8, 0, 0, XDP_DROP },
	{ "IPv4 with 40 bytes of options deny", AF_INET, 0, "198.18.1.1", {}, 40, 0, 0, XDP_DROP },
	{ "IPv4 options cut short", AF_INET, 0, "198.18.1.1", {}, 8, 14 + 24, 0, XDP_PASS },
	{ "IPv4 IHL below 5 is malformed", AF_INET, 0, "198.18.1.1", {}, 0, 0, 4, XDP_PASS },
	{ "ARP passes", 0, 0x0806, NULL, {}, 0, 0, 0, XDP_PASS },
	{ "LLDP passes", 0, 0x88cc, NULL, {}, 0, 0, 0, XDP_PASS },
	{ "MPLS passes", 0, 0x8847, NULL, {}, 0, 0, 0, XDP_PASS },
	{ "VLAN then ARP passes", 0, 0x0806, NULL, { Q }, 0, 0, 0, XDP_PASS },
};

/* Build a row's frame; returns its length. */
static size_t build_row(const struct row *r, uint8_t *buf, size_t buflen)
{
	struct frame_spec s = {
		.family = r->family,
		.ethertype = r->ethertype,
		.tags = { r->tags[0], r->tags[1] },
		.ip_options = r->ip_options,
		.payload = 18,
	};
	size_t len, l3;

	if (r->src)
		parse_addr(r->family, r->src, s.src);
	len = frame_build(&s, buf, buflen);
	assert_true(len > 0);
	l3 = 14 + 4 * (r->tags[0] != 0) + 4 * (r->tags[1] != 0);
	if (r->tags[2]) {
		/* Insert a third tag in front of the payload's ethertype. */
		uint16_t tpid = htons(r->tags[2]), tci = htons(300);

		memmove(buf + l3 - 2 + 4, buf + l3 - 2, len - (l3 - 2));
		memcpy(buf + l3 - 2, &tpid, 2);
		memcpy(buf + l3, &tci, 2);
		len += 4;
		l3 += 4;
	}
	if (r->ihl)
		buf[l3] = (uint8_t)(0x40 | r->ihl);
	if (r->cut > 0)
		len = (size_t)r->cut < len ? (size_t)r->cut : len;
	return len;
}

static void test_verdict_table(void **state)
{
	uint8_t buf[512];
	int failures = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		size_t len = build_row(&rows[i], buf, sizeof(buf));
		int verdict = -1;

		int ret = harness_run(&h, buf, len, &verdict);

		if (ret) {
			print_error("row '%s' (%zu bytes): BPF_PROG_RUN failed: %d\n", rows[i].name,
				    len, ret);
			failures++;
		} else if (verdict != rows[i].expect) {
			print_error("row '%s' (%zu bytes): expected %s, got %d\n", rows[i].name,
				    len, rows[i].expect == XDP_DROP ? "XDP_DROP" : "XDP_PASS",
				    verdict);
			failures++;
		}
	}
	assert_int_equal(failures, 0);
}

static void run_src(int family, const char *src, int expect)
{
	uint8_t addr[16];
	int verdict = -1;

	parse_addr(family, src, addr);
	assert_int_equal(harness_verdict_src(&h, family, addr, &verdict), 0);
	if (verdict != expect)
		fail_msg("%s: expected %d, got %d", src, expect, verdict);
}

static void test_no_rules_pass_everything(void **state)
{
	(void)state;
	run_src(AF_INET, "198.18.1.1", XDP_PASS);
	run_src(AF_INET6, "2001:db8::1", XDP_PASS);
}

static void test_zero_length_deny_with_allows_is_an_allowlist(void **state)
{
	(void)state;
	add_rule("0.0.0.0/0", IPBLOCK_ACTION_DENY);
	add_rule("198.18.5.0/24", IPBLOCK_ACTION_ALLOW);
	add_rule("::/0", IPBLOCK_ACTION_DENY);
	add_rule("2001:db8:5::/48", IPBLOCK_ACTION_ALLOW);
	run_src(AF_INET, "198.18.4.1", XDP_DROP);
	run_src(AF_INET, "198.19.255.255", XDP_DROP);
	run_src(AF_INET, "198.18.5.200", XDP_PASS);
	run_src(AF_INET6, "2001:db8:4::1", XDP_DROP);
	run_src(AF_INET6, "2001:db8:5::1", XDP_PASS);
}

static void test_updating_a_rule_flips_its_verdict(void **state)
{
	struct rule got;
	struct cidr p;

	(void)state;
	add_rule("198.18.9.0/24", IPBLOCK_ACTION_DENY);
	run_src(AF_INET, "198.18.9.9", XDP_DROP);
	add_rule("198.18.9.0/24", IPBLOCK_ACTION_ALLOW);
	run_src(AF_INET, "198.18.9.9", XDP_PASS);
	assert_int_equal(cidr_parse("198.18.9.0/24", &p, NULL, NULL, 0), 0);
	assert_int_equal(trie_get(&h.pins, 0, &p, &got), 0);
	assert_int_equal(got.action, IPBLOCK_ACTION_ALLOW);
	assert_int_equal(got.prefix.len, 24);
	assert_int_equal(maps_rule_delete(&h.maps, &p), 0);
	run_src(AF_INET, "198.18.9.9", XDP_PASS);
	assert_int_equal(maps_rule_delete(&h.maps, &p), -ENOENT);
}

static void test_exact_get_ignores_covering_rules(void **state)
{
	struct rule got;
	struct cidr p;

	(void)state;
	add_rule("198.18.0.0/16", IPBLOCK_ACTION_DENY);
	assert_int_equal(cidr_parse("198.18.7.0/24", &p, NULL, NULL, 0), 0);
	assert_int_equal(trie_get(&h.pins, 0, &p, &got), -ENOENT);
	assert_int_equal(maps_rule_delete(&h.maps, &p), -ENOENT);
	assert_int_equal(cidr_parse("198.18.0.0/16", &p, NULL, NULL, 0), 0);
	assert_int_equal(trie_get(&h.pins, 0, &p, &got), 0);
	assert_int_equal(got.action, IPBLOCK_ACTION_DENY);
}

static void test_counters_count_packets_and_bytes_per_verdict(void **state)
{
	struct ipblock_counter before[IPBLOCK_STAT_MAX], after[IPBLOCK_STAT_MAX];
	static const struct row drop = { "d", AF_INET, 0, "198.18.1.1", {}, 0, 0, 0, 0 };
	static const struct row allow = { "a", AF_INET6, 0, "2001:db8:1::7", {}, 0, 0, 0, 0 };
	static const struct row none = { "n", AF_INET, 0, "198.19.0.1", {}, 0, 0, 0, 0 };
	static const struct row arp = { "o", 0, 0x0806, NULL, {}, 0, 0, 0, 0 };
	const struct row *seq[] = { &drop, &drop, &drop, &allow, &allow, &none, &arp };
	uint64_t want_pkts[IPBLOCK_STAT_MAX] = {}, want_bytes[IPBLOCK_STAT_MAX] = {};
	uint8_t buf[512];
	int verdict;

	(void)state;
	assert_int_equal(pins_stats_read(&h.pins, before), 0);
	for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
		size_t len = build_row(seq[i], buf, sizeof(buf));
		int slot = seq[i] == &drop    ? IPBLOCK_STAT_DROP
			   : seq[i] == &allow ? IPBLOCK_STAT_PASS_ALLOW
			   : seq[i] == &none  ? IPBLOCK_STAT_PASS_NOMATCH
					      : IPBLOCK_STAT_PASS_OTHER;

		assert_int_equal(harness_run(&h, buf, len, &verdict), 0);
		want_pkts[slot]++;
		want_bytes[slot] += len;
	}
	assert_int_equal(pins_stats_read(&h.pins, after), 0);
	for (int s = 0; s < IPBLOCK_STAT_MAX; s++) {
		assert_int_equal(after[s].packets - before[s].packets, want_pkts[s]);
		assert_int_equal(after[s].bytes - before[s].bytes, want_bytes[s]);
	}
}

static void test_full_map_refuses_with_enospc(void **state)
{
	struct harness small;
	struct rule r = { .action = IPBLOCK_ACTION_DENY };
	char text[32];

	(void)state;
	assert_int_equal(harness_open_capacity(&small, 4), 0);
	for (int i = 0; i < 4; i++) {
		snprintf(text, sizeof(text), "198.18.%d.0/24", i);
		assert_int_equal(cidr_parse(text, &r.prefix, NULL, NULL, 0), 0);
		assert_int_equal(maps_rule_set(&small.maps, &r), 0);
	}
	assert_int_equal(cidr_parse("198.18.200.0/24", &r.prefix, NULL, NULL, 0), 0);
	assert_int_equal(maps_rule_set(&small.maps, &r), -ENOSPC);
	/* Updating an existing rule still works when full. */
	assert_int_equal(cidr_parse("198.18.0.0/24", &r.prefix, NULL, NULL, 0), 0);
	r.action = IPBLOCK_ACTION_ALLOW;
	assert_int_equal(maps_rule_set(&small.maps, &r), 0);
	harness_close(&small);
}

static void test_flush_removes_every_rule(void **state)
{
	size_t removed = 0, v4 = 9, v6 = 9;

	(void)state;
	assert_int_equal(trie_count(&h.pins, &v4, &v6), 0);
	assert_int_equal(v4, 4);
	assert_int_equal(v6, 4);
	assert_int_equal(maps_flush(&h.maps, &removed), 0);
	assert_int_equal(removed, 8);
	assert_int_equal(trie_count(&h.pins, &v4, &v6), 0);
	assert_int_equal(v4 + v6, 0);
	run_src(AF_INET, "198.18.1.1", XDP_PASS);
}

static void cache_add(struct rulecache *rc, const char *text, uint8_t action)
{
	struct rulecache_entry e = { .rule = { .action = action } };

	assert_int_equal(cidr_parse(text, &e.rule.prefix, NULL, NULL, 0), 0);
	assert_int_equal(rulecache_insert(rc, &e, NULL), 0);
}

/* Assert that one set of the maps holds exactly the rules of want (ids aside). */
static void assert_set_holds(const struct pins *p, int set, const struct rulecache *want)
{
	struct ruleset have = {}, w = {};
	struct ruleset_delta d;
	size_t diffs;

	assert_int_equal(trie_read_set(p, set, &have), 0);
	for (size_t i = 0; i < have.n; i++)
		have.r[i].id = 0;
	assert_int_equal(rulecache_rules(want, &w), 0);
	ruleset_delta(have.r, have.n, w.r, w.n, &d);
	diffs = d.gone + d.added + d.changed;
	if (diffs)
		fail_msg("set %c differs from the expected rules in %zu prefixes", set ? 'B' : 'A',
			 diffs);
	ruleset_free(&have);
	ruleset_free(&w);
}

/* maps_replace_rules() with the rules of a rule cache; *changes (may be NULL) counts them. */
static int replace_with_cache(struct maps *m, const struct rulecache *rc, size_t *changes)
{
	struct maps_replace_stats st = {};
	struct ruleset r = {};
	int ret = rulecache_rules(rc, &r);

	if (!ret)
		ret = maps_replace_rules(m, r.r, r.n, &st);
	if (changes)
		*changes = st.added + st.updated + st.deleted;
	ruleset_free(&r);
	return ret;
}

static void test_replace_judges_by_the_new_rules_and_the_old_set_keeps_no_other(void **state)
{
	struct rulecache *next = rulecache_new();
	struct ruleset old = {};
	size_t changes = 0;
	uint32_t active = 9, before = 9;

	(void)state;
	add_rule("198.18.1.0/24", IPBLOCK_ACTION_DENY);
	add_rule("198.18.2.0/24", IPBLOCK_ACTION_DENY);
	add_rule("2001:db8:1::/48", IPBLOCK_ACTION_DENY);
	/* Keep one, flip one, drop one family's rule, add two. */
	cache_add(next, "198.18.1.0/24", IPBLOCK_ACTION_DENY);
	cache_add(next, "198.18.2.0/24", IPBLOCK_ACTION_ALLOW);
	cache_add(next, "198.18.3.0/24", IPBLOCK_ACTION_DENY);
	cache_add(next, "2001:db8:2::/48", IPBLOCK_ACTION_DENY);
	assert_int_equal(pins_active_set(&h.pins, &before), 0);
	assert_int_equal(replace_with_cache(&h.maps, next, &changes), 0);
	assert_int_equal(changes, 4);
	/* The set the new rules were built in is the one judged from now on. */
	assert_int_equal(pins_active_set(&h.pins, &active), 0);
	assert_int_equal(active, !before);
	assert_set_holds(&h.pins, (int)active, next);
	/*
	 * The old set only lost what the new rules lack (the IPv6 /48); the
	 * prefixes both have stay there, 198.18.2.0/24 with its old action,
	 * until the next replace diffs against it.
	 */
	assert_int_equal(trie_read_set(&h.pins, (int)before, &old), 0);
	assert_int_equal(old.n, 2);
	assert_int_equal(old.r[0].action, IPBLOCK_ACTION_DENY);
	assert_int_equal(old.r[1].action, IPBLOCK_ACTION_DENY);
	assert_int_equal(old.r[1].prefix.len, 24);
	assert_int_equal(old.r[1].prefix.addr[2], 2);
	ruleset_free(&old);
	run_src(AF_INET, "198.18.1.1", XDP_DROP);
	run_src(AF_INET, "198.18.2.1", XDP_PASS);
	run_src(AF_INET, "198.18.3.1", XDP_DROP);
	run_src(AF_INET6, "2001:db8:1::1", XDP_PASS);
	run_src(AF_INET6, "2001:db8:2::1", XDP_DROP);
	rulecache_free(next);
}

static void test_replace_over_capacity_changes_nothing(void **state)
{
	struct harness small;
	struct rulecache *next = rulecache_new(), *before = rulecache_new();
	struct rule r = { .action = IPBLOCK_ACTION_DENY };
	char text[32];
	uint8_t addr[4] = { 198, 18, 0, 1 };
	int verdict;

	(void)state;
	assert_int_equal(harness_open_capacity(&small, 2), 0);
	assert_int_equal(cidr_parse("198.18.0.0/24", &r.prefix, NULL, NULL, 0), 0);
	assert_int_equal(maps_rule_set(&small.maps, &r), 0);
	cache_add(before, "198.18.0.0/24", IPBLOCK_ACTION_DENY);
	for (int i = 0; i < 3; i++) {
		snprintf(text, sizeof(text), "198.18.%d.0/24", 10 + i);
		cache_add(next, text, IPBLOCK_ACTION_DENY);
	}
	assert_int_equal(replace_with_cache(&small.maps, next, NULL), -ENOSPC);
	assert_set_holds(&small.pins, 0, before);
	assert_set_holds(&small.pins, 1, before);
	assert_int_equal(harness_verdict_src(&small, AF_INET, addr, &verdict), 0);
	assert_int_equal(verdict, XDP_DROP);
	rulecache_free(next);
	rulecache_free(before);
	harness_close(&small);
}

/* The id the active set's trie gives prefix text. */
static uint32_t id_of(const char *text)
{
	uint32_t active = 0;
	struct rule got;
	struct cidr p;

	assert_int_equal(cidr_parse(text, &p, NULL, NULL, 0), 0);
	assert_int_equal(pins_active_set(&h.pins, &active), 0);
	assert_int_equal(trie_get(&h.pins, (int)active, &p, &got), 0);
	assert_true(got.id != 0);
	return got.id;
}

/* The per-rule counters of prefix text, summed over the CPUs. */
static struct hits_total hits_for(const char *text)
{
	struct hits_table t = {};
	struct hits_total r;
	int family = strchr(text, ':') ? AF_INET6 : AF_INET;

	assert_int_equal(hits_read(&h.pins, family, &t), 0);
	r = hits_of(&t, id_of(text));
	hits_table_free(&t);
	return r;
}

/* Every per-rule counter of both families added up. */
static uint64_t all_hits(void)
{
	uint64_t n = 0;

	for (int f = 0; f < 2; f++) {
		struct hits_table t = {};

		assert_int_equal(hits_read(&h.pins, f ? AF_INET6 : AF_INET, &t), 0);
		for (uint32_t i = 0; i < t.n; i++)
			n += t.c[i].packets;
		hits_table_free(&t);
	}
	return n;
}

/* Send count frames from src; their length goes to *len. */
static void send_from(int family, const char *src, int count, int expect, size_t *len)
{
	const struct row r = { "s", family, 0, src, {}, 0, 0, 0, expect };
	uint8_t buf[512];
	int verdict;

	*len = build_row(&r, buf, sizeof(buf));
	for (int i = 0; i < count; i++) {
		assert_int_equal(harness_run(&h, buf, *len, &verdict), 0);
		assert_int_equal(verdict, expect);
	}
}

static uint64_t mono_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000 + (uint64_t)t.tv_nsec;
}

static void test_a_hit_counts_the_longest_matching_rule_only_and_a_miss_nothing(void **state)
{
	size_t l4 = 0, l6 = 0, l;
	uint64_t before, after;
	struct hits_total x;

	(void)state;
	add_rule("198.18.0.0/16", IPBLOCK_ACTION_DENY);
	add_rule("198.18.1.0/24", IPBLOCK_ACTION_DENY);
	add_rule("198.18.1.7", IPBLOCK_ACTION_ALLOW);
	add_rule("198.18.1.8/30", IPBLOCK_ACTION_DENY);
	add_rule("2001:db8::/32", IPBLOCK_ACTION_DENY);
	add_rule("2001:db8:1::/48", IPBLOCK_ACTION_DENY);
	add_rule("2001:db8:1::9", IPBLOCK_ACTION_ALLOW);
	/* Misses first: no rule's counter moves. */
	send_from(AF_INET, "198.19.0.1", 4, XDP_PASS, &l);
	send_from(AF_INET6, "2001:db9::1", 3, XDP_PASS, &l);
	assert_int_equal(all_hits(), 0);

	before = mono_ns();
	send_from(AF_INET, "198.18.1.1", 3, XDP_DROP, &l4);
	send_from(AF_INET, "198.18.1.7", 2, XDP_PASS, &l);
	send_from(AF_INET, "198.18.1.9", 1, XDP_DROP, &l);
	send_from(AF_INET6, "2001:db8:1::5", 2, XDP_DROP, &l6);
	send_from(AF_INET6, "2001:db8:1::9", 1, XDP_PASS, &l);
	after = mono_ns();

	x = hits_for("198.18.1.0/24");
	assert_int_equal(x.packets, 3);
	assert_int_equal(x.bytes, 3 * l4);
	/* The hit's time, to the tick it fell in (at most 10 ms at HZ 100; 1 s of slack). */
	assert_true(x.last_ns <= after);
	assert_true(x.last_ns + 1000000000ull >= before);
	assert_int_equal(hits_for("198.18.1.7/32").packets, 2);
	assert_int_equal(hits_for("198.18.1.8/30").packets, 1);
	/* The covering shorter rule judged none of them. */
	x = hits_for("198.18.0.0/16");
	assert_int_equal(x.packets, 0);
	assert_int_equal(x.bytes, 0);
	assert_int_equal(x.last_ns, 0);
	x = hits_for("2001:db8:1::/48");
	assert_int_equal(x.packets, 2);
	assert_int_equal(x.bytes, 2 * l6);
	assert_int_equal(hits_for("2001:db8:1::9/128").packets, 1);
	assert_int_equal(hits_for("2001:db8::/32").packets, 0);
	/* Nothing else counted: the misses above and below count nowhere. */
	send_from(AF_INET, "198.19.0.2", 5, XDP_PASS, &l);
	assert_int_equal(all_hits(), 3 + 2 + 1 + 2 + 1);
}

static void test_counters_follow_a_rule_across_replace_and_a_new_rule_starts_at_zero(void **state)
{
	struct rulecache *next = rulecache_new();
	struct tables_family *tf;
	struct ruleset r = {};
	struct cidr p;
	uint32_t id;
	size_t l;

	(void)state;
	add_rule("198.18.1.0/24", IPBLOCK_ACTION_DENY);
	send_from(AF_INET, "198.18.1.1", 2, XDP_DROP, &l);
	id = id_of("198.18.1.0/24");
	/* A replace keeps the prefix's id, and with it the counters, also when the action flips. */
	cache_add(next, "198.18.1.0/24", IPBLOCK_ACTION_ALLOW);
	cache_add(next, "198.18.2.0/24", IPBLOCK_ACTION_DENY);
	assert_int_equal(rulecache_rules(next, &r), 0);
	assert_int_equal(maps_replace_rules(&h.maps, r.r, r.n, NULL), 0);
	ruleset_free(&r);
	assert_int_equal(id_of("198.18.1.0/24"), id);
	assert_int_equal(hits_for("198.18.1.0/24").packets, 2);
	send_from(AF_INET, "198.18.1.1", 1, XDP_PASS, &l);
	assert_int_equal(hits_for("198.18.1.0/24").packets, 3);
	assert_int_equal(hits_for("198.18.2.0/24").packets, 0);

	/* Deleted, its id handed to another prefix: that rule counts from zero. */
	assert_int_equal(cidr_parse("198.18.1.0/24", &p, NULL, NULL, 0), 0);
	assert_int_equal(maps_rule_delete(&h.maps, &p), 0);
	tf = tables_on(&h.maps.tables, AF_INET);
	assert_non_null(tf);
	tf->ids.rules[0].reserved = id - 1; /* the round-robin's next id is id */
	add_rule("198.18.3.0/24", IPBLOCK_ACTION_DENY);
	assert_int_equal(id_of("198.18.3.0/24"), id);
	assert_int_equal(hits_for("198.18.3.0/24").packets, 0);
	send_from(AF_INET, "198.18.3.3", 1, XDP_DROP, &l);
	assert_int_equal(hits_for("198.18.3.0/24").packets, 1);
	rulecache_free(next);
}

int main(void)
{
	const struct CMUnitTest table[] = {
		cmocka_unit_test(test_verdict_table),
		cmocka_unit_test(test_counters_count_packets_and_bytes_per_verdict),
		cmocka_unit_test(test_flush_removes_every_rule),
	};
	const struct CMUnitTest fresh[] = {
		cmocka_unit_test_setup_teardown(test_no_rules_pass_everything, setup_empty,
						teardown),
		cmocka_unit_test_setup_teardown(test_zero_length_deny_with_allows_is_an_allowlist,
						setup_empty, teardown),
		cmocka_unit_test_setup_teardown(test_updating_a_rule_flips_its_verdict, setup_empty,
						teardown),
		cmocka_unit_test_setup_teardown(test_exact_get_ignores_covering_rules, setup_empty,
						teardown),
		cmocka_unit_test(test_full_map_refuses_with_enospc),
		cmocka_unit_test_setup_teardown(
			test_replace_judges_by_the_new_rules_and_the_old_set_keeps_no_other,
			setup_empty, teardown),
		cmocka_unit_test(test_replace_over_capacity_changes_nothing),
		cmocka_unit_test_setup_teardown(
			test_a_hit_counts_the_longest_matching_rule_only_and_a_miss_nothing,
			setup_empty, teardown),
		cmocka_unit_test_setup_teardown(
			test_counters_follow_a_rule_across_replace_and_a_new_rule_starts_at_zero,
			setup_empty, teardown),
	};
	int failed = cmocka_run_group_tests_name("verdict table", table, setup_table, teardown);

	failed += cmocka_run_group_tests_name("map semantics", fresh, NULL, NULL);
	return failed ? 1 : 0;
}
