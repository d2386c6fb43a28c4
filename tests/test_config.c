// SPDX-License-Identifier: GPL-2.0
/*
 * ipblock.conf: every rule of the format, every refusal with its exact
 * FILE:LINE sentence, the defaults, the shipped example and man page, and
 * files that are not configuration files at all.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "ipblock.h"

static struct config cfg;
static char err[CONFIG_ERRLEN];

static int teardown(void **state)
{
	(void)state;
	config_free(&cfg);
	return 0;
}

/* Parse len bytes as the file "t.conf". */
static int parse_len(const char *text, size_t len)
{
	config_free(&cfg);
	memset(err, 'x', sizeof(err) - 1);
	err[sizeof(err) - 1] = '\0';
	return config_parse(&cfg, "t.conf", text, len, err, sizeof(err));
}

static int parse(const char *text)
{
	return parse_len(text, strlen(text));
}

static void assert_config_empty(const struct config *c)
{
	static const struct config zero;

	assert_memory_equal(c, &zero, sizeof(zero));
}

static void assert_ok(const char *text)
{
	int ret = parse(text);

	if (ret)
		print_error("unexpected error: %s\n", err);
	assert_int_equal(ret, 0);
	assert_string_equal(err, "");
}

/* text is refused with exactly this sentence, and leaves nothing behind. */
static void assert_refused_len(const char *text, size_t len, const char *sentence)
{
	assert_int_equal(parse_len(text, len), -EINVAL);
	assert_string_equal(err, sentence);
	assert_config_empty(&cfg);
}

static void assert_refused(const char *text, const char *sentence)
{
	assert_refused_len(text, strlen(text), sentence);
}

struct bad_case {
	const char *text, *sentence;
};

static void assert_each_refused(const struct bad_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int ret = parse(cases[i].text);

		if (ret != -EINVAL || strcmp(err, cases[i].sentence))
			print_error("case %zu: %s\n  got:      %d %s\n  expected: %s\n", i,
				    cases[i].text, ret, err, cases[i].sentence);
		assert_int_equal(ret, -EINVAL);
		assert_string_equal(err, cases[i].sentence);
		assert_config_empty(&cfg);
	}
}

static void assert_defaults(const struct config *c)
{
	char buf[VALUE_HOSTPORT_STRLEN];

	assert_string_equal(c->pin_dir, IPBLOCK_PIN_DIR_DEFAULT);
	assert_string_equal(c->pin_dir, "/sys/fs/bpf/ipblock");
	assert_string_equal(c->state_dir, "/var/lib/ipblock");
	assert_int_equal(c->capacity, IPBLOCK_MAX_RULES_DEFAULT);
	assert_false(c->detach_on_stop);
	assert_int_equal(c->save_interval, 1);
	assert_int_equal(c->n_interfaces, 0);
	assert_null(c->interfaces);
	assert_int_equal(c->n_lists, 0);
	assert_null(c->lists);

	assert_false(c->metrics.enabled);
	assert_string_equal(value_format_hostport(&c->metrics.listen, buf, sizeof(buf)),
			    "127.0.0.1:9657");

	assert_false(c->drop_log.enabled);
	assert_int_equal(c->drop_log.rate, 100);
	assert_int_equal(c->drop_log.sample, 0);
	assert_int_equal(c->drop_log.output, CONFIG_LOG_STDERR);
	assert_null(c->drop_log.file);
	assert_false(c->drop_log.allowed);

	assert_false(c->crowdsec.enabled);
	assert_string_equal(c->crowdsec.url, "http://127.0.0.1:8080/");
	assert_null(c->crowdsec.api_key_file);
	assert_int_equal(c->crowdsec.interval, 10);
	assert_int_equal(c->crowdsec.scopes,
			 CONFIG_CROWDSEC_SCOPE_IP | CONFIG_CROWDSEC_SCOPE_RANGE);
	assert_int_equal(c->crowdsec.types, CONFIG_CROWDSEC_TYPE_BAN);
	assert_int_equal(c->crowdsec.n_origins, 0);
	assert_null(c->crowdsec.origins);
	assert_int_equal(c->crowdsec.source, CONFIG_CROWDSEC_SOURCE_ONE);
}

/* --- defaults and the whole format ---------------------------------------- */

static void test_empty_file_gives_every_default(void **state)
{
	struct config d;

	(void)state;
	assert_ok("");
	assert_defaults(&cfg);
	assert_int_equal(config_defaults(&d), 0);
	assert_defaults(&d);
	config_free(&d);
	assert_config_empty(&d);
}

static void test_comments_and_blank_lines_alone_give_the_defaults(void **state)
{
	(void)state;
	assert_ok("# a comment\n"
		  "; another\n"
		  "\n"
		  "   \t\n"
		  "   # indented\n"
		  "\t; indented too\n"
		  "#[interface eth0]\n"
		  ";capacity = 5\n");
	assert_defaults(&cfg);
}

static const char full_file[] = "# every key of every section\n"
				"[ipblock]\n"
				"pin-dir = /sys/fs/bpf/test\n"
				"state-dir = /tmp/state\n"
				"capacity = 250k\n"
				"# a comment between keys\n"
				"detach-on-stop = yes\n"
				"save-interval = 5s\n"
				"\n"
				"[interface eth0]\n"
				"mode = native\n"
				"\n"
				"[interface veth-b.10]\n"
				"mode = skb\n"
				"\n"
				"[interface lo]\n"
				"\n"
				"[list firehol_level1]\n"
				"file = /var/lib/lists/firehol_level1.netset\n"
				"action = deny\n"
				"format = netset\n"
				"refresh = 1h\n"
				"\n"
				"[list spamhaus-drop]\n"
				"file = /var/lib/lists/drop.txt\n"
				"action = deny\n"
				"format = spamhaus\n"
				"\n"
				"[list admins]\n"
				"file = /etc/ipblock/admins.save\n"
				"format = save\n"
				"\n"
				"[list office]\n"
				"file = /etc/ipblock/office.txt\n"
				"action = allow\n"
				"\n"
				"[metrics]\n"
				"listen = [::1]:9100\n"
				"\n"
				"[drop-log]\n"
				"rate = 2k\n"
				"sample = 1000\n"
				"output = /var/log/ipblock/drops.jsonl\n"
				"allowed = on\n"
				"\n"
				"[crowdsec]\n"
				"url = https://lapi.example:8080/\n"
				"api-key-file = /etc/ipblock/crowdsec.key\n"
				"interval = 1m30s\n"
				"scopes = ip\n"
				"types = ban\n"
				"origins = crowdsec, cscli CAPI\n"
				"source = per-origin\n";

