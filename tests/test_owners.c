// SPDX-License-Identifier: GPL-2.0
/*
 * Rule sources against the real XDP program (BPF_PROG_RUN on private
 * maps): several sources on one prefix, an allow from any source beating a
 * deny, the last release removing the rule, a replace or flush of one
 * source leaving the others, expiry of due claims only, refresh of a
 * deadline, and the repair of a change a writer left half-done.  Every
 * verdict is asked of the program, every claim of owners_map.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <bpf/bpf.h>
#include <linux/bpf.h>

#include "cidr.h"
#include "harness.h"
#include "owners.h"
#include "trie.h"

static struct harness h;
static struct owners o;

/* A fixed clock: deadlines are relative to it. */
#define NOW 2000000000ull

static int setup(void **state)
{
	(void)state;
	if (harness_open_capacity(&h, 4096))
		return -1;
	return owners_begin(&o, &h.maps, NOW, true, NULL) ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	harness_close(&h);
	return 0;
}

static struct cidr pfx(const char *s)
{
	struct cidr c;

	assert_int_equal(cidr_parse(s, &c, NULL, NULL, 0), 0);
	return c;
}

static struct rule rule(const char *s, uint8_t action)
{
	return (struct rule){ .prefix = pfx(s), .action = action };
}

static int src(const char *name)
{
	int s = owners_source_get(&o, name);

	assert_true(s >= 0);
	return s;
}

/* The program's verdict for a packet from addr. */
static int verdict(const char *addr)
{
	struct cidr c = pfx(addr);
	int v = -1;

	assert_int_equal(harness_verdict_src(&h, c.family, c.addr, &v), 0);
	return v;
}

static void claim(int s, const char *p, uint8_t action, uint64_t deadline)
{
	struct rule r = rule(p, action);

	assert_int_equal(owners_claim(&o, (uint16_t)s, &r, deadline, NULL, NULL, NULL), 0);
}

static void release(int s, const char *p)
{
	struct cidr c = pfx(p);

	assert_int_equal(owners_release(&o, (uint16_t)s, &c, NULL, NULL), 0);
}

/* The trie's action for exactly p, 0 when it has no rule. */
static uint8_t trie_action(const char *p)
{
	struct cidr c = pfx(p);
	struct rule r;

	return trie_get(h.maps.pins, 0, &c, &r) ? 0 : r.action;
}

static size_t claims_of(int s)
{
	struct owner_claims cl = {};
	size_t n;

	assert_int_equal(owners_read(&o, NULL, s, &cl), 0);
	n = cl.n;
	owners_claims_free(&cl);
	return n;
}

static void test_allow_from_any_claim_resolves_to_allow(void **state)
{
	struct owner_claim c[3] = {
		{ .source = 0, .action = IPBLOCK_ACTION_DENY },
		{ .source = 1, .action = IPBLOCK_ACTION_ALLOW },
		{ .source = 2, .action = IPBLOCK_ACTION_DENY },
	};

	(void)state;
	assert_int_equal(owners_resolve(c, 0), 0);
	assert_int_equal(owners_resolve(c, 1), IPBLOCK_ACTION_DENY);
	assert_int_equal(owners_resolve(c, 2), IPBLOCK_ACTION_ALLOW);
	assert_int_equal(owners_resolve(&c[1], 2), IPBLOCK_ACTION_ALLOW);
	assert_int_equal(owners_resolve(&c[2], 1), IPBLOCK_ACTION_DENY);
}

static void test_sources_are_registered_once_and_names_checked(void **state)
{
	int a, b;

	(void)state;
	a = src("fail2ban-sshd");
	b = src("crowdsec");
	assert_int_not_equal(a, b);
	assert_int_equal(src("fail2ban-sshd"), a);
	assert_int_equal(owners_source_find(&o, "crowdsec"), b);
	assert_int_equal(owners_source_find(&o, "nobody"), -ENOENT);
	assert_int_equal(owners_source_get(&o, "bad name"), -EINVAL);
	assert_int_equal(owners_source_get(&o, ""), -EINVAL);

	/* The names are pinned: a second handle sees them. */
	struct owners again;

	assert_int_equal(owners_begin(&again, &h.maps, NOW, true, NULL), 0);
	assert_int_equal(owners_source_find(&again, "fail2ban-sshd"), a);

	char name[16];
	int n = 0;

	for (;; n++) {
		snprintf(name, sizeof(name), "s%d", n);
		if (owners_source_get(&o, name) < 0)
			break;
	}
	assert_int_equal(owners_source_get(&o, "one-too-many"), -ENOSPC);
	/* The default's slot is taken from the start. */
	assert_int_equal(owners_source_find(&o, IPBLOCK_SOURCE_DEFAULT), OWNERS_DEFAULT);
	assert_int_equal(n + 3, IPBLOCK_SOURCES_MAX);
}

