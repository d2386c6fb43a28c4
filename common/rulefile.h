/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Rule lists as text: FireHOL .netset/.ipset, Spamhaus DROP, country range
 * lists, hand-written files and ipblock-rule -S output.
 *
 * One rule a line: "CIDR" or "CIDR allow|deny", optionally followed by
 * "source=NAME" and by "timeout=DURATION" (from now: 90s, 30m, 1h) or
 * "expires=TIME" (UTC, 2026-12-06T04:00:00Z), as ipblock-rule -S writes.  '#' and ';' start a
 * comment, whole-line or trailing; blank lines, CRLF endings, a UTF-8 byte
 * order mark and spaces or tabs around the fields are fine.  A bare address
 * is a /32 (/128); host bits are cleared and IPv4-mapped IPv6 prefixes
 * become IPv4 ones, as cidr_parse() does.
 *
 * A list is parsed whole before anything is applied: a bad line makes the
 * whole list fail (error says FILE:LINE: why) unless skip_invalid is set,
 * and the same prefix twice (of one source) collapses into one rule, or
 * fails naming both lines when the two give different actions.  The same
 * prefix under different sources stays once per source.
 */
#ifndef IPBLOCK_RULEFILE_H
#define IPBLOCK_RULEFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ruleset.h"

/* Longest reason a line is refused for, with the NUL. */
#define RULEFILE_WHYLEN 320

/* Longest message rulefile writes (file name, line, reason), with the NUL. */
#define RULEFILE_MSGLEN 1024

/* Skipped lines named one by one in the notes; the rest are only counted. */
#define RULEFILE_SHOW_SKIPPED 3

/* Note lines at most: skipped summary + shown lines + normalisation + duplicates. */
#define RULEFILE_MAX_NOTES (RULEFILE_SHOW_SKIPPED + 4)

/* Longest timeout= a line may give: ten years. */
#define RULEFILE_TIMEOUT_MAX (10ull * 366 * 24 * 3600)

/* Longest line accepted, comments included. */
#define RULEFILE_MAX_LINE (64 * 1024)

struct rulefile_opts {
	const char *name;  /* shown in messages: the path, or "stdin" */
	uint8_t action;	   /* every line's action (-p), overriding the line's; 0: the line's */
	bool skip_invalid; /* skip bad lines (and counted, named in the notes) */
	uint64_t now;	   /* what timeout= counts from, in seconds since the epoch; 0: the clock */
};

/* A skipped line, kept for the notes. */
struct rulefile_skip {
	uint32_t line;
	char why[RULEFILE_WHYLEN];
};

struct rulefile {
	struct rulefile_opts opts;
	struct rule *rules; /* sorted in cidr_compare() order, one per prefix (and source) */
	uint64_t *deadline; /* parallel to rules: the line's deadline, 0: none; NULL: no line gave one */
	/* Parallel to rules: source_names index + 1, 0: none; NULL: no line named one. */
	uint16_t *source;
	char source_names[IPBLOCK_SOURCES_MAX][IPBLOCK_SOURCE_NAME_LEN];
	size_t n_source_names;
	size_t n;
	size_t v4, v6;		     /* rules per family */
	size_t lines;		     /* lines read */
	size_t skipped;		     /* lines skipped (skip_invalid) */
	size_t duplicates;	     /* lines that repeated an earlier line's prefix and action */
	size_t host_bits;	     /* prefixes whose host bits were cleared */
	size_t v4_mapped;	     /* IPv4-mapped IPv6 prefixes stored as IPv4 */
	char error[RULEFILE_MSGLEN]; /* why parsing failed: "FILE:LINE: reason" */
	char notes[RULEFILE_MAX_NOTES][RULEFILE_MSGLEN]; /* summaries to show the user */
	size_t n_notes;

	/* Parser state; private. */
	uint32_t *line_of; /* parallel to rules until finish */
	uint64_t *deadline_of_line; /* by line number, until finish */
	size_t deadline_cap;
	uint16_t *source_of_line; /* by line number, until finish */
	size_t source_cap;
	size_t cap;
	char *pending; /* a line cut by a chunk boundary */
	size_t pending_len, pending_cap;
	struct rulefile_skip shown[RULEFILE_SHOW_SKIPPED];
	size_t n_shown;
	char first_host_bits[RULEFILE_WHYLEN], first_v4_mapped[RULEFILE_WHYLEN];
	char first_duplicate[RULEFILE_WHYLEN];
	bool failed;
};

/*
 * Parse one line (without its '\n'; need not be NUL-terminated).  Returns 1
 * with *out filled for a rule line, 0 for a blank or comment line, -EINVAL
 * with one sentence in err for a bad line.  action as in rulefile_opts;
 * *notes (may be NULL) gets cidr_parse()'s notes.
 */
int rulefile_parse_line(const char *line, size_t len, uint8_t action, struct rule *out,
			unsigned int *notes, char *err, size_t errlen);

/*
 * rulefile_parse_line() with the line's source= (source gets "" when it
 * names none; IPBLOCK_SOURCE_NAME_LEN bytes) and deadline (0: none;
 * timeout= counts from now).
 */
int rulefile_parse_claim(const char *line, size_t len, uint8_t action, uint64_t now,
			 struct rule *out, uint64_t *deadline, char *source, char *err,
			 size_t errlen);

/* Start parsing a list. */
void rulefile_init(struct rulefile *rf, const struct rulefile_opts *opts);

/*
 * Feed the next bytes of the list; lines may be cut anywhere.  -EINVAL
 * (rf->error says where and why) stops the parse; -ENOMEM.
 */
int rulefile_feed(struct rulefile *rf, const char *buf, size_t len);

/*
 * End of the list: sort, collapse duplicates, check conflicting actions and
 * write the notes.  0, -EINVAL (rf->error), -ENOMEM.
 */
int rulefile_finish(struct rulefile *rf);

/* init + feed + finish over a buffer in memory. */
int rulefile_parse_text(struct rulefile *rf, const struct rulefile_opts *opts, const char *text,
			size_t len);

/*
 * Parse the list at path ("-": standard input) whole.  -errno with
 * rf->error set when the file cannot be read.
 */
int rulefile_read(struct rulefile *rf, const struct rulefile_opts *opts, const char *path);

/* Free what the parse allocated; rf may be re-initialised afterwards. */
void rulefile_free(struct rulefile *rf);

#endif /* IPBLOCK_RULEFILE_H */
