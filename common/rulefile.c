// SPDX-License-Identifier: GPL-2.0
/* Rule lists as text: parse, collapse duplicates, summarise; see rulefile.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rulefile.h"
#include "value.h"

/* Fields a rule line may have: CIDR, action, source=, timeout= or expires=; one more is an error. */
#define FIELDS_MAX 5

/* Bytes read per read(): big enough that a million-line list takes few calls. */
#define READ_CHUNK (1 << 20)

/* A token is copied out to be NUL-terminated; no valid field is half this long. */
#define TOKEN_MAX 256

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* A short printable rendering of a field for messages: odd bytes become '?'. */
static const char *quote_field(char *buf, size_t size, const char *s, size_t n)
{
	size_t max = size - 4, i;

	for (i = 0; i < n && i < max; i++)
		buf[i] = s[i] > 0x20 && s[i] < 0x7f ? s[i] : '?';
	if (i < n)
		memcpy(buf + i, "...", 4);
	else
		buf[i] = '\0';
	return buf;
}

/*
 * The line's fields: the comment is cut first, so "1.2.3.0/24 ; SBL123"
 * and "1.2.3.4 deny # why" both end where the comment starts.
 */
static int split_fields(const char *line, size_t len, const char *f[FIELDS_MAX + 1],
			size_t flen[FIELDS_MAX + 1], char *err, size_t errlen)
{
	size_t i = 0, nf = 0;

	for (size_t k = 0; k < len; k++) {
		if (line[k] == '#' || line[k] == ';') {
			len = k;
			break;
		}
		if (line[k] == '\0') {
			snprintf(err, errlen, "the line contains a NUL byte; is this a text file?");
			return -EINVAL;
		}
	}
	while (i < len) {
		size_t start;

		while (i < len && is_blank(line[i]))
			i++;
		if (i == len)
			break;
		start = i;
		while (i < len && !is_blank(line[i]))
			i++;
		if (nf <= FIELDS_MAX) {
			f[nf] = line + start;
			flen[nf] = i - start;
		}
		nf++;
	}
	return (int)(nf > FIELDS_MAX + 1 ? FIELDS_MAX + 1 : nf);
}

/* "2026-12-06T04:00:00Z", what -S writes, as seconds since the epoch. */
static int parse_time(const char *s, uint64_t *out)
{
	struct tm tm = {};
	const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
	time_t t;

	if (!end || *end)
		return -EINVAL;
	t = timegm(&tm);
	if (t < 0)
		return -EINVAL;
	*out = (uint64_t)t;
	return 0;
}

/* One "timeout=DURATION" or "expires=TIME" field into *deadline. */
static int parse_deadline(const char *f, size_t flen, uint64_t now, uint64_t *deadline,
			  char *err, size_t errlen)
{
	char tok[TOKEN_MAX], q[40], why[VALUE_WHYLEN];
	uint64_t secs;

	if (*deadline) {
		snprintf(err, errlen, "'%s': give one timeout= or expires= a line.",
			 quote_field(q, sizeof(q), f, flen));
		return -EINVAL;
	}
	memcpy(tok, f, flen < TOKEN_MAX ? flen : TOKEN_MAX - 1);
	tok[flen < TOKEN_MAX ? flen : TOKEN_MAX - 1] = '\0';
	if (!strncmp(tok, "timeout=", 8)) {
		if (value_parse_duration(tok + 8, 1, RULEFILE_TIMEOUT_MAX, &secs, why,
					 sizeof(why))) {
			snprintf(err, errlen, "bad timeout '%s': %s.", tok + 8, why);
			return -EINVAL;
		}
		*deadline = now + secs;
		return 0;
	}
	if (parse_time(tok + 8, deadline) || !*deadline) {
		snprintf(err, errlen, "bad expiry '%s': write expires=YYYY-MM-DDTHH:MM:SSZ (UTC).",
			 quote_field(q, sizeof(q), tok + 8, strlen(tok + 8)));
		return -EINVAL;
	}
	return 0;
}

