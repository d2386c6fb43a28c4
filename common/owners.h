/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Who holds each rule: the named sources (static, fail2ban-sshd, crowdsec,
 * a list), their claims on prefixes with an action and a deadline, pinned
 * in owners_map and sources_map, and the one verdict per prefix the claims
 * resolve to, which goes into the tries through the change protocol
 * (maps.h).  A prefix stays while any source claims it; an allow from any
 * source beats a deny of the same prefix (between prefixes the longest
 * still decides, in the tries).  Claims past their deadline are expired by
 * every writer before its change.  Callers hold the pin directory's lock,
 * exclusive for every call that changes something.
 *
 * The default source sits in slot 0, and its lasting claims are not
 * stored: a rule in the tries that no stored claim names is the default's.
 * A million-rule list under the default source thus costs the claims map
 * nothing.  Once a prefix has a stored claim, every claim on it is stored
 * (the default's included) until the last goes, and writers store new
 * claims before they change the tries and delete old ones after, so a
 * writer killed half-way never leaves a source's rule looking like the
 * default's.
 */
#ifndef IPBLOCK_OWNERS_H
#define IPBLOCK_OWNERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cidr.h"
#include "maps.h"
#include "ruleset.h"

/* One claim: source holds prefix with action until deadline. */
struct owner_claim {
	struct cidr prefix;
	uint16_t source;   /* index into the sources */
	uint8_t action;	   /* enum ipblock_action */
	uint64_t deadline; /* CLOCK_REALTIME second it expires at; 0: never */
	bool stored;	   /* in owners_map; false: implied by a rule in the tries */
};

/* The default source's slot. */
#define OWNERS_DEFAULT 0

/* A growable array of claims; zero-initialised is empty. */
struct owner_claims {
	struct owner_claim *c;
	size_t n, cap;
};

/* Append one claim.  -ENOMEM. */
int owners_claims_push(struct owner_claims *s, const struct owner_claim *c);

/* Free the array; s is empty again. */
void owners_claims_free(struct owner_claims *s);

/* Prefix order (cidr_compare()), then source: the order claims travel in. */
int owners_claim_compare(const struct owner_claim *a, const struct owner_claim *b);

/* Sort claims in owners_claim_compare() order. */
void owners_claims_sort(struct owner_claim *c, size_t n);

/*
 * The verdict claims c[0..n) of one prefix resolve to: IPBLOCK_ACTION_ALLOW
 * if any of them allows, else IPBLOCK_ACTION_DENY; 0 for no claim.
 */
uint8_t owners_resolve(const struct owner_claim *c, size_t n);

/* The sources as this process read them (sources_map). */
struct owners_sources {
	char name[IPBLOCK_SOURCES_MAX][IPBLOCK_SOURCE_NAME_LEN]; /* "": a free slot */
	uint64_t next_deadline[IPBLOCK_SOURCES_MAX];
};

/* A process's handle: the change protocol's handle and the sources. */
struct owners {
	struct maps *m;
	struct owners_sources src;
};

/*
 * Start changing (or reading) claims through m: read the sources, bring
 * the tries back to the claims if a writer died half-way, and expire
 * every claim whose deadline is at or before now (*expired, may be NULL,
 * gets how many).  Only the expiry needs the exclusive lock: with
 * may_write false nothing is written and *expired counts what is due.
 */
int owners_begin(struct owners *o, struct maps *m, uint64_t now, bool may_write, size_t *expired);

/* The index of source name, or -ENOENT. */
int owners_source_find(const struct owners *o, const char *name);

/* The index of source name, registered if new.  -ENOSPC past IPBLOCK_SOURCES_MAX. */
int owners_source_get(struct owners *o, const char *name);

/*
 * Every claim (source < 0) or those of one source, sorted, the default's
 * implied ones included.  rules: the tries' rules (trie_read()) when the
 * caller has them, else NULL (they are read when needed).
 */
int owners_read(const struct owners *o, const struct ruleset *rules, int source,
		struct owner_claims *out);

/* The claims of one prefix, by source (the default's implied one included). */
int owners_read_prefix(const struct owners *o, const struct cidr *p, struct owner_claims *out);

/* What one claim change did. */
enum owners_outcome {
	OWNERS_ADDED,	  /* the source had no claim on the prefix */
	OWNERS_CHANGED,	  /* it had one with the other action */
	OWNERS_REFRESHED, /* the same action: only the deadline was set again */
	OWNERS_RELEASED,  /* the claim went */
};

/* What a change did to claims and to the verdicts the program reads. */
struct owners_stats {
	size_t added, changed, refreshed, released;	  /* claims */
	size_t rules_added, rules_updated, rules_deleted; /* verdicts in the tries */
	struct maps_replace_stats verdicts; /* on -ENOSPC: what the tries would need */
};

/*
 * Source claims r->prefix with r->action until deadline (0: never):
 * a new claim, a changed one, or the same one with its deadline set again.
 * *before and *after (may be NULL) get the prefix's verdict (0: no rule).
 * -ENOSPC when the family's tries or the claims are full; nothing changes.
 */
int owners_claim(struct owners *o, uint16_t source, const struct rule *r, uint64_t deadline,
		 enum owners_outcome *what, uint8_t *before, uint8_t *after);

/*
 * Source releases its claim on p; the rule goes when no source is left.
 * -ENOENT when source holds no claim on p.
 */
int owners_release(struct owners *o, uint16_t source, const struct cidr *p, uint8_t *before,
		   uint8_t *after);

/*
 * Source's claims become exactly rules[0..n) (sorted and unique), each
 * with deadlines[i] when that is given and not 0, else with deadline (0:
 * never); other sources' claims stay.  One atomic switch of the tries.
 * With merge, source's other claims stay too (an import).
 */
int owners_replace(struct owners *o, uint16_t source, const struct rule *rules,
		   const uint64_t *deadlines, size_t n, uint64_t deadline, bool merge,
		   struct owners_stats *st);

/*
 * The claims of every source marked in replaced[IPBLOCK_SOURCES_MAX] become
 * exactly those of claims[0..n) (any order, one per prefix and source) that
 * name it; other sources' claims stay.  One atomic switch of the tries.
 * With merge, the replaced sources' other claims stay too (an import).
 * -EINVAL for a repeated (prefix, source).
 */
int owners_replace_claims(struct owners *o, const struct owner_claim *claims, size_t n,
			  const bool *replaced, bool merge, struct owners_stats *st);

/* One change of a batch: source claims a prefix, or lets go of it (release). */
struct owners_change {
	struct owner_claim claim; /* prefix and source; a claim's action and deadline */
	bool release;
};

/*
 * Apply c[0..n) in order (a later change of the same prefix and source
 * wins) in one atomic switch of the tries.  *absent (may be NULL) counts
 * releases of claims their source did not hold, which change nothing.
 * -ENOSPC when the tries are full, -E2BIG when the claims are; nothing
 * changes.
 */
int owners_apply(struct owners *o, const struct owners_change *c, size_t n,
		 struct owners_stats *st, size_t *absent);

/*
 * Release every claim of source, whose slot is then free (source < 0:
 * every rule of every source, and every source); the default's slot stays.
 */
int owners_flush(struct owners *o, int source, size_t *released);

/* Expire every claim due at now, in one atomic switch.  *expired may be NULL. */
int owners_expire(struct owners *o, uint64_t now, size_t *expired);

/* Seconds since the epoch (CLOCK_REALTIME): the clock deadlines are in. */
uint64_t owners_now(void);

/*
 * The deadline of a claim that lasts secs from now: counted from the next
 * whole second, so that it never expires early (expiry compares whole
 * seconds); at most one second late.
 */
uint64_t owners_deadline_in(uint64_t secs);

#endif /* IPBLOCK_OWNERS_H */
