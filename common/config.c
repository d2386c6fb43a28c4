// SPDX-License-Identifier: GPL-2.0
/* ipblock.conf: read, parse, check, fill struct config; see config.h. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"
#include "errbuf.h"
#include "ipblock.h"

/* User text shown in a message is cut to this many bytes, so the reason always fits. */
#define SHOW_MAX 64

/* Most keys any section has: the size of the duplicate-key table. */
#define MAX_KEYS 8

struct parser;

struct key_def {
	const char *name;
	/* Store val (non-empty, unquoted) into the section's struct, or fail(). */
	int (*set)(struct parser *p, void *target, const char *key, const char *val);
};

struct section_def {
	const char *name;
	bool named; /* [NAME ARG] rather than [NAME] */
	const struct key_def *keys;
	/* What the section's keys fill: the config, a sub-struct or a new array element. */
	int (*open)(struct parser *p, const char *arg, void **target);
	/* The section ended: check what it must have.  May be NULL. */
	int (*close)(struct parser *p, void *target);
};

struct parser {
	struct config *c;
	const char *name; /* FILE in messages */
	unsigned int line;
	char *err;
	size_t errlen;
	const struct section_def *sect; /* the open section; NULL before the first header */
	void *target;
	unsigned int sect_line;
	char sect_arg[CONFIG_NAME_MAX + 1];
	unsigned int key_line[MAX_KEYS]; /* per key of sect: where it was set, 0: not yet */
	unsigned int single_line[8];	 /* per section without a name: its header's line */
	char show[2][SHOW_MAX + 4];	 /* user text made printable for messages */
	char why[VALUE_WHYLEN];
};