static void test_two_sources_hold_a_ban_until_the_last_releases_it(void **state)
{
	int a = src("fail2ban-sshd"), b = src("fail2ban-web");

	(void)state;
	assert_int_equal(verdict("198.18.0.7"), XDP_PASS);
	claim(a, "198.18.0.7", IPBLOCK_ACTION_DENY, 0);
	claim(b, "198.18.0.7", IPBLOCK_ACTION_DENY, 0);
	assert_int_equal(verdict("198.18.0.7"), XDP_DROP);
	release(a, "198.18.0.7");
	assert_int_equal(verdict("198.18.0.7"), XDP_DROP);
	assert_int_equal(trie_action("198.18.0.7"), IPBLOCK_ACTION_DENY);
	release(b, "198.18.0.7");
	assert_int_equal(verdict("198.18.0.7"), XDP_PASS);
	assert_int_equal(trie_action("198.18.0.7"), 0);
	assert_int_equal(claims_of(-1), 0);
}

static void test_an_admins_allow_survives_a_jails_ban_and_unban(void **state)
{
	int st = src(IPBLOCK_SOURCE_DEFAULT), jail = src("fail2ban-sshd");
	uint8_t before = 0, after = 0;
	struct rule ban = rule("2001:db8::7", IPBLOCK_ACTION_DENY);

	(void)state;
	claim(st, "2001:db8::7", IPBLOCK_ACTION_ALLOW, 0);
	claim(jail, "2001:db8::/32", IPBLOCK_ACTION_DENY, 0);
	assert_int_equal(owners_claim(&o, (uint16_t)jail, &ban, 0, NULL, &before, &after), 0);
	assert_int_equal(before, IPBLOCK_ACTION_ALLOW);
	assert_int_equal(after, IPBLOCK_ACTION_ALLOW);
	assert_int_equal(verdict("2001:db8::7"), XDP_PASS);
	/* The longest prefix still decides between prefixes. */
	assert_int_equal(verdict("2001:db8::8"), XDP_DROP);
	release(jail, "2001:db8::7");
	assert_int_equal(trie_action("2001:db8::7"), IPBLOCK_ACTION_ALLOW);
	assert_int_equal(verdict("2001:db8::7"), XDP_PASS);

	/* The other order: a ban first, then the allow beats it, then goes. */
	claim(jail, "198.18.1.1", IPBLOCK_ACTION_DENY, 0);
	assert_int_equal(verdict("198.18.1.1"), XDP_DROP);
	claim(st, "198.18.1.1", IPBLOCK_ACTION_ALLOW, 0);
	assert_int_equal(verdict("198.18.1.1"), XDP_PASS);
	release(st, "198.18.1.1");
	assert_int_equal(verdict("198.18.1.1"), XDP_DROP);
}

static void test_release_of_what_a_source_does_not_hold_is_enoent(void **state)
{
	int a = src("crowdsec"), b = src("fail2ban-sshd");
	struct cidr c = pfx("198.18.2.0/24");

	(void)state;
	assert_int_equal(owners_release(&o, (uint16_t)a, &c, NULL, NULL), -ENOENT);
	claim(b, "198.18.2.0/24", IPBLOCK_ACTION_DENY, 0);
	assert_int_equal(owners_release(&o, (uint16_t)a, &c, NULL, NULL), -ENOENT);
	assert_int_equal(verdict("198.18.2.9"), XDP_DROP);
	/* A /24 decision is not released by a /25 or a /32 inside it. */
	c = pfx("198.18.2.0/25");
	assert_int_equal(owners_release(&o, (uint16_t)b, &c, NULL, NULL), -ENOENT);
	assert_int_equal(verdict("198.18.2.9"), XDP_DROP);
}

