// SPDX-License-Identifier: GPL-2.0
/*
 * The CrowdSec LAPI client: decision-stream answers -> rule changes (filters,
 * normalisation, merging, the live decisions behind a "del"), Go durations,
 * the key file, the backoff, and the HTTP side against canned answers served
 * by libmicrohttpd on 127.0.0.1 (the request the client sends, each error).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>
#include <microhttpd.h>

#include "cidr.h"
#include "lapi.h"

static char tmpdir[32];
static char keyfile[64];
static struct lapi_client *cl;
static struct lapi_batch batch;
static char err[LAPI_ERRLEN];

#define KEY "0123456789abcdef0123456789abcdef"

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static int group_setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_lapi.XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(keyfile, sizeof(keyfile), "%s/key", tmpdir);
	write_file(keyfile, KEY "\n");
	return 0;
}

static int group_teardown(void **state)
{
	char path[96];

	(void)state;
	snprintf(path, sizeof(path), "%s/k", tmpdir);
	unlink(path);
	unlink(keyfile);
	return rmdir(tmpdir) ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	lapi_batch_free(&batch);
	lapi_close(cl);
	cl = NULL;
	return 0;
}

/* A client whose URL nothing listens on: for the decoding tests. */
static void open_with(const char *const *types, const char *const *origins, bool per_origin)
{
	struct lapi_config cfg = {
		.url = "http://127.0.0.1:9",
		.key_file = keyfile,
		.types = types,
		.origins = origins,
		.source_per_origin = per_origin,
	};

	lapi_close(cl);
	cl = NULL;
	assert_int_equal(lapi_open(&cfg, &cl, err, sizeof(err)), 0);
}

static void open_default(void)
{
	open_with(NULL, NULL, false);
}

/* Decode body at now_ms (not a startup answer) and expect success. */
static void decode_at(const char *body, uint64_t now_ms)
{
	int r = lapi_decode(cl, body, strlen(body), false, now_ms, &batch, err, sizeof(err));

	if (r)
		print_error("lapi_decode: %d %s\n", r, err);
	assert_int_equal(r, 0);
}

static void decode(const char *body)
{
	decode_at(body, 1000000);
}

/* Change i is op on prefix for source with timeout (adds). */
static void assert_change(size_t i, uint8_t op, const char *prefix, const char *source,
			  uint32_t timeout)
{
	char text[CIDR_STRLEN];

	assert_true(i < batch.n);
	assert_string_equal(lapi_op_name(batch.changes[i].op), lapi_op_name(op));
	assert_string_equal(cidr_format(&batch.changes[i].prefix, text, sizeof(text)), prefix);
	assert_string_equal(batch.changes[i].source, source);
	if (op == LAPI_ADD)
		assert_int_equal(batch.changes[i].timeout, timeout);
}

/* One decision object; duration NULL leaves it out. */
static char *dec_json(char *buf, size_t len, long long id, const char *origin, const char *scope,
		      const char *type, const char *value, const char *duration)
{
	size_t n = (size_t)snprintf(buf, len,
				    "{\"id\":%lld,\"origin\":\"%s\",\"scenario\":\"manual\","
				    "\"scope\":\"%s\",\"type\":\"%s\",\"value\":\"%s\"",
				    id, origin, scope, type, value);

	if (duration)
		n += (size_t)snprintf(buf + n, len - n, ",\"duration\":\"%s\"", duration);
	snprintf(buf + n, len - n, "}");
	return buf;
}

/* --- mapping answers to changes ------------------------------------------------ */

static void test_null_lists_give_an_empty_batch(void **state)
{
	(void)state;
	open_default();
	decode("{\"deleted\":null,\"new\":null}");
	assert_int_equal(batch.n, 0);
	assert_false(batch.full);
	decode("{\"new\":[],\"deleted\":[]}");
	assert_int_equal(batch.n, 0);
}

static void test_ip_decisions_become_host_prefixes_v4_and_v6(void **state)
{
	(void)state;
	open_default();
	decode("{\"deleted\":null,\"new\":["
	       "{\"duration\":\"58.648245374s\",\"id\":1,\"origin\":\"cscli\",\"scenario\":"
	       "\"manual "
	       "'ban' from 'x'\",\"scope\":\"Ip\",\"type\":\"ban\",\"value\":\"198.18.7.7\"},"
	       "{\"duration\":\"1h\",\"id\":2,\"origin\":\"crowdsec\",\"scenario\":\"ssh-bf\","
	       "\"scope\":\"Ip\",\"type\":\"ban\",\"value\":\"2001:db8::7\"},"
	       "{\"duration\":\"1h\",\"id\":3,\"origin\":\"crowdsec\",\"scenario\":\"ssh-bf\","
	       "\"scope\":\"ip\",\"type\":\"ban\",\"value\":\"::ffff:198.18.7.8\"}]}");
	assert_int_equal(batch.n, 3);
	assert_change(0, LAPI_ADD, "198.18.7.7/32", "crowdsec", 59);
	assert_change(1, LAPI_ADD, "198.18.7.8/32", "crowdsec", 3600);
	assert_change(2, LAPI_ADD, "2001:db8::7/128", "crowdsec", 3600);
	assert_int_equal(batch.changes[0].decision_id, 1);
	assert_int_equal(batch.stats.new_seen, 3);
	assert_int_equal(lapi_live_decisions(cl), 3);
}

static void test_range_host_bits_are_cleared(void **state)
{
	char d1[256], d2[256], body[600];

	(void)state;
	open_default();
	snprintf(body, sizeof(body), "{\"new\":[%s,%s],\"deleted\":null}",
		 dec_json(d1, sizeof(d1), 5, "cscli", "Range", "ban", "198.18.9.77/24", "2m"),
		 dec_json(d2, sizeof(d2), 6, "cscli", "Range", "ban", "2001:db8:5:1::9/48", "2m"));
	decode(body);
	assert_int_equal(batch.n, 2);
	assert_change(0, LAPI_ADD, "198.18.9.0/24", "crowdsec", 120);
	assert_change(1, LAPI_ADD, "2001:db8:5::/48", "crowdsec", 120);
}

static void test_captcha_and_other_scopes_are_ignored(void **state)
{
	char d[4][256], body[1200];

	(void)state;
	open_default();
	snprintf(body, sizeof(body), "{\"new\":[%s,%s,%s,%s],\"deleted\":null}",
		 dec_json(d[0], 256, 1, "cscli", "Ip", "captcha", "198.18.7.1", "1h"),
		 dec_json(d[1], 256, 2, "cscli", "username", "ban", "bob", "1h"),
		 dec_json(d[2], 256, 3, "cscli", "Country", "ban", "XX", "1h"),
		 dec_json(d[3], 256, 4, "cscli", "Ip", "ban", "198.18.7.4", "1h"));
	decode(body);
	assert_int_equal(batch.n, 1);
	assert_change(0, LAPI_ADD, "198.18.7.4/32", "crowdsec", 3600);
	assert_int_equal(batch.stats.ignored, 3);
	assert_int_equal(batch.stats.bad, 0);
}

