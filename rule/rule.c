// SPDX-License-Identifier: GPL-2.0
/* ipblock-rule: add, delete, import, replace, list, save and flush the rules. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batch.h"
#include "cli.h"
#include "hits.h"
#include "jsonout.h"
#include "maps.h"
#include "owners.h"
#include "rulecache.h"
#include "rulefile.h"
#include "stacktrace.h"
#include "trie.h"
#include "value.h"

enum { OPT_PIN_DIR = 256, OPT_SKIP_INVALID, OPT_STRICT, OPT_CHECK, OPT_EXPIRE, OPT_JSON };

static const struct cli_opt options[] = {
	{ "add", 'a', "CIDR", "add a rule for CIDR (needs -p); an existing one is updated" },
	{ "policy", 'p', "ACTION",
	  "the rule's action: allow or deny; with -i/-R, every line's action" },
	{ "timeout", 't', "DURATION",
	  "with -a, -i, -R: the rules expire after DURATION (3600, 90s, 30m, 1h, 1d); adding "
	  "one again sets its deadline again" },
	{ "delete", 'd', "CIDR",
	  "delete the rule for exactly CIDR; an absent one is a note, exit 0 (see --strict)" },
	{ "strict", OPT_STRICT, NULL, "with -d: an absent rule is an error (exit 1)" },
	{ "import", 'i', "FILE",
	  "add every prefix in FILE (- for stdin) to its source, in one atomic switch" },
	{ "replace", 'R', "FILE",
	  "make FILE the rules of every source it names (-o's or static where a line names "
	  "none), switched atomically; other sources' rules stay" },
	{ "batch", 'b', "FILE",
	  "apply the changes in FILE (- for stdin), lines 'add CIDR allow|deny [source=NAME] "
	  "[timeout=DURATION]' and 'del CIDR [source=NAME]', in one atomic switch" },
	{ "skip-invalid", OPT_SKIP_INVALID, NULL,
	  "with -i/-R: skip bad lines (and say which) instead of refusing the file" },
	{ "list", 'l', NULL,
	  "list every rule, IPv4 then IPv6, sorted, with its action and the sources holding it" },
	{ "json", OPT_JSON, NULL,
	  "with -l: JSON Lines, one object a rule (with its claims) and a summary last" },
	{ "save", 'S', NULL,
	  "print every claim as 'CIDR allow|deny [source=NAME] [expires=TIME]', for -R or -i" },
	{ "flush", 'F', NULL, "delete every rule of every source (with -o: that source's)" },
	{ "expire", OPT_EXPIRE, NULL,
	  "remove the rules whose deadline has passed, and exit (every change does it first)" },
	{ "check", OPT_CHECK, NULL,
	  "exit 0 if the maps are pinned and usable (rules can be changed), else 2, 4 or 5" },
	{ "source", 'o', "NAME",
	  "the source a change belongs to, or -l/-S/-F of one source (default: static for "
	  "changes, every source for -l/-S/-F)" },
	{ "pin-dir", OPT_PIN_DIR, "DIR",
	  "where the maps are pinned (" IPBLOCK_PIN_DIR_DEFAULT ")" },
	{ "verbose", 'v', NULL, "show libbpf messages" },
	{ "help", 'h', NULL, "show this help" },
	{},
};

enum command {
	CMD_NONE,
	CMD_ADD,
	CMD_DELETE,
	CMD_IMPORT,
	CMD_REPLACE,
	CMD_LIST,
	CMD_SAVE,
	CMD_FLUSH,
	CMD_CHECK,
	CMD_EXPIRE,
	CMD_BATCH
};

struct config {
	enum command cmd;
	const char *cidr;
	const char *file;
	const char *policy;
	const char *pin_dir;
	const char *source; /* -o; NULL: the default for changes, every source for -l/-S/-F */
	const char *timeout; /* -t */
	uint64_t timeout_secs;
	uint64_t now; /* when the command started: deadlines count from it */
	bool skip_invalid;
	bool strict;
	bool json;
	bool verbose;
};

static const char *family_name(int family)
{
	return family == AF_INET ? "IPv4" : "IPv6";
}

/* The source a change belongs to: -o NAME, else the default. */
static const char *change_source_name(const struct config *cfg)
{
	return cfg->source ? cfg->source : IPBLOCK_SOURCE_DEFAULT;
}

/* " for NAME" after a change of a named source; "" for the default one. */
static const char *for_source(const struct config *cfg, char *buf, size_t len)
{
	if (!cfg->source || !strcmp(cfg->source, IPBLOCK_SOURCE_DEFAULT))
		return "";
	snprintf(buf, len, " for %s", cfg->source);
	return buf;
}

/* The deadline -t gives a change: 0 without -t. */
static uint64_t deadline(const struct config *cfg)
{
	return cfg->timeout ? owners_deadline_in(cfg->timeout_secs) : 0;
}

/* The index of the source of a change, registered if new; a sentence and -errno otherwise. */
static int change_source(const struct config *cfg, struct owners *o)
{
	const char *name = change_source_name(cfg);
	int s = owners_source_get(o, name);

	if (s == -ENOSPC)
		cli_err("there are already %d sources; flush one with -F -o NAME before adding "
			"source %s.",
			IPBLOCK_SOURCES_MAX, name);
	else if (s < 0)
		cli_err_change(s, cfg->pin_dir, "cannot register source %s", name);
	return s;
}