/* One "source=NAME" field into source (IPBLOCK_SOURCE_NAME_LEN bytes). */
static int parse_source(const char *f, size_t flen, char *source, char *err, size_t errlen)
{
	char q[40], why[VALUE_WHYLEN];

	if (source[0]) {
		snprintf(err, errlen, "'%s': give one source= a line.",
			 quote_field(q, sizeof(q), f, flen));
		return -EINVAL;
	}
	if (flen - 7 >= IPBLOCK_SOURCE_NAME_LEN) {
		snprintf(err, errlen, "bad source '%s': it is longer than %d characters.",
			 quote_field(q, sizeof(q), f + 7, flen - 7), IPBLOCK_SOURCE_NAME_LEN - 1);
		return -EINVAL;
	}
	memcpy(source, f + 7, flen - 7);
	source[flen - 7] = '\0';
	if (value_check_name(source, IPBLOCK_SOURCE_NAME_LEN - 1, why, sizeof(why))) {
		snprintf(err, errlen, "bad source '%s': it %s.",
			 quote_field(q, sizeof(q), f + 7, flen - 7), why);
		source[0] = '\0';
		return -EINVAL;
	}
	return 0;
}

/*
 * rulefile_parse_line(), also handing back the prefix field for the notes
 * and the line's deadline (0: none; timeout= counts from now).
 */
static int parse_line(const char *line, size_t len, uint8_t action, uint64_t now,
		      struct rule *out, uint64_t *deadline, char *source, unsigned int *notes,
		      char *err, size_t errlen, const char **field, size_t *field_len)
{
	const char *f[FIELDS_MAX + 1];
	size_t flen[FIELDS_MAX + 1];
	char tok[TOKEN_MAX], q[40];
	uint8_t line_action = 0;
	int nf = split_fields(line, len, f, flen, err, errlen), k = 1;

	*deadline = 0;
	source[0] = '\0';
	if (nf <= 0)
		return nf;
	memcpy(tok, f[0], flen[0] < TOKEN_MAX ? flen[0] : TOKEN_MAX - 1);
	tok[flen[0] < TOKEN_MAX ? flen[0] : TOKEN_MAX - 1] = '\0';
	memset(out, 0, sizeof(*out));
	if (cidr_parse(tok, &out->prefix, notes, err, errlen))
		return -EINVAL;
	if (nf > 1 && !memchr(f[1], '=', flen[1])) {
		k = 2;
		if (flen[1] == 5 && !memcmp(f[1], "allow", 5)) {
			line_action = IPBLOCK_ACTION_ALLOW;
		} else if (flen[1] == 4 && !memcmp(f[1], "deny", 4)) {
			line_action = IPBLOCK_ACTION_DENY;
		} else {
			snprintf(err, errlen, "'%s' is not an action: use allow or deny.",
				 quote_field(q, sizeof(q), f[1], flen[1]));
			return -EINVAL;
		}
	}
	for (; k < nf; k++) {
		bool timed = flen[k] > 8 && (!memcmp(f[k], "timeout=", 8) ||
					     !memcmp(f[k], "expires=", 8));
		bool named = flen[k] > 7 && !memcmp(f[k], "source=", 7);

		if (k == FIELDS_MAX || (!timed && !named)) {
			snprintf(err, errlen,
				 "unexpected '%s' after the action; a rule line is CIDR "
				 "[allow|deny] [source=NAME] [timeout=DURATION|expires=TIME].",
				 quote_field(q, sizeof(q), f[k], flen[k]));
			return -EINVAL;
		}
		if (named && parse_source(f[k], flen[k], source, err, errlen))
			return -EINVAL;
		if (timed && parse_deadline(f[k], flen[k], now, deadline, err, errlen))
			return -EINVAL;
	}
	out->action = action ? action : line_action;
	if (!out->action) {
		snprintf(err, errlen,
			 "'%s' has no action: write allow or deny after it, or give -p.",
			 quote_field(q, sizeof(q), f[0], flen[0]));
		return -EINVAL;
	}
	if (field) {
		*field = f[0];
		*field_len = flen[0];
	}
	return 1;
}

int rulefile_parse_line(const char *line, size_t len, uint8_t action, struct rule *out,
			unsigned int *notes, char *err, size_t errlen)
{
	char source[IPBLOCK_SOURCE_NAME_LEN];
	unsigned int ignored;
	uint64_t deadline;

	return parse_line(line, len, action, (uint64_t)time(NULL), out, &deadline, source,
			  notes ? notes : &ignored, err, errlen, NULL, NULL);
}

int rulefile_parse_claim(const char *line, size_t len, uint8_t action, uint64_t now,
			 struct rule *out, uint64_t *deadline, char *source, char *err,
			 size_t errlen)
{
	unsigned int notes;

	return parse_line(line, len, action, now, out, deadline, source, &notes, err, errlen,
			  NULL, NULL);
}