static void test_configured_types_keep_captcha(void **state)
{
	static const char *const types[] = { "ban", "captcha", NULL };
	char d[2][256], body[600];

	(void)state;
	open_with(types, NULL, false);
	snprintf(body, sizeof(body), "{\"new\":[%s,%s],\"deleted\":null}",
		 dec_json(d[0], 256, 1, "cscli", "Ip", "captcha", "198.18.7.1", "1h"),
		 dec_json(d[1], 256, 2, "cscli", "Ip", "throttle", "198.18.7.2", "1h"));
	decode(body);
	assert_int_equal(batch.n, 1);
	assert_change(0, LAPI_ADD, "198.18.7.1/32", "crowdsec", 3600);
	assert_int_equal(batch.stats.ignored, 1);
}

static void test_origin_filter_keeps_listed_origins_only(void **state)
{
	static const char *const origins[] = { "cscli", "capi", NULL };
	char d[3][256], body[900];

	(void)state;
	open_with(NULL, origins, false);
	snprintf(body, sizeof(body), "{\"new\":[%s,%s,%s],\"deleted\":null}",
		 dec_json(d[0], 256, 1, "cscli", "Ip", "ban", "198.18.7.1", "1h"),
		 dec_json(d[1], 256, 2, "CAPI", "Ip", "ban", "198.18.7.2", "1h"),
		 dec_json(d[2], 256, 3, "crowdsec", "Ip", "ban", "198.18.7.3", "1h"));
	decode(body);
	assert_int_equal(batch.n, 2);
	assert_change(0, LAPI_ADD, "198.18.7.1/32", "crowdsec", 3600);
	assert_change(1, LAPI_ADD, "198.18.7.2/32", "crowdsec", 3600);
	assert_int_equal(batch.stats.ignored, 1);
}

static void test_source_per_origin_names_a_source_per_origin(void **state)
{
	char d[4][300], body[1300];

	(void)state;
	open_with(NULL, NULL, true);
	snprintf(body, sizeof(body), "{\"new\":[%s,%s,%s,%s],\"deleted\":null}",
		 dec_json(d[0], 300, 1, "cscli", "Ip", "ban", "198.18.7.1", "1h"),
		 dec_json(d[1], 300, 2, "CAPI", "Ip", "ban", "198.18.7.1", "1h"),
		 dec_json(d[2], 300, 3, "lists:fire hol/1", "Ip", "ban", "198.18.7.3", "1h"),
		 dec_json(d[3], 300, 4, "", "Ip", "ban", "198.18.7.4", "1h"));
	decode(body);
	assert_int_equal(batch.n, 4);
	/* Sorted by source, then prefix; one prefix can be held by two sources. */
	assert_change(0, LAPI_ADD, "198.18.7.4/32", "crowdsec", 3600);
	assert_change(1, LAPI_ADD, "198.18.7.1/32", "crowdsec-capi", 3600);
	assert_change(2, LAPI_ADD, "198.18.7.1/32", "crowdsec-cscli", 3600);
	assert_change(3, LAPI_ADD, "198.18.7.3/32", "crowdsec-lists_fire_hol_1", 3600);
}

static void test_deletions_with_negative_durations_release(void **state)
{
	char d1[256], d2[256], body[600];

	(void)state;
	open_default();
	decode("{\"new\":[{\"duration\":\"59s\",\"id\":1,\"origin\":\"cscli\",\"scope\":\"Ip\","
	       "\"type\":\"ban\",\"value\":\"198.18.7.7\"}],\"deleted\":null}");
	assert_int_equal(batch.n, 1);
	snprintf(body, sizeof(body), "{\"new\":null,\"deleted\":[%s,%s]}",
		 dec_json(d1, 256, 1, "cscli", "Ip", "ban", "198.18.7.7", "-157.654115ms"),
		 dec_json(d2, 256, 9, "cscli", "Range", "ban", "2001:db8:9::1/64", "-12.5s"));
	decode(body);
	assert_int_equal(batch.n, 2);
	assert_change(0, LAPI_DEL, "198.18.7.7/32", "crowdsec", 0);
	assert_change(1, LAPI_DEL, "2001:db8:9::/64", "crowdsec", 0);
	assert_int_equal(batch.changes[0].decision_id, 1);
	assert_int_equal(batch.stats.deleted_seen, 2);
	assert_int_equal(lapi_live_decisions(cl), 0);
}

static void test_fractional_durations_round_up_to_seconds(void **state)
{
	char d[3][256], body[900];

	(void)state;
	open_default();
	snprintf(body, sizeof(body), "{\"new\":[%s,%s,%s],\"deleted\":null}",
		 dec_json(d[0], 256, 1, "cscli", "Ip", "ban", "198.18.7.1", "3h59m58.123s"),
		 dec_json(d[1], 256, 2, "cscli", "Ip", "ban", "198.18.7.2", "200ms"),
		 dec_json(d[2], 256, 3, "cscli", "Ip", "ban", "198.18.7.3", "4h0m0s"));
	decode(body);
	assert_int_equal(batch.n, 3);
	assert_change(0, LAPI_ADD, "198.18.7.1/32", "crowdsec", 14399);
	assert_change(1, LAPI_ADD, "198.18.7.2/32", "crowdsec", 1);
	assert_change(2, LAPI_ADD, "198.18.7.3/32", "crowdsec", 14400);
}