static int fail_at(struct parser *p, unsigned int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Write "FILE:LINE: sentence" into p->err; returns -EINVAL for the caller to pass up. */
static int fail_at(struct parser *p, unsigned int line, const char *fmt, ...)
{
	va_list ap;
	int off;

	if (!p->err || !p->errlen)
		return -EINVAL;
	off = snprintf(p->err, p->errlen, "%s:%u: ", p->name, line);
	if (off < 0 || (size_t)off >= p->errlen)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(p->err + off, p->errlen - (size_t)off, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

#define fail(p, ...) fail_at((p), (p)->line, __VA_ARGS__)

/*
 * User text for a message: cut to SHOW_MAX bytes, non-ASCII bytes as '?'
 * (messages end up in terminals and the journal).  slot 0 or 1.
 */
static const char *show(struct parser *p, int slot, const char *s)
{
	char *out = p->show[slot];
	size_t i;

	for (i = 0; s[i] && i < SHOW_MAX; i++)
		out[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	if (s[i])
		memcpy(out + i, "...", 4);
	else
		out[i] = '\0';
	return out;
}

/* "[list spamhaus]" or "[ipblock]": how messages name the open section. */
static const char *sect_label(struct parser *p, char *buf, size_t len)
{
	if (p->sect->named)
		snprintf(buf, len, "[%s %s]", p->sect->name, p->sect_arg);
	else
		snprintf(buf, len, "[%s]", p->sect->name);
	return buf;
}

static int bad_value(struct parser *p, const char *key, const char *val)
{
	return fail(p, "bad %s '%s': %s.", key, show(p, 0, val), p->why);
}

/* --- value helpers shared by the setters ---------------------------------- */

static int get_path(struct parser *p, const char *key, const char *val, char **out)
{
	char *copy;

	if (val[0] != '/')
		return fail(p, "bad %s '%s': expected an absolute path (starting with '/').", key,
			    show(p, 0, val));
	if (strlen(val) >= PATH_MAX)
		return fail(p, "bad %s: the path is longer than %d bytes.", key, PATH_MAX - 1);
	copy = strdup(val);
	if (!copy)
		return -ENOMEM;
	free(*out);
	*out = copy;
	return 0;
}

static int get_duration(struct parser *p, const char *key, const char *val, uint32_t min,
			uint32_t max, uint32_t *out)
{
	uint64_t v;

	if (value_parse_duration(val, min, max, &v, p->why, sizeof(p->why)))
		return bad_value(p, key, val);
	*out = (uint32_t)v;
	return 0;
}

static int get_count(struct parser *p, const char *key, const char *val, uint32_t min, uint32_t max,
		     uint32_t *out)
{
	uint64_t v;

	if (value_parse_count(val, min, max, &v, p->why, sizeof(p->why)))
		return bad_value(p, key, val);
	*out = (uint32_t)v;
	return 0;
}

static int get_bool(struct parser *p, const char *key, const char *val, bool *out)
{
	if (value_parse_bool(val, out, p->why, sizeof(p->why)))
		return bad_value(p, key, val);
	return 0;
}

/* "a, b or c" into buf. */
static const char *join_words(const char *const *words, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; words[i]; i++) {
		const char *sep = !i ? "" : words[i + 1] ? ", " : " or ";
		int w = snprintf(buf + off, len - off, "%s%s", sep, words[i]);

		if (w < 0 || (size_t)w >= len - off)
			break;
		off += (size_t)w;
	}
	return buf;
}

/* One of words (NULL-terminated): *idx gets its index. */
static int get_word(struct parser *p, const char *key, const char *val, const char *const *words,
		    unsigned int *idx)
{
	char list[128];

	for (unsigned int i = 0; words[i]; i++) {
		if (!strcmp(val, words[i])) {
			*idx = i;
			return 0;
		}
	}
	return fail(p, "bad %s '%s': expected %s.", key, show(p, 0, val),
		    join_words(words, list, sizeof(list)));
}

/*
 * Split a list value at commas and blanks into its elements, in place:
 * returns how many (at most max), or -EINVAL after fail() when there are
 * more, none, or one repeats.
 */
static int split_list(struct parser *p, const char *key, char *val, char **elem, size_t max)
{
	const char *orig = show(p, 0, val);
	char *save = NULL;
	size_t n = 0;

	for (char *s = strtok_r(val, ", \t", &save); s; s = strtok_r(NULL, ", \t", &save)) {
		for (size_t i = 0; i < n; i++)
			if (!strcmp(elem[i], s))
				return fail(p, "bad %s '%s': '%s' is listed twice.", key, orig,
					    show(p, 1, s));
		if (n == max)
			return fail(p, "bad %s '%s': more than %zu elements.", key, orig, max);
		elem[n++] = s;
	}
	if (!n)
		return fail(p, "bad %s '%s': lists nothing.", key, orig);
	return (int)n;
}

/* A set of words as bits (bit i for words[i]). */
static int get_word_set(struct parser *p, const char *key, const char *val,
			const char *const *words, unsigned int *bits)
{
	char list[128], *elem[16], *copy = strdup(val);
	unsigned int set = 0;
	int n, ret = 0;

	if (!copy)
		return -ENOMEM;
	n = split_list(p, key, copy, elem, sizeof(elem) / sizeof(elem[0]));
	if (n < 0)
		ret = n;
	for (int i = 0; !ret && i < n; i++) {
		unsigned int w;

		for (w = 0; words[w]; w++)
			if (!strcmp(elem[i], words[w]))
				break;
		if (!words[w])
			ret = fail(p, "bad %s '%s': '%s' is not %s.", key, show(p, 0, val),
				   show(p, 1, elem[i]), join_words(words, list, sizeof(list)));
		set |= 1u << w;
	}
	free(copy);
	if (!ret)
		*bits = set;
	return ret;
}

/* --- [ipblock] ------------------------------------------------------------ */

static int open_ipblock(struct parser *p, const char *arg, void **target)
{
	(void)arg;
	*target = p->c;
	return 0;
}

static int set_pin_dir(struct parser *p, void *t, const char *key, const char *val)
{
	return get_path(p, key, val, &((struct config *)t)->pin_dir);
}

static int set_state_dir(struct parser *p, void *t, const char *key, const char *val)
{
	return get_path(p, key, val, &((struct config *)t)->state_dir);
}

static int set_capacity(struct parser *p, void *t, const char *key, const char *val)
{
	return get_count(p, key, val, 1, CONFIG_CAPACITY_MAX, &((struct config *)t)->capacity);
}

static int set_detach_on_stop(struct parser *p, void *t, const char *key, const char *val)
{
	return get_bool(p, key, val, &((struct config *)t)->detach_on_stop);
}

static int set_save_interval(struct parser *p, void *t, const char *key, const char *val)
{
	return get_duration(p, key, val, 1, CONFIG_SAVE_INTERVAL_MAX,
			    &((struct config *)t)->save_interval);
}

static const struct key_def ipblock_keys[] = {
	{ "pin-dir", set_pin_dir },
	{ "state-dir", set_state_dir },
	{ "capacity", set_capacity },
	{ "detach-on-stop", set_detach_on_stop },
	{ "save-interval", set_save_interval },
	{ NULL, NULL },
};

/* --- [interface NAME] ----------------------------------------------------- */

/* The kernel's rule for device names (dev_valid_name()). */
static bool ifname_valid(const char *s)
{
	size_t len = strlen(s);

	if (!len || len >= IFNAMSIZ || !strcmp(s, ".") || !strcmp(s, ".."))
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] == '/' || s[i] == ':' || s[i] == ' ' || s[i] == '\t')
			return false;
	return true;
}

static int open_interface(struct parser *p, const char *arg, void **target)
{
	struct config *c = p->c;
	struct config_interface *ifs, *itf;
	const struct config_interface *old = config_find_interface(c, arg);

	if (!ifname_valid(arg))
		return fail(p,
			    "[interface %s]: not an interface name (1 to %d characters, no '/' or "
			    "':').",
			    show(p, 0, arg), IFNAMSIZ - 1);
	if (old)
		return fail(p, "[interface %s] appears twice (first on line %u).", show(p, 0, arg),
			    old->line);
	ifs = realloc(c->interfaces, (c->n_interfaces + 1) * sizeof(*ifs));
	if (!ifs)
		return -ENOMEM;
	c->interfaces = ifs;
	itf = &ifs[c->n_interfaces++];
	memset(itf, 0, sizeof(*itf));
	snprintf(itf->name, sizeof(itf->name), "%s", arg);
	itf->mode = CONFIG_MODE_AUTO;
	itf->line = p->line;
	*target = itf;
	return 0;
}

static int set_mode(struct parser *p, void *t, const char *key, const char *val)
{
	static const char *const words[] = { "auto", "native", "skb", NULL };
	static const enum config_mode vals[] = { CONFIG_MODE_AUTO, CONFIG_MODE_NATIVE,
						 CONFIG_MODE_SKB };
	unsigned int i;
	int ret = get_word(p, key, val, words, &i);

	if (!ret)
		((struct config_interface *)t)->mode = vals[i];
	return ret;
}

static const struct key_def interface_keys[] = {
	{ "mode", set_mode },
	{ NULL, NULL },
};

/* --- [list NAME] ---------------------------------------------------------- */

/*
 * Names other sources own: the CLI's default source and the ones the
 * CrowdSec bouncer and the fail2ban action make.  A list under one of them
 * would replace their rules on every load.
 */
static bool list_name_reserved(const char *name)
{
	return !strcmp(name, "static") || !strcmp(name, "crowdsec") ||
	       !strncmp(name, "crowdsec-", 9) || !strncmp(name, "fail2ban-", 9);
}

static int open_list(struct parser *p, const char *arg, void **target)
{
	struct config *c = p->c;
	struct config_list *lists, *l;
	const struct config_list *old;

	if (value_check_name(arg, CONFIG_NAME_MAX, p->why, sizeof(p->why)))
		return fail(p, "[list %s]: the name %s.", show(p, 0, arg), p->why);
	if (list_name_reserved(arg))
		return fail(p,
			    "[list %s]: static, crowdsec, crowdsec-* and fail2ban-* name other "
			    "sources; choose another name.",
			    arg);
	old = config_find_list(c, arg);
	if (old)
		return fail(p, "[list %s] appears twice (first on line %u).", arg, old->line);
	lists = realloc(c->lists, (c->n_lists + 1) * sizeof(*lists));
	if (!lists)
		return -ENOMEM;
	c->lists = lists;
	l = &lists[c->n_lists++];
	memset(l, 0, sizeof(*l));
	snprintf(l->name, sizeof(l->name), "%s", arg);
	l->action = CONFIG_ACTION_NONE;
	l->format = CONFIG_FORMAT_AUTO;
	l->line = p->line;
	*target = l;
	return 0;
}

static int close_list(struct parser *p, void *t)
{
	struct config_list *l = t;

	if (!l->file)
		return fail_at(p, l->line, "[list %s] has no file; add file = PATH.", l->name);
	if (l->action == CONFIG_ACTION_NONE && l->format != CONFIG_FORMAT_SAVE)
		return fail_at(p, l->line,
			       "[list %s] has no action; add action = deny or allow (only format = "
			       "save lists carry their own).",
			       l->name);
	return 0;
}

static int set_file(struct parser *p, void *t, const char *key, const char *val)
{
	return get_path(p, key, val, &((struct config_list *)t)->file);
}

static int set_action(struct parser *p, void *t, const char *key, const char *val)
{
	static const char *const words[] = { "deny", "allow", NULL };
	static const enum config_action vals[] = { CONFIG_ACTION_DENY, CONFIG_ACTION_ALLOW };
	unsigned int i;
	int ret = get_word(p, key, val, words, &i);

	if (!ret)
		((struct config_list *)t)->action = vals[i];
	return ret;
}

static int set_format(struct parser *p, void *t, const char *key, const char *val)
{
	static const char *const words[] = { "auto", "netset", "spamhaus", "save", NULL };
	static const enum config_format vals[] = { CONFIG_FORMAT_AUTO, CONFIG_FORMAT_NETSET,
						   CONFIG_FORMAT_SPAMHAUS, CONFIG_FORMAT_SAVE };
	unsigned int i;
	int ret = get_word(p, key, val, words, &i);

	if (!ret)
		((struct config_list *)t)->format = vals[i];
	return ret;
}

static int set_refresh(struct parser *p, void *t, const char *key, const char *val)
{
	return get_duration(p, key, val, 0, CONFIG_REFRESH_MAX,
			    &((struct config_list *)t)->refresh);
}

static const struct key_def list_keys[] = {
	{ "file", set_file },	    { "action", set_action }, { "format", set_format },
	{ "refresh", set_refresh }, { NULL, NULL },
};

/* --- [metrics] ------------------------------------------------------------ */

static int open_metrics(struct parser *p, const char *arg, void **target)
{
	(void)arg;
	p->c->metrics.enabled = true;
	*target = &p->c->metrics;
	return 0;
}

static int set_listen(struct parser *p, void *t, const char *key, const char *val)
{
	struct config_metrics *m = t;

	if (value_parse_hostport(val, &m->listen, p->why, sizeof(p->why)))
		return bad_value(p, key, val);
	return 0;
}

static const struct key_def metrics_keys[] = {
	{ "listen", set_listen },
	{ NULL, NULL },
};

/* --- [drop-log] ----------------------------------------------------------- */

static int open_drop_log(struct parser *p, const char *arg, void **target)
{
	(void)arg;
	p->c->drop_log.enabled = true;
	*target = &p->c->drop_log;
	return 0;
}

static int set_rate(struct parser *p, void *t, const char *key, const char *val)
{
	return get_count(p, key, val, 1, CONFIG_DROP_LOG_RATE_MAX,
			 &((struct config_drop_log *)t)->rate);
}

static int set_sample(struct parser *p, void *t, const char *key, const char *val)
{
	struct config_drop_log *d = t;
	uint32_t v = 0;
	int ret = get_count(p, key, val, 0, CONFIG_DROP_LOG_SAMPLE_MAX, &v);

	if (ret)
		return ret;
	/* One in one would log every packet past the rate: the log would no longer be bounded. */
	if (v == 1)
		return fail(p, "bad %s '1': must be 0 (nothing beyond rate) or from 2 to %u.", key,
			    CONFIG_DROP_LOG_SAMPLE_MAX);
	d->sample = v;
	return 0;
}

static int set_output(struct parser *p, void *t, const char *key, const char *val)
{
	struct config_drop_log *d = t;

	if (!strcmp(val, "stderr")) {
		d->output = CONFIG_LOG_STDERR;
		return 0;
	}
	if (!strcmp(val, "journal")) {
		d->output = CONFIG_LOG_JOURNAL;
		return 0;
	}
	if (val[0] != '/')
		return fail(p,
			    "bad %s '%s': expected stderr, journal or the absolute path of a "
			    "JSON-lines file.",
			    key, show(p, 0, val));
	d->output = CONFIG_LOG_FILE;
	return get_path(p, key, val, &d->file);
}

static int set_allowed(struct parser *p, void *t, const char *key, const char *val)
{
	return get_bool(p, key, val, &((struct config_drop_log *)t)->allowed);
}

static const struct key_def drop_log_keys[] = {
	{ "rate", set_rate },	    { "sample", set_sample }, { "output", set_output },
	{ "allowed", set_allowed }, { NULL, NULL },
};

/* --- [crowdsec] ----------------------------------------------------------- */

static int open_crowdsec(struct parser *p, const char *arg, void **target)
{
	(void)arg;
	p->c->crowdsec.enabled = true;
	*target = &p->c->crowdsec;
	return 0;
}

static int close_crowdsec(struct parser *p, void *t)
{
	struct config_crowdsec *cs = t;

	if (!cs->api_key_file)
		return fail_at(p, p->sect_line,
			       "[crowdsec] has no api-key-file; add api-key-file = PATH of the "
			       "file holding the bouncer's API key.");
	return 0;
}

static int set_url(struct parser *p, void *t, const char *key, const char *val)
{
	struct config_crowdsec *cs = t;
	size_t scheme = !strncasecmp(val, "http://", 7)	   ? 7
			: !strncasecmp(val, "https://", 8) ? 8
							   : 0;
	char *copy;

	/* libcurl judges the rest; this catches what is plainly not a LAPI address. */
	if (!scheme || !val[scheme] || val[scheme] == '/' || strpbrk(val, " \t"))
		return fail(p, "bad %s '%s': expected http://HOST[:PORT]/ or https://HOST[:PORT]/.",
			    key, show(p, 0, val));
	copy = strdup(val);
	if (!copy)
		return -ENOMEM;
	free(cs->url);
	cs->url = copy;
	return 0;
}

static int set_api_key_file(struct parser *p, void *t, const char *key, const char *val)
{
	return get_path(p, key, val, &((struct config_crowdsec *)t)->api_key_file);
}

static int set_interval(struct parser *p, void *t, const char *key, const char *val)
{
	return get_duration(p, key, val, 1, CONFIG_CROWDSEC_INTERVAL_MAX,
			    &((struct config_crowdsec *)t)->interval);
}

static int set_scopes(struct parser *p, void *t, const char *key, const char *val)
{
	/* Bit i for words[i]: the order of enum config_crowdsec_scope. */
	static const char *const words[] = { "ip", "range", NULL };

	return get_word_set(p, key, val, words, &((struct config_crowdsec *)t)->scopes);
}

static int set_types(struct parser *p, void *t, const char *key, const char *val)
{
	static const char *const words[] = { "ban", NULL };

	return get_word_set(p, key, val, words, &((struct config_crowdsec *)t)->types);
}

static int set_origins(struct parser *p, void *t, const char *key, const char *val)
{
	struct config_crowdsec *cs = t;
	char *elem[CONFIG_ORIGINS_MAX], *copy = strdup(val);
	char **origins = NULL;
	int n, i, ret = 0;

	if (!copy)
		return -ENOMEM;
	n = split_list(p, key, copy, elem, CONFIG_ORIGINS_MAX);
	if (n < 0)
		ret = n;
	for (i = 0; !ret && i < n; i++)
		if (value_check_name(elem[i], CONFIG_ORIGIN_MAX, p->why, sizeof(p->why)))
			ret = fail(p, "bad %s '%s': '%s' %s.", key, show(p, 0, val),
				   show(p, 1, elem[i]), p->why);
	if (!ret) {
		origins = calloc((size_t)n, sizeof(*origins));
		ret = origins ? 0 : -ENOMEM;
	}
	for (i = 0; !ret && i < n; i++) {
		origins[i] = strdup(elem[i]);
		if (!origins[i])
			ret = -ENOMEM;
	}
	free(copy);
	if (ret) {
		/* calloc'd: the entries not reached are NULL. */
		for (i = 0; origins && i < n; i++)
			free(origins[i]);
		free(origins);
		return ret;
	}
	cs->origins = origins;
	cs->n_origins = (size_t)n;
	return 0;
}

static int set_source(struct parser *p, void *t, const char *key, const char *val)
{
	static const char *const words[] = { "crowdsec", "per-origin", NULL };
	static const enum config_crowdsec_source vals[] = { CONFIG_CROWDSEC_SOURCE_ONE,
							    CONFIG_CROWDSEC_SOURCE_PER_ORIGIN };
	unsigned int i;
	int ret = get_word(p, key, val, words, &i);

	if (!ret)
		((struct config_crowdsec *)t)->source = vals[i];
	return ret;
}

static const struct key_def crowdsec_keys[] = {
	{ "url", set_url },	      { "api-key-file", set_api_key_file },
	{ "interval", set_interval }, { "scopes", set_scopes },
	{ "types", set_types },	      { "origins", set_origins },
	{ "source", set_source },     { NULL, NULL },
};

/* --- the format ----------------------------------------------------------- */

static const struct section_def sections[] = {
	{ "ipblock", false, ipblock_keys, open_ipblock, NULL },
	{ "interface", true, interface_keys, open_interface, NULL },
	{ "list", true, list_keys, open_list, close_list },
	{ "metrics", false, metrics_keys, open_metrics, NULL },
	{ "drop-log", false, drop_log_keys, open_drop_log, NULL },
	{ "crowdsec", false, crowdsec_keys, open_crowdsec, close_crowdsec },
};

#define N_SECTIONS (sizeof(sections) / sizeof(sections[0]))

_Static_assert(N_SECTIONS <= sizeof(((struct parser *)0)->single_line) / sizeof(unsigned int),
	       "parser.single_line has a slot per section");

/* parser.key_line has a slot per key of any section (the tables end with a NULL entry). */
#define KEYS_FIT(t) _Static_assert(sizeof(t) / sizeof(t[0]) - 1 <= MAX_KEYS, #t " fits key_line")
KEYS_FIT(ipblock_keys);
KEYS_FIT(interface_keys);
KEYS_FIT(list_keys);
KEYS_FIT(metrics_keys);
KEYS_FIT(drop_log_keys);
KEYS_FIT(crowdsec_keys);

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static char *trim(char *s)
{
	size_t len;

	while (is_blank(*s))
		s++;
	len = strlen(s);
	while (len && is_blank(s[len - 1]))
		s[--len] = '\0';
	return s;
}

/* Where a trailing comment starts: '#' or ';' at the start or after a blank. */
static char *comment_start(char *s)
{
	for (char *q = s; *q; q++)
		if ((*q == '#' || *q == ';') && (q == s || is_blank(q[-1])))
			return q;
	return NULL;
}

/* Lower case, '_' as '-': how a near miss ("Pin_Dir") is recognised. */
static bool same_loosely(const char *a, const char *b)
{
	for (; *a && *b; a++, b++) {
		int x = *a == '_' ? '-' : tolower((unsigned char)*a);
		int y = *b == '_' ? '-' : tolower((unsigned char)*b);

		if (x != y)
			return false;
	}
	return !*a && !*b;
}

static const char *section_pattern(const struct section_def *s, char *buf, size_t len)
{
	snprintf(buf, len, s->named ? "[%s NAME]" : "[%s]", s->name);
	return buf;
}

static int close_section(struct parser *p)
{
	if (!p->sect || !p->sect->close)
		return 0;
	return p->sect->close(p, p->target);
}

static int unknown_section(struct parser *p, const char *name)
{
	char list[256] = "", pat[64];
	size_t off = 0;

	for (size_t i = 0; i < N_SECTIONS; i++)
		if (same_loosely(name, sections[i].name))
			return fail(p, "unknown section [%s]; did you mean %s?", show(p, 0, name),
				    section_pattern(&sections[i], pat, sizeof(pat)));
	for (size_t i = 0; i < N_SECTIONS; i++) {
		const char *sep = !i ? "" : i + 1 < N_SECTIONS ? ", " : " or ";

		off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s", sep,
					section_pattern(&sections[i], pat, sizeof(pat)));
	}
	return fail(p, "unknown section [%s]; expected %s.", show(p, 0, name), list);
}

