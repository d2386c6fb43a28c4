/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ipblock's state as JSON, for scripts (-l --json, ipblock-loader -s
 * --json): the objects built through json-c, never by hand.  A listing is
 * JSON Lines, one document per rule and a summary last, so that a million
 * rules stream out without a million objects held at once.
 */
#ifndef IPBLOCK_JSONOUT_H
#define IPBLOCK_JSONOUT_H

#include <stdint.h>
#include <stdio.h>

#include "hits.h"
#include "owners.h"
#include "pins.h"

struct json_object;

/*
 * {"type":"rule","prefix":"198.51.100.0/24","family":4,"action":"deny",
 *  "claims":[{"source":"crowdsec","action":"deny","expires":"2026-...Z",
 *  "seconds_left":59}],"hits":{"packets":N,"bytes":N,"last":"2026-...Z"}}
 * -- claims c[0..n) of the rule's prefix; h its counters ("last" left out
 * for a rule never hit; no "hits" when h is NULL).
 */
struct json_object *jsonout_rule(const struct rule *r, const struct owner_claim *c, size_t n,
				 const struct owners_sources *src, uint64_t now,
				 const struct hits_total *h);

/*
 * {"dropped":{"packets":N,"bytes":N},"passed_allow":...,"passed_no_rule":...,
 *  "passed_other":...}, or NULL when the counters cannot be read.
 */
struct json_object *jsonout_counters(const struct pins *p);

/* The same object for counters c[IPBLOCK_STAT_MAX] (one interface's); NULL on -ENOMEM. */
struct json_object *jsonout_counter_set(const struct ipblock_counter *c);

/*
 * The listing's last line: {"type":"summary","rules":N,"ipv4":N,"ipv6":N,
 * "rules_hit":N,"counters":{...},"sources":[{"name":"static","claims":N}]};
 * claims[s] counts source s's claims (sources without claims are left
 * out), rules_hit the rules listed whose counters are not zero.
 */
struct json_object *jsonout_summary(size_t v4, size_t v6, const struct pins *p,
				    const struct owners_sources *src, const size_t *claims,
				    size_t rules_hit);

/* Write o on one line and free it.  -EIO on a write error, -ENOMEM for a NULL o. */
int jsonout_print(FILE *f, struct json_object *o);

#endif /* IPBLOCK_JSONOUT_H */