static void test_bad_values_are_skipped_and_counted(void **state)
{
	const char *body =
		"{\"new\":["
		"{\"id\":1,\"origin\":\"cscli\",\"scope\":\"Ip\",\"type\":\"ban\","
		"\"value\":\"198.18.300.1\",\"duration\":\"1h\"},"
		"{\"id\":2,\"origin\":\"cscli\",\"scope\":\"Ip\",\"type\":\"ban\","
		"\"value\":\"198.18.7.0/24\",\"duration\":\"1h\"},"
		"{\"id\":3,\"origin\":\"cscli\",\"scope\":\"Ip\",\"type\":\"ban\",\"duration\":"
		"\"1h\"},"
		"{\"id\":4,\"origin\":\"cscli\",\"scope\":\"Ip\",\"type\":\"ban\",\"value\":7,"
		"\"duration\":\"1h\"},"
		"{\"id\":5,\"origin\":\"cscli\",\"scope\":\"Ip\",\"type\":\"ban\","
		"\"value\":\"198.18.7.5\",\"duration\":\"soon\"},"
		"{\"origin\":\"cscli\",\"scope\":\"Ip\",\"type\":\"ban\","
		"\"value\":\"198.18.7.6\",\"duration\":\"1h\"},"
		"{\"id\":7,\"origin\":\"cscli\",\"scope\":\"Ip\",\"type\":\"ban\","
		"\"value\":\"198.18.7.7\\u0000junk\",\"duration\":\"1h\"},"
		"\"not an object\","
		"{\"id\":9,\"origin\":\"cscli\",\"scope\":\"Ip\",\"type\":\"ban\","
		"\"value\":\"198.18.7.9\"},"
		"{\"id\":10,\"origin\":\"cscli\",\"scope\":\"Range\",\"type\":\"ban\","
		"\"value\":\"198.18.7.0/33\",\"duration\":\"1h\"},"
		"{\"id\":11,\"origin\":\"cscli\",\"scope\":\"Ip\",\"type\":\"ban\","
		"\"value\":\"198.18.7.11\",\"duration\":\"1h\"},"
		"{\"id\":12,\"origin\":\"cscli\",\"scope\":\"Ip\",\"type\":\"ban\","
		"\"value\":\"2001:db8::12\",\"duration\":\"99999999999h\"}"
		"],\"deleted\":null}";

	(void)state;
	open_default();
	decode(body);
	assert_int_equal(batch.n, 1);
	assert_change(0, LAPI_ADD, "198.18.7.11/32", "crowdsec", 3600);
	assert_int_equal(batch.stats.bad, 11);
	assert_int_equal(batch.n_notes, LAPI_MAX_NOTES);
	assert_non_null(strstr(batch.notes[0], "decision 1 in \"new\""));
	assert_non_null(strstr(batch.notes[0], "198.18.300.1"));
	assert_non_null(strstr(batch.notes[1], "not one address"));
	assert_non_null(strstr(batch.notes[2], "no value"));
}

static void test_expired_new_decisions_are_not_added(void **state)
{
	char d1[256], d2[256], body[600];

	(void)state;
	open_default();
	snprintf(body, sizeof(body), "{\"new\":[%s,%s],\"deleted\":null}",
		 dec_json(d1, 256, 1, "cscli", "Ip", "ban", "198.18.7.1", "-1s"),
		 dec_json(d2, 256, 2, "cscli", "Ip", "ban", "198.18.7.2", "0s"));
	decode(body);
	assert_int_equal(batch.n, 0);
	assert_int_equal(batch.stats.expired, 2);
	assert_int_equal(lapi_live_decisions(cl), 0);
}

static void test_duplicates_in_one_answer_merge_into_the_longest(void **state)
{
	char d[4][256], body[1200];

	(void)state;
	open_default();
	snprintf(body, sizeof(body), "{\"new\":[%s,%s,%s,%s],\"deleted\":null}",
		 dec_json(d[0], 256, 1, "cscli", "Ip", "ban", "198.18.7.7", "1h"),
		 dec_json(d[1], 256, 2, "crowdsec", "Ip", "ban", "198.18.7.7", "4h"),
		 dec_json(d[2], 256, 3, "cscli", "Range", "ban", "198.18.9.77/24", "10m"),
		 dec_json(d[3], 256, 4, "cscli", "Range", "ban", "198.18.9.0/24", "5m"));
	decode(body);
	assert_int_equal(batch.n, 2);
	assert_change(0, LAPI_ADD, "198.18.7.7/32", "crowdsec", 14400);
	assert_int_equal(batch.changes[0].decision_id, 2);
	assert_change(1, LAPI_ADD, "198.18.9.0/24", "crowdsec", 600);
	assert_int_equal(batch.stats.merged, 2);
	assert_int_equal(lapi_live_decisions(cl), 4);
}

static void test_a_prefix_deleted_and_new_in_one_answer_stays(void **state)
{
	char d1[256], d2[256], body[600];

	(void)state;
	open_default();
	/* A ban that ran out and a new one for the same address, in one poll. */
	snprintf(body, sizeof(body), "{\"new\":[%s],\"deleted\":[%s]}",
		 dec_json(d1, 256, 2, "cscli", "Ip", "ban", "198.18.7.7", "1h"),
		 dec_json(d2, 256, 1, "cscli", "Ip", "ban", "198.18.7.7", "-3s"));
	decode(body);
	assert_int_equal(batch.n, 1);
	assert_change(0, LAPI_ADD, "198.18.7.7/32", "crowdsec", 3600);
	assert_int_equal(batch.stats.still_held, 1);
}

static void test_del_waits_for_the_last_decision_holding_a_prefix(void **state)
{
	char d[2][256], body[700];

	(void)state;
	open_default();
	snprintf(body, sizeof(body), "{\"new\":[%s,%s],\"deleted\":null}",
		 dec_json(d[0], 256, 1, "cscli", "Range", "ban", "198.18.9.77/24", "4h"),
		 dec_json(d[1], 256, 2, "cscli", "Range", "ban", "198.18.9.0/24", "1h"));
	decode_at(body, 0);
	assert_int_equal(batch.n, 1);
	assert_change(0, LAPI_ADD, "198.18.9.0/24", "crowdsec", 14400);

	/* The longer one is deleted (an unban): the deadline falls to the other's. */
	snprintf(body, sizeof(body), "{\"new\":null,\"deleted\":[%s]}",
		 dec_json(d[0], 256, 1, "cscli", "Range", "ban", "198.18.9.77/24", "-1s"));
	decode_at(body, 600000);
	assert_int_equal(batch.n, 1);
	assert_change(0, LAPI_ADD, "198.18.9.0/24", "crowdsec", 3000);
	assert_int_equal(batch.stats.still_held, 1);

	/* The last one goes: now the prefix is released. */
	snprintf(body, sizeof(body), "{\"new\":null,\"deleted\":[%s]}",
		 dec_json(d[1], 256, 2, "cscli", "Range", "ban", "198.18.9.0/24", "-1s"));
	decode_at(body, 700000);
	assert_int_equal(batch.n, 1);
	assert_change(0, LAPI_DEL, "198.18.9.0/24", "crowdsec", 0);
	assert_int_equal(lapi_live_decisions(cl), 0);
}

static void test_repeated_and_unknown_deletions_pass_through(void **state)
{
	char d[2][256], body[700];

	(void)state;
	open_default();
	snprintf(body, sizeof(body), "{\"new\":null,\"deleted\":[%s,%s]}",
		 dec_json(d[0], 256, 77, "cscli", "Ip", "ban", "198.18.7.7", "-1s"),
		 dec_json(d[1], 256, 78, "cscli", "Ip", "ban", "198.18.7.7", "-2s"));
	for (int round = 0; round < 2; round++) {
		decode(body);
		assert_int_equal(batch.n, 1);
		assert_change(0, LAPI_DEL, "198.18.7.7/32", "crowdsec", 0);
		assert_int_equal(batch.stats.merged, 1);
	}
	assert_int_equal(lapi_live_decisions(cl), 0);
}