/* A full map on a change of p: the tries' or the claims' sentence. */
static void err_full(const struct maps *m, const struct cidr *p)
{
	size_t v4 = 0, v6 = 0;
	uint32_t cap = 0, claims = 0;

	struct rule old;

	pins_capacity(m->pins, p->family, &cap);
	trie_count(m->pins, &v4, &v6);
	/* A prefix already in the tries, or room there: it is the claims that are full. */
	if (!trie_get_active(m->pins, p, &old) || (p->family == AF_INET ? v4 : v6) < cap) {
		pins_entries(m->pins, IPBLOCK_MAP_OWNERS, &claims);
		cli_err("the map of rule sources' claims is full (%u claims); release rules, or "
			"recreate the maps with a larger ipblock-loader --max-rules.",
			claims);
		return;
	}
	cli_err("the %s rule map is full (%u rules); delete rules, or recreate the maps "
		"with ipblock-loader --max-rules.",
		family_name(p->family), cap);
}

static int do_add(const struct config *cfg, struct owners *o, const struct cidr *p, uint8_t action)
{
	struct rule val = { .prefix = *p, .action = action };
	enum owners_outcome what;
	uint8_t before = 0, after = 0;
	char text[CIDR_STRLEN], by[IPBLOCK_SOURCE_NAME_LEN + 8];
	int src = change_source(cfg, o), ret;

	if (src < 0)
		return src;
	cidr_format(p, text, sizeof(text));
	ret = owners_claim(o, (uint16_t)src, &val, deadline(cfg), &what, &before, &after);
	if (ret == -ENOSPC || ret == -E2BIG) {
		err_full(o->m, p);
		return ret;
	}
	if (ret) {
		cli_err_change(ret, cfg->pin_dir, "cannot add %s", text);
		return ret;
	}
	for_source(cfg, by, sizeof(by));
	if (what == OWNERS_ADDED)
		printf("added %s %s%s", text, ruleset_action_name(action), by);
	else if (what == OWNERS_CHANGED)
		printf("updated %s: %s -> %s%s", text,
		       ruleset_action_name(action == IPBLOCK_ACTION_ALLOW ? IPBLOCK_ACTION_DENY
									   : IPBLOCK_ACTION_ALLOW),
		       ruleset_action_name(action), by);
	else
		printf("%s %s %s%s", cfg->timeout ? "refreshed" : "unchanged", text,
		       ruleset_action_name(action), by);
	if (cfg->timeout) {
		char left[VALUE_DURATION_STRLEN];

		printf(", expires in %s",
		       value_format_duration(cfg->timeout_secs, left, sizeof(left)));
	}
	putchar('\n');
	if (after != action)
		cli_note("%s stays allowed: another source allows it, and an allow from any source "
			 "beats a deny.",
			 text);
	return 0;
}

static int do_delete(const struct config *cfg, struct owners *o, const struct cidr *p)
{
	const char *name = change_source_name(cfg);
	char text[CIDR_STRLEN], by[IPBLOCK_SOURCE_NAME_LEN + 8];
	uint8_t before = 0, after = 0;
	/* The default source is registered here too: it owns rules nobody claims. */
	int src = cfg->source ? owners_source_find(o, name) : owners_source_get(o, name);
	int ret = src < 0 ? -ENOENT : owners_release(o, (uint16_t)src, p, &before, &after);

	cidr_format(p, text, sizeof(text));
	for_source(cfg, by, sizeof(by));
	if (ret == -ENOENT) {
		struct rule r;
		char held[160] = "";

		if (!trie_get_active(o->m->pins, p, &r))
			snprintf(held, sizeof(held), " (the %s rule stays: other sources hold it)",
				 ruleset_action_name(r.action));
		if (cfg->strict) {
			cli_err("there is no rule for %s%s%s.", text, by, held);
			return -EINVAL;
		}
		/*
		 * Deleting is idempotent: a ban lifted twice (fail2ban retries,
		 * CrowdSec repeats deletions) is done, not an error.  The note
		 * tells a person who mistyped the prefix; scripts read the code.
		 */
		cli_note("there is no rule for %s%s%s; nothing to delete.", text, by, held);
		return 0;
	}
	if (ret) {
		cli_err_change(ret, cfg->pin_dir, "cannot delete %s", text);
		return ret;
	}
	if (!after)
		printf("deleted %s%s\n", text, by);
	else
		printf("released %s%s; it stays %s: other sources hold it\n", text, by,
		       ruleset_action_name(after));
	return 0;
}

/* One "CIDR action" line. */
static void print_rule(const struct rule *r)
{
	char text[CIDR_STRLEN];

	fputs(cidr_format(&r->prefix, text, sizeof(text)), stdout);
	putchar(' ');
	fputs(ruleset_action_name(r->action), stdout);
	putchar('\n');
}

/* What -l walks beside the rules: every claim, in the same order. */
struct list_ctx {
	const struct owners *o;
	const struct owner_claims *cl;
	size_t at;  /* first claim not before the rule being printed */
	int source; /* only the rules this source claims; -1: all */
	uint64_t now;
	bool json;
	struct hits_table hits[2]; /* per-rule counters: IPv4, IPv6 */
	size_t listed, hit;	   /* rules listed, of which hit */
};

/* " 12 packets, 1008 bytes, last hit 2026-12-06T05:40:01Z" */
static void print_hits(const struct hits_total *h)
{
	time_t t = hits_wallclock(h->last_ns);
	char when[32];

	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
	printf(" %llu packet%s, %llu bytes, last hit %s", (unsigned long long)h->packets,
	       h->packets == 1 ? "" : "s", (unsigned long long)h->bytes, when);
}