static void test_replace_of_one_source_leaves_the_others(void **state)
{
	int list = src("firehol_level1"), jail = src("fail2ban-sshd");
	struct rule first[2] = { rule("198.18.3.0/24", IPBLOCK_ACTION_DENY),
				 rule("198.18.4.0/24", IPBLOCK_ACTION_DENY) };
	struct rule second[2] = { rule("198.18.4.0/24", IPBLOCK_ACTION_DENY),
				  rule("198.18.5.0/24", IPBLOCK_ACTION_DENY) };
	struct owners_stats st;

	(void)state;
	assert_int_equal(owners_replace(&o, (uint16_t)list, first, NULL, 2, 0, false, &st), 0);
	assert_int_equal(st.added, 2);
	claim(jail, "198.18.3.0/24", IPBLOCK_ACTION_DENY, 0);
	claim(jail, "198.18.6.6", IPBLOCK_ACTION_DENY, 0);
	assert_int_equal(owners_replace(&o, (uint16_t)list, second, NULL, 2, 0, false, &st), 0);
	assert_int_equal(st.added, 1);
	assert_int_equal(st.released, 1);
	assert_int_equal(st.rules_added, 1);
	assert_int_equal(st.rules_deleted, 0); /* 198.18.3.0/24 is still the jail's */
	assert_int_equal(verdict("198.18.3.1"), XDP_DROP);
	assert_int_equal(verdict("198.18.4.1"), XDP_DROP);
	assert_int_equal(verdict("198.18.5.1"), XDP_DROP);
	assert_int_equal(verdict("198.18.6.6"), XDP_DROP);
	assert_int_equal(claims_of(list), 2);
	assert_int_equal(claims_of(jail), 2);

	/* An import (merge) adds to the list's claims and keeps the rest. */
	assert_int_equal(owners_replace(&o, (uint16_t)list, first, NULL, 2, 0, true, &st), 0);
	assert_int_equal(claims_of(list), 3);

	/* Flushing the list leaves the jail's claims and rules. */
	size_t released = 0;

	assert_int_equal(owners_flush(&o, list, &released), 0);
	assert_int_equal(released, 3);
	assert_int_equal(claims_of(jail), 2);
	assert_int_equal(verdict("198.18.3.1"), XDP_DROP);
	assert_int_equal(verdict("198.18.4.1"), XDP_PASS);
	assert_int_equal(verdict("198.18.5.1"), XDP_PASS);
	assert_int_equal(owners_source_find(&o, "firehol_level1"), -ENOENT);
}

static void test_expiry_removes_due_claims_only(void **state)
{
	int a = src("crowdsec"), b = src("fail2ban-sshd");
	struct owners again;
	size_t expired = 0;

	(void)state;
	claim(a, "198.18.7.1", IPBLOCK_ACTION_DENY, NOW + 10);
	claim(a, "198.18.7.2", IPBLOCK_ACTION_DENY, NOW + 100);
	claim(b, "198.18.7.1", IPBLOCK_ACTION_DENY, NOW + 50);
	claim(b, "198.18.7.3", IPBLOCK_ACTION_DENY, 0);
	assert_int_equal(owners_begin(&again, &h.maps, NOW + 9, true, &expired), 0);
	assert_int_equal(expired, 0);
	/* Read-only: counts what is due, changes nothing. */
	assert_int_equal(owners_begin(&again, &h.maps, NOW + 10, false, &expired), 0);
	assert_int_equal(expired, 1);
	assert_int_equal(claims_of(-1), 4);
	/* Due at the deadline itself; the other source still holds .1. */
	assert_int_equal(owners_begin(&again, &h.maps, NOW + 10, true, &expired), 0);
	assert_int_equal(expired, 1);
	assert_int_equal(verdict("198.18.7.1"), XDP_DROP);
	assert_int_equal(owners_begin(&again, &h.maps, NOW + 60, true, &expired), 0);
	assert_int_equal(expired, 1);
	assert_int_equal(verdict("198.18.7.1"), XDP_PASS);
	assert_int_equal(verdict("198.18.7.2"), XDP_DROP);
	assert_int_equal(owners_expire(&again, NOW + 100000, &expired), 0);
	assert_int_equal(expired, 1);
	assert_int_equal(verdict("198.18.7.2"), XDP_PASS);
	assert_int_equal(verdict("198.18.7.3"), XDP_DROP);
	assert_int_equal(claims_of(-1), 1);
}