static void test_full_file_sets_every_key(void **state)
{
	char buf[VALUE_HOSTPORT_STRLEN];

	(void)state;
	assert_ok(full_file);
	assert_string_equal(cfg.pin_dir, "/sys/fs/bpf/test");
	assert_string_equal(cfg.state_dir, "/tmp/state");
	assert_int_equal(cfg.capacity, 250000);
	assert_true(cfg.detach_on_stop);
	assert_int_equal(cfg.save_interval, 5);

	assert_int_equal(cfg.n_interfaces, 3);
	assert_string_equal(cfg.interfaces[0].name, "eth0");
	assert_int_equal(cfg.interfaces[0].mode, CONFIG_MODE_NATIVE);
	assert_int_equal(cfg.interfaces[0].line, 10);
	assert_string_equal(cfg.interfaces[1].name, "veth-b.10");
	assert_int_equal(cfg.interfaces[1].mode, CONFIG_MODE_SKB);
	assert_int_equal(cfg.interfaces[1].line, 13);
	assert_string_equal(cfg.interfaces[2].name, "lo");
	assert_int_equal(cfg.interfaces[2].mode, CONFIG_MODE_AUTO);
	assert_int_equal(cfg.interfaces[2].line, 16);

	assert_int_equal(cfg.n_lists, 4);
	assert_string_equal(cfg.lists[0].name, "firehol_level1");
	assert_string_equal(cfg.lists[0].file, "/var/lib/lists/firehol_level1.netset");
	assert_int_equal(cfg.lists[0].action, CONFIG_ACTION_DENY);
	assert_int_equal(cfg.lists[0].format, CONFIG_FORMAT_NETSET);
	assert_int_equal(cfg.lists[0].refresh, 3600);
	assert_int_equal(cfg.lists[0].line, 18);
	assert_string_equal(cfg.lists[1].name, "spamhaus-drop");
	assert_int_equal(cfg.lists[1].format, CONFIG_FORMAT_SPAMHAUS);
	assert_int_equal(cfg.lists[1].refresh, 0);
	assert_string_equal(cfg.lists[2].name, "admins");
	assert_int_equal(cfg.lists[2].action, CONFIG_ACTION_NONE);
	assert_int_equal(cfg.lists[2].format, CONFIG_FORMAT_SAVE);
	assert_string_equal(cfg.lists[3].name, "office");
	assert_int_equal(cfg.lists[3].action, CONFIG_ACTION_ALLOW);
	assert_int_equal(cfg.lists[3].format, CONFIG_FORMAT_AUTO);

	assert_true(cfg.metrics.enabled);
	assert_string_equal(value_format_hostport(&cfg.metrics.listen, buf, sizeof(buf)),
			    "[::1]:9100");

	assert_true(cfg.drop_log.enabled);
	assert_int_equal(cfg.drop_log.rate, 2000);
	assert_int_equal(cfg.drop_log.sample, 1000);
	assert_int_equal(cfg.drop_log.output, CONFIG_LOG_FILE);
	assert_string_equal(cfg.drop_log.file, "/var/log/ipblock/drops.jsonl");
	assert_true(cfg.drop_log.allowed);

	assert_true(cfg.crowdsec.enabled);
	assert_string_equal(cfg.crowdsec.url, "https://lapi.example:8080/");
	assert_string_equal(cfg.crowdsec.api_key_file, "/etc/ipblock/crowdsec.key");
	assert_int_equal(cfg.crowdsec.interval, 90);
	assert_int_equal(cfg.crowdsec.scopes, CONFIG_CROWDSEC_SCOPE_IP);
	assert_int_equal(cfg.crowdsec.types, CONFIG_CROWDSEC_TYPE_BAN);
	assert_int_equal(cfg.crowdsec.n_origins, 3);
	assert_string_equal(cfg.crowdsec.origins[0], "crowdsec");
	assert_string_equal(cfg.crowdsec.origins[1], "cscli");
	assert_string_equal(cfg.crowdsec.origins[2], "CAPI");
	assert_int_equal(cfg.crowdsec.source, CONFIG_CROWDSEC_SOURCE_PER_ORIGIN);
}

static void test_an_empty_section_turns_its_feature_on_with_defaults(void **state)
{
	char buf[VALUE_HOSTPORT_STRLEN];

	(void)state;
	assert_ok("[metrics]\n[drop-log]\n[ipblock]\n");
	assert_true(cfg.metrics.enabled);
	assert_string_equal(value_format_hostport(&cfg.metrics.listen, buf, sizeof(buf)),
			    "127.0.0.1:9657");
	assert_true(cfg.drop_log.enabled);
	assert_int_equal(cfg.drop_log.rate, 100);
	assert_int_equal(cfg.drop_log.output, CONFIG_LOG_STDERR);
	assert_false(cfg.crowdsec.enabled);
	assert_int_equal(cfg.capacity, IPBLOCK_MAX_RULES_DEFAULT);

	assert_ok("[crowdsec]\napi-key-file = /k\n");
	assert_true(cfg.crowdsec.enabled);
	assert_string_equal(cfg.crowdsec.url, "http://127.0.0.1:8080/");
	assert_false(cfg.metrics.enabled);
	assert_false(cfg.drop_log.enabled);
}

static void test_trailing_comments_need_a_blank_before_them(void **state)
{
	(void)state;
	assert_ok("[ipblock] # the main section\n"
		  "pin-dir = /a/b # where the maps live\n"
		  "state-dir = /c;d/e#f ; ';' and '#' inside a word stay\n"
		  "capacity = 5k\t; a tab counts as a blank\n"
		  "[crowdsec];the header's comment needs no blank\n"
		  "url = http://lapi.example/#frag\n"
		  "api-key-file = /k#1\n");
	assert_string_equal(cfg.pin_dir, "/a/b");
	assert_string_equal(cfg.state_dir, "/c;d/e#f");
	assert_int_equal(cfg.capacity, 5000);
	assert_string_equal(cfg.crowdsec.url, "http://lapi.example/#frag");
	assert_string_equal(cfg.crowdsec.api_key_file, "/k#1");
}

static void test_quotes_keep_blanks_and_comment_characters(void **state)
{
	(void)state;
	assert_ok("[list a]\n"
		  "file = \"/srv/my lists/a #1; b.netset\"   # the quotes end the value\n"
		  "action = \"deny\"\n"
		  "[list b]\n"
		  "file = /srv/my lists/b.netset\n"
		  "action=allow\n"
		  "[ipblock]\n"
		  "state-dir=\"/x\";comment\n");
	assert_string_equal(cfg.lists[0].file, "/srv/my lists/a #1; b.netset");
	assert_int_equal(cfg.lists[0].action, CONFIG_ACTION_DENY);
	assert_string_equal(cfg.lists[1].file, "/srv/my lists/b.netset");
	assert_int_equal(cfg.lists[1].action, CONFIG_ACTION_ALLOW);
	assert_string_equal(cfg.state_dir, "/x");

	/* A quote inside an unquoted value is an ordinary character. */
	assert_ok("[list a]\nfile = /a\"b\naction = deny\n");
	assert_string_equal(cfg.lists[0].file, "/a\"b");
}

static void test_crlf_tabs_byte_order_mark_and_no_final_newline(void **state)
{
	(void)state;
	assert_ok("\xef\xbb\xbf[ipblock]\r\n"
		  "\tcapacity\t=\t100k\t\r\n"
		  "\r\n"
		  "  [ interface   eth0 ]  \r\n"
		  "mode=skb");
	assert_int_equal(cfg.capacity, 100000);
	assert_int_equal(cfg.n_interfaces, 1);
	assert_string_equal(cfg.interfaces[0].name, "eth0");
	assert_int_equal(cfg.interfaces[0].mode, CONFIG_MODE_SKB);
	assert_int_equal(cfg.interfaces[0].line, 4);

	/* Line numbers count CRLF lines once, and the mark is not a line. */
	assert_refused("\xef\xbb\xbf[ipblock]\r\n\r\nbogus\r\n",
		       "t.conf:3: expected KEY = VALUE, a [SECTION] header or a comment.");
	/* A mark anywhere but at the start is not a blank. */
	assert_refused("[ipblock]\n\xef\xbb\xbf"
		       "capacity = 1\n",
		       "t.conf:2: expected KEY = VALUE, a [SECTION] header or a comment.");
}