void rulefile_init(struct rulefile *rf, const struct rulefile_opts *opts)
{
	memset(rf, 0, sizeof(*rf));
	rf->opts = *opts;
	if (!rf->opts.name)
		rf->opts.name = "stdin";
	if (!rf->opts.now)
		rf->opts.now = (uint64_t)time(NULL);
}

/* Keep the RULEFILE_SHOW_SKIPPED earliest skipped lines, in line order. */
static void remember_skip(struct rulefile *rf, uint32_t line, const char *why)
{
	size_t at = rf->n_shown;

	rf->skipped++;
	while (at > 0 && rf->shown[at - 1].line > line)
		at--;
	if (at >= RULEFILE_SHOW_SKIPPED)
		return;
	if (rf->n_shown < RULEFILE_SHOW_SKIPPED)
		rf->n_shown++;
	memmove(&rf->shown[at + 1], &rf->shown[at], (rf->n_shown - 1 - at) * sizeof(rf->shown[0]));
	rf->shown[at].line = line;
	snprintf(rf->shown[at].why, sizeof(rf->shown[at].why), "%s", why);
}

static int fail(struct rulefile *rf, size_t line, const char *why)
{
	snprintf(rf->error, sizeof(rf->error), "%s:%zu: %s", rf->opts.name, line, why);
	rf->failed = true;
	return -EINVAL;
}

/* A bad line: the end of the parse, or a skip. */
static int bad_line(struct rulefile *rf, const char *why)
{
	if (!rf->opts.skip_invalid)
		return fail(rf, rf->lines, why);
	remember_skip(rf, (uint32_t)rf->lines, why);
	return 0;
}

static int push_rule(struct rulefile *rf, const struct rule *r)
{
	if (rf->n == rf->cap) {
		size_t cap = rf->cap ? rf->cap + rf->cap / 2 : 4096;
		struct rule *rules = realloc(rf->rules, cap * sizeof(*rules));
		uint32_t *line_of;

		if (!rules)
			return -ENOMEM;
		rf->rules = rules;
		line_of = realloc(rf->line_of, cap * sizeof(*line_of));
		if (!line_of)
			return -ENOMEM;
		rf->line_of = line_of;
		rf->cap = cap;
	}
	rf->rules[rf->n] = *r;
	rf->line_of[rf->n] = (uint32_t)rf->lines;
	rf->n++;
	return 0;
}

/* Remember the first normalised prefix of a kind: "FILE:LINE TEXT -> STORED". */
static void note_first(struct rulefile *rf, char *first, const char *field, size_t field_len,
		       const struct cidr *p)
{
	char text[CIDR_STRLEN], q[CIDR_STRLEN + 8];

	if (first[0])
		return;
	snprintf(first, RULEFILE_WHYLEN, "%s:%zu %s -> %s", rf->opts.name, rf->lines,
		 quote_field(q, sizeof(q), field, field_len), cidr_format(p, text, sizeof(text)));
}

/*
 * The current line's source, kept by line number until the rules are
 * sorted: an index into source_names, plus one.  -E2BIG past
 * IPBLOCK_SOURCES_MAX names.
 */
static int keep_source(struct rulefile *rf, const char *name)
{
	size_t k = 0;

	while (k < rf->n_source_names && strcmp(rf->source_names[k], name))
		k++;
	if (k == rf->n_source_names) {
		if (k == IPBLOCK_SOURCES_MAX)
			return -E2BIG;
		snprintf(rf->source_names[k], IPBLOCK_SOURCE_NAME_LEN, "%s", name);
		rf->n_source_names++;
	}
	if (rf->lines >= rf->source_cap) {
		size_t cap = rf->lines + 1 > 2 * rf->source_cap ? rf->lines + 1 : 2 * rf->source_cap;
		uint16_t *s = realloc(rf->source_of_line, cap * sizeof(*s));

		if (!s)
			return -ENOMEM;
		memset(s + rf->source_cap, 0, (cap - rf->source_cap) * sizeof(*s));
		rf->source_of_line = s;
		rf->source_cap = cap;
	}
	rf->source_of_line[rf->lines] = (uint16_t)(k + 1);
	return 0;
}

/* The source index (plus one; 0: none) of sorted rule i, by its line. */
static uint16_t source_at(const struct rulefile *rf, size_t i)
{
	uint32_t line = rf->line_of[i];

	return line < rf->source_cap ? rf->source_of_line[line] : 0;
}