static int parse_header(struct parser *p, char *line)
{
	char *end = strchr(line, ']'), *rest, *name, *arg, *extra, *save = NULL;
	const struct section_def *s = NULL;
	size_t idx;
	int ret;

	/* The section before this one is complete: what it lacks is its error, reported first. */
	ret = close_section(p);
	p->sect = NULL;
	if (ret)
		return ret;
	if (!end)
		return fail(p, "the section header has no closing ']'.");
	*end = '\0';
	rest = trim(end + 1);
	if (*rest && *rest != '#' && *rest != ';')
		return fail(p, "unexpected '%s' after the section header.", show(p, 0, rest));
	name = strtok_r(line + 1, " \t", &save);
	arg = name ? strtok_r(NULL, " \t", &save) : NULL;
	extra = arg ? strtok_r(NULL, " \t", &save) : NULL;
	if (!name)
		return fail(p, "empty section header; expected [SECTION] or [SECTION NAME].");
	if (extra)
		return fail(p, "too many words in the section header; expected [SECTION] or "
			       "[SECTION NAME].");
	for (idx = 0; idx < N_SECTIONS; idx++)
		if (!strcmp(name, sections[idx].name))
			break;
	if (idx == N_SECTIONS)
		return unknown_section(p, name);
	s = &sections[idx];
	if (s->named && !arg)
		return fail(p, "[%s] needs a name: [%s NAME].", s->name, s->name);
	if (!s->named && arg)
		return fail(p, "[%s] takes no name; write [%s].", s->name, s->name);
	if (!s->named && p->single_line[idx])
		return fail(p, "[%s] appears twice (first on line %u).", s->name,
			    p->single_line[idx]);
	ret = s->open(p, arg, &p->target);
	if (ret)
		return ret;
	if (!s->named)
		p->single_line[idx] = p->line;
	p->sect = s;
	p->sect_line = p->line;
	snprintf(p->sect_arg, sizeof(p->sect_arg), "%s", arg ? arg : "");
	memset(p->key_line, 0, sizeof(p->key_line));
	return 0;
}