/*
 * A rule's line: "CIDR action", then, unless the default source alone
 * holds it for good, its claims as a trailing comment, so the listing
 * still reads back with -R: "# fail2ban-sshd deny 59s left, static allow";
 * then, if the rule has judged packets, its counters, after "; " when
 * claims come first: "# 12 packets, 1008 bytes, last hit TIME".
 */
static int print_entry(const struct rulecache_entry *e, void *ctx)
{
	struct list_ctx *l = ctx;
	const struct owner_claim *c;
	struct hits_total h =
		hits_of(&l->hits[e->rule.prefix.family == AF_INET ? 0 : 1], e->rule.id);
	size_t n = 0;
	bool mine = l->source < 0, plain;

	while (l->at < l->cl->n && cidr_compare(&l->cl->c[l->at].prefix, &e->rule.prefix) < 0)
		l->at++;
	c = l->cl->c + (l->cl->c ? l->at : 0);
	while (l->at + n < l->cl->n && !cidr_compare(&c[n].prefix, &e->rule.prefix))
		n++;
	for (size_t i = 0; i < n; i++)
		mine |= c[i].source == l->source;
	if (!mine)
		return 0;
	l->listed++;
	l->hit += h.packets != 0;
	if (l->json)
		return jsonout_print(stdout, jsonout_rule(&e->rule, c, n, &l->o->src, l->now, &h));
	plain = n == 0 || (n == 1 && !strcmp(l->o->src.name[c[0].source], IPBLOCK_SOURCE_DEFAULT) &&
			   !c[0].deadline);
	if (plain && !h.packets) {
		print_rule(&e->rule);
		return 0;
	}
	char text[CIDR_STRLEN];

	printf("%s %s #", cidr_format(&e->rule.prefix, text, sizeof(text)),
	       ruleset_action_name(e->rule.action));
	for (size_t i = 0; i < n && !plain; i++) {
		printf("%s %s %s", i ? "," : "", l->o->src.name[c[i].source],
		       ruleset_action_name(c[i].action));
		if (c[i].deadline) {
			char left[VALUE_DURATION_STRLEN];

			value_format_duration(c[i].deadline > l->now ? c[i].deadline - l->now : 0,
					      left, sizeof(left));
			printf(" %s left", left);
		}
	}
	if (h.packets) {
		if (!plain)
			putchar(';');
		print_hits(&h);
	}
	putchar('\n');
	return 0;
}

/*
 * -l's lines: walked through the rule cache, the user-space picture of the
 * rule set (the in-memory set of the coming service mode), in cidr_compare()
 * order.  r is freed once the cache holds it.
 */
static int print_through_cache(struct ruleset *r, struct list_ctx *l)
{
	struct rulecache *rc = rulecache_new();
	int ret = rc ? rulecache_load(rc, r->r, r->n) : -ENOMEM;

	ruleset_free(r);
	if (!ret)
		ret = rulecache_foreach(rc, print_entry, l);
	rulecache_free(rc);
	return ret;
}

/* "# sources: static 3 claims, fail2ban-sshd 1 claim" */
static void print_sources(const struct owners *o, const struct owner_claims *cl)
{
	size_t count[IPBLOCK_SOURCES_MAX] = {};
	bool any = false;

	for (size_t i = 0; i < cl->n; i++)
		count[cl->c[i].source]++;
	printf("# sources:");
	for (int s = 0; s < IPBLOCK_SOURCES_MAX; s++) {
		if (!o->src.name[s][0] || !count[s])
			continue;
		printf("%s %s %zu claim%s", any ? "," : "", o->src.name[s], count[s],
		       count[s] == 1 ? "" : "s");
		any = true;
	}
	printf("%s\n", any ? "" : " none");
}

/* One claim as a save line: "CIDR action [source=NAME] [expires=TIME]". */
static void print_claim(const struct owners *o, const struct owner_claim *c, bool named)
{
	char text[CIDR_STRLEN];

	printf("%s %s", cidr_format(&c->prefix, text, sizeof(text)),
	       ruleset_action_name(c->action));
	if (named && strcmp(o->src.name[c->source], IPBLOCK_SOURCE_DEFAULT))
		printf(" source=%s", o->src.name[c->source]);
	if (c->deadline) {
		time_t t = (time_t)c->deadline;
		char when[32];

		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
		printf(" expires=%s", when);
	}
	putchar('\n');
}

/*
 * -S's lines: every claim of every source (source < 0; "source=" for all
 * but the default, so a set of the default's rules saves as it always did,
 * and a rule nobody claims as the default's), or one source's claims.
 */
static void print_claims(const struct owners *o, const struct ruleset *r,
			 const struct owner_claims *cl, int source)
{
	size_t at = 0;

	if (source >= 0) {
		for (size_t i = 0; i < cl->n; i++)
			if (cl->c[i].source == source)
				print_claim(o, &cl->c[i], false);
		return;
	}
	for (size_t i = 0; i < r->n; i++) {
		size_t n = 0;

		while (at < cl->n && cidr_compare(&cl->c[at].prefix, &r->r[i].prefix) < 0)
			at++;
		while (at + n < cl->n && !cidr_compare(&cl->c[at + n].prefix, &r->r[i].prefix))
			print_claim(o, &cl->c[at + n++], true);
		if (!n)
			print_rule(&r->r[i]);
	}
}

