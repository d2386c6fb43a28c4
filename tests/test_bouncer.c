// SPDX-License-Identifier: GPL-2.0
/*
 * CrowdSec decisions applied to the rule sources (common/bouncer.c), the
 * answers decoded by the LAPI client from canned stream bodies and every
 * verdict asked of the XDP program (BPF_PROG_RUN on private maps): bans
 * become timed claims of "crowdsec", deletions release them (repeated ones
 * are no-ops), a startup answer releases what it no longer lists, and
 * other sources' claims on the same prefixes are left alone.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <linux/bpf.h>

#include "bouncer.h"
#include "cidr.h"
#include "harness.h"

static struct harness h;
static struct owners o;
static struct lapi_client *cl;
static struct lapi_batch batch;
static char keyfile[64] = "/tmp/test_bouncer.XXXXXX";
static char err[LAPI_ERRLEN];

static int setup(void **state)
{
	struct lapi_config cfg = { .url = "http://127.0.0.1:9", .key_file = keyfile };
	int fd = mkstemp(keyfile);

	(void)state;
	if (fd < 0 || write(fd, "0123456789abcdef\n", 17) != 17 || close(fd))
		return -1;
	if (lapi_open(&cfg, &cl, err, sizeof(err)) || harness_open_capacity(&h, 4096))
		return -1;
	return owners_begin(&o, &h.maps, owners_now(), true, NULL) ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	lapi_batch_free(&batch);
	lapi_close(cl);
	harness_close(&h);
	unlink(keyfile);
	strcpy(keyfile, "/tmp/test_bouncer.XXXXXX");
	return 0;
}

static struct cidr pfx(const char *s)
{
	struct cidr c;

	assert_int_equal(cidr_parse(s, &c, NULL, NULL, 0), 0);
	return c;
}

static int verdict(const char *addr)
{
	struct cidr c = pfx(addr);
	int v = -1;

	assert_int_equal(harness_verdict_src(&h, c.family, c.addr, &v), 0);
	return v;
}

/* Decode body (full: a startup=true answer) and apply it. */
static struct bouncer_result poll_body(const char *body, bool full)
{
	struct bouncer_result res;

	assert_int_equal(lapi_decode(cl, body, strlen(body), full, 1000, &batch, err, sizeof(err)),
			 0);
	assert_int_equal(bouncer_apply(&o, &batch, "crowdsec", false, &res), 0);
	return res;
}

#define DEC(id, scope, value, dur)                                                          \
	"{\"id\":" #id ",\"origin\":\"cscli\",\"scenario\":\"manual\",\"scope\":\"" scope      \
	"\",\"type\":\"ban\",\"value\":\"" value "\",\"duration\":\"" dur "\"}"

/* The deadline of source's claim on p, 0 when it has none. */
static uint64_t deadline_of(const char *source, const char *p)
{
	struct owner_claims c = {};
	struct cidr x = pfx(p);
	int s = owners_source_find(&o, source);
	uint64_t d = 0;

	assert_int_equal(owners_read_prefix(&o, &x, &c), 0);
	for (size_t i = 0; i < c.n; i++)
		if (c.c[i].source == s)
			d = c.c[i].deadline;
	owners_claims_free(&c);
	return d;
}

static void test_bans_become_timed_claims_and_deletions_release_them(void **state)
{
	struct bouncer_result r;
	uint64_t now = owners_now();

	(void)state;
	r = poll_body("{\"new\":[" DEC(1, "Ip", "198.18.0.7", "1h") "," DEC(
			      2, "Range", "198.18.9.77/24", "4h") "," DEC(3, "Ip", "2001:db8::5",
									 "30m") "],\"deleted\":null}",
		      true);
	assert_int_equal(r.st.added, 3);
	assert_int_equal(verdict("198.18.0.7"), XDP_DROP);
	assert_int_equal(verdict("198.18.9.1"), XDP_DROP);
	assert_int_equal(verdict("2001:db8::5"), XDP_DROP);
	assert_in_range(deadline_of("crowdsec", "198.18.0.7/32"), now + 3600, now + 3602);
	assert_in_range(deadline_of("crowdsec", "198.18.9.0/24"), now + 4 * 3600,
			now + 4 * 3600 + 2);

	r = poll_body("{\"new\":null,\"deleted\":[" DEC(1, "Ip", "198.18.0.7", "-1s") "]}", false);
	assert_int_equal(r.st.released, 1);
	assert_int_equal(verdict("198.18.0.7"), XDP_PASS);
	/* The stream repeats the deletion: nothing to do, no error. */
	r = poll_body("{\"new\":null,\"deleted\":[" DEC(1, "Ip", "198.18.0.7", "-1s") "]}", false);
	assert_int_equal(r.st.released, 0);
	assert_int_equal(r.not_held, 1);
	assert_int_equal(verdict("198.18.9.1"), XDP_DROP);
}

static void test_other_sources_claims_are_left_alone(void **state)
{
	struct rule allow = { .prefix = pfx("198.18.9.0/24"), .action = IPBLOCK_ACTION_ALLOW };
	struct rule ban = { .prefix = pfx("198.18.0.7/32"), .action = IPBLOCK_ACTION_DENY };
	int jail = owners_source_get(&o, "fail2ban-sshd");

	(void)state;
	assert_true(jail > 0);
	assert_int_equal(owners_claim(&o, OWNERS_DEFAULT, &allow, 0, NULL, NULL, NULL), 0);
	assert_int_equal(owners_claim(&o, (uint16_t)jail, &ban, 0, NULL, NULL, NULL), 0);
	poll_body("{\"new\":[" DEC(1, "Ip", "198.18.0.7", "1h") "," DEC(
			  2, "Range", "198.18.9.0/24", "1h") "],\"deleted\":null}",
		  true);
	/* The admin's allow beats crowdsec's ban. */
	assert_int_equal(verdict("198.18.9.1"), XDP_PASS);
	poll_body("{\"new\":null,\"deleted\":[" DEC(1, "Ip", "198.18.0.7", "-1s") "," DEC(
			  2, "Range", "198.18.9.0/24", "-1s") "]}",
		  false);
	/* The jail still holds its ban, the admin still allows. */
	assert_int_equal(verdict("198.18.0.7"), XDP_DROP);
	assert_int_equal(verdict("198.18.9.1"), XDP_PASS);
	assert_int_equal(deadline_of("crowdsec", "198.18.0.7/32"), 0);
}

static void test_a_startup_answer_releases_what_it_no_longer_lists(void **state)
{
	struct bouncer_result r;

	(void)state;
	poll_body("{\"new\":[" DEC(1, "Ip", "198.18.0.1", "1h") "," DEC(
			  2, "Ip", "198.18.0.2", "1h") "],\"deleted\":null}",
		  true);
	assert_int_equal(verdict("198.18.0.1"), XDP_DROP);
	/* A restart (or an outage) missed the deletion of 1: the next startup answer lacks it. */
	r = poll_body("{\"new\":[" DEC(2, "Ip", "198.18.0.2", "2h") "],\"deleted\":null}", true);
	assert_int_equal(r.st.released, 1);
	assert_int_equal(r.st.refreshed, 1);
	assert_int_equal(verdict("198.18.0.1"), XDP_PASS);
	assert_int_equal(verdict("198.18.0.2"), XDP_DROP);
	assert_in_range(deadline_of("crowdsec", "198.18.0.2/32"), owners_now() + 7199,
			owners_now() + 7201);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_bans_become_timed_claims_and_deletions_release_them, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_sources_claims_are_left_alone, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_a_startup_answer_releases_what_it_no_longer_lists, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