/* The section that has key, for a hint; NULL when none has. */
static const struct section_def *section_of_key(const char *key)
{
	for (size_t i = 0; i < N_SECTIONS; i++)
		for (const struct key_def *k = sections[i].keys; k->name; k++)
			if (!strcmp(key, k->name))
				return &sections[i];
	return NULL;
}

static int unknown_key(struct parser *p, const char *key)
{
	char label[CONFIG_NAME_MAX + 32], pat[64], list[256] = "";
	const struct section_def *home;
	const struct key_def *k;
	size_t off = 0;

	sect_label(p, label, sizeof(label));
	for (k = p->sect->keys; k->name; k++)
		if (same_loosely(key, k->name))
			return fail(p, "unknown key '%s' in %s; did you mean %s?", show(p, 0, key),
				    label, k->name);
	home = section_of_key(key);
	if (home)
		return fail(p, "unknown key '%s' in %s; it belongs in %s.", key, label,
			    section_pattern(home, pat, sizeof(pat)));
	for (k = p->sect->keys; k->name; k++) {
		const char *sep = k == p->sect->keys ? "" : k[1].name ? ", " : " or ";

		off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s", sep, k->name);
	}
	return fail(p, "unknown key '%s' in %s; expected %s.", show(p, 0, key), label, list);
}