/*
 * -l and -S: the rules the program judges by now, read in one batch pass
 * (sorted), as "CIDR action" lines.  -S starts with a header, -l ends with
 * the totals and counters; both as comment lines, so the output reads back
 * with -R.  -S prints the array as read: through the rule cache, a
 * million-rule save would cost a third more time and its memory twice
 * over.  A million lines go out through one large stdio buffer, and a
 * write error (a full disk under -S > FILE) is reported rather than
 * leaving a silently cut listing.  With -o NAME only that source's claims:
 * -l shows the rules they hold, -S the claims' own actions.
 */
static int do_list(const struct config *cfg, const struct owners *o, bool save)
{
	struct owner_claims cl = {};
	struct ruleset r = {};
	size_t v4, v6;
	int source = -1;
	int ret;

	if (cfg->source) {
		source = owners_source_find(o, cfg->source);
		if (source < 0)
			source = IPBLOCK_SOURCES_MAX; /* an unknown source holds nothing */
	}
	ret = trie_read(o->m->pins, &r);
	if (!ret)
		ret = owners_read(o, &r, -1, &cl);
	if (ret) {
		cli_err("cannot read the rules: %s.", strerror(-ret));
		goto out;
	}
	ruleset_count(r.r, r.n, &v4, &v6);
	if (save) {
		time_t now = time(NULL);
		char when[32];

		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
		if (source < 0) {
			printf("# ipblock rule set saved %s: %zu rules (%zu IPv4, %zu IPv6)\n",
			       when, r.n, v4, v6);
			printf("# restore with: ipblock-rule -R FILE (it restores every source it "
			       "names)\n");
		} else {
			printf("# ipblock rules of source %s saved %s\n", cfg->source, when);
			printf("# restore with: ipblock-rule -R FILE -o %s\n", cfg->source);
		}
		print_claims(o, &r, &cl, source);
	} else {
		/* Time left counts to the next whole second, as deadlines are set: -t 1h shows 1h. */
		struct list_ctx l = { .o = o,
				      .cl = &cl,
				      .source = source,
				      .now = owners_deadline_in(0),
				      .json = cfg->json };

		ret = hits_read(o->m->pins, AF_INET, &l.hits[0]);
		if (!ret)
			ret = hits_read(o->m->pins, AF_INET6, &l.hits[1]);
		if (!ret)
			ret = print_through_cache(&r, &l);
		hits_table_free(&l.hits[0]);
		hits_table_free(&l.hits[1]);
		if (ret) {
			cli_err("cannot list the rules: %s.", strerror(-ret));
			goto out;
		}
		if (cfg->json) {
			size_t count[IPBLOCK_SOURCES_MAX] = {};

			for (size_t i = 0; i < cl.n; i++)
				count[cl.c[i].source]++;
			ret = jsonout_print(
				stdout, jsonout_summary(v4, v6, o->m->pins, &o->src, count, l.hit));
			if (ret) {
				cli_err("cannot list the rules: %s.", strerror(-ret));
				goto out;
			}
		} else {
			printf("# %zu rules (%zu IPv4, %zu IPv6); counters, all interfaces:\n",
			       v4 + v6, v4, v6);
			cli_print_counters(stdout, "#   ", o->m->pins);
			printf("# per-rule counters: %zu of %zu rules listed have judged packets\n",
			       l.hit, l.listed);
			print_sources(o, &cl);
		}
	}
	if (fflush(stdout) || ferror(stdout)) {
		cli_err("cannot write the rules: %s.", strerror(errno ? errno : EIO));
		ret = -EIO;
	}
out:
	ruleset_free(&r);
	owners_claims_free(&cl);
	return ret;
}

/*
 * Rules per family after a change: a switch counted them; else (one rule
 * changed, or none) the tries are read.
 */
static void rules_now(const struct owners *o, const struct owners_stats *st, size_t *v4,
		      size_t *v6)
{
	*v4 = st->verdicts.v4;
	*v6 = st->verdicts.v6;
	if (!*v4 && !*v6)
		trie_count(o->m->pins, v4, v6);
}

/*
 * A batch found the tries (-ENOSPC) or the claims (-E2BIG) full, in a
 * sentence; v: what a switch would have needed, when it got that far.
 */
static void err_batch_full(const struct maps *m, int err, const struct maps_replace_stats *v)
{
	size_t n[2] = { v->v4, v->v6 };
	uint32_t cap[2] = { v->cap_v4, v->cap_v6 }, claims = 0;

	if (err == -ENOSPC) {
		if (!cap[0] && !cap[1]) {
			/* One rule changed, without a switch: the tries as they are. */
			trie_count(m->pins, &n[0], &n[1]);
			n[0]++;
			n[1]++;
			pins_capacity(m->pins, AF_INET, &cap[0]);
			pins_capacity(m->pins, AF_INET6, &cap[1]);
		}
		int f = n[0] > cap[0] ? 0 : 1;

		cli_err("the %s rule map holds at most %u rules; nothing was changed (delete "
			"rules, or recreate the maps with ipblock-loader --max-rules).",
			family_name(f ? AF_INET6 : AF_INET), cap[f]);
		return;
	}
	pins_entries(m->pins, IPBLOCK_MAP_OWNERS, &claims);
	cli_err("the map of rule sources' claims is full (%u claims); nothing was changed "
		"(release rules, or recreate the maps with a larger ipblock-loader --max-rules).",
		claims);
}

