/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ipblock as a CrowdSec bouncer: the changes of one poll of the LAPI's
 * decision stream (lapi.h) applied to the rule sources (owners.h) in one
 * atomic switch.  A ban becomes a deny claim of the bouncer's source (or of
 * "SOURCE-ORIGIN" per origin) whose deadline is the decision's end, set
 * again by every poll that lists it; a deletion releases the claim, and one
 * of a claim never held (repeated, or from before this host) is counted,
 * not an error.  A full batch (a startup=true answer) lists every live
 * decision, so the claims of the bouncer's sources it does not list are
 * released in the same switch: what a restart or an outage missed.  The
 * caller holds the pin directory's lock, exclusive, and has begun o.
 */
#ifndef IPBLOCK_BOUNCER_H
#define IPBLOCK_BOUNCER_H

#include <stdbool.h>
#include <stddef.h>

#include "lapi.h"
#include "owners.h"

struct bouncer_result {
	struct owners_stats st; /* claims and verdicts changed */
	size_t not_held;	/* deletions of claims the source did not hold */
};

/*
 * Apply batch b to the claims of source ("crowdsec"; with per_origin,
 * "crowdsec-ORIGIN" names as the batch gives them).  0, or the error of
 * owners_apply() (-ENOSPC tries full, -E2BIG claims full: nothing changes),
 * -ENOSPC also when the sources run out.
 */
int bouncer_apply(struct owners *o, const struct lapi_batch *b, const char *source,
		  bool per_origin, struct bouncer_result *res);

#endif /* IPBLOCK_BOUNCER_H */