static void test_each_rule_of_a_list_keeps_its_own_deadline(void **state)
{
	int list = src("crowdsec");
	struct rule rules[3] = { rule("198.18.14.1", IPBLOCK_ACTION_DENY),
				 rule("198.18.14.2", IPBLOCK_ACTION_DENY),
				 rule("198.18.14.3", IPBLOCK_ACTION_DENY) };
	uint64_t deadlines[3] = { NOW + 10, 0, NOW + 30 };
	size_t expired = 0;

	(void)state;
	/* A line without its own deadline takes the list's (-t), here NOW + 20. */
	assert_int_equal(
		owners_replace(&o, (uint16_t)list, rules, deadlines, 3, NOW + 20, false, NULL), 0);
	assert_int_equal(owners_expire(&o, NOW + 10, &expired), 0);
	assert_int_equal(expired, 1);
	assert_int_equal(verdict("198.18.14.1"), XDP_PASS);
	assert_int_equal(verdict("198.18.14.2"), XDP_DROP);
	assert_int_equal(owners_expire(&o, NOW + 20, &expired), 0);
	assert_int_equal(expired, 1);
	assert_int_equal(verdict("198.18.14.2"), XDP_PASS);
	assert_int_equal(verdict("198.18.14.3"), XDP_DROP);
	assert_int_equal(owners_expire(&o, NOW + 30, &expired), 0);
	assert_int_equal(expired, 1);
	assert_int_equal(verdict("198.18.14.3"), XDP_PASS);
}

static void test_claiming_again_refreshes_the_deadline(void **state)
{
	int a = src("crowdsec");
	struct rule r = rule("198.18.8.8", IPBLOCK_ACTION_DENY);
	enum owners_outcome what;
	struct owner_claims cl = {};
	struct owners again;
	size_t expired = 0;

	(void)state;
	claim(a, "198.18.8.8", IPBLOCK_ACTION_DENY, NOW + 10);
	assert_int_equal(owners_claim(&o, (uint16_t)a, &r, NOW + 1000, &what, NULL, NULL), 0);
	assert_int_equal(what, OWNERS_REFRESHED);
	assert_int_equal(owners_read(&o, NULL, a, &cl), 0);
	assert_int_equal(cl.n, 1);
	assert_int_equal(cl.c[0].deadline, NOW + 1000);
	owners_claims_free(&cl);
	assert_int_equal(owners_begin(&again, &h.maps, NOW + 20, true, &expired), 0);
	assert_int_equal(expired, 0);
	assert_int_equal(verdict("198.18.8.8"), XDP_DROP);
	/* Claiming it for good takes the deadline away. */
	assert_int_equal(owners_claim(&o, (uint16_t)a, &r, 0, &what, NULL, NULL), 0);
	assert_int_equal(owners_begin(&again, &h.maps, NOW + 5000, true, &expired), 0);
	assert_int_equal(expired, 0);
	assert_int_equal(verdict("198.18.8.8"), XDP_DROP);
	/* The other action is a change, not a refresh. */
	r.action = IPBLOCK_ACTION_ALLOW;
	assert_int_equal(owners_claim(&o, (uint16_t)a, &r, 0, &what, NULL, NULL), 0);
	assert_int_equal(what, OWNERS_CHANGED);
	assert_int_equal(verdict("198.18.8.8"), XDP_PASS);
}

