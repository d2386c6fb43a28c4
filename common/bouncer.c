// SPDX-License-Identifier: GPL-2.0
/* One poll's CrowdSec decisions applied to the rule sources; see bouncer.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bouncer.h"

/* Whether name is one of the bouncer's sources. */
static bool ours(const char *name, const char *source, bool per_origin)
{
	size_t n = strlen(source);

	if (!strcmp(name, source))
		return true;
	return per_origin && !strncmp(name, source, n) && name[n] == '-';
}

static int push(struct owners_change **c, size_t *n, size_t *cap, const struct owners_change *x)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 64;
		struct owners_change *m = realloc(*c, nc * sizeof(*m));

		if (!m)
			return -ENOMEM;
		*c = m;
		*cap = nc;
	}
	(*c)[(*n)++] = *x;
	return 0;
}

/*
 * A full batch: a release of every claim of our sources, ahead of the
 * batch's adds; owners_apply() applies in order, so what the batch lists
 * again is only refreshed, and what it no longer lists goes.
 */
static int resync(struct owners *o, const char *source, bool per_origin,
		  struct owners_change **c, size_t *n, size_t *cap)
{
	struct owner_claims cl = {};
	int ret = 0;

	for (int s = 0; s < IPBLOCK_SOURCES_MAX && !ret; s++) {
		if (s == OWNERS_DEFAULT || !o->src.name[s][0] ||
		    !ours(o->src.name[s], source, per_origin))
			continue;
		ret = owners_read(o, NULL, s, &cl);
		for (size_t i = 0; !ret && i < cl.n; i++) {
			struct owners_change x = { .claim = cl.c[i], .release = true };

			ret = push(c, n, cap, &x);
		}
	}
	owners_claims_free(&cl);
	return ret;
}

int bouncer_apply(struct owners *o, const struct lapi_batch *b, const char *source,
		  bool per_origin, struct bouncer_result *res)
{
	struct owners_change *c = NULL;
	size_t n = 0, cap = 0, more = 0;
	int ret = 0;

	memset(res, 0, sizeof(*res));
	if (b->full)
		ret = resync(o, source, per_origin, &c, &n, &cap);
	for (size_t i = 0; !ret && i < b->n; i++) {
		const struct lapi_change *l = &b->changes[i];
		bool add = l->op == LAPI_ADD;
		int s = add ? owners_source_get(o, l->source) : owners_source_find(o, l->source);
		struct owners_change x = {
			.claim = { .prefix = l->prefix,
				   .action = IPBLOCK_ACTION_DENY,
				   .deadline = add ? owners_deadline_in(l->timeout) : 0 },
			.release = !add,
		};

		if (!add && s < 0) {
			res->not_held++;
			continue;
		}
		if (s < 0) {
			ret = s;
			break;
		}
		x.claim.source = (uint16_t)s;
		ret = push(&c, &n, &cap, &x);
	}
	if (!ret)
		ret = owners_apply(o, c, n, &res->st, &more);
	res->not_held += more;
	free(c);
	return ret;
}