static void test_a_startup_answer_replaces_what_was_remembered(void **state)
{
	char d1[256], d2[256], body[600];

	(void)state;
	open_default();
	snprintf(body, sizeof(body), "{\"new\":[%s],\"deleted\":null}",
		 dec_json(d1, 256, 1, "cscli", "Ip", "ban", "198.18.7.1", "1h"));
	assert_int_equal(lapi_decode(cl, body, strlen(body), true, 0, &batch, err, sizeof(err)), 0);
	assert_true(batch.full);
	snprintf(body, sizeof(body), "{\"new\":[%s],\"deleted\":[%s]}",
		 dec_json(d1, 256, 2, "cscli", "Ip", "ban", "198.18.7.2", "1h"),
		 dec_json(d2, 256, 1, "cscli", "Ip", "ban", "198.18.7.1", "-5m"));
	assert_int_equal(lapi_decode(cl, body, strlen(body), true, 0, &batch, err, sizeof(err)), 0);
	assert_true(batch.full);
	assert_int_equal(lapi_live_decisions(cl), 1);
	assert_int_equal(batch.n, 2);
	assert_change(0, LAPI_DEL, "198.18.7.1/32", "crowdsec", 0);
	assert_change(1, LAPI_ADD, "198.18.7.2/32", "crowdsec", 3600);
}

static void test_decisions_past_their_time_are_forgotten(void **state)
{
	char d1[256], d2[256], body[600];

	(void)state;
	open_default();
	snprintf(body, sizeof(body), "{\"new\":[%s,%s],\"deleted\":null}",
		 dec_json(d1, 256, 1, "cscli", "Ip", "ban", "198.18.7.1", "10s"),
		 dec_json(d2, 256, 2, "cscli", "Ip", "ban", "198.18.7.1", "20s"));
	decode_at(body, 0);
	assert_int_equal(lapi_live_decisions(cl), 2);
	decode_at("{\"new\":null,\"deleted\":null}", 10000);
	assert_int_equal(lapi_live_decisions(cl), 1);
	assert_int_equal(batch.n, 0); /* the rule's own timeout ends it */
	decode_at("{\"new\":null,\"deleted\":null}", 20000);
	assert_int_equal(lapi_live_decisions(cl), 0);
}

static void expect_bad_answer(const char *body, const char *needle)
{
	size_t live = lapi_live_decisions(cl);
	int r = lapi_decode(cl, body, strlen(body), false, 0, &batch, err, sizeof(err));

	assert_int_equal(r, -EBADMSG);
	if (!strstr(err, needle))
		print_error("body %s: error '%s' lacks '%s'\n", body, err, needle);
	assert_non_null(strstr(err, needle));
	assert_int_equal(batch.n, 0);
	assert_int_equal(lapi_live_decisions(cl), live);
}

static void test_answers_that_are_not_streams_are_refused(void **state)
{
	(void)state;
	open_default();
	decode("{\"new\":[{\"id\":1,\"origin\":\"cscli\",\"scope\":\"Ip\",\"type\":\"ban\","
	       "\"value\":\"198.18.7.1\",\"duration\":\"1h\"}],\"deleted\":null}");
	expect_bad_answer("<html><body>502 Bad Gateway</body></html>", "not valid JSON");
	expect_bad_answer("{\"new\":[{\"id\":1,\"origin\":\"cs", "cut short");
	expect_bad_answer("", "empty");
	expect_bad_answer("[]", "not an object");
	expect_bad_answer("{\"new\":5,\"deleted\":null}", "\"new\"");
	expect_bad_answer("{\"message\":\"access forbidden\"}", "no \"new\" list");
	expect_bad_answer("{\"new\":null}", "no \"deleted\" list");
	expect_bad_answer("{\"new\":null,\"deleted\":null} trailing", "byte 28 of 36");
}