/*
 * -b: every change of the batch, each for its line's source (else -o's,
 * else the default), applied in one atomic switch.  A deletion of a rule
 * its source does not hold is counted, not an error, as -d does; an add
 * whose expires= has passed is left out.
 */
static int do_batch(const struct config *cfg, struct owners *o, const struct batch *bt)
{
	struct owners_change *ch = calloc(bt->n + 1, sizeof(*ch));
	struct owners_stats st = {};
	size_t n = 0, absent = 0, late = 0, v4 = 0, v6 = 0;
	int ret = ch ? 0 : -ENOMEM;

	for (size_t i = 0; !ret && i < bt->n; i++) {
		const struct batch_change *c = &bt->c[i];
		const char *name = c->source[0] ? c->source : change_source_name(cfg);
		uint64_t d = c->deadline ? c->deadline : deadline(cfg);
		int s = c->del ? owners_source_find(o, name) : owners_source_get(o, name);

		if (c->del && s < 0) {
			absent++; /* a source that holds nothing */
			continue;
		}
		if (s == -ENOSPC) {
			cli_err("there are already %d sources; flush one with -F -o NAME before "
				"adding source %s (line %u).",
				IPBLOCK_SOURCES_MAX, name, c->line);
			ret = s;
			break;
		}
		if (s < 0) {
			cli_err_change(s, cfg->pin_dir, "cannot register source %s", name);
			ret = s;
			break;
		}
		if (!c->del && d && d <= cfg->now) {
			late++;
			continue;
		}
		ch[n++] = (struct owners_change){
			.claim = { .prefix = c->rule.prefix,
				   .source = (uint16_t)s,
				   .action = c->rule.action,
				   .deadline = c->del ? 0 : d },
			.release = c->del,
		};
	}
	if (!ret) {
		size_t more = 0;

		ret = owners_apply(o, ch, n, &st, &more);
		absent += more;
	}
	free(ch);
	if (ret == -ENOSPC || ret == -E2BIG) {
		err_batch_full(o->m, ret, &st.verdicts);
		return ret;
	}
	if (ret) {
		if (ret != -ENOSPC && ret != -EINVAL) /* sources' sentences are said */
			cli_err_change(ret, cfg->pin_dir, "cannot apply the changes in %s",
				       cfg->file);
		return ret;
	}
	rules_now(o, &st, &v4, &v6);
	if (late)
		cli_note("%zu %s in %s had expired already and %s left out.", late,
			 late == 1 ? "add" : "adds", cfg->file, late == 1 ? "was" : "were");
	printf("applied %zu changes from %s: %zu claims added, %zu changed, %zu refreshed, %zu "
	       "released, %zu not held; rules %zu added, %zu updated, %zu deleted; now %zu IPv4 "
	       "and %zu IPv6 rules\n",
	       bt->n, strcmp(cfg->file, "-") ? cfg->file : "stdin", st.added, st.changed,
	       st.refreshed, st.released, absent, st.rules_added, st.rules_updated,
	       st.rules_deleted, v4, v6);
	return 0;
}

/* Read and check the whole list before the maps are locked or touched. */
static int load_list(const struct config *cfg, uint8_t action, struct rulefile *rf)
{
	/* timeout= counts from the next whole second, as -t does: never early. */
	struct rulefile_opts o = { .action = action,
				   .skip_invalid = cfg->skip_invalid,
				   .now = owners_deadline_in(0) };
	int ret = rulefile_read(rf, &o, cfg->file);

	if (ret == -ENOMEM)
		cli_err("out of memory reading %s.", cfg->file);
	else if (ret)
		cli_err("%s", rf->error);
	if (ret)
		return ret;
	if (cfg->cmd == CMD_REPLACE && rf->n == 0) {
		/* A failed download must not empty the firewall: -F says it on purpose. */
		cli_err("%s holds no rules; replacing with it would delete every rule (use -F to "
			"delete them all).",
			rf->opts.name);
		return -ENODATA;
	}
	return 0;
}

/* The source of rule i of a list: its source= column, else -o's, else the default. */
static const char *list_source(const struct config *cfg, const struct rulefile *rf, size_t i)
{
	if (rf->source && rf->source[i])
		return rf->source_names[rf->source[i] - 1];
	return change_source_name(cfg);
}

/*
 * A list's rules as claims: of the source its line names, else -o's; with
 * its line's deadline, else -t's.  Every source the list names is replaced
 * (or added to, import), the others stay.  Lines whose deadline has passed
 * (a save file restored late) are left out rather than enforced until the
 * next expiry; *late counts them.  *names gets the sources, for the message.
 */