/* The current line's deadline, kept by line number until the rules are sorted. */
static int keep_deadline(struct rulefile *rf, uint64_t deadline)
{
	if (rf->lines >= rf->deadline_cap) {
		size_t cap = rf->lines + 1 > 2 * rf->deadline_cap ? rf->lines + 1
								  : 2 * rf->deadline_cap;
		uint64_t *d = realloc(rf->deadline_of_line, cap * sizeof(*d));

		if (!d)
			return -ENOMEM;
		memset(d + rf->deadline_cap, 0, (cap - rf->deadline_cap) * sizeof(*d));
		rf->deadline_of_line = d;
		rf->deadline_cap = cap;
	}
	rf->deadline_of_line[rf->lines] = deadline;
	return 0;
}

static int handle_line(struct rulefile *rf, const char *s, size_t len)
{
	char err[RULEFILE_WHYLEN];
	const char *field = NULL;
	size_t field_len = 0;
	char source[IPBLOCK_SOURCE_NAME_LEN];
	unsigned int notes = 0;
	uint64_t deadline;
	struct rule r;
	int ret;

	if (rf->lines == UINT32_MAX)
		return fail(rf, rf->lines, "the list has more lines than ipblock counts.");
	rf->lines++;
	if (rf->lines == 1 && len >= 3 && !memcmp(s, "\xef\xbb\xbf", 3)) {
		s += 3;
		len -= 3;
	}
	if (len > RULEFILE_MAX_LINE) {
		snprintf(err, sizeof(err), "the line is longer than %d bytes.", RULEFILE_MAX_LINE);
		return bad_line(rf, err);
	}
	ret = parse_line(s, len, rf->opts.action, rf->opts.now, &r, &deadline, source, &notes,
			 err, sizeof(err), &field, &field_len);
	if (ret < 0)
		return bad_line(rf, err);
	if (ret == 0)
		return 0;
	if (source[0]) {
		ret = keep_source(rf, source);
		if (ret == -E2BIG) {
			snprintf(err, sizeof(err), "more than %d sources in one list.",
				 IPBLOCK_SOURCES_MAX);
			return bad_line(rf, err);
		}
		if (ret)
			return ret;
	}
	if (deadline && keep_deadline(rf, deadline))
		return -ENOMEM;
	if (notes & CIDR_NOTE_V4_MAPPED) {
		rf->v4_mapped++;
		note_first(rf, rf->first_v4_mapped, field, field_len, &r.prefix);
	} else if (notes & CIDR_NOTE_HOST_BITS) {
		rf->host_bits++;
		note_first(rf, rf->first_host_bits, field, field_len, &r.prefix);
	}
	return push_rule(rf, &r);
}

int rulefile_feed(struct rulefile *rf, const char *buf, size_t len)
{
	const char *end = buf + len;
	int ret;

	if (rf->failed)
		return -EINVAL;
	while (buf < end) {
		const char *nl = memchr(buf, '\n', (size_t)(end - buf));
		size_t part = nl ? (size_t)(nl - buf) : (size_t)(end - buf);

		if (!nl || rf->pending_len) {
			/*
			 * A line cut by the chunk boundary is gathered in
			 * pending; past the longest line accepted only its
			 * length still counts, the error says so.
			 */
			size_t want = rf->pending_len + part, keep = part;

			if (want > RULEFILE_MAX_LINE + 1)
				keep = rf->pending_len > RULEFILE_MAX_LINE + 1
					       ? 0
					       : RULEFILE_MAX_LINE + 1 - rf->pending_len;
			if (rf->pending_len + keep > rf->pending_cap) {
				size_t cap = rf->pending_len + keep + 256;
				char *p = realloc(rf->pending, cap);

				if (!p)
					return -ENOMEM;
				rf->pending = p;
				rf->pending_cap = cap;
			}
			memcpy(rf->pending + rf->pending_len, buf, keep);
			rf->pending_len += keep;
			if (!nl)
				return 0;
			ret = handle_line(rf, rf->pending, rf->pending_len);
			rf->pending_len = 0;
		} else {
			ret = handle_line(rf, buf, part);
		}
		if (ret)
			return ret;
		buf = nl + 1;
	}
	return 0;
}