/* The value after '=': unquoted (trailing comment cut) or in double quotes. */
static int parse_value(struct parser *p, const char *key, char *s, char **val)
{
	char *close, *rest;

	s = trim(s);
	if (*s != '"') {
		char *c = comment_start(s);

		if (c)
			*c = '\0';
		*val = trim(s);
		return 0;
	}
	close = strchr(s + 1, '"');
	if (!close)
		return fail(p, "the value of %s has no closing '\"'.", key);
	*close = '\0';
	rest = trim(close + 1);
	if (*rest && *rest != '#' && *rest != ';')
		return fail(p, "unexpected '%s' after the closing '\"' of %s.", show(p, 0, rest),
			    key);
	*val = s + 1;
	return 0;
}

static bool key_chars_valid(const char *key)
{
	return *key && strspn(key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				   "0123456789-_.") == strlen(key);
}

static int parse_key_value(struct parser *p, char *line)
{
	char label[CONFIG_NAME_MAX + 32], pat[64];
	char *eq = strchr(line, '='), *key, *val = NULL;
	const struct section_def *home;
	const struct key_def *k;
	size_t ki;
	int ret;

	if (!eq)
		return fail(p, "expected KEY = VALUE, a [SECTION] header or a comment.");
	*eq = '\0';
	key = trim(line);
	if (!key_chars_valid(key))
		return fail(p, "expected KEY = VALUE, a [SECTION] header or a comment.");
	if (!p->sect) {
		home = section_of_key(key);
		if (home)
			return fail(p, "%s comes before any section header; it belongs in %s.", key,
				    section_pattern(home, pat, sizeof(pat)));
		return fail(p, "'%s' comes before any section header.", show(p, 0, key));
	}
	for (ki = 0; p->sect->keys[ki].name; ki++)
		if (!strcmp(key, p->sect->keys[ki].name))
			break;
	k = &p->sect->keys[ki];
	if (!k->name)
		return unknown_key(p, key);
	if (p->key_line[ki])
		return fail(p, "%s is set twice in %s (first on line %u).", k->name,
			    sect_label(p, label, sizeof(label)), p->key_line[ki]);
	ret = parse_value(p, k->name, eq + 1, &val);
	if (ret)
		return ret;
	if (!*val)
		return fail(p, "%s has no value.", k->name);
	ret = k->set(p, p->target, k->name, val);
	if (ret)
		return ret;
	p->key_line[ki] = p->line;
	return 0;
}