static int bulk_apply(const struct config *cfg, struct owners *o, const struct rulefile *rf,
		      bool import, struct owners_stats *st, size_t *late, char *names,
		      size_t nameslen)
{
	struct owner_claim *c = calloc(rf->n + 1, sizeof(*c));
	bool replaced[IPBLOCK_SOURCES_MAX] = {};
	size_t n = 0, used = 0;
	int ret = c ? 0 : -ENOMEM;

	*late = 0;
	names[0] = '\0';
	for (size_t i = 0; !ret && i < rf->n; i++) {
		const char *name = list_source(cfg, rf, i);
		uint64_t d = rf->deadline && rf->deadline[i] ? rf->deadline[i] : deadline(cfg);
		int s;

		if (cfg->source && strcmp(name, cfg->source)) {
			cli_err("%s names source %s, but -o %s was given; leave -o out to apply "
				"every source the list names.",
				rf->opts.name, name, cfg->source);
			ret = -EINVAL;
			break;
		}
		s = owners_source_get(o, name);
		if (s < 0) {
			ret = s;
			if (s == -ENOSPC)
				cli_err("there are already %d sources; flush one with -F -o NAME "
					"before adding source %s.",
					IPBLOCK_SOURCES_MAX, name);
			else
				cli_err_change(s, cfg->pin_dir, "cannot register source %s", name);
			break;
		}
		if (!replaced[s]) {
			replaced[s] = true;
			used += (size_t)snprintf(names + used, used < nameslen ? nameslen - used : 0,
						 "%s%s", used ? ", " : "", name);
		}
		if (d && d <= cfg->now) {
			(*late)++;
			continue;
		}
		c[n++] = (struct owner_claim){
			.prefix = rf->rules[i].prefix, .source = (uint16_t)s,
			.action = rf->rules[i].action, .deadline = d
		};
	}
	if (!ret)
		ret = owners_replace_claims(o, c, n, replaced, import, st);
	free(c);
	return ret;
}

static int do_bulk(const struct config *cfg, struct owners *o, const struct rulefile *rf)
{
	bool import = cfg->cmd == CMD_IMPORT;
	const char *name = rf->opts.name;
	struct owners_stats st = {};
	size_t v4 = 0, v6 = 0, late = 0;
	char sources[256];
	int ret = bulk_apply(cfg, o, rf, import, &st, &late, sources, sizeof(sources));
	if (ret == -ENOSPC) {
		const struct maps_replace_stats *v = &st.verdicts;
		int family = v->v4 > v->cap_v4 ? AF_INET : AF_INET6;

		cli_err("the %s rule map holds at most %u rules but %s %s would need %zu; nothing "
			"was changed (ipblock-loader --max-rules sets the capacity when the maps "
			"are created).",
			family_name(family), family == AF_INET ? v->cap_v4 : v->cap_v6,
			import ? "importing" : "replacing with", name,
			family == AF_INET ? v->v4 : v->v6);
		return ret;
	}
	if (ret == -E2BIG) {
		uint32_t claims = 0;

		pins_entries(o->m->pins, IPBLOCK_MAP_OWNERS, &claims);
		cli_err("the map of rule sources' claims holds at most %u claims, too few for %s; "
			"nothing was changed (ipblock-loader --max-rules sets it when the maps are "
			"created).",
			claims, name);
		return ret;
	}
	if (ret == -EINVAL)
		return ret; /* said by bulk_apply() */
	if (ret) {
		cli_err_change(ret, cfg->pin_dir, "cannot %s %s",
			       import ? "import" : "replace the rules with", name);
		return ret;
	}
	rules_now(o, &st, &v4, &v6);
	if (late)
		cli_note("%zu %s of %s had expired already and %s left out.", late,
			 late == 1 ? "rule" : "rules", name, late == 1 ? "was" : "were");
	if (import)
		printf("imported %zu rules from %s into source%s %s: %zu added, %zu updated, %zu "
		       "unchanged; now %zu IPv4 and %zu IPv6 rules\n",
		       rf->n - late, name, strchr(sources, ',') ? "s" : "", sources,
		       st.rules_added, st.rules_updated,
		       rf->n - late - st.rules_added - st.rules_updated, v4, v6);
	else
		printf("replaced the rules of source%s %s with %s: %zu added, %zu updated, %zu "
		       "deleted; now %zu IPv4 and %zu IPv6 rules\n",
		       strchr(sources, ',') ? "s" : "", sources, name, st.rules_added,
		       st.rules_updated, st.rules_deleted, v4, v6);
	return 0;
}

static int do_flush(const struct config *cfg, struct owners *o)
{
	size_t released = 0;
	int src = -1, ret;

	if (cfg->source) {
		src = owners_source_find(o, cfg->source);
		if (src < 0) {
			printf("flushed 0 rules of source %s (it holds none)\n", cfg->source);
			return 0;
		}
	}
	ret = owners_flush(o, src, &released);
	if (ret) {
		cli_err_change(ret, cfg->pin_dir, "flush stopped after %zu rules", released);
		return ret;
	}
	if (cfg->source)
		printf("flushed %zu rules of source %s\n", released, cfg->source);
	else
		printf("flushed %zu rules\n", released);
	return 0;
}

static void usage(FILE *f)
{
	cli_usage(f,
		  "[-o SOURCE] [-t DURATION] -a CIDR -p allow|deny | -d CIDR |\n"
		  "       -i FILE [-p ACTION] | -R FILE [-p ACTION] | -b FILE | -l [--json] | -S |\n"
		  "       -F | --expire | --check",
		  "Change the rules of the ipblock XDP firewall.  A bare address is a /32 (/128);\n"
		  "the longest matching prefix decides, no match passes.\n"
		  "FILE: one address or prefix a line, optionally followed by allow or deny,\n"
		  "source=NAME, and timeout=DURATION or expires=YYYY-MM-DDTHH:MM:SSZ (as -S writes);\n"
		  "'#' and ';' start comments (FireHOL netsets, Spamhaus DROP and -S output read\n"
		  "as they are).  A bad line refuses the whole file, changing nothing.\n"
		  "Sources: every rule belongs to one or more named sources (-o; static by\n"
		  "default); a prefix stays until its last source releases it, and an allow\n"
		  "from any source beats a deny of the same prefix.\n" CLI_EXIT_HELP,
		  options);
}

