/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A client of CrowdSec's local API (LAPI): polls the decision stream of a
 * bouncer and turns it into rule changes for ipblock.  No map access: the
 * caller applies each batch in one atomic operation and keeps enforcing what
 * it has when a poll fails.
 *
 *   GET {url}/v1/decisions/stream[?startup=true]   header X-Api-Key
 *   {"new":[decision…]|null, "deleted":[decision…]|null}
 *   decision: {id, origin, scenario, scope, type, value, duration}
 *
 * The first poll asks for startup=true, which lists every live decision; so
 * does the first poll after a failed one, because the LAPI moves the
 * bouncer's "last pull" mark when it answers, and an answer lost on the way
 * would otherwise lose its decisions for good.  Such a batch is marked full.
 *
 * Several decisions can land on one prefix and source (an Ip and a Range
 * with host bits, a decision replacing an expired one, two scenarios): the
 * client remembers which decision ids hold each (prefix, source) and says
 * "del" only when the last of them goes.  Every (prefix, source) appears at
 * most once in a batch, with the state it must have after it:
 *   add: held, until now + timeout (the longest of its live decisions:
 *        set the deadline to this, do not keep a later one);
 *   del: held by no decision any more (also for decisions this client never
 *        saw: repeated or old deletions; the caller treats them as no-ops).
 */
#ifndef IPBLOCK_LAPI_H
#define IPBLOCK_LAPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cidr.h"

/* Longest error sentence the lapi_* calls write, with the NUL. */
#define LAPI_ERRLEN 512

/* Longest source name, with the NUL ("crowdsec-" + a long origin is cut). */
#define LAPI_SOURCE_LEN 64

/* Longest API key accepted, with the NUL (CrowdSec's are 32 hex digits). */
#define LAPI_KEY_LEN 256

/* Skipped decisions named one by one in a batch's notes; the rest are counted. */
#define LAPI_MAX_NOTES 4

/* Longest note, with the NUL. */
#define LAPI_NOTELEN 320

/* Decision scopes (struct lapi_config.scopes). */
enum lapi_scope {
	LAPI_SCOPE_IP = 1 << 0,	   /* "Ip": one address, a /32 or /128 */
	LAPI_SCOPE_RANGE = 1 << 1, /* "Range": a CIDR, host bits cleared */
};

/* What a change does to the claim of its source on its prefix. */
enum lapi_op {
	LAPI_ADD = 1, /* hold the prefix (deny) for timeout seconds from now */
	LAPI_DEL = 2, /* release it; absent claims are the caller's no-op */
};

struct lapi_config {
	const char *url;      /* "http://127.0.0.1:8080" (a trailing '/' is fine) */
	const char *key_file; /* the bouncer's API key (cscli bouncers add NAME -o raw) */
	const char *ca_file;  /* https: CA bundle to check the LAPI with; NULL: system's */
	unsigned int connect_timeout_ms; /* 0: 3000 */
	unsigned int timeout_ms;	 /* whole request, body included; 0: 30000 */
	size_t max_body;		 /* answers larger are refused; 0: 256 MiB */
	/* Decision types to keep, e.g. { "ban", NULL }; NULL: ban only.  Types and
	 * origins match case-insensitively ("CAPI" and "capi"). */
	const char *const *types;
	unsigned int scopes;	    /* LAPI_SCOPE_* bits; 0: Ip and Range */
	const char *const *origins; /* keep only these origins (NULL-terminated); NULL: all */
	const char *source;	    /* source name of the rules; NULL: "crowdsec" */
	/*
	 * Name the source after the decision's origin: "crowdsec-cscli",
	 * "crowdsec-capi".  The origin is lowercased, characters other than
	 * [a-z0-9._-] become '_', and the name is cut to LAPI_SOURCE_LEN - 1.
	 */
	bool source_per_origin;
};

/* One rule change: a source takes or releases its claim on a prefix. */
struct lapi_change {
	struct cidr prefix;
	uint8_t op;		      /* enum lapi_op */
	uint32_t timeout;	      /* LAPI_ADD: seconds from now, >= 1 */
	int64_t decision_id;	      /* add: the longest-lasting decision; del: the last one */
	char source[LAPI_SOURCE_LEN]; /* e.g. "crowdsec", "crowdsec-cscli" */
};