/* One line without its '\n' (len <= CONFIG_MAX_LINE), copied into buf to work on. */
static int parse_line(struct parser *p, const char *raw, size_t len, char *buf)
{
	char *line;

	if (len && raw[len - 1] == '\r')
		len--;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)raw[i];

		if (!ch)
			return fail(p, "the line contains a NUL byte; is this a text file?");
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return fail(p, "the line contains the control character 0x%02x.", ch);
	}
	memcpy(buf, raw, len);
	buf[len] = '\0';
	line = trim(buf);
	if (!*line || *line == '#' || *line == ';')
		return 0;
	if (*line == '[')
		return parse_header(p, line);
	return parse_key_value(p, line);
}

int config_defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	c->pin_dir = strdup(IPBLOCK_PIN_DIR_DEFAULT);
	c->state_dir = strdup(CONFIG_STATE_DIR_DEFAULT);
	c->capacity = IPBLOCK_MAX_RULES_DEFAULT;
	c->detach_on_stop = false;
	c->save_interval = CONFIG_SAVE_INTERVAL_DEFAULT;

	/* The default is a constant that parses: a failure here is a bug, caught by the tests. */
	value_parse_hostport(CONFIG_METRICS_LISTEN_DEFAULT, &c->metrics.listen, NULL, 0);

	c->drop_log.rate = CONFIG_DROP_LOG_RATE_DEFAULT;
	c->drop_log.sample = 0;
	c->drop_log.output = CONFIG_LOG_STDERR;

	c->crowdsec.url = strdup(CONFIG_CROWDSEC_URL_DEFAULT);
	c->crowdsec.interval = CONFIG_CROWDSEC_INTERVAL_DEFAULT;
	c->crowdsec.scopes = CONFIG_CROWDSEC_SCOPE_IP | CONFIG_CROWDSEC_SCOPE_RANGE;
	c->crowdsec.types = CONFIG_CROWDSEC_TYPE_BAN;
	c->crowdsec.source = CONFIG_CROWDSEC_SOURCE_ONE;

	if (!c->pin_dir || !c->state_dir || !c->crowdsec.url) {
		config_free(c);
		return -ENOMEM;
	}
	return 0;
}

