/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Rules in user space: the one struct rule, and what is done to arrays of
 * them -- sort, check, search, diff, merge -- plus the action names.  A rule
 * set travels as an array sorted in cidr_compare() order, one rule per
 * prefix (IPv4 first); nothing here touches the kernel.
 */
#ifndef IPBLOCK_RULESET_H
#define IPBLOCK_RULESET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cidr.h"
#include "ipblock.h"

/* One rule: a prefix and what the kernel stores under it (struct ipblock_rule). */
struct rule {
	struct cidr prefix; /* normalised: host bits clear */
	uint8_t action;	    /* enum ipblock_action */
	uint16_t flags;	    /* as struct ipblock_rule: reserved, 0 */
	uint32_t id;	    /* the prefix's rule id, 0: none (see ipblock.h) */
};

/* A growable array of rules; zero-initialised is empty. */
struct ruleset {
	struct rule *r;
	size_t n, cap;
};

/* Room for more rules past s->n.  -ENOMEM. */
int ruleset_reserve(struct ruleset *s, size_t more);

/* Append one rule.  -ENOMEM. */
int ruleset_push(struct ruleset *s, const struct rule *r);

/* Make s hold exactly r[0..n).  -ENOMEM. */
int ruleset_copy(struct ruleset *s, const struct rule *r, size_t n);

/* Free the array; s is empty again. */
void ruleset_free(struct ruleset *s);

/*
 * Sort r in cidr_compare() order; equal prefixes keep their input order.
 * tags (may be NULL) is a parallel array moved along with r.  -ENOMEM,
 * -E2BIG past 2^32 rules.
 */
int ruleset_sort(struct rule *r, uint32_t *tags, size_t n);

/*
 * The order ruleset_sort() would give, without moving anything: *perm
 * (malloc()ed, n entries) lists the indexes of the rules in sorted order.
 * The rules are read at first + i * stride, so any array of records that
 * start with a struct rule can be ordered.  -ENOMEM, -E2BIG.
 */
int ruleset_order(const struct rule *first, size_t stride, size_t n, uint32_t **perm);

/*
 * Check a rule array for a change: every prefix of a known family and a
 * valid length (-EINVAL), sorted and unique.  When it is only out of
 * order, *copy gets it sorted (-EINVAL if a prefix repeats); copy stays
 * empty when r can be used as it is.
 */
int ruleset_sorted(const struct rule *r, size_t n, struct ruleset *copy);

/*
 * cidr_compare()'s order within a family for keys held as host-order
 * 64-bit halves of the address and a length: for what sorts addresses
 * without a struct rule around them (sort keys, the flat tables' slots).
 */
static inline int ruleset_key_compare(uint64_t ahi, uint64_t alo, unsigned int alen, uint64_t bhi,
				      uint64_t blo, unsigned int blen)
{
	if (ahi != bhi)
		return ahi < bhi ? -1 : 1;
	if (alo != blo)
		return alo < blo ? -1 : 1;
	return alen < blen ? -1 : alen > blen;
}

/* First index of sorted r[0..n) whose prefix is not below p. */
size_t ruleset_lower_bound(const struct rule *r, size_t n, const struct cidr *p);

/* The part of sorted r[0..n) in family (IPv4 sorts first). */
void ruleset_family(const struct rule *r, size_t n, int family, const struct rule **part,
		    size_t *np);

/* Rules per family; v4 or v6 may be NULL. */
void ruleset_count(const struct rule *r, size_t n, size_t *v4, size_t *v6);

/* Whether two rules store the same value (action, flags, id). */
bool ruleset_same_value(const struct rule *a, const struct rule *b);

/* Whether two sorted arrays hold the same rules with the same values. */
bool ruleset_equal(const struct rule *a, size_t na, const struct rule *b, size_t nb);

/*
 * What ruleset_diff() calls for each prefix only in have (gone), only in
 * want (added), or in both with another value (changed).  NULL hooks are
 * skipped; a non-zero return stops the walk and is returned.
 */
struct ruleset_diff {
	int (*gone)(const struct rule *old, void *ctx);
	int (*added)(const struct rule *new, void *ctx);
	int (*changed)(const struct rule *old, const struct rule *new, void *ctx);
};

/* Walk two sorted rule arrays side by side, in cidr_compare() order. */
int ruleset_diff(const struct rule *have, size_t nh, const struct rule *want, size_t nw,
		 const struct ruleset_diff *hooks, void *ctx);

/* How many prefixes a diff names: only in have, only in want, in both with another value. */
struct ruleset_delta {
	size_t gone, added, changed;
};

/* Count the diff of sorted have and want into *out. */
void ruleset_delta(const struct rule *have, size_t nh, const struct rule *want, size_t nw,
		   struct ruleset_delta *out);

/* One entry of a diff: old only, a prefix that goes; new only, one that comes; both, a change. */
struct ruleset_change {
	const struct rule *old, *new;
};

/* A growable array of changes; zero-initialised is empty. */
struct ruleset_changes {
	struct ruleset_change *c;
	size_t n, cap;
};

/*
 * The diff of sorted have and want as an array (in cidr_compare() order),
 * appended to out: its entries point into have and want, which must
 * outlive it.  -ENOMEM.
 */
int ruleset_changes(const struct rule *have, size_t nh, const struct rule *want, size_t nw,
		    struct ruleset_changes *out);

/* Free the array; out is empty again. */
void ruleset_changes_free(struct ruleset_changes *out);

/*
 * out = the union of sorted x and y; on a shared prefix y's rule wins.
 * out is emptied first.  -ENOMEM.
 */
int ruleset_merge(const struct rule *x, size_t nx, const struct rule *y, size_t ny,
		  struct ruleset *out);

/*
 * out = the rules of sorted x whose prefix sorted y holds too (x's rules,
 * values and all).  out is emptied first.  -ENOMEM.
 */
int ruleset_common(const struct rule *x, size_t nx, const struct rule *y, size_t ny,
		   struct ruleset *out);

/* "allow" / "deny" / "?" */
const char *ruleset_action_name(uint8_t action);

/* Parse "allow" or "deny"; -EINVAL otherwise. */
int ruleset_action_parse(const char *s, uint8_t *action);

#endif /* IPBLOCK_RULESET_H */