static void test_a_half_done_change_is_repaired_from_the_claims(void **state)
{
	int a = src("crowdsec");
	struct rule stray = rule("198.18.9.9", IPBLOCK_ACTION_DENY);
	struct ipblock_config cfg;
	struct owners again;

	(void)state;
	claim(a, "198.18.9.0/24", IPBLOCK_ACTION_DENY, 0);
	/*
	 * What a writer killed between storing a claim and the tries leaves
	 * (the /24's rule missing), beside a rule no stored claim names.
	 */
	assert_int_equal(maps_rule_set(&h.maps, &stray), 0);
	assert_int_equal(maps_rule_delete(&h.maps, &(struct cidr){ .family = AF_INET,
								   .len = 24,
								   .addr = { 198, 18, 9 } }),
			 0);
	assert_int_equal(pins_config_read(h.maps.pins, &cfg), 0);
	cfg.flags |= IPBLOCK_CONFIG_OWNERS_DIRTY;
	assert_int_equal(pins_config_write(h.maps.pins, &cfg), 0);
	assert_int_equal(verdict("198.18.9.1"), XDP_PASS);

	/* A reader leaves it; the next writer repairs it. */
	assert_int_equal(owners_begin(&again, &h.maps, NOW, false, NULL), 0);
	assert_int_equal(verdict("198.18.9.1"), XDP_PASS);
	assert_int_equal(owners_begin(&again, &h.maps, NOW, true, NULL), 0);
	assert_int_equal(verdict("198.18.9.1"), XDP_DROP);
	/* A rule no stored claim names is the default's: the repair keeps it. */
	assert_int_equal(trie_action("198.18.9.9"), IPBLOCK_ACTION_DENY);
	assert_int_equal(pins_config_read(h.maps.pins, &cfg), 0);
	assert_int_equal(cfg.flags & IPBLOCK_CONFIG_OWNERS_DIRTY, 0);
}

/* How many claims owners_map stores. */
static size_t stored(void)
{
	int fd = h.maps.pins->fd[IPBLOCK_MAP_OWNERS];
	struct ipblock_owner_key k, next;
	size_t n = 0;

	for (void *at = NULL; !bpf_map_get_next_key(fd, at, &next); at = &k) {
		k = next;
		n++;
	}
	return n;
}

static void test_the_default_sources_lasting_claims_are_not_stored(void **state)
{
	int jail = src("fail2ban-sshd");
	struct rule list[3] = { rule("198.18.1.0/24", IPBLOCK_ACTION_DENY),
				rule("198.18.2.0/24", IPBLOCK_ACTION_DENY),
				rule("2001:db8::/48", IPBLOCK_ACTION_DENY) };
	struct owner_claims cl = {};

	(void)state;
	assert_int_equal(owners_replace(&o, OWNERS_DEFAULT, list, NULL, 3, 0, false, NULL), 0);
	assert_int_equal(stored(), 0);
	assert_int_equal(owners_read(&o, NULL, -1, &cl), 0);
	assert_int_equal(cl.n, 3);
	for (size_t i = 0; i < cl.n; i++) {
		assert_int_equal(cl.c[i].source, OWNERS_DEFAULT);
		assert_false(cl.c[i].stored);
	}

	/* A jail's claim on one of them stores both, and the default's outlives it. */
	claim(jail, "198.18.1.0/24", IPBLOCK_ACTION_DENY, NOW + 60);
	assert_int_equal(stored(), 2);
	release(jail, "198.18.1.0/24");
	assert_int_equal(stored(), 1);
	assert_int_equal(verdict("198.18.1.7"), XDP_DROP);
	release(OWNERS_DEFAULT, "198.18.1.0/24");
	assert_int_equal(stored(), 0);
	assert_int_equal(verdict("198.18.1.7"), XDP_PASS);

	/* A deadline is stored even for the default; re-adding the same rule changes nothing. */
	claim(OWNERS_DEFAULT, "198.18.3.0/24", IPBLOCK_ACTION_DENY, NOW + 60);
	assert_int_equal(stored(), 1);
	claim(OWNERS_DEFAULT, "198.18.2.0/24", IPBLOCK_ACTION_DENY, 0);
	assert_int_equal(stored(), 1);

	/* Replacing the default's rules keeps a jail's prefix, now the jail's alone. */
	claim(jail, "198.18.2.0/24", IPBLOCK_ACTION_DENY, 0);
	assert_int_equal(owners_replace(&o, OWNERS_DEFAULT, NULL, NULL, 0, 0, false, NULL), 0);
	assert_int_equal(verdict("198.18.2.9"), XDP_DROP);
	assert_int_equal(verdict("198.18.3.9"), XDP_PASS);
	assert_int_equal(claims_of(OWNERS_DEFAULT), 0);
	assert_int_equal(claims_of(jail), 1);
	assert_int_equal(stored(), 1);
	owners_claims_free(&cl);
}

static struct owners_change change(int s, const char *p, uint8_t action, uint64_t deadline,
				   bool release)
{
	return (struct owners_change){ .claim = { .prefix = pfx(p),
						  .source = (uint16_t)s,
						  .action = action,
						  .deadline = deadline },
				       .release = release };
}