int config_parse(struct config *c, const char *name, const char *text, size_t len, char *err,
		 size_t errlen)
{
	struct parser p = { .c = c, .name = name, .err = err, .errlen = errlen };
	size_t pos = 0;
	char *buf = NULL;
	int ret;

	errbuf_set(err, errlen, "%s", "");
	memset(c, 0, sizeof(*c));
	if (len > CONFIG_MAX_SIZE) {
		errbuf_set(err, errlen, "%s: larger than %d KiB; not a configuration file.", name,
			   CONFIG_MAX_SIZE / 1024);
		return -EFBIG;
	}
	ret = config_defaults(c);
	if (!ret) {
		buf = malloc(CONFIG_MAX_LINE + 1);
		if (!buf)
			ret = -ENOMEM;
	}
	/* A byte order mark is what some Windows editors start a text file with. */
	if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3))
		pos = 3;
	while (!ret && pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;

		p.line++;
		if (n - (n && text[pos + n - 1] == '\r') > CONFIG_MAX_LINE)
			ret = fail(&p, "the line is longer than %d bytes.", CONFIG_MAX_LINE);
		else
			ret = parse_line(&p, text + pos, n, buf);
		pos += n + 1;
	}
	if (!ret)
		ret = close_section(&p);
	free(buf);
	if (ret == -ENOMEM)
		errbuf_set(err, errlen, "%s: out of memory.", name);
	if (ret)
		config_free(c);
	return ret;
}