static int set_cmd(struct config *cfg, enum command cmd)
{
	if (cfg->cmd != CMD_NONE && cfg->cmd != cmd) {
		cli_err("give one of -a, -d, -i, -R, -b, -l, -S, -F, --expire, --check at a "
			"time.");
		return -EINVAL;
	}
	cfg->cmd = cmd;
	return 0;
}

/* Read the options into cfg: -1 to go on, else the exit code (0 after -h, 1 on a bad one). */
static int parse_options(int argc, char **argv, struct config *cfg)
{
	int c, ret = 0;

	while ((c = cli_getopt(argc, argv, options)) != -1) {
		switch (c) {
		case 'a':
			ret = set_cmd(cfg, CMD_ADD);
			cfg->cidr = optarg;
			break;
		case 'd':
			ret = set_cmd(cfg, CMD_DELETE);
			cfg->cidr = optarg;
			break;
		case 'i':
			ret = set_cmd(cfg, CMD_IMPORT);
			cfg->file = optarg;
			break;
		case 'b':
			ret = set_cmd(cfg, CMD_BATCH);
			cfg->file = optarg;
			break;
		case 'R':
			ret = set_cmd(cfg, CMD_REPLACE);
			cfg->file = optarg;
			break;
		case 'l':
			ret = set_cmd(cfg, CMD_LIST);
			break;
		case 'S':
			ret = set_cmd(cfg, CMD_SAVE);
			break;
		case OPT_SKIP_INVALID:
			cfg->skip_invalid = true;
			break;
		case 'F':
			ret = set_cmd(cfg, CMD_FLUSH);
			break;
		case OPT_CHECK:
			ret = set_cmd(cfg, CMD_CHECK);
			break;
		case OPT_STRICT:
			cfg->strict = true;
			break;
		case OPT_JSON:
			cfg->json = true;
			break;
		case 'p':
			cfg->policy = optarg;
			break;
		case 'o':
			cfg->source = optarg;
			break;
		case 't': {
			char why[VALUE_WHYLEN];

			cfg->timeout = optarg;
			if (value_parse_duration(optarg, 1, RULEFILE_TIMEOUT_MAX, &cfg->timeout_secs,
						 why, sizeof(why))) {
				cli_err("bad timeout '%s': %s.", optarg, why);
				return CLI_EXIT_INPUT;
			}
			break;
		}
		case OPT_EXPIRE:
			ret = set_cmd(cfg, CMD_EXPIRE);
			break;
		case OPT_PIN_DIR:
			cfg->pin_dir = optarg;
			break;
		case 'v':
			cfg->verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return CLI_EXIT_INPUT;
		}
		if (ret)
			return CLI_EXIT_INPUT;
	}
	if (optind < argc) {
		cli_err("unexpected argument '%s'; see --help.", argv[optind]);
		return CLI_EXIT_INPUT;
	}
	return -1;
}

static bool is_bulk(const struct config *cfg)
{
	return cfg->cmd == CMD_IMPORT || cfg->cmd == CMD_REPLACE;
}

/*
 * Everything the user typed is checked before anything is touched: the
 * options go together, the policy is one, the prefix parses (*p, with the
 * normalisation note to show once the change is made).  0, or -EINVAL
 * after a sentence.
 */
static int check_options(const struct config *cfg, uint8_t *action, struct cidr *p, char *note,
			 size_t notelen)
{
	if (cfg->cmd == CMD_NONE) {
		cli_err("nothing to do: give -a CIDR -p allow|deny, -d CIDR, -i FILE, -R FILE, -l, "
			"-S, -F, --expire or --check.");
		return -EINVAL;
	}
	if (cfg->timeout && cfg->cmd != CMD_ADD && !is_bulk(cfg) && cfg->cmd != CMD_BATCH) {
		cli_err("-t goes with -a, -i, -R or -b only.");
		return -EINVAL;
	}
	if (cfg->json && cfg->cmd != CMD_LIST) {
		cli_err("--json goes with -l only.");
		return -EINVAL;
	}
	if (cfg->strict && cfg->cmd != CMD_DELETE) {
		cli_err("--strict goes with -d only.");
		return -EINVAL;
	}
	if (cfg->cmd == CMD_ADD && !cfg->policy) {
		cli_err("-a needs -p allow or -p deny.");
		return -EINVAL;
	}
	if (cfg->cmd != CMD_ADD && !is_bulk(cfg) && cfg->policy) {
		cli_err("-p goes with -a, -i or -R only.");
		return -EINVAL;
	}
	if (!is_bulk(cfg) && cfg->skip_invalid) {
		cli_err("--skip-invalid goes with -i or -R only.");
		return -EINVAL;
	}
	if (cfg->source) {
		char why[VALUE_WHYLEN];

		if (value_check_name(cfg->source, IPBLOCK_SOURCE_NAME_LEN - 1, why, sizeof(why))) {
			cli_err("bad source name '%s': it %s.", cfg->source, why);
			return -EINVAL;
		}
		if (cfg->cmd == CMD_CHECK || cfg->cmd == CMD_EXPIRE) {
			cli_err("-o goes with -a, -d, -i, -R, -b, -l, -S or -F.");
			return -EINVAL;
		}
	}
	if (cfg->policy && ruleset_action_parse(cfg->policy, action)) {
		cli_err("unknown policy '%s': use allow or deny.", cfg->policy);
		return -EINVAL;
	}
	if ((cfg->cmd == CMD_ADD || cfg->cmd == CMD_DELETE) &&
	    cli_parse_prefix(cfg->cidr, p, note, notelen))
		return -EINVAL;
	return 0;
}