static void test_a_batch_applies_in_order_and_counts_releases_not_held(void **state)
{
	int jail = src("fail2ban-sshd"), cs = src("crowdsec");
	struct owners_change c[] = {
		change(jail, "198.18.1.1", IPBLOCK_ACTION_DENY, 0, false),
		change(cs, "198.18.1.1", IPBLOCK_ACTION_DENY, 0, false),
		change(jail, "198.18.2.2", 0, 0, true), /* not held */
		change(OWNERS_DEFAULT, "198.18.3.0/24", IPBLOCK_ACTION_ALLOW, 0, false),
		change(jail, "198.18.3.0/24", IPBLOCK_ACTION_DENY, 0, false),
		change(jail, "198.18.1.1", 0, 0, true),
		/* The later line wins: the jail holds 198.18.1.1 again, for a minute. */
		change(jail, "198.18.1.1", IPBLOCK_ACTION_DENY, NOW + 60, false),
		change(cs, "2001:db8::/64", IPBLOCK_ACTION_DENY, 0, false),
	};
	struct owner_claims cl = {};
	struct owners_stats st = {};
	size_t absent = 0;

	(void)state;
	assert_int_equal(owners_apply(&o, c, sizeof(c) / sizeof(c[0]), &st, &absent), 0);
	assert_int_equal(absent, 1);
	assert_int_equal(st.rules_added, 3);
	assert_int_equal(verdict("198.18.1.1"), XDP_DROP);
	assert_int_equal(verdict("198.18.3.3"), XDP_PASS); /* the admin's allow beats the jail */
	assert_int_equal(verdict("2001:db8::9"), XDP_DROP);
	assert_int_equal(owners_read_prefix(&o, &c[0].claim.prefix, &cl), 0);
	assert_int_equal(cl.n, 2);
	assert_int_equal(cl.c[0].source, jail);
	assert_int_equal(cl.c[0].deadline, NOW + 60);
	assert_int_equal(cl.c[1].source, cs);

	/* Expiry takes the jail's claim; crowdsec still holds the address. */
	assert_int_equal(owners_expire(&o, NOW + 60, NULL), 0);
	assert_int_equal(verdict("198.18.1.1"), XDP_DROP);
	assert_int_equal(claims_of(jail), 1);

	/* The same batch again changes no verdict. */
	assert_int_equal(owners_apply(&o, c, sizeof(c) / sizeof(c[0]), &st, &absent), 0);
	assert_int_equal(st.rules_added + st.rules_updated + st.rules_deleted, 0);
	owners_claims_free(&cl);
}

static void test_a_batch_too_big_for_the_tries_changes_nothing(void **state)
{
	int jail = src("fail2ban-sshd");
	size_t n = 4097; /* tries of 4096 a family */
	struct owners_change *c = calloc(n, sizeof(*c));
	struct ipblock_config cfg;

	(void)state;
	assert_non_null(c);
	claim(jail, "198.18.15.0/24", IPBLOCK_ACTION_DENY, 0);
	for (size_t i = 0; i < n; i++)
		c[i] = (struct owners_change){
			.claim = { .prefix = { .family = AF_INET,
					       .len = 32,
					       .addr = { 10, 1, (uint8_t)(i >> 8), (uint8_t)i } },
				   .source = (uint16_t)jail,
				   .action = IPBLOCK_ACTION_DENY },
		};
	assert_int_equal(owners_apply(&o, c, n, NULL, NULL), -ENOSPC);
	free(c);
	assert_int_equal(claims_of(-1), 1);
	assert_int_equal(stored(), 1);
	assert_int_equal(verdict("198.18.15.1"), XDP_DROP);
	assert_int_equal(verdict("10.1.0.1"), XDP_PASS);
	assert_int_equal(pins_config_read(h.maps.pins, &cfg), 0);
	assert_int_equal(cfg.flags & IPBLOCK_CONFIG_OWNERS_DIRTY, 0);
}