static void test_ten_thousand_decisions_decode_fast(void **state)
{
	size_t cap = 10000 * 200 + 64, n = 0;
	char *body = malloc(cap), d[256], v[64];
	struct timespec t0, t1;
	double ms;

	(void)state;
	assert_non_null(body);
	open_default();
	n += (size_t)snprintf(body + n, cap - n, "{\"deleted\":null,\"new\":[");
	for (int i = 0; i < 10000; i++) {
		if (i < 5000)
			snprintf(v, sizeof(v), "198.18.%d.%d", 20 + i / 250, 1 + i % 250);
		else
			snprintf(v, sizeof(v), "2001:db8:1::%x", i);
		n += (size_t)snprintf(body + n, cap - n, "%s%s", i ? "," : "",
				      dec_json(d, sizeof(d), i + 1, "cscli-import", "Ip", "ban", v,
					       "59m58.464005333s"));
	}
	n += (size_t)snprintf(body + n, cap - n, "]}");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(lapi_decode(cl, body, n, true, 0, &batch, err, sizeof(err)), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	print_message("# 10,000 decisions (%zu bytes) decoded in %.1f ms\n", n, ms);
	assert_int_equal(batch.n, 10000);
	assert_int_equal(lapi_live_decisions(cl), 10000);
	for (size_t i = 1; i < batch.n; i++)
		assert_true(cidr_compare(&batch.changes[i - 1].prefix, &batch.changes[i].prefix) <
			    0);
	/* Generous: sanitizer builds run it too; the plain build takes a few ms. */
	assert_true(ms < 2000);

	/* All deleted again: one del each, nothing remembered. */
	n = (size_t)snprintf(body, cap, "{\"new\":null,\"deleted\":[");
	for (int i = 0; i < 10000; i++) {
		if (i < 5000)
			snprintf(v, sizeof(v), "198.18.%d.%d", 20 + i / 250, 1 + i % 250);
		else
			snprintf(v, sizeof(v), "2001:db8:1::%x", i);
		n += (size_t)snprintf(
			body + n, cap - n, "%s%s", i ? "," : "",
			dec_json(d, sizeof(d), i + 1, "cscli-import", "Ip", "ban", v, "-1s"));
	}
	n += (size_t)snprintf(body + n, cap - n, "]}");
	assert_int_equal(lapi_decode(cl, body, n, false, 1000, &batch, err, sizeof(err)), 0);
	assert_int_equal(batch.n, 10000);
	for (size_t i = 0; i < batch.n; i++)
		assert_int_equal(batch.changes[i].op, LAPI_DEL);
	assert_int_equal(lapi_live_decisions(cl), 0);
	free(body);
}

/*
 * Random streams against a reference model: the live decisions as the LAPI
 * has them, and the rule state a caller gets by applying every batch (add:
 * deadline = now + timeout; del: gone; a deadline passed: gone).  After each
 * batch a pair is held by the caller exactly when some live decision holds
 * it, until the latest of their expiries.  Whole seconds throughout, so the
 * rounding up of timeouts is exact.
 */
static const struct {
	const char *scope, *value;
	int pair;
} values[] = {
	{ "Range", "198.18.9.77/24", 0 }, { "Range", "198.18.9.0/24", 0 },
	{ "Ip", "198.18.9.5", 1 },	  { "Ip", "::ffff:198.18.9.5", 1 },
	{ "Ip", "2001:db8::5", 2 },	  { "Range", "2001:db8::/32", 3 },
};
static const char *const pair_text[] = { "198.18.9.0/24", "198.18.9.5/32", "2001:db8::5/128",
					 "2001:db8::/32" };
#define N_PAIRS	 4
#define MAX_IDS	 400
#define N_ROUNDS 1500

struct ref_dec {
	int value;
	uint64_t expires_ms; /* 0: never seen; UINT64_MAX - 1: deleted */
	bool live;
};

static int pair_of_change(const struct lapi_change *ch)
{
	char text[CIDR_STRLEN];

	cidr_format(&ch->prefix, text, sizeof(text));
	for (int p = 0; p < N_PAIRS; p++)
		if (!strcmp(text, pair_text[p]))
			return p;
	fail_msg("unexpected prefix %s", text);
	return -1;
}

static void test_random_streams_match_a_reference_model(void **state)
{
	static struct ref_dec ref[MAX_IDS + 1];
	uint64_t deadline[N_PAIRS] = { 0 }; /* the caller's rule per pair; 0: none */
	uint64_t now = 1000000;
	int next_id = 1;
	char *body = malloc(64 * 1024), d[256];

	(void)state;
	assert_non_null(body);
	memset(ref, 0, sizeof(ref));
	srandom(18);
	open_default();
	for (int round = 0; round < N_ROUNDS && next_id <= MAX_IDS; round++) {
		size_t n = 0;
		int n_del = (int)(random() % 3), n_new = (int)(random() % 3);
		bool first = true;

		now += 1000 * (uint64_t)(random() % 6);
		for (int id = 1; id < next_id; id++)
			if (ref[id].live && ref[id].expires_ms <= now)
				ref[id].live = false; /* ran out; the LAPI may list it later */
		for (int p = 0; p < N_PAIRS; p++)
			if (deadline[p] && deadline[p] <= now)
				deadline[p] = 0; /* the caller's own expiry */

		n += (size_t)snprintf(body + n, 65536 - n, "{\"deleted\":[");
		for (int i = 0; i < n_del; i++) {
			int id, v;

			if (random() % 4 == 0 || next_id == 1) {
				/* A decision this client never saw (an old one, another host's). */
				id = MAX_IDS + 1000 + (int)(random() % 50);
				v = (int)(random() % 6);
			} else {
				id = 1 + (int)(random() % (next_id - 1));
				v = ref[id].value;
				ref[id].live = false;
			}
			n += (size_t)snprintf(body + n, 65536 - n, "%s%s", first ? "" : ",",
					      dec_json(d, sizeof(d), id, "cscli", values[v].scope,
						       "ban", values[v].value, "-1s"));
			first = false;
		}
		n += (size_t)snprintf(body + n, 65536 - n, "],\"new\":[");
		first = true;
		for (int i = 0; i < n_new && next_id <= MAX_IDS; i++) {
			int id = next_id++, v = (int)(random() % 6),
			    secs = 1 + (int)(random() % 20);
			char dur[16];

			ref[id].value = v;
			ref[id].expires_ms = now + 1000 * (uint64_t)secs;
			ref[id].live = true;
			snprintf(dur, sizeof(dur), "%ds", secs);
			n += (size_t)snprintf(body + n, 65536 - n, "%s%s", first ? "" : ",",
					      dec_json(d, sizeof(d), id, "cscli", values[v].scope,
						       "ban", values[v].value, dur));
			first = false;
		}
		n += (size_t)snprintf(body + n, 65536 - n, "]}");
		assert_int_equal(lapi_decode(cl, body, n, false, now, &batch, err, sizeof(err)), 0);

		/* Apply the batch as a caller would; at most one change per pair. */
		for (size_t i = 0; i < batch.n; i++) {
			int p = pair_of_change(&batch.changes[i]);

			for (size_t j = 0; j < i; j++)
				assert_int_not_equal(pair_of_change(&batch.changes[j]), p);
			deadline[p] = batch.changes[i].op == LAPI_ADD
					      ? now + 1000ULL * batch.changes[i].timeout
					      : 0;
		}
		for (int p = 0; p < N_PAIRS; p++) {
			uint64_t want = 0;

			for (int id = 1; id < next_id; id++)
				if (ref[id].live && values[ref[id].value].pair == p &&
				    ref[id].expires_ms > want)
					want = ref[id].expires_ms;
			if (deadline[p] != want)
				print_error("round %d pair %s: caller has %llu, reference %llu\n",
					    round, pair_text[p], (unsigned long long)deadline[p],
					    (unsigned long long)want);
			assert_true(deadline[p] == want);
		}
	}
	assert_true(next_id > MAX_IDS / 2);
	free(body);
}

/* --- Go durations -------------------------------------------------------------- */

static void test_go_durations_parse_to_nanoseconds(void **state)
{
	static const struct {
		const char *s;
		int64_t ns;
	} ok[] = {
		{ "0", 0 },
		{ "-0", 0 },
		{ "1s", 1000000000LL },
		{ "+1s", 1000000000LL },
		{ "1.5s", 1500000000LL },
		{ "-12.5s", -12500000000LL },
		{ "3h59m58.123s", 14398123000000LL },
		{ "59m58.464005333s", 3598464005333LL },
		{ "-157.654115ms", -157654115LL },
		{ "500ms", 500000000LL },
		{ "1us", 1000LL },
		{ "1\xc2\xb5s", 1000LL },
		{ "1\xce\xbcs", 1000LL },
		{ "7ns", 7LL },
		{ ".5s", 500000000LL },
		{ "5.s", 5000000000LL },
		{ "1h0m0s", 3600000000000LL },
		{ "1.0000000000000000000001s", 1000000000LL },
		{ "9223372036854775807ns", INT64_MAX },
		{ "-9223372036854775808ns", INT64_MIN },
		{ "2562047h", 2562047LL * 3600 * 1000000000LL },
	};
	static const struct {
		const char *s;
		int err;
	} bad[] = {
		{ "", -EINVAL },
		{ "1", -EINVAL },
		{ "s", -EINVAL },
		{ "1x", -EINVAL },
		{ "1.s2", -EINVAL },
		{ "--1s", -EINVAL },
		{ "1s ", -EINVAL },
		{ " 1s", -EINVAL },
		{ "1e3s", -EINVAL },
		{ ".s", -EINVAL },
		{ "-", -EINVAL },
		{ "1h-1s", -EINVAL },
		{ "9223372036854775808ns", -ERANGE },
		{ "2562048h", -ERANGE },
		{ "99999999999999999999999s", -ERANGE },
	};
	int64_t ns;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		int r = lapi_parse_duration(ok[i].s, &ns);

		if (r || ns != ok[i].ns)
			print_error("'%s': %d, %lld\n", ok[i].s, r, (long long)ns);
		assert_int_equal(r, 0);
		assert_true(ns == ok[i].ns);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = lapi_parse_duration(bad[i].s, &ns);

		if (r != bad[i].err)
			print_error("'%s': %d, wanted %d\n", bad[i].s, r, bad[i].err);
		assert_int_equal(r, bad[i].err);
	}
}