static void test_interfaces_and_lists_keep_file_order_and_can_be_found(void **state)
{
	const struct config_interface *itf;
	const struct config_list *l;

	(void)state;
	assert_ok("[interface b]\n[list y]\nfile=/y\naction=deny\n[interface a]\nmode=native\n"
		  "[list x]\nfile=/x\naction=allow\n[interface c]\n");
	assert_int_equal(cfg.n_interfaces, 3);
	assert_string_equal(cfg.interfaces[0].name, "b");
	assert_string_equal(cfg.interfaces[1].name, "a");
	assert_string_equal(cfg.interfaces[2].name, "c");
	itf = config_find_interface(&cfg, "a");
	assert_ptr_equal(itf, &cfg.interfaces[1]);
	assert_int_equal(itf->mode, CONFIG_MODE_NATIVE);
	assert_int_equal(itf->line, 5);
	assert_null(config_find_interface(&cfg, "d"));
	assert_null(config_find_interface(&cfg, "A"));

	assert_int_equal(cfg.n_lists, 2);
	l = config_find_list(&cfg, "x");
	assert_ptr_equal(l, &cfg.lists[1]);
	assert_string_equal(l->file, "/x");
	assert_int_equal(l->line, 7);
	assert_null(config_find_list(&cfg, "z"));
}

static void test_one_key_name_in_several_sections(void **state)
{
	(void)state;
	assert_ok("[interface a]\nmode = skb\n[interface b]\nmode = native\n"
		  "[list p]\nfile = /p\naction = deny\n[list q]\nfile = /q\naction = deny\n");
	assert_int_equal(cfg.interfaces[0].mode, CONFIG_MODE_SKB);
	assert_int_equal(cfg.interfaces[1].mode, CONFIG_MODE_NATIVE);
}

static void test_list_action_may_be_left_out_only_for_save_format(void **state)
{
	(void)state;
	assert_ok("[list a]\nfile = /a\nformat = save\n");
	assert_int_equal(cfg.lists[0].action, CONFIG_ACTION_NONE);
	/* With save, an action given is every line's action, as -p. */
	assert_ok("[list a]\nfile = /a\nformat = save\naction = allow\n");
	assert_int_equal(cfg.lists[0].action, CONFIG_ACTION_ALLOW);
	assert_refused("[list a]\nfile = /a\nformat = netset\n",
		       "t.conf:1: [list a] has no action; add action = deny or allow (only "
		       "format = save lists carry their own).");
	assert_refused("[list a]\nfile = /a\n",
		       "t.conf:1: [list a] has no action; add action = deny or allow (only "
		       "format = save lists carry their own).");
}

static void test_values_in_every_unit_spelling(void **state)
{
	(void)state;
	assert_ok("[ipblock]\ncapacity = 100000000\ndetach-on-stop = TRUE\nsave-interval = 1h\n"
		  "[list a]\nfile=/a\naction=deny\nrefresh = 0\n"
		  "[list b]\nfile=/b\naction=deny\nrefresh = 30d\n"
		  "[drop-log]\nrate = 1M\nsample = 0\noutput = journal\nallowed = off\n"
		  "[crowdsec]\napi-key-file=/k\ninterval = 1d\nscopes = range,ip\n"
		  "source = crowdsec\n");
	assert_int_equal(cfg.capacity, 100000000);
	assert_true(cfg.detach_on_stop);
	assert_int_equal(cfg.save_interval, 3600);
	assert_int_equal(cfg.lists[0].refresh, 0);
	assert_int_equal(cfg.lists[1].refresh, 30 * 86400);
	assert_int_equal(cfg.drop_log.rate, 1000000);
	assert_int_equal(cfg.drop_log.output, CONFIG_LOG_JOURNAL);
	assert_null(cfg.drop_log.file);
	assert_false(cfg.drop_log.allowed);
	assert_int_equal(cfg.crowdsec.interval, 86400);
	assert_int_equal(cfg.crowdsec.scopes,
			 CONFIG_CROWDSEC_SCOPE_IP | CONFIG_CROWDSEC_SCOPE_RANGE);
	assert_int_equal(cfg.crowdsec.source, CONFIG_CROWDSEC_SOURCE_ONE);

	assert_ok("[drop-log]\noutput = stderr\nsample = 2\n[interface x]\nmode = auto\n");
	assert_int_equal(cfg.drop_log.output, CONFIG_LOG_STDERR);
	assert_int_equal(cfg.drop_log.sample, 2);
	assert_int_equal(cfg.interfaces[0].mode, CONFIG_MODE_AUTO);
}

/* --- refusals -------------------------------------------------------------- */