/* A few due claims go one rule at a time, many in one switch: the same verdicts either way. */
static void test_few_or_many_due_claims_all_expire(void **state)
{
	int jail = src("fail2ban-sshd");
	size_t sizes[] = { 3, 100 }, expired = 0;

	(void)state;
	claim(jail, "198.18.200.1", IPBLOCK_ACTION_DENY, NOW + 3600);
	for (size_t k = 0; k < 2; k++) {
		for (size_t i = 0; i < sizes[k]; i++) {
			char p[32];

			snprintf(p, sizeof(p), "198.18.%zu.%zu", 100 + k, i);
			claim(jail, p, IPBLOCK_ACTION_DENY, NOW + 10 + k);
		}
		assert_int_equal(verdict(k ? "198.18.101.99" : "198.18.100.2"), XDP_DROP);
		assert_int_equal(owners_expire(&o, NOW + 10 + k, &expired), 0);
		assert_int_equal(expired, sizes[k]);
		for (size_t i = 0; i < sizes[k]; i++) {
			char a[32];

			snprintf(a, sizeof(a), "198.18.%zu.%zu", 100 + k, i);
			assert_int_equal(verdict(a), XDP_PASS);
		}
		assert_int_equal(claims_of(jail), 1);
		assert_int_equal(verdict("198.18.200.1"), XDP_DROP);
	}
}

static void test_an_unclaimed_rule_counts_as_the_default_sources(void **state)
{
	int st = src(IPBLOCK_SOURCE_DEFAULT), jail = src("fail2ban-sshd");
	struct rule stray = rule("198.18.10.1", IPBLOCK_ACTION_DENY);
	struct cidr c = stray.prefix;

	(void)state;
	assert_int_equal(maps_rule_set(&h.maps, &stray), 0);
	assert_int_equal(owners_release(&o, (uint16_t)jail, &c, NULL, NULL), -ENOENT);
	assert_int_equal(verdict("198.18.10.1"), XDP_DROP);
	assert_int_equal(owners_release(&o, (uint16_t)st, &c, NULL, NULL), 0);
	assert_int_equal(verdict("198.18.10.1"), XDP_PASS);
}

static void test_a_replace_too_big_for_the_tries_changes_nothing(void **state)
{
	int list = src("firehol_level1");
	struct ruleset big = {};
	struct ipblock_config cfg;
	struct owners_stats st;

	(void)state;
	claim(list, "198.18.15.0/24", IPBLOCK_ACTION_DENY, 0);
	/* 4097 prefixes for tries of 4096 a family. */
	for (uint32_t i = 0; i <= 4096; i++) {
		struct rule r = { .prefix = { .family = AF_INET,
					      .len = 32,
					      .addr = { 10, 0, (uint8_t)(i >> 8), (uint8_t)i } },
				  .action = IPBLOCK_ACTION_DENY };

		assert_int_equal(ruleset_push(&big, &r), 0);
	}
	assert_int_equal(owners_replace(&o, (uint16_t)list, big.r, NULL, big.n, 0, false, &st),
			 -ENOSPC);
	ruleset_free(&big);
	assert_int_equal(claims_of(-1), 1);
	assert_int_equal(verdict("198.18.15.1"), XDP_DROP);
	assert_int_equal(verdict("10.0.0.1"), XDP_PASS);
	/* No mark left behind: the next writer has nothing to repair. */
	assert_int_equal(pins_config_read(h.maps.pins, &cfg), 0);
	assert_int_equal(cfg.flags & IPBLOCK_CONFIG_OWNERS_DIRTY, 0);
}

static void test_replacing_several_sources_at_once_leaves_the_rest(void **state)
{
	int a = src("crowdsec"), b = src("fail2ban-sshd"), c = src("firehol_level1");
	bool replaced[IPBLOCK_SOURCES_MAX] = {};
	struct owner_claim restore[3] = {
		{ .prefix = pfx("198.18.16.2"),
		  .source = (uint16_t)b,
		  .action = IPBLOCK_ACTION_DENY },
		{ .prefix = pfx("198.18.16.1"),
		  .source = (uint16_t)a,
		  .action = IPBLOCK_ACTION_DENY,
		  .deadline = NOW + 60 },
		{ .prefix = pfx("198.18.16.1"),
		  .source = (uint16_t)b,
		  .action = IPBLOCK_ACTION_DENY },
	};

	(void)state;
	claim(a, "198.18.16.9", IPBLOCK_ACTION_DENY, 0);
	claim(b, "198.18.16.9", IPBLOCK_ACTION_DENY, 0);
	claim(c, "198.18.16.3", IPBLOCK_ACTION_DENY, 0);
	replaced[a] = replaced[b] = true;
	assert_int_equal(owners_replace_claims(&o, restore, 3, replaced, false, NULL), 0);
	assert_int_equal(verdict("198.18.16.9"), XDP_PASS);
	assert_int_equal(verdict("198.18.16.1"), XDP_DROP);
	assert_int_equal(verdict("198.18.16.2"), XDP_DROP);
	assert_int_equal(verdict("198.18.16.3"), XDP_DROP);
	assert_int_equal(claims_of(a), 1);
	assert_int_equal(claims_of(b), 2);
	assert_int_equal(claims_of(c), 1);
	/* One claim per prefix and source: a repeat is refused, nothing changes. */
	restore[0] = restore[2];
	assert_int_equal(owners_replace_claims(&o, restore, 3, replaced, false, NULL), -EINVAL);
	assert_int_equal(claims_of(b), 2);
}