/* --- the key file ------------------------------------------------------------------ */

static int read_key_text(const char *text, char *key, size_t len)
{
	char path[96];

	snprintf(path, sizeof(path), "%s/k", tmpdir);
	write_file(path, text);
	return lapi_read_key(path, key, len, err, sizeof(err));
}

static void test_key_file_is_trimmed(void **state)
{
	char key[LAPI_KEY_LEN];

	(void)state;
	assert_int_equal(read_key_text(KEY, key, sizeof(key)), 0);
	assert_string_equal(key, KEY);
	assert_int_equal(read_key_text("  " KEY " \r\n\n", key, sizeof(key)), 0);
	assert_string_equal(key, KEY);
}

static void test_empty_unreadable_or_odd_key_files_are_refused(void **state)
{
	char key[LAPI_KEY_LEN], path[96], long_key[LAPI_KEY_LEN + 2];
	struct lapi_config cfg = { .url = "http://127.0.0.1:9" };

	(void)state;
	assert_int_equal(read_key_text("", key, sizeof(key)), -EINVAL);
	assert_non_null(strstr(err, "is empty"));
	assert_int_equal(read_key_text(" \n\t\n", key, sizeof(key)), -EINVAL);
	assert_non_null(strstr(err, "is empty"));
	assert_int_equal(read_key_text("abc def\n", key, sizeof(key)), -EINVAL);
	assert_non_null(strstr(err, "one word"));
	assert_int_equal(read_key_text("abc\r\nX-Other: 1\n", key, sizeof(key)), -EINVAL);
	memset(long_key, 'a', sizeof(long_key) - 1);
	long_key[sizeof(long_key) - 1] = '\0';
	assert_int_equal(read_key_text(long_key, key, sizeof(key)), -EINVAL);
	assert_non_null(strstr(err, "allowed"));

	snprintf(path, sizeof(path), "%s/missing", tmpdir);
	assert_int_equal(lapi_read_key(path, key, sizeof(key), err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, path));
	/* A directory opens but cannot be read: the unreadable case, even as root. */
	assert_int_equal(lapi_read_key(tmpdir, key, sizeof(key), err, sizeof(err)), -EISDIR);
	assert_non_null(strstr(err, "Cannot read"));

	/* lapi_open() refuses the same way, and leaves nothing behind. */
	snprintf(path, sizeof(path), "%s/k", tmpdir);
	write_file(path, "\n");
	cfg.key_file = path;
	assert_int_equal(lapi_open(&cfg, &cl, err, sizeof(err)), -EINVAL);
	assert_null(cl);
	assert_non_null(strstr(err, "is empty"));
}

static void test_bad_configurations_are_refused(void **state)
{
	static const char *const no_types[] = { NULL };
	static const char *const empty_type[] = { "", NULL };
	struct lapi_config cfg = { .url = "ftp://127.0.0.1", .key_file = keyfile };

	(void)state;
	assert_int_equal(lapi_open(&cfg, &cl, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "http://"));
	cfg.url = "http://127.0.0.1:9";
	cfg.source = "crowd sec";
	assert_int_equal(lapi_open(&cfg, &cl, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "source name"));
	cfg.source = NULL;
	cfg.types = no_types;
	assert_int_equal(lapi_open(&cfg, &cl, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "No decision type"));
	cfg.types = empty_type;
	assert_int_equal(lapi_open(&cfg, &cl, err, sizeof(err)), -EINVAL);
	cfg.types = NULL;
	cfg.scopes = 1 << 7;
	assert_int_equal(lapi_open(&cfg, &cl, err, sizeof(err)), -EINVAL);
	cfg.scopes = 0;
	cfg.key_file = NULL;
	assert_int_equal(lapi_open(&cfg, &cl, err, sizeof(err)), -EINVAL);
	assert_null(cl);
}

/* --- backoff --------------------------------------------------------------------- */

static void test_backoff_doubles_to_the_cap_with_bounded_jitter(void **state)
{
	(void)state;
	/* Without jitter (rnd 0): the interval, then doubling, then the cap. */
	assert_int_equal(lapi_backoff_ms(0, 10000, 300000, 0), 10000);
	assert_int_equal(lapi_backoff_ms(0, 10000, 300000, 12345), 10000);
	assert_int_equal(lapi_backoff_ms(1, 10000, 300000, 0), 20000);
	assert_int_equal(lapi_backoff_ms(2, 10000, 300000, 0), 40000);
	assert_int_equal(lapi_backoff_ms(5, 10000, 300000, 0), 300000);
	assert_int_equal(lapi_backoff_ms(1000, 10000, 300000, 0), 300000);
	assert_int_equal(lapi_backoff_ms(UINT32_MAX, 10000, 300000, 0), 300000);
	/* A cap below the interval: the interval. */
	assert_int_equal(lapi_backoff_ms(3, 10000, 1000, 0), 10000);
	/* No interval: never 0. */
	assert_int_equal(lapi_backoff_ms(0, 0, 0, 0), 1);
	assert_true(lapi_backoff_ms(3, 0, 0, 77) >= 1);
	/* Jitter takes at most a quarter, and really varies. */
	for (uint32_t r = 0; r < 5000; r += 7) {
		unsigned int d = lapi_backoff_ms(2, 10000, 300000, r * 2654435761U);

		assert_true(d <= 40000 && d >= 30000);
	}
	assert_true(lapi_backoff_ms(9, 10000, 300000, 1) != lapi_backoff_ms(9, 10000, 300000, 2));
	assert_true(lapi_backoff_ms(9, 10000, 300000, 75000) == 225000);
}

/* --- HTTP against libmicrohttpd -------------------------------------------------- */