/* The command itself, the maps locked. */
static int run(const struct config *cfg, struct owners *o, uint8_t action, const struct cidr *p,
	       const struct rulefile *rf, const struct batch *bt)
{
	switch (cfg->cmd) {
	case CMD_ADD:
		return do_add(cfg, o, p, action);
	case CMD_DELETE:
		return do_delete(cfg, o, p);
	case CMD_IMPORT:
	case CMD_REPLACE:
		return do_bulk(cfg, o, rf);
	case CMD_LIST:
	case CMD_SAVE:
		/* Big listings go out in large writes. */
		setvbuf(stdout, NULL, _IOFBF, 1 << 16);
		return do_list(cfg, o, cfg->cmd == CMD_SAVE);
	case CMD_FLUSH:
		return do_flush(cfg, o);
	case CMD_BATCH:
		return do_batch(cfg, o, bt);
	default:
		return 0;
	}
}

/*
 * Lock the maps and read the sources.  Every writer, and -l, first expires
 * the claims that are due (until a service does it on time); a listing
 * takes the shared lock and changes to the exclusive one only then.
 */
static int begin(const struct config *cfg, struct owners *o, struct maps *m, size_t *expired)
{
	bool writer = cfg->cmd != CMD_LIST && cfg->cmd != CMD_SAVE;
	uint64_t now = cfg->now;
	size_t due = 0;
	int ret = pins_lock(m->pins, writer);

	if (ret) {
		cli_err("cannot lock %s: %s.", cfg->pin_dir, strerror(-ret));
		return ret;
	}
	ret = owners_begin(o, m, now, writer, &due);
	*expired = writer ? due : 0;
	if (!ret && !writer && due) {
		pins_unlock(m->pins);
		ret = pins_lock(m->pins, true);
		if (ret) {
			cli_err("cannot lock %s: %s.", cfg->pin_dir, strerror(-ret));
			return ret;
		}
		ret = owners_begin(o, m, now, true, expired);
	}
	if (ret) {
		cli_err_change(ret, cfg->pin_dir, "cannot read the rule sources in %s",
			       cfg->pin_dir);
		pins_unlock(m->pins);
	}
	return ret;
}

int main(int argc, char **argv)
{
	struct config cfg = { .pin_dir = IPBLOCK_PIN_DIR_DEFAULT };
	struct pins pins = PINS_INIT;
	struct maps m;
	struct owners o;
	size_t expired = 0;
	struct rulefile rf = {};
	struct batch bt = {};
	uint8_t action = 0;
	struct cidr p;
	char note[2 * CIDR_ERRLEN] = "";
	int ret;

	stacktrace_init();
	cfg.now = owners_now();
	ret = parse_options(argc, argv, &cfg);
	if (ret >= 0)
		return ret;
	if (check_options(&cfg, &action, &p, note, sizeof(note)))
		return CLI_EXIT_INPUT;

	cli_set_verbose(cfg.verbose);
	if (cli_require_root())
		return CLI_EXIT_PERM;
	ret = cli_open_maps(cfg.pin_dir, &pins);
	if (ret)
		return cli_exit_code(ret);
	if (cfg.cmd == CMD_CHECK) {
		/* Opening checked every map's layout: rules can be changed. */
		printf("ready: ipblock's maps are pinned in %s\n", cfg.pin_dir);
		pins_close(&pins);
		return CLI_EXIT_OK;
	}
	maps_init(&m, &pins);
	if (is_bulk(&cfg)) {
		ret = load_list(&cfg, action, &rf);
		if (ret) {
			rulefile_free(&rf);
			pins_close(&pins);
			return ret == -ENOMEM ? CLI_EXIT_FAIL : CLI_EXIT_INPUT;
		}
	}
	if (cfg.cmd == CMD_BATCH) {
		/* Parsed whole before the maps are locked: a bad line changes nothing. */
		ret = batch_read(&bt, cfg.file, cfg.now);
		if (ret) {
			if (ret == -ENOMEM)
				cli_err("out of memory reading %s.", cfg.file);
			else
				cli_err("%s", bt.error);
			batch_free(&bt);
			pins_close(&pins);
			return ret == -ENOMEM ? CLI_EXIT_FAIL : CLI_EXIT_INPUT;
		}
	}

	/* Writers exclusive, listings shared: no listing sees half a replace. */
	ret = begin(&cfg, &o, &m, &expired);
	if (ret) {
		maps_release(&m);
		pins_close(&pins);
		rulefile_free(&rf);
		batch_free(&bt);
		return cli_exit_code(ret) == CLI_EXIT_PERM ? CLI_EXIT_PERM : CLI_EXIT_FAIL;
	}
	if (cfg.cmd == CMD_EXPIRE)
		printf("expired %zu %s\n", expired, expired == 1 ? "claim" : "claims");
	ret = run(&cfg, &o, action, &p, &rf, &bt);
	pins_unlock(&pins);
	/* Normalisation notes only once the change they describe was made. */
	if (!ret && note[0])
		cli_note("%s", note);
	for (size_t i = 0; !ret && i < rf.n_notes; i++)
		cli_note("%s", rf.notes[i]);
	maps_release(&m);
	pins_close(&pins);
	rulefile_free(&rf);
	batch_free(&bt);
	return cli_exit_code(ret);
}