static void test_every_syntax_error_names_its_line(void **state)
{
	static const struct bad_case cases[] = {
		{ "capacity = 5\n",
		  "t.conf:1: capacity comes before any section header; it belongs in [ipblock]." },
		{ "# c\n\nmode = skb\n", "t.conf:3: mode comes before any section header; it "
					 "belongs in [interface NAME]." },
		{ "foo = 5\n", "t.conf:1: 'foo' comes before any section header." },
		{ "[ipblock]\njust words\n",
		  "t.conf:2: expected KEY = VALUE, a [SECTION] header or a comment." },
		{ "[ipblock]\n= 5\n",
		  "t.conf:2: expected KEY = VALUE, a [SECTION] header or a comment." },
		{ "[ipblock]\npin dir = /x\n",
		  "t.conf:2: expected KEY = VALUE, a [SECTION] header or a comment." },
		{ "[ipblock]\npin-dir # = /x\n",
		  "t.conf:2: expected KEY = VALUE, a [SECTION] header or a comment." },
		{ "[ipblock]\npin-dir =\n", "t.conf:2: pin-dir has no value." },
		{ "[ipblock]\npin-dir =   # nothing\n", "t.conf:2: pin-dir has no value." },
		{ "[ipblock]\npin-dir = \"\"\n", "t.conf:2: pin-dir has no value." },
		{ "[ipblock]\npin-dir = \"/x\n",
		  "t.conf:2: the value of pin-dir has no closing '\"'." },
		{ "[ipblock]\npin-dir = \"/x\" y\n",
		  "t.conf:2: unexpected 'y' after the closing '\"' of pin-dir." },
		{ "[ipblock]\npin-dir = \"/x\"\"/y\"\n",
		  "t.conf:2: unexpected '\"/y\"' after the closing '\"' of pin-dir." },
		{ "[ipblock\n", "t.conf:1: the section header has no closing ']'." },
		{ "[ipblock] x\n", "t.conf:1: unexpected 'x' after the section header." },
		{ "[ipblock]]\n", "t.conf:1: unexpected ']' after the section header." },
		{ "[]\n", "t.conf:1: empty section header; expected [SECTION] or [SECTION NAME]." },
		{ "[ \t ]\n",
		  "t.conf:1: empty section header; expected [SECTION] or [SECTION NAME]." },
		{ "[list a b]\n", "t.conf:1: too many words in the section header; expected "
				  "[SECTION] or [SECTION NAME]." },
		{ "[interface]\n", "t.conf:1: [interface] needs a name: [interface NAME]." },
		{ "[list]\n", "t.conf:1: [list] needs a name: [list NAME]." },
		{ "[ipblock main]\n", "t.conf:1: [ipblock] takes no name; write [ipblock]." },
		{ "[crowdsec eu]\n", "t.conf:1: [crowdsec] takes no name; write [crowdsec]." },
	};

	(void)state;
	assert_each_refused(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_unknown_sections_and_keys_say_what_is_expected(void **state)
{
	static const struct bad_case cases[] = {
		{ "[foo]\n",
		  "t.conf:1: unknown section [foo]; expected [ipblock], [interface NAME], "
		  "[list NAME], [metrics], [drop-log] or [crowdsec]." },
		{ "[interfaces eth0]\n",
		  "t.conf:1: unknown section [interfaces]; expected [ipblock], [interface NAME], "
		  "[list NAME], [metrics], [drop-log] or [crowdsec]." },
		{ "[IPBlock]\n", "t.conf:1: unknown section [IPBlock]; did you mean [ipblock]?" },
		{ "[drop_log]\n",
		  "t.conf:1: unknown section [drop_log]; did you mean [drop-log]?" },
		{ "[Interface eth0]\n",
		  "t.conf:1: unknown section [Interface]; did you mean [interface NAME]?" },
		{ "[ipblock]\nfoo = 1\n", "t.conf:2: unknown key 'foo' in [ipblock]; expected "
					  "pin-dir, state-dir, capacity, "
					  "detach-on-stop or save-interval." },
		{ "[ipblock]\npin_dir = /x\n",
		  "t.conf:2: unknown key 'pin_dir' in [ipblock]; did you mean pin-dir?" },
		{ "[ipblock]\nCapacity = 1\n",
		  "t.conf:2: unknown key 'Capacity' in [ipblock]; did you mean capacity?" },
		{ "[ipblock]\nmode = skb\n",
		  "t.conf:2: unknown key 'mode' in [ipblock]; it belongs in [interface NAME]." },
		{ "[interface eth0]\nfile = /x\n",
		  "t.conf:2: unknown key 'file' in [interface eth0]; it belongs in [list NAME]." },
		{ "[interface eth0]\nmodes = skb\n",
		  "t.conf:2: unknown key 'modes' in [interface eth0]; expected mode." },
		{ "[list a]\ntimeout = 1h\n",
		  "t.conf:2: unknown key 'timeout' in [list a]; expected file, action, format or "
		  "refresh." },
		{ "[metrics]\nport = 9657\n",
		  "t.conf:2: unknown key 'port' in [metrics]; expected listen." },
		{ "[drop-log]\nlisten = 127.0.0.1:1\n",
		  "t.conf:2: unknown key 'listen' in [drop-log]; it belongs in [metrics]." },
		{ "[drop-log]\nburst = 5\n",
		  "t.conf:2: unknown key 'burst' in [drop-log]; expected rate, sample, output or "
		  "allowed." },
		{ "[crowdsec]\nkey = x\n", "t.conf:2: unknown key 'key' in [crowdsec]; expected "
					   "url, api-key-file, interval, "
					   "scopes, types, origins or source." },
	};

	(void)state;
	assert_each_refused(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_duplicates_name_the_first_line(void **state)
{
	static const struct bad_case cases[] = {
		{ "[ipblock]\ncapacity = 1\n\n[ipblock]\n",
		  "t.conf:4: [ipblock] appears twice (first on line 1)." },
		{ "[metrics]\n[drop-log]\n[metrics]\n",
		  "t.conf:3: [metrics] appears twice (first on line 1)." },
		{ "[interface eth0]\n[interface eth1]\n[interface eth0]\n",
		  "t.conf:3: [interface eth0] appears twice (first on line 1)." },
		{ "[list a]\nfile = /a\naction = deny\n[list a]\n",
		  "t.conf:4: [list a] appears twice (first on line 1)." },
		{ "[ipblock]\ncapacity = 1\n# c\ncapacity = 1\n",
		  "t.conf:4: capacity is set twice in [ipblock] (first on line 2)." },
		{ "[list a]\nfile = /a\nfile = /b\n",
		  "t.conf:3: file is set twice in [list a] (first on line 2)." },
		{ "[interface e]\nmode = skb\nmode = skb\n",
		  "t.conf:3: mode is set twice in [interface e] (first on line 2)." },
		{ "[crowdsec]\norigins = a\norigins = b\n",
		  "t.conf:3: origins is set twice in [crowdsec] (first on line 2)." },
		/* The first bad value stops the parse: its line is reported, not the repeat. */
		{ "[ipblock]\ncapacity = x\ncapacity = 1\n",
		  "t.conf:2: bad capacity 'x': expected a whole number, optionally with k "
		  "(thousand) or M (million)." },
	};

	(void)state;
	assert_each_refused(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_missing_required_keys_name_the_section_header(void **state)
{
	static const struct bad_case cases[] = {
		{ "[list a]\naction = deny\n", "t.conf:1: [list a] has no file; add file = PATH." },
		{ "# c\n[list a]\nfile = /a\n[ipblock]\ncapacity = 1\n",
		  "t.conf:2: [list a] has no action; add action = deny or allow (only format = "
		  "save lists carry their own)." },
		/* Reported before what follows the section, in the order of the file. */
		{ "[list a]\nfile = /a\n[bogus]\n",
		  "t.conf:1: [list a] has no action; add action = deny or allow (only format = "
		  "save lists carry their own)." },
		{ "[list a]\n[list b]\nfile=/b\naction=deny\n",
		  "t.conf:1: [list a] has no file; add file = PATH." },
		{ "[crowdsec]\nurl = http://x/\n",
		  "t.conf:1: [crowdsec] has no api-key-file; add api-key-file = PATH of the file "
		  "holding the bouncer's API key." },
		{ "[ipblock]\n[crowdsec]\n[metrics]\n",
		  "t.conf:2: [crowdsec] has no api-key-file; add api-key-file = PATH of the file "
		  "holding the bouncer's API key." },
	};

	(void)state;
	assert_each_refused(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_bad_section_names_are_refused(void **state)
{
	static const struct bad_case cases[] = {
		{ "[interface eth0/1]\n",
		  "t.conf:1: [interface eth0/1]: not an interface name (1 to 15 characters, no '/' "
		  "or ':')." },
		{ "[interface eth0:1]\n",
		  "t.conf:1: [interface eth0:1]: not an interface name (1 to 15 characters, no '/' "
		  "or ':')." },
		{ "[interface ..]\n",
		  "t.conf:1: [interface ..]: not an interface name (1 to 15 characters, no '/' or "
		  "':')." },
		{ "[interface abcdefghijklmnop]\n",
		  "t.conf:1: [interface abcdefghijklmnop]: not an interface name (1 to 15 "
		  "characters, no '/' or ':')." },
		{ "[list bad/name]\n",
		  "t.conf:1: [list bad/name]: the name may hold only letters, digits, '.', '_' and "
		  "'-', and starts with a letter or digit." },
		{ "[list -a]\n",
		  "t.conf:1: [list -a]: the name may hold only letters, digits, '.', "
		  "'_' and '-', and starts with a letter or digit." },
		{ "[list a234567890123456789012345678901234567890123456789012345678901234]\n",
		  "t.conf:1: [list "
		  "a234567890123456789012345678901234567890123456789012345678901234]: "
		  "the name is longer than 63 characters." },
		{ "[list static]\n", "t.conf:1: [list static]: static, crowdsec, crowdsec-* and "
				     "fail2ban-* name other sources; choose another name." },
		{ "[list crowdsec]\n",
		  "t.conf:1: [list crowdsec]: static, crowdsec, crowdsec-* and "
		  "fail2ban-* name other sources; choose another name." },
		{ "[list crowdsec-cscli]\n", "t.conf:1: [list crowdsec-cscli]: static, crowdsec, "
					     "crowdsec-* and fail2ban-* name "
					     "other sources; choose another name." },
		{ "[list fail2ban-sshd]\n", "t.conf:1: [list fail2ban-sshd]: static, crowdsec, "
					    "crowdsec-* and fail2ban-* name "
					    "other sources; choose another name." },
	};

	(void)state;
	assert_each_refused(cases, sizeof(cases) / sizeof(cases[0]));
	/* The longest names that are allowed. */
	assert_ok("[interface abcdefghijklmno]\n"
		  "[list a23456789012345678901234567890123456789012345678901234567890123]\n"
		  "file=/a\naction=deny\n[list staticky]\nfile=/s\naction=deny\n"
		  "[list fail2ban]\nfile=/f\naction=deny\n");
	assert_string_equal(cfg.interfaces[0].name, "abcdefghijklmno");
	assert_int_equal(strlen(cfg.lists[0].name), CONFIG_NAME_MAX);
}

static void test_every_bad_value_names_the_key_and_what_it_expects(void **state)
{
	static const struct bad_case cases[] = {
		{ "[ipblock]\npin-dir = sys/fs/bpf\n",
		  "t.conf:2: bad pin-dir 'sys/fs/bpf': expected an absolute path (starting with "
		  "'/')." },
		{ "[ipblock]\nstate-dir = ~/state\n",
		  "t.conf:2: bad state-dir '~/state': expected an absolute path (starting with "
		  "'/')." },
		{ "[ipblock]\ncapacity = 0\n",
		  "t.conf:2: bad capacity '0': must be from 1 to 100000000." },
		{ "[ipblock]\ncapacity = 101M\n",
		  "t.conf:2: bad capacity '101M': must be from 1 to 100000000." },
		{ "[ipblock]\ncapacity = 1.5M\n",
		  "t.conf:2: bad capacity '1.5M': expected a whole number, optionally with k "
		  "(thousand) or M (million)." },
		{ "[ipblock]\ncapacity = -1\n",
		  "t.conf:2: bad capacity '-1': expected a whole number, optionally with k "
		  "(thousand) or M (million)." },
		{ "[interface eth0]\nmode = Native\n",
		  "t.conf:2: bad mode 'Native': expected auto, native or skb." },
		{ "[ipblock]\ndetach-on-stop = maybe\n",
		  "t.conf:2: bad detach-on-stop 'maybe': expected yes or no (also true/false, "
		  "on/off, 1/0)." },
		{ "[ipblock]\nsave-interval = 0\n",
		  "t.conf:2: bad save-interval '0': must be from 1s to 1h." },
		{ "[ipblock]\nsave-interval = 1h1s\n",
		  "t.conf:2: bad save-interval '1h1s': must be from 1s to 1h." },
		{ "[ipblock]\nsave-interval = 1x\n",
		  "t.conf:2: bad save-interval '1x': unknown unit 'x'; use s, m, h or d." },
		{ "[interface eth0]\nmode = xdp\n",
		  "t.conf:2: bad mode 'xdp': expected auto, native or skb." },
		{ "[list a]\nfile = lists/a.netset\n",
		  "t.conf:2: bad file 'lists/a.netset': expected an absolute path (starting with "
		  "'/')." },
		{ "[list a]\naction = drop\n",
		  "t.conf:2: bad action 'drop': expected deny or allow." },
		{ "[list a]\nformat = csv\n",
		  "t.conf:2: bad format 'csv': expected auto, netset, spamhaus or save." },
		{ "[list a]\nrefresh = 31d\n",
		  "t.conf:2: bad refresh '31d': must be at most 30d." },
		{ "[list a]\nrefresh = never\n",
		  "t.conf:2: bad refresh 'never': expected a duration such as 90s, 30m, 1h, 2d or "
		  "1h30m." },
		{ "[metrics]\nlisten = localhost:9657\n",
		  "t.conf:2: bad listen 'localhost:9657': the address is not an IPv4 address "
		  "(names "
		  "are not resolved; IPv6 goes in brackets)." },
		{ "[metrics]\nlisten = ::1:9657\n",
		  "t.conf:2: bad listen '::1:9657': an IPv6 address goes in brackets, e.g. "
		  "[::1]:9657." },
		{ "[metrics]\nlisten = 127.0.0.1:0\n", "t.conf:2: bad listen '127.0.0.1:0': the "
						       "port must be a number from 1 to 65535." },
		{ "[metrics]\nlisten = 9657\n",
		  "t.conf:2: bad listen '9657': expected ADDRESS:PORT, e.g. 127.0.0.1:9657 or "
		  "[::1]:9657." },
		{ "[drop-log]\nrate = 0\n", "t.conf:2: bad rate '0': must be from 1 to 1000000." },
		{ "[drop-log]\nsample = 1\n",
		  "t.conf:2: bad sample '1': must be 0 (nothing beyond rate) or from 2 to "
		  "1000000000." },
		{ "[drop-log]\nsample = 2G\n",
		  "t.conf:2: bad sample '2G': expected a whole number, optionally with k "
		  "(thousand) or M (million)." },
		{ "[drop-log]\noutput = syslog\n", "t.conf:2: bad output 'syslog': expected "
						   "stderr, journal or the absolute path of a "
						   "JSON-lines file." },
		{ "[drop-log]\noutput = drops.jsonl\n",
		  "t.conf:2: bad output 'drops.jsonl': expected stderr, journal or the absolute "
		  "path "
		  "of a JSON-lines file." },
		{ "[drop-log]\nallowed = 2\n",
		  "t.conf:2: bad allowed '2': expected yes or no (also true/false, on/off, 1/0)." },
		{ "[crowdsec]\nurl = ftp://lapi/\n",
		  "t.conf:2: bad url 'ftp://lapi/': expected http://HOST[:PORT]/ or "
		  "https://HOST[:PORT]/." },
		{ "[crowdsec]\nurl = http://\n",
		  "t.conf:2: bad url 'http://': expected http://HOST[:PORT]/ or "
		  "https://HOST[:PORT]/." },
		{ "[crowdsec]\nurl = http:///v1\n",
		  "t.conf:2: bad url 'http:///v1': expected http://HOST[:PORT]/ or "
		  "https://HOST[:PORT]/." },
		{ "[crowdsec]\nurl = \"http://a b/\"\n",
		  "t.conf:2: bad url 'http://a b/': expected http://HOST[:PORT]/ or "
		  "https://HOST[:PORT]/." },
		{ "[crowdsec]\napi-key-file = key.txt\n",
		  "t.conf:2: bad api-key-file 'key.txt': expected an absolute path (starting with "
		  "'/')." },
		{ "[crowdsec]\ninterval = 0\n",
		  "t.conf:2: bad interval '0': must be from 1s to 1d." },
		{ "[crowdsec]\ninterval = 10\"\n",
		  "t.conf:2: bad interval '10\"': unknown unit '\"'; use s, m, h or d." },
		{ "[crowdsec]\nscopes = ip, country\n",
		  "t.conf:2: bad scopes 'ip, country': 'country' is not ip or range." },
		{ "[crowdsec]\nscopes = ip ip\n",
		  "t.conf:2: bad scopes 'ip ip': 'ip' is listed twice." },
		{ "[crowdsec]\nscopes = , ,\n", "t.conf:2: bad scopes ', ,': lists nothing." },
		{ "[crowdsec]\ntypes = captcha\n",
		  "t.conf:2: bad types 'captcha': 'captcha' is not ban." },
		{ "[crowdsec]\norigins = cscli, bad/origin\n",
		  "t.conf:2: bad origins 'cscli, bad/origin': 'bad/origin' may hold only letters, "
		  "digits, '.', '_' and '-', and starts with a letter or digit." },
		{ "[crowdsec]\norigins = a234567890123456789012345678901234567890123456789012345\n",
		  "t.conf:2: bad origins "
		  "'a234567890123456789012345678901234567890123456789012345': "
		  "'a234567890123456789012345678901234567890123456789012345' is longer than 54 "
		  "characters." },
		{ "[crowdsec]\norigins = a b c d e f g h i j k l m n o p q r s t u v w x y z 0 1 2 "
		  "3 "
		  "4 5 6\n",
		  "t.conf:2: bad origins 'a b c d e f g h i j k l m n o p q r s t u v w x y z 0 1 "
		  "2 3 "
		  "4 5 ...': more than 32 elements." },
		{ "[crowdsec]\nsource = jail\n",
		  "t.conf:2: bad source 'jail': expected crowdsec or per-origin." },
	};

	(void)state;
	assert_each_refused(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_long_and_odd_values_are_shown_shortened_and_printable(void **state)
{
	char text[512], expect[CONFIG_ERRLEN], nines[101], *long_path;

	(void)state;
	memset(nines, '9', 100);
	nines[100] = '\0';
	snprintf(text, sizeof(text), "[ipblock]\ncapacity = %s\n", nines);
	snprintf(expect, sizeof(expect),
		 "t.conf:2: bad capacity '%.64s...': must be from 1 to 100000000.", nines);
	assert_refused(text, expect);

	/* A path as long as the system takes, and one byte more. */
	long_path = malloc(PATH_MAX + 64);
	assert_non_null(long_path);
	memset(long_path, 'a', PATH_MAX + 64);
	memcpy(long_path, "[ipblock]\nstate-dir = /", 23);
	strcpy(long_path + 22 + PATH_MAX - 1, "\n");
	assert_ok(long_path);
	assert_int_equal(strlen(cfg.state_dir), PATH_MAX - 1);
	long_path[22 + PATH_MAX - 1] = 'a';
	strcpy(long_path + 22 + PATH_MAX, "\n");
	assert_refused(long_path, "t.conf:2: bad state-dir: the path is longer than 4095 bytes.");
	free(long_path);

	assert_refused("[interface eth0]\nmode = sk\xc3\xaf"
		       "b\n",
		       "t.conf:2: bad mode 'sk??b': expected auto, native or skb.");
	assert_refused("[interface \xe2\x82\xac]\n[interface \xe2\x82\xac]\n",
		       "t.conf:2: [interface ???] appears twice (first on line 1).");
}

static void test_nul_and_control_bytes_are_refused(void **state)
{
	static const char nul[] = "[ipblock]\ncapacity = 1\0 trailing\n";

	(void)state;
	assert_refused_len(nul, sizeof(nul) - 1,
			   "t.conf:2: the line contains a NUL byte; is this a text file?");
	assert_refused("[ipblock]\npin-dir = /a\x01"
		       "b\n",
		       "t.conf:2: the line contains the control character 0x01.");
	assert_refused("# \x1b[31mred\x1b[0m\n",
		       "t.conf:1: the line contains the control character 0x1b.");
	assert_refused("[ipblock]\n\x7f\n",
		       "t.conf:2: the line contains the control character 0x7f.");
	/* A lone CR is no line ending: old Mac files are refused, not misread. */
	assert_refused("[ipblock]\rcapacity = 1\r",
		       "t.conf:1: the line contains the control character 0x0d.");
	assert_refused("[ipblock]\ncapacity = 1\r\r\n",
		       "t.conf:2: the line contains the control character 0x0d.");
}

/* A temporary file holding len bytes of text; returns its path (static buffer). */
static const char *write_temp(const char *text, size_t len)
{
	static char path[64];
	int fd;

	snprintf(path, sizeof(path), "/tmp/test_config.XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	for (size_t off = 0; off < len;) {
		ssize_t w = write(fd, text + off, len - off);

		assert_true(w > 0);
		off += (size_t)w;
	}
	close(fd);
	return path;
}

static void test_binary_files_are_refused_at_their_first_line(void **state)
{
	static const char elf[] = "\x7f"
				  "ELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x03\0>\0";
	static const char png[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
	static const char gz[] = "\x1f\x8b\x08\0\0\0\0\0";
	char exe[64 * 1024], expect[CONFIG_ERRLEN];
	const char *path;
	ssize_t n;
	int fd;

	(void)state;
	assert_refused_len(elf, sizeof(elf) - 1,
			   "t.conf:1: the line contains the control character 0x7f.");
	assert_refused_len(png, sizeof(png) - 1,
			   "t.conf:1: expected KEY = VALUE, a [SECTION] header or a comment.");
	assert_refused_len(gz, sizeof(gz) - 1,
			   "t.conf:1: the line contains the control character 0x1f.");

	/* The start of the test program itself, through config_read(). */
	fd = open("/proc/self/exe", O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, exe, sizeof(exe));
	assert_int_equal(n, sizeof(exe));
	close(fd);
	path = write_temp(exe, sizeof(exe));
	config_free(&cfg);
	assert_int_equal(config_read(&cfg, path, err, sizeof(err)), -EINVAL);
	snprintf(expect, sizeof(expect), "%s:1: the line contains the control character 0x7f.",
		 path);
	assert_string_equal(err, expect);
	assert_config_empty(&cfg);
	unlink(path);
}

static void test_truncated_files(void **state)
{
	(void)state;
	/* Cut inside a header, a key, a quoted value: each refused where the cut is. */
	assert_refused("[ipblock]\ncapacity = 1\n[interface et",
		       "t.conf:3: the section header has no closing ']'.");
	assert_refused("[ipblock]\ncapac", "t.conf:2: expected KEY = VALUE, a [SECTION] header "
					   "or a comment.");
	assert_refused("[list a]\naction = deny\nfile = \"/srv/li",
		       "t.conf:3: the value of file has no closing '\"'.");
	assert_refused("[ipblock]\ncapacity =", "t.conf:2: capacity has no value.");
	/* Cut before a list's file: the section is incomplete. */
	assert_refused("[ipblock]\n[list a]\naction = deny\n",
		       "t.conf:2: [list a] has no file; add file = PATH.");
	/* Cut after a whole line, without its newline, is a complete file. */
	assert_ok("[ipblock]\ncapacity = 12");
	assert_int_equal(cfg.capacity, 12);
}

static void test_overlong_line_is_refused(void **state)
{
	char *text = malloc(CONFIG_MAX_LINE + 16);

	(void)state;
	assert_non_null(text);
	/* Exactly CONFIG_MAX_LINE bytes: fine, with LF or CRLF. */
	memset(text, '#', CONFIG_MAX_LINE);
	memcpy(text + CONFIG_MAX_LINE, "\r\n[ipblock]\n", 13);
	assert_ok(text);
	/* One more: refused, naming the limit. */
	memset(text, '#', CONFIG_MAX_LINE + 1);
	memcpy(text + CONFIG_MAX_LINE + 1, "\n", 2);
	assert_refused(text, "t.conf:1: the line is longer than 8192 bytes.");
	free(text);
}

static void test_megabyte_of_junk_stops_at_the_first_error(void **state)
{
	const size_t size = 1000 * 1000;
	static const char head[] = "[ipblock]\ncapacity = 1k\n";
	char *text = malloc(size + 1);
	size_t off = sizeof(head) - 1;
	unsigned int line = 3;

	(void)state;
	assert_non_null(text);
	memcpy(text, head, off);
	while (off < size) {
		int w = snprintf(text + off, size + 1 - off, "junk %u = [[[ ;;; %u\n", line, line);

		off += (size_t)w;
		line++;
	}
	text[size] = '\0';
	assert_true(line > 30000);
	assert_refused(text, "t.conf:3: expected KEY = VALUE, a [SECTION] header or a comment.");

	/* The same junk after half a megabyte of blank lines. */
	memset(text, '\n', size / 2);
	memcpy(text + size / 2, "[nonsense]\n", 11);
	assert_refused(text, "t.conf:500001: unknown section [nonsense]; expected [ipblock], "
			     "[interface NAME], [list NAME], [metrics], [drop-log] or [crowdsec].");
	free(text);
}

static void test_file_over_the_size_limit_is_refused_unread(void **state)
{
	char *text = malloc(CONFIG_MAX_SIZE + 1);

	(void)state;
	assert_non_null(text);
	memset(text, '\n', CONFIG_MAX_SIZE + 1);
	assert_int_equal(parse_len(text, CONFIG_MAX_SIZE), 0);
	assert_int_equal(parse_len(text, CONFIG_MAX_SIZE + 1), -EFBIG);
	assert_string_equal(err, "t.conf: larger than 1024 KiB; not a configuration file.");
	assert_config_empty(&cfg);
	free(text);
}

static void test_read_a_file_a_missing_file_a_directory_and_a_huge_file(void **state)
{
	char expect[CONFIG_ERRLEN], *big;
	const char *path;

	(void)state;
	config_free(&cfg);
	path = write_temp(full_file, sizeof(full_file) - 1);
	assert_int_equal(config_read(&cfg, path, err, sizeof(err)), 0);
	assert_int_equal(cfg.n_lists, 4);
	config_free(&cfg);
	unlink(path);

	path = write_temp("[ipblock]\n\ncapacity = lots\n",
			  strlen("[ipblock]\n\ncapacity = lots\n"));
	assert_int_equal(config_read(&cfg, path, err, sizeof(err)), -EINVAL);
	snprintf(expect, sizeof(expect),
		 "%s:3: bad capacity 'lots': expected a whole number, optionally with k (thousand) "
		 "or M (million).",
		 path);
	assert_string_equal(err, expect);
	unlink(path);

	assert_int_equal(config_read(&cfg, "/nonexistent/ipblock.conf", err, sizeof(err)), -ENOENT);
	assert_string_equal(err, "/nonexistent/ipblock.conf: No such file or directory.");
	assert_config_empty(&cfg);

	assert_int_equal(config_read(&cfg, "/tmp", err, sizeof(err)), -EISDIR);
	assert_string_equal(err, "/tmp: Is a directory.");

	/* Over the limit: refused however the bytes arrive (here 3 MiB of comments). */
	big = malloc(3 * CONFIG_MAX_SIZE);
	assert_non_null(big);
	memset(big, '#', 3 * CONFIG_MAX_SIZE);
	path = write_temp(big, 3 * CONFIG_MAX_SIZE);
	free(big);
	assert_int_equal(config_read(&cfg, path, err, sizeof(err)), -EFBIG);
	snprintf(expect, sizeof(expect), "%s: larger than 1024 KiB; not a configuration file.",
		 path);
	assert_string_equal(err, expect);
	assert_config_empty(&cfg);
	unlink(path);

	/* Not a regular file: read to its end all the same. */
	assert_int_equal(config_read(&cfg, "/dev/null", err, sizeof(err)), 0);
	assert_defaults(&cfg);
}

static void test_a_failed_reload_leaves_the_running_config_alone(void **state)
{
	static const char bad[] = "[interface eth0]\nmode = fast\n";
	struct config running, next;
	char e[CONFIG_ERRLEN];

	(void)state;
	assert_int_equal(
		config_parse(&running, "a.conf", full_file, sizeof(full_file) - 1, e, sizeof(e)),
		0);
	/* A reload parses into a fresh struct; a failure there touches nothing else. */
	memset(&next, 0x5a, sizeof(next)); /* need not be initialised */
	assert_int_equal(config_parse(&next, "a.conf", bad, strlen(bad), e, sizeof(e)), -EINVAL);
	assert_string_equal(e, "a.conf:2: bad mode 'fast': expected auto, native or skb.");
	assert_config_empty(&next);
	config_free(&next); /* harmless on a failed struct */
	config_free(&next);
	assert_int_equal(running.n_interfaces, 3);
	assert_string_equal(running.lists[0].file, "/var/lib/lists/firehol_level1.netset");
	config_free(&running);
}

static void test_a_short_error_buffer_is_cut_not_overrun(void **state)
{
	char small[20];

	(void)state;
	memset(small, 'x', sizeof(small));
	config_free(&cfg);
	assert_int_equal(config_parse(&cfg, "t.conf", "[x]\n", 4, small, sizeof(small)), -EINVAL);
	assert_string_equal(small, "t.conf:1: unknown s");
	/* No buffer at all: the return value alone. */
	assert_int_equal(config_parse(&cfg, "t.conf", "[x]\n", 4, NULL, 0), -EINVAL);
	assert_int_equal(config_parse(&cfg, "t.conf", "[ipblock]\n", 10, NULL, 0), 0);
}

/* --- the shipped example and man page -------------------------------------- */

/* The repository's top directory: found upwards from the test program, whatever BUILD is. */
static void find_top(char *top, size_t len)
{
	char probe[PATH_MAX + 32];
	ssize_t n = readlink("/proc/self/exe", top, len - 1);

	assert_true(n > 0);
	top[n] = '\0';
	for (char *slash; (slash = strrchr(top, '/')) && slash != top;) {
		*slash = '\0';
		snprintf(probe, sizeof(probe), "%s/common/config.h", top);
		if (!access(probe, R_OK))
			return;
	}
	fail_msg("no common/config.h above %s", top);
}

/* The whole file top/rel, NUL-terminated; free() it. */
static char *slurp(const char *rel)
{
	char top[PATH_MAX], path[PATH_MAX + 64];
	struct stat st;
	char *text;
	int fd;

	find_top(top, sizeof(top));
	snprintf(path, sizeof(path), "%s/%s", top, rel);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	text = malloc((size_t)st.st_size + 1);
	assert_non_null(text);
	assert_int_equal(read(fd, text, (size_t)st.st_size), st.st_size);
	text[st.st_size] = '\0';
	close(fd);
	return text;
}

/* Every key with a value it accepts; what the example and the man page must show. */
static const struct {
	const char *section, *key, *value;
} every_key[] = {
	{ "[ipblock]", "pin-dir", "/x" },
	{ "[ipblock]", "state-dir", "/x" },
	{ "[ipblock]", "capacity", "1k" },
	{ "[ipblock]", "detach-on-stop", "yes" },
	{ "[ipblock]", "save-interval", "2s" },
	{ "[interface eth0]", "mode", "skb" },
	{ "[list a]\naction = deny", "file", "/x" },
	{ "[list a]\nfile = /x", "action", "allow" },
	{ "[list a]\nfile = /x\naction = deny", "format", "netset" },
	{ "[list a]\nfile = /x\naction = deny", "refresh", "1h" },
	{ "[metrics]", "listen", "[::]:1" },
	{ "[drop-log]", "rate", "5" },
	{ "[drop-log]", "sample", "10" },
	{ "[drop-log]", "output", "journal" },
	{ "[drop-log]", "allowed", "yes" },
	{ "[crowdsec]\napi-key-file = /k", "url", "http://h/" },
	{ "[crowdsec]", "api-key-file", "/k" },
	{ "[crowdsec]\napi-key-file = /k", "interval", "1m" },
	{ "[crowdsec]\napi-key-file = /k", "scopes", "range" },
	{ "[crowdsec]\napi-key-file = /k", "types", "ban" },
	{ "[crowdsec]\napi-key-file = /k", "origins", "cscli" },
	{ "[crowdsec]\napi-key-file = /k", "source", "per-origin" },
};

static void test_shipped_example_parses_with_and_without_its_comments(void **state)
{
	char *text = slurp("etc/ipblock.conf"), *on, *q;
	char needle[64];
	size_t n = 0;

	(void)state;
	/* As shipped: every setting commented out, so the defaults hold. */
	assert_ok(text);
	assert_defaults(&cfg);

	/*
	 * "#key = value" and "#[section]" are settings to switch on, "# text"
	 * is prose: with every setting switched on the file must still parse,
	 * and must have shown every key.
	 */
	on = malloc(strlen(text) + 1);
	assert_non_null(on);
	q = on;
	for (const char *p = text; *p;) {
		bool start = p == text || p[-1] == '\n';

		if (start && p[0] == '#' && (p[1] == '[' || (p[1] >= 'a' && p[1] <= 'z'))) {
			p++;
			n++;
		}
		*q++ = *p++;
	}
	*q = '\0';
	assert_true(n >= sizeof(every_key) / sizeof(every_key[0]));
	assert_ok(on);
	assert_true(cfg.n_interfaces >= 1);
	assert_true(cfg.n_lists >= 1);
	assert_true(cfg.metrics.enabled);
	assert_true(cfg.drop_log.enabled);
	assert_true(cfg.crowdsec.enabled);
	for (size_t i = 0; i < sizeof(every_key) / sizeof(every_key[0]); i++) {
		snprintf(needle, sizeof(needle), "\n#%s = ", every_key[i].key);
		if (!strstr(text, needle))
			fail_msg("etc/ipblock.conf does not show %s", every_key[i].key);
	}
	free(on);
	free(text);
}

static void test_man_page_documents_every_key_and_the_keys_are_real(void **state)
{
	char *man = slurp("man/ipblock.conf.5"), *example, *end;
	char text[256], needle[64];

	(void)state;
	for (size_t i = 0; i < sizeof(every_key) / sizeof(every_key[0]); i++) {
		size_t o = 0;

		/* The key is accepted where the table says... */
		snprintf(text, sizeof(text), "%s\n%s = %s\n", every_key[i].section,
			 every_key[i].key, every_key[i].value);
		assert_ok(text);
		/* ...and the man page has an entry for it: .BR "KEY = " or .BI "KEY = ". */
		needle[o++] = '"';
		for (const char *k = every_key[i].key; *k && o < sizeof(needle) - 8; k++) {
			if (*k == '-')
				needle[o++] = '\\'; /* roff's "\-" is the ASCII hyphen-minus */
			needle[o++] = *k;
		}
		snprintf(needle + o, sizeof(needle) - o, " = \"");
		if (!strstr(man, needle))
			fail_msg("man/ipblock.conf.5 has no '%s' entry", needle);
	}

	/* The example in the man page is a file that parses (no roff escapes in it). */
	example = strstr(man, "\n.SH EXAMPLES\n");
	assert_non_null(example);
	example = strstr(example, "\n.nf\n");
	assert_non_null(example);
	example += 5;
	end = strstr(example, "\n.fi\n");
	assert_non_null(end);
	end[1] = '\0';
	assert_null(strchr(example, '\\'));
	assert_ok(example);
	assert_int_equal(cfg.n_interfaces, 2);
	assert_int_equal(cfg.interfaces[1].mode, CONFIG_MODE_SKB);
	assert_int_equal(cfg.n_lists, 2);
	assert_int_equal(cfg.lists[1].action, CONFIG_ACTION_ALLOW);
	assert_true(cfg.metrics.enabled);
	free(man);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_empty_file_gives_every_default, teardown),
		cmocka_unit_test_teardown(test_comments_and_blank_lines_alone_give_the_defaults,
					  teardown),
		cmocka_unit_test_teardown(test_full_file_sets_every_key, teardown),
		cmocka_unit_test_teardown(test_an_empty_section_turns_its_feature_on_with_defaults,
					  teardown),
		cmocka_unit_test_teardown(test_trailing_comments_need_a_blank_before_them,
					  teardown),
		cmocka_unit_test_teardown(test_quotes_keep_blanks_and_comment_characters, teardown),
		cmocka_unit_test_teardown(test_crlf_tabs_byte_order_mark_and_no_final_newline,
					  teardown),
		cmocka_unit_test_teardown(
			test_interfaces_and_lists_keep_file_order_and_can_be_found, teardown),
		cmocka_unit_test_teardown(test_one_key_name_in_several_sections, teardown),
		cmocka_unit_test_teardown(test_list_action_may_be_left_out_only_for_save_format,
					  teardown),
		cmocka_unit_test_teardown(test_values_in_every_unit_spelling, teardown),
		cmocka_unit_test_teardown(test_every_syntax_error_names_its_line, teardown),
		cmocka_unit_test_teardown(test_unknown_sections_and_keys_say_what_is_expected,
					  teardown),
		cmocka_unit_test_teardown(test_duplicates_name_the_first_line, teardown),
		cmocka_unit_test_teardown(test_missing_required_keys_name_the_section_header,
					  teardown),
		cmocka_unit_test_teardown(test_bad_section_names_are_refused, teardown),
		cmocka_unit_test_teardown(test_every_bad_value_names_the_key_and_what_it_expects,
					  teardown),
		cmocka_unit_test_teardown(
			test_long_and_odd_values_are_shown_shortened_and_printable, teardown),
		cmocka_unit_test_teardown(test_nul_and_control_bytes_are_refused, teardown),
		cmocka_unit_test_teardown(test_binary_files_are_refused_at_their_first_line,
					  teardown),
		cmocka_unit_test_teardown(test_truncated_files, teardown),
		cmocka_unit_test_teardown(test_overlong_line_is_refused, teardown),
		cmocka_unit_test_teardown(test_megabyte_of_junk_stops_at_the_first_error, teardown),
		cmocka_unit_test_teardown(test_file_over_the_size_limit_is_refused_unread,
					  teardown),
		cmocka_unit_test_teardown(
			test_read_a_file_a_missing_file_a_directory_and_a_huge_file, teardown),
		cmocka_unit_test_teardown(test_a_failed_reload_leaves_the_running_config_alone,
					  teardown),
		cmocka_unit_test_teardown(test_a_short_error_buffer_is_cut_not_overrun, teardown),
		cmocka_unit_test_teardown(test_shipped_example_parses_with_and_without_its_comments,
					  teardown),
		cmocka_unit_test_teardown(test_man_page_documents_every_key_and_the_keys_are_real,
					  teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