static void add_note(struct rulefile *rf, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void add_note(struct rulefile *rf, const char *fmt, ...)
{
	va_list ap;

	if (rf->n_notes == RULEFILE_MAX_NOTES)
		return;
	va_start(ap, fmt);
	vsnprintf(rf->notes[rf->n_notes++], RULEFILE_MSGLEN, fmt, ap);
	va_end(ap);
}

static const char *plural(size_t n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

/*
 * Rules are sorted with equal prefixes in line order: each run of equal
 * prefixes becomes its first rule of each source (one, without source=
 * columns), unless two lines of one source disagree on the action.
 */
static int collapse(struct rulefile *rf)
{
	size_t out = 0, i = 0, dup_line = 0, dup_orig = 0;
	char text[CIDR_STRLEN], why[RULEFILE_WHYLEN];
	struct rule dup_rule = {};

	while (i < rf->n) {
		size_t j = i + 1, k, e = i;
		bool conflict = false;

		while (j < rf->n && !cidr_compare(&rf->rules[i].prefix, &rf->rules[j].prefix))
			j++;
		for (k = i + 1; k < j && !conflict; k++)
			for (e = i; e < k; e++)
				if (source_at(rf, e) == source_at(rf, k) &&
				    rf->rules[e].action != rf->rules[k].action) {
					conflict = true;
					break;
				}
		if (conflict) {
			k--;
			cidr_format(&rf->rules[i].prefix, text, sizeof(text));
			snprintf(why, sizeof(why), "%s is %s here but %s on line %u.", text,
				 ruleset_action_name(rf->rules[k].action),
				 ruleset_action_name(rf->rules[e].action), rf->line_of[e]);
			if (!rf->opts.skip_invalid)
				return fail(rf, rf->line_of[k], why);
			/* Which line was meant is unknown: the prefix goes entirely. */
			for (size_t s = i; s < j; s++) {
				snprintf(why, sizeof(why),
					 "%s appears with both actions (lines %u and %u).", text,
					 rf->line_of[e], rf->line_of[k]);
				remember_skip(rf, rf->line_of[s], why);
			}
			i = j;
			continue;
		}
		for (k = i; k < j; k++) {
			for (e = i; e < k && source_at(rf, e) != source_at(rf, k); e++)
				;
			if (e < k) {
				/* A repeat of line e's rule. */
				rf->duplicates++;
				if (!dup_line || rf->line_of[k] < dup_line) {
					dup_line = rf->line_of[k];
					dup_orig = rf->line_of[e];
					dup_rule = rf->rules[e];
				}
				continue;
			}
			rf->rules[out] = rf->rules[k];
			rf->line_of[out] = rf->line_of[k];
			out++;
		}
		i = j;
	}
	rf->n = out;
	if (dup_line)
		snprintf(rf->first_duplicate, sizeof(rf->first_duplicate),
			 "%s:%zu repeats %s from line %zu", rf->opts.name, dup_line,
			 cidr_format(&dup_rule.prefix, text, sizeof(text)), dup_orig);
	return 0;
}

int rulefile_finish(struct rulefile *rf)
{
	int ret;

	if (rf->failed)
		return -EINVAL;
	if (rf->pending_len) {
		/* The last line had no '\n'. */
		ret = handle_line(rf, rf->pending, rf->pending_len);
		rf->pending_len = 0;
		if (ret)
			return ret;
	}
	if (rf->cap > rf->n + 1) {
		/* Give back the growth slack before sorting allocates its own. */
		struct rule *r = realloc(rf->rules, (rf->n + 1) * sizeof(*r));
		uint32_t *l = r ? realloc(rf->line_of, (rf->n + 1) * sizeof(*l)) : NULL;

		if (r)
			rf->rules = r;
		if (l)
			rf->line_of = l;
		if (r && l)
			rf->cap = rf->n + 1;
	}
	ret = ruleset_sort(rf->rules, rf->line_of, rf->n);
	if (ret)
		return ret;
	ret = collapse(rf);
	if (ret)
		return ret;
	for (size_t i = 0; i < rf->n; i++) {
		if (rf->rules[i].prefix.family == AF_INET)
			rf->v4++;
		else
			rf->v6++;
	}
	if (rf->skipped && !rf->n) {
		/* Skipping is for a few bad lines, not for a file that is not a list at all. */
		char why[RULEFILE_WHYLEN];
		size_t len;

		snprintf(why, sizeof(why), "%s", rf->shown[0].why);
		len = strlen(why);
		if (len && why[len - 1] == '.')
			why[len - 1] = '\0';
		snprintf(rf->error, sizeof(rf->error),
			 "%s:%u: %s; all %zu rule %s invalid, so nothing was changed.",
			 rf->opts.name, rf->shown[0].line, why, rf->skipped,
			 plural(rf->skipped, "line is", "lines are"));
		rf->failed = true;
		return -EINVAL;
	}
	if (rf->skipped) {
		add_note(rf, "skipped %zu invalid %s of %s:", rf->skipped,
			 plural(rf->skipped, "line", "lines"), rf->opts.name);
		for (size_t i = 0; i < rf->n_shown; i++)
			add_note(rf, "  %s:%u: %s", rf->opts.name, rf->shown[i].line,
				 rf->shown[i].why);
	}
	if (rf->host_bits)
		add_note(rf, "%zu %s host bits set and %s normalised (first: %s).", rf->host_bits,
			 plural(rf->host_bits, "prefix had", "prefixes had"),
			 plural(rf->host_bits, "was", "were"), rf->first_host_bits);
	if (rf->v4_mapped)
		add_note(rf, "%zu IPv4-mapped IPv6 %s stored as IPv4 (first: %s).", rf->v4_mapped,
			 plural(rf->v4_mapped, "prefix is", "prefixes are"), rf->first_v4_mapped);
	if (rf->duplicates)
		add_note(rf, "%zu duplicate %s collapsed (first: %s).", rf->duplicates,
			 plural(rf->duplicates, "line was", "lines were"), rf->first_duplicate);
	if (rf->source_of_line) {
		/* Each rule gets the source of the line it came from. */
		rf->source = calloc(rf->n + 1, sizeof(*rf->source));
		if (!rf->source)
			return -ENOMEM;
		for (size_t i = 0; i < rf->n; i++)
			rf->source[i] = source_at(rf, i);
		free(rf->source_of_line);
		rf->source_of_line = NULL;
		rf->source_cap = 0;
	}
	if (rf->deadline_of_line) {
		/* Each rule gets the deadline of the line it came from. */
		rf->deadline = calloc(rf->n + 1, sizeof(*rf->deadline));
		if (!rf->deadline)
			return -ENOMEM;
		for (size_t i = 0; i < rf->n; i++)
			if (rf->line_of[i] < rf->deadline_cap)
				rf->deadline[i] = rf->deadline_of_line[rf->line_of[i]];
		free(rf->deadline_of_line);
		rf->deadline_of_line = NULL;
		rf->deadline_cap = 0;
	}
	free(rf->line_of);
	rf->line_of = NULL;
	return 0;
}

int rulefile_parse_text(struct rulefile *rf, const struct rulefile_opts *opts, const char *text,
			size_t len)
{
	int ret;

	rulefile_init(rf, opts);
	ret = rulefile_feed(rf, text, len);
	return ret ? ret : rulefile_finish(rf);
}

int rulefile_read(struct rulefile *rf, const struct rulefile_opts *opts, const char *path)
{
	bool is_stdin = !strcmp(path, "-");
	struct rulefile_opts o = *opts;
	int fd, ret = 0;
	char *buf;

	if (!o.name)
		o.name = is_stdin ? "stdin" : path;
	rulefile_init(rf, &o);
	fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(rf->error, sizeof(rf->error), "cannot open %s: %s.", path, strerror(-ret));
		return ret;
	}
	buf = malloc(READ_CHUNK);
	if (!buf) {
		ret = -ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t got = read(fd, buf, READ_CHUNK);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			ret = -errno;
			snprintf(rf->error, sizeof(rf->error), "cannot read %s: %s.", rf->opts.name,
				 strerror(-ret));
			break;
		}
		if (got == 0) {
			ret = rulefile_finish(rf);
			break;
		}
		ret = rulefile_feed(rf, buf, (size_t)got);
		if (ret)
			break;
	}
out:
	free(buf);
	if (!is_stdin)
		close(fd);
	return ret;
}

void rulefile_free(struct rulefile *rf)
{
	free(rf->rules);
	free(rf->line_of);
	free(rf->pending);
	free(rf->deadline);
	free(rf->deadline_of_line);
	free(rf->source);
	free(rf->source_of_line);
	rf->deadline = NULL;
	rf->deadline_of_line = NULL;
	rf->deadline_cap = 0;
	rf->source = NULL;
	rf->source_of_line = NULL;
	rf->source_cap = 0;
	rf->n_source_names = 0;
	rf->rules = NULL;
	rf->line_of = NULL;
	rf->pending = NULL;
	rf->n = rf->cap = rf->pending_len = rf->pending_cap = 0;
}