/* Kernels whose tries refuse batch calls (5.10): the same results one syscall a claim. */
static void test_one_syscall_a_claim_gives_the_same_results(void **state)
{
	int list = src("firehol_level1"), jail = src("fail2ban-sshd");
	struct rule rules[3] = { rule("198.18.12.0/24", IPBLOCK_ACTION_DENY),
				 rule("198.18.13.0/24", IPBLOCK_ACTION_DENY),
				 rule("2001:db8:12::/48", IPBLOCK_ACTION_DENY) };
	size_t expired = 0;

	(void)state;
	h.pins.per_rule = true;
	claim(jail, "198.18.12.0/24", IPBLOCK_ACTION_DENY, NOW + 5);
	assert_int_equal(owners_replace(&o, (uint16_t)list, rules, NULL, 3, NOW + 10, false, NULL),
			 0);
	assert_int_equal(claims_of(-1), 4);
	assert_int_equal(owners_expire(&o, NOW + 5, &expired), 0);
	assert_int_equal(expired, 1);
	assert_int_equal(verdict("198.18.12.1"), XDP_DROP);
	assert_int_equal(owners_expire(&o, NOW + 10, &expired), 0);
	assert_int_equal(expired, 3);
	assert_int_equal(claims_of(-1), 0);
	assert_int_equal(verdict("198.18.12.1"), XDP_PASS);
	assert_int_equal(verdict("2001:db8:12::1"), XDP_PASS);
	h.pins.per_rule = false;
}

static void test_flush_of_every_source_empties_everything(void **state)
{
	int a = src("crowdsec"), b = src(IPBLOCK_SOURCE_DEFAULT);
	size_t removed = 0;

	(void)state;
	claim(a, "198.18.11.0/24", IPBLOCK_ACTION_DENY, NOW + 5);
	claim(b, "2001:db8:11::/48", IPBLOCK_ACTION_DENY, 0);
	assert_int_equal(owners_flush(&o, -1, &removed), 0);
	assert_int_equal(removed, 2);
	assert_int_equal(claims_of(-1), 0);
	assert_int_equal(verdict("198.18.11.1"), XDP_PASS);
	assert_int_equal(verdict("2001:db8:11::1"), XDP_PASS);
	assert_int_equal(owners_source_find(&o, "crowdsec"), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_allow_from_any_claim_resolves_to_allow),
		cmocka_unit_test_setup_teardown(test_sources_are_registered_once_and_names_checked,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_two_sources_hold_a_ban_until_the_last_releases_it, setup, teardown),
		cmocka_unit_test_setup_teardown(test_an_admins_allow_survives_a_jails_ban_and_unban,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_release_of_what_a_source_does_not_hold_is_enoent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replace_of_one_source_leaves_the_others, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_expiry_removes_due_claims_only, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_each_rule_of_a_list_keeps_its_own_deadline,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_claiming_again_refreshes_the_deadline, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_a_half_done_change_is_repaired_from_the_claims,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_an_unclaimed_rule_counts_as_the_default_sources, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_a_replace_too_big_for_the_tries_changes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_replacing_several_sources_at_once_leaves_the_rest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_syscall_a_claim_gives_the_same_results,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_of_every_source_empties_everything,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_the_default_sources_lasting_claims_are_not_stored, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_a_batch_applies_in_order_and_counts_releases_not_held, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_batch_too_big_for_the_tries_changes_nothing,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_few_or_many_due_claims_all_expire, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