int config_read(struct config *c, const char *path, char *err, size_t errlen)
{
	size_t len = 0, cap = 64 * 1024;
	char *text = malloc(cap);
	int fd, ret = 0;

	memset(c, 0, sizeof(*c));
	if (!text) {
		errbuf_set(err, errlen, "%s: out of memory.", path);
		return -ENOMEM;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		errbuf_set(err, errlen, "%s: %s.", path, strerror(-ret));
		free(text);
		return ret;
	}
	/* Read one byte past the limit, so that config_parse() sees an over-long file as such. */
	for (;;) {
		ssize_t r;

		if (len == cap) {
			char *bigger = cap > CONFIG_MAX_SIZE ? NULL : realloc(text, cap * 2);

			if (!bigger) {
				if (cap > CONFIG_MAX_SIZE)
					break;
				ret = -ENOMEM;
				errbuf_set(err, errlen, "%s: out of memory.", path);
				break;
			}
			text = bigger;
			cap *= 2;
		}
		r = read(fd, text + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			ret = -errno;
			errbuf_set(err, errlen, "%s: %s.", path, strerror(-ret));
			break;
		}
		if (!r)
			break;
		len += (size_t)r;
	}
	close(fd);
	if (!ret)
		ret = config_parse(c, path, text, len, err, errlen);
	free(text);
	return ret;
}

void config_free(struct config *c)
{
	free(c->pin_dir);
	free(c->state_dir);
	for (size_t i = 0; i < c->n_lists; i++)
		free(c->lists[i].file);
	free(c->lists);
	free(c->interfaces);
	free(c->drop_log.file);
	free(c->crowdsec.url);
	free(c->crowdsec.api_key_file);
	for (size_t i = 0; i < c->crowdsec.n_origins; i++)
		free(c->crowdsec.origins[i]);
	free(c->crowdsec.origins);
	memset(c, 0, sizeof(*c));
}

const struct config_interface *config_find_interface(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->n_interfaces; i++)
		if (!strcmp(c->interfaces[i].name, name))
			return &c->interfaces[i];
	return NULL;
}

const struct config_list *config_find_list(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->n_lists; i++)
		if (!strcmp(c->lists[i].name, name))
			return &c->lists[i];
	return NULL;
}