/* What one answer held, beside the changes. */
struct lapi_stats {
	size_t new_seen;     /* decisions in "new" */
	size_t deleted_seen; /* decisions in "deleted" */
	size_t ignored;	     /* type, scope or origin not configured */
	size_t bad;	     /* malformed decision or value: skipped (see notes) */
	size_t expired;	     /* "new" decisions whose duration had already run out */
	size_t merged;	     /* decisions folded into another's change (same prefix, source) */
	size_t still_held;   /* deletions withheld: another live decision holds the prefix */
};

/* The changes of one poll, in (source, cidr_compare) order. */
struct lapi_batch {
	struct lapi_change *changes;
	size_t n;
	/*
	 * From a startup=true answer: the adds are every live decision, so the
	 * caller may release every claim of its crowdsec sources that this
	 * batch does not add (what a restart or a lost answer missed).
	 */
	bool full;
	struct lapi_stats stats;
	char notes[LAPI_MAX_NOTES][LAPI_NOTELEN]; /* the first skipped decisions and why */
	size_t n_notes;
	size_t cap; /* private */
};

/* One client per LAPI and key; its calls are for one thread at a time. */
struct lapi_client;

/*
 * Check the configuration, read the key file and set up the HTTP handle
 * (nothing is sent yet).  0, or -errno with one sentence in err: -EINVAL (bad
 * URL or setting), the key file's errors as in lapi_read_key(), -ENOMEM.
 */
int lapi_open(const struct lapi_config *cfg, struct lapi_client **out, char *err, size_t errlen);

/* Free the client; NULL is fine. */
void lapi_close(struct lapi_client *c);

/*
 * Fetch and decode one answer of the decision stream into *batch (reset
 * first; free it with lapi_batch_free()).  On an error the batch is empty,
 * err holds one sentence, and the next poll asks for startup=true:
 *   -ECONNREFUSED  nothing listens at the URL (LAPI stopped)
 *   -ETIMEDOUT     no complete answer within the timeouts
 *   -EHOSTUNREACH  the host name does not resolve or cannot be reached
 *   -EACCES        403: the LAPI refused the key (wrong or deleted bouncer)
 *   -EPROTO        another HTTP status, or a transfer error
 *   -EFBIG         the answer is larger than max_body
 *   -EBADMSG       the answer is not JSON of the stream's shape, or truncated
 *   -ENOMEM
 */
int lapi_poll(struct lapi_client *c, struct lapi_batch *batch, char *err, size_t errlen);

/* Make the next poll ask for startup=true (e.g. after the caller lost state). */
void lapi_resync(struct lapi_client *c);

/*
 * Decode one answer body as lapi_poll() does, at now_ms on any monotonic
 * millisecond clock (decisions are remembered until now_ms + duration).  full:
 * the body answers a startup=true poll, so what the client remembered is
 * replaced.  Errors as in lapi_poll() (-EBADMSG, -ENOMEM).
 */
int lapi_decode(struct lapi_client *c, const char *body, size_t len, bool full, uint64_t now_ms,
		struct lapi_batch *batch, char *err, size_t errlen);

/* Live decisions the client remembers (for logs and tests). */
size_t lapi_live_decisions(const struct lapi_client *c);

/* Free a batch's changes; it can be reused. */
void lapi_batch_free(struct lapi_batch *b);

/*
 * Read an API key: the file's content without surrounding whitespace.  0, or
 * -errno with a sentence naming the file: the open/read error, -EINVAL for
 * an empty key, one with spaces or control characters inside, or one longer
 * than keylen - 1.
 */
int lapi_read_key(const char *path, char *key, size_t keylen, char *err, size_t errlen);

/*
 * Parse a Go duration ("3h59m58.123s", "-12.5s", "500ms", "1µs", "0") into
 * nanoseconds.  0, or -EINVAL (not a duration) / -ERANGE (beyond ±292 years).
 */
int lapi_parse_duration(const char *s, int64_t *ns);

/*
 * Milliseconds to wait before the next poll after `failures` failed polls in
 * a row: the poll interval when 0, then doubling up to cap_ms, less up to a
 * quarter taken from rnd (any random number) so that the bouncers of a fleet
 * do not all come back at once.  Never below 1 ms or above max(interval, cap).
 */
unsigned int lapi_backoff_ms(unsigned int failures, unsigned int interval_ms, unsigned int cap_ms,
			     uint32_t rnd);

/* "add" or "del". */
const char *lapi_op_name(uint8_t op);

#endif /* IPBLOCK_LAPI_H */