/* What the canned server answers, and what it was asked. */
static struct srv {
	struct MHD_Daemon *d;
	uint16_t port;
	pthread_mutex_t lock;
	unsigned int status;
	const char *body;
	size_t claim; /* > strlen(body): announce more than is sent, then break off */
	unsigned int delay_ms;
	unsigned int requests;
	char path[128], method[16], key[128], agent[64], startup[16], scopes[32], origins[128];
	bool has_startup;
} srv = { .lock = PTHREAD_MUTEX_INITIALIZER };

struct reader {
	const char *body;
	size_t len;
};

static ssize_t read_broken(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct reader *r = cls;
	size_t n;

	if (pos >= r->len)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	n = r->len - (size_t)pos < max ? r->len - (size_t)pos : max;
	memcpy(buf, r->body + pos, n);
	return (ssize_t)n;
}

static void copy_value(struct MHD_Connection *conn, enum MHD_ValueKind kind, const char *name,
		       char *out, size_t len, bool *present)
{
	const char *v = MHD_lookup_connection_value(conn, kind, name);

	if (present)
		*present = v != NULL;
	snprintf(out, len, "%s", v ? v : "");
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
			      const char *method, const char *version, const char *upload,
			      size_t *upload_size, void **req)
{
	static struct reader reader;
	struct MHD_Response *resp;
	enum MHD_Result ret;
	unsigned int status, delay;
	const char *body;
	size_t claim;

	(void)cls;
	(void)version;
	(void)upload;
	(void)upload_size;
	(void)req;
	pthread_mutex_lock(&srv.lock);
	srv.requests++;
	snprintf(srv.path, sizeof(srv.path), "%s", url);
	snprintf(srv.method, sizeof(srv.method), "%s", method);
	copy_value(conn, MHD_HEADER_KIND, "X-Api-Key", srv.key, sizeof(srv.key), NULL);
	copy_value(conn, MHD_HEADER_KIND, "User-Agent", srv.agent, sizeof(srv.agent), NULL);
	copy_value(conn, MHD_GET_ARGUMENT_KIND, "startup", srv.startup, sizeof(srv.startup),
		   &srv.has_startup);
	copy_value(conn, MHD_GET_ARGUMENT_KIND, "scopes", srv.scopes, sizeof(srv.scopes), NULL);
	copy_value(conn, MHD_GET_ARGUMENT_KIND, "origins", srv.origins, sizeof(srv.origins), NULL);
	status = srv.status;
	body = srv.body;
	claim = srv.claim;
	delay = srv.delay_ms;
	pthread_mutex_unlock(&srv.lock);

	if (delay)
		usleep(delay * 1000);
	if (claim > strlen(body)) {
		reader.body = body;
		reader.len = strlen(body);
		resp = MHD_create_response_from_callback(claim, 4096, read_broken, &reader, NULL);
	} else {
		resp = MHD_create_response_from_buffer(strlen(body), (void *)body,
						       MHD_RESPMEM_PERSISTENT);
	}
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type", "application/json; charset=utf-8");
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void serve(unsigned int status, const char *body)
{
	pthread_mutex_lock(&srv.lock);
	srv.status = status;
	srv.body = body;
	srv.claim = 0;
	srv.delay_ms = 0;
	pthread_mutex_unlock(&srv.lock);
}

static int srv_setup(void **state)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	const union MHD_DaemonInfo *info;

	(void)state;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	srv.requests = 0;
	serve(200, "{\"new\":null,\"deleted\":null}");
	/* A thread per connection: a slow answer does not hold up the next test. */
	srv.d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0,
				 NULL, NULL, answer, NULL, MHD_OPTION_SOCK_ADDR, &sa,
				 MHD_OPTION_END);
	if (!srv.d)
		return -1;
	info = MHD_get_daemon_info(srv.d, MHD_DAEMON_INFO_BIND_PORT);
	if (!info || !info->port)
		return -1;
	srv.port = info->port;
	return 0;
}

static int srv_teardown(void **state)
{
	teardown(state);
	if (srv.d)
		MHD_stop_daemon(srv.d);
	srv.d = NULL;
	return 0;
}

static void open_http(const char *suffix, const char *const *origins, unsigned int timeout_ms,
		      size_t max_body)
{
	char url[96];
	struct lapi_config cfg = {
		.url = url,
		.key_file = keyfile,
		.origins = origins,
		.timeout_ms = timeout_ms,
		.connect_timeout_ms = 1000,
		.max_body = max_body,
	};

	snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", srv.port, suffix);
	assert_int_equal(lapi_open(&cfg, &cl, err, sizeof(err)), 0);
}

static void test_poll_sends_the_stream_path_query_and_key(void **state)
{
	(void)state;
	open_http("/", NULL, 0, 0);
	serve(200,
	      "{\"deleted\":null,\"new\":[{\"duration\":\"1m\",\"id\":1,\"origin\":\"cscli\","
	      "\"scenario\":\"x\",\"scope\":\"Ip\",\"type\":\"ban\",\"value\":\"198.18.7.7\"}]}");
	assert_int_equal(lapi_poll(cl, &batch, err, sizeof(err)), 0);
	assert_string_equal(srv.method, "GET");
	assert_string_equal(srv.path, "/v1/decisions/stream");
	assert_true(srv.has_startup);
	assert_string_equal(srv.startup, "true");
	assert_string_equal(srv.scopes, "ip,range");
	assert_string_equal(srv.key, KEY);
	assert_non_null(strstr(srv.agent, "ipblock"));
	assert_true(batch.full);
	assert_int_equal(batch.n, 1);
	assert_change(0, LAPI_ADD, "198.18.7.7/32", "crowdsec", 60);

	/* Then without startup, on the same connection or a new one. */
	serve(200, "{\"deleted\":null,\"new\":null}");
	assert_int_equal(lapi_poll(cl, &batch, err, sizeof(err)), 0);
	assert_false(srv.has_startup);
	assert_false(batch.full);
	assert_int_equal(srv.requests, 2);
}

static void test_poll_asks_for_the_configured_origins(void **state)
{
	static const char *const origins[] = { "cscli", "lists:a b", NULL };

	(void)state;
	open_http("", origins, 0, 0);
	assert_int_equal(lapi_poll(cl, &batch, err, sizeof(err)), 0);
	assert_string_equal(srv.origins, "cscli,lists:a b");
}

static void test_poll_403_says_the_key_is_wrong(void **state)
{
	(void)state;
	open_http("", NULL, 0, 0);
	serve(200, "{\"deleted\":null,\"new\":null}");
	assert_int_equal(lapi_poll(cl, &batch, err, sizeof(err)), 0);
	serve(403, "{\"message\":\"access forbidden\"}");
	assert_int_equal(lapi_poll(cl, &batch, err, sizeof(err)), -EACCES);
	assert_non_null(strstr(err, "refused the API key"));
	assert_non_null(strstr(err, keyfile));
	assert_non_null(strstr(err, "access forbidden"));
	assert_int_equal(batch.n, 0);
	/* After any failure the next poll lists everything. */
	serve(200, "{\"deleted\":null,\"new\":null}");
	assert_int_equal(lapi_poll(cl, &batch, err, sizeof(err)), 0);
	assert_true(srv.has_startup);
	assert_true(batch.full);
}

static void test_poll_other_statuses_and_bodies_fail_with_a_sentence(void **state)
{
	(void)state;
	open_http("", NULL, 0, 0);
	serve(500, "{\"message\":\"database is locked\"}");
	assert_int_equal(lapi_poll(cl, &batch, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "HTTP 500: database is locked"));
	serve(404, "404 page not found");
	assert_int_equal(lapi_poll(cl, &batch, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "HTTP 404"));
	serve(200, "<html>hello</html>");
	assert_int_equal(lapi_poll(cl, &batch, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "not valid JSON"));
	serve(200, "{\"deleted\":null,\"new\":[{\"duration\":\"1m\",\"id\":1,");
	assert_int_equal(lapi_poll(cl, &batch, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "cut short"));
	assert_true(srv.has_startup);
}

static void test_poll_broken_off_transfer_fails(void **state)
{
	(void)state;
	open_http("", NULL, 0, 0);
	serve(200, "{\"deleted\":null,\"new\":[");
	pthread_mutex_lock(&srv.lock);
	srv.claim = 5000;
	pthread_mutex_unlock(&srv.lock);
	assert_int_equal(lapi_poll(cl, &batch, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "broke off"));
}

static void test_poll_times_out(void **state)
{
	struct timespec t0, t1;
	double ms;

	(void)state;
	open_http("", NULL, 200, 0);
	serve(200, "{\"deleted\":null,\"new\":null}");
	pthread_mutex_lock(&srv.lock);
	srv.delay_ms = 800;
	pthread_mutex_unlock(&srv.lock);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(lapi_poll(cl, &batch, err, sizeof(err)), -ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	assert_true(ms < 700);
	assert_non_null(strstr(err, "did not answer in time"));
}

static void test_poll_refused_connection(void **state)
{
	struct lapi_config cfg = { .key_file = keyfile, .connect_timeout_ms = 1000 };
	char url[64];

	(void)state;
	/* The server's port, once it has stopped: nothing listens there. */
	snprintf(url, sizeof(url), "http://127.0.0.1:%u", srv.port);
	MHD_stop_daemon(srv.d);
	srv.d = NULL;
	cfg.url = url;
	assert_int_equal(lapi_open(&cfg, &cl, err, sizeof(err)), 0);
	assert_int_equal(lapi_poll(cl, &batch, err, sizeof(err)), -ECONNREFUSED);
	assert_non_null(strstr(err, "Cannot connect"));
	assert_non_null(strstr(err, url));
}

static void test_poll_refuses_an_answer_over_max_body(void **state)
{
	(void)state;
	open_http("", NULL, 0, 16);
	serve(200, "{\"deleted\":null,\"new\":null}");
	assert_int_equal(lapi_poll(cl, &batch, err, sizeof(err)), -EFBIG);
	assert_non_null(strstr(err, "larger than 16 bytes"));
}

int main(void)
{
	const struct CMUnitTest decode_tests[] = {
		cmocka_unit_test_teardown(test_null_lists_give_an_empty_batch, teardown),
		cmocka_unit_test_teardown(test_ip_decisions_become_host_prefixes_v4_and_v6,
					  teardown),
		cmocka_unit_test_teardown(test_range_host_bits_are_cleared, teardown),
		cmocka_unit_test_teardown(test_captcha_and_other_scopes_are_ignored, teardown),
		cmocka_unit_test_teardown(test_configured_types_keep_captcha, teardown),
		cmocka_unit_test_teardown(test_origin_filter_keeps_listed_origins_only, teardown),
		cmocka_unit_test_teardown(test_source_per_origin_names_a_source_per_origin,
					  teardown),
		cmocka_unit_test_teardown(test_deletions_with_negative_durations_release, teardown),
		cmocka_unit_test_teardown(test_fractional_durations_round_up_to_seconds, teardown),
		cmocka_unit_test_teardown(test_bad_values_are_skipped_and_counted, teardown),
		cmocka_unit_test_teardown(test_expired_new_decisions_are_not_added, teardown),
		cmocka_unit_test_teardown(test_duplicates_in_one_answer_merge_into_the_longest,
					  teardown),
		cmocka_unit_test_teardown(test_a_prefix_deleted_and_new_in_one_answer_stays,
					  teardown),
		cmocka_unit_test_teardown(test_del_waits_for_the_last_decision_holding_a_prefix,
					  teardown),
		cmocka_unit_test_teardown(test_repeated_and_unknown_deletions_pass_through,
					  teardown),
		cmocka_unit_test_teardown(test_a_startup_answer_replaces_what_was_remembered,
					  teardown),
		cmocka_unit_test_teardown(test_decisions_past_their_time_are_forgotten, teardown),
		cmocka_unit_test_teardown(test_answers_that_are_not_streams_are_refused, teardown),
		cmocka_unit_test_teardown(test_ten_thousand_decisions_decode_fast, teardown),
		cmocka_unit_test_teardown(test_random_streams_match_a_reference_model, teardown),
		cmocka_unit_test(test_go_durations_parse_to_nanoseconds),
		cmocka_unit_test_teardown(test_key_file_is_trimmed, teardown),
		cmocka_unit_test_teardown(test_empty_unreadable_or_odd_key_files_are_refused,
					  teardown),
		cmocka_unit_test_teardown(test_bad_configurations_are_refused, teardown),
		cmocka_unit_test(test_backoff_doubles_to_the_cap_with_bounded_jitter),
	};
	const struct CMUnitTest http_tests[] = {
		cmocka_unit_test_setup_teardown(test_poll_sends_the_stream_path_query_and_key,
						srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_poll_asks_for_the_configured_origins,
						srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_poll_403_says_the_key_is_wrong, srv_setup,
						srv_teardown),
		cmocka_unit_test_setup_teardown(
			test_poll_other_statuses_and_bodies_fail_with_a_sentence, srv_setup,
			srv_teardown),
		cmocka_unit_test_setup_teardown(test_poll_broken_off_transfer_fails, srv_setup,
						srv_teardown),
		cmocka_unit_test_setup_teardown(test_poll_times_out, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_poll_refused_connection, srv_setup,
						srv_teardown),
		cmocka_unit_test_setup_teardown(test_poll_refuses_an_answer_over_max_body,
						srv_setup, srv_teardown),
	};
	int failed;

	failed = cmocka_run_group_tests_name("lapi decode", decode_tests, group_setup,
					     group_teardown);
	failed += cmocka_run_group_tests_name("lapi http", http_tests, group_setup, group_teardown);
	return failed;
}
