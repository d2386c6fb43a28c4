// SPDX-License-Identifier: GPL-2.0
/* Rule sources, their claims and the verdict they resolve to; see owners.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bpf/bpf.h>

#include "owners.h"
#include "trie.h"
#include "value.h"

/* Claims per batch syscall. */
#define CLAIMS_BATCH 4096

int owners_claims_push(struct owner_claims *s, const struct owner_claim *c)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		struct owner_claim *n = realloc(s->c, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		s->c = n;
		s->cap = cap;
	}
	s->c[s->n++] = *c;
	return 0;
}

void owners_claims_free(struct owner_claims *s)
{
	free(s->c);
	*s = (struct owner_claims){};
}

int owners_claim_compare(const struct owner_claim *a, const struct owner_claim *b)
{
	int d = cidr_compare(&a->prefix, &b->prefix);

	if (d)
		return d;
	return a->source < b->source ? -1 : a->source > b->source;
}

static int claim_cmp(const void *a, const void *b)
{
	return owners_claim_compare(a, b);
}

void owners_claims_sort(struct owner_claim *c, size_t n)
{
	if (n > 1)
		qsort(c, n, sizeof(*c), claim_cmp);
}

uint8_t owners_resolve(const struct owner_claim *c, size_t n)
{
	uint8_t v = 0;

	/* Allow beats deny: an admin's allow survives any jail's ban. */
	for (size_t i = 0; i < n; i++) {
		if (c[i].action == IPBLOCK_ACTION_ALLOW)
			return IPBLOCK_ACTION_ALLOW;
		v = IPBLOCK_ACTION_DENY;
	}
	return v;
}

uint64_t owners_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec;
}

uint64_t owners_deadline_in(uint64_t secs)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec + (ts.tv_nsec ? 1 : 0) + secs;
}

/* --- the pinned maps -------------------------------------------------------------- */

static void claim_key(const struct owner_claim *c, struct ipblock_owner_key *k)
{
	memset(k, 0, sizeof(*k));
	k->prefixlen = IPBLOCK_OWNER_KEY_BITS;
	k->source = c->source;
	k->family = c->prefix.family;
	k->len = c->prefix.len;
	memcpy(k->addr, c->prefix.addr, sizeof(k->addr));
}

static void claim_value(const struct owner_claim *c, struct ipblock_owner *v)
{
	memset(v, 0, sizeof(*v));
	v->action = c->action;
	v->deadline = c->deadline;
}

static void claim_from(const struct ipblock_owner_key *k, const struct ipblock_owner *v,
		       struct owner_claim *c)
{
	memset(c, 0, sizeof(*c));
	c->source = k->source;
	c->prefix.family = k->family;
	c->prefix.len = k->len;
	memcpy(c->prefix.addr, k->addr, sizeof(c->prefix.addr));
	c->action = v->action;
	c->deadline = v->deadline;
	c->stored = true;
}

static int read_sources(const struct pins *p, struct owners_sources *s)
{
	for (__u32 i = 0; i < IPBLOCK_SOURCES_MAX; i++) {
		struct ipblock_source e;

		if (bpf_map_lookup_elem(p->fd[IPBLOCK_MAP_SOURCES], &i, &e))
			return -errno;
		memcpy(s->name[i], e.name, IPBLOCK_SOURCE_NAME_LEN);
		s->name[i][IPBLOCK_SOURCE_NAME_LEN - 1] = '\0';
		s->next_deadline[i] = e.next_deadline;
	}
	/* Written with the slot's first change; it is the default's from the start. */
	snprintf(s->name[OWNERS_DEFAULT], IPBLOCK_SOURCE_NAME_LEN, "%s", IPBLOCK_SOURCE_DEFAULT);
	return 0;
}

static int write_source(const struct owners *o, uint32_t i)
{
	struct ipblock_source e = {};

	memcpy(e.name, o->src.name[i], IPBLOCK_SOURCE_NAME_LEN);
	e.next_deadline = o->src.next_deadline[i];
	return bpf_map_update_elem(o->m->pins->fd[IPBLOCK_MAP_SOURCES], &i, &e, BPF_ANY) ? -errno
											 : 0;
}

int owners_source_find(const struct owners *o, const char *name)
{
	for (int i = 0; i < IPBLOCK_SOURCES_MAX; i++)
		if (o->src.name[i][0] && !strcmp(o->src.name[i], name))
			return i;
	return -ENOENT;
}

int owners_source_get(struct owners *o, const char *name)
{
	int i = owners_source_find(o, name), ret;
	char why[VALUE_WHYLEN];

	if (i >= 0)
		return i;
	if (value_check_name(name, IPBLOCK_SOURCE_NAME_LEN - 1, why, sizeof(why)))
		return -EINVAL;
	for (i = 0; i < IPBLOCK_SOURCES_MAX && o->src.name[i][0]; i++)
		;
	if (i == IPBLOCK_SOURCES_MAX)
		return -ENOSPC;
	snprintf(o->src.name[i], IPBLOCK_SOURCE_NAME_LEN, "%s", name);
	o->src.next_deadline[i] = 0;
	ret = write_source(o, (uint32_t)i);
	if (ret) {
		o->src.name[i][0] = '\0';
		return ret;
	}
	return i;
}

/* A batch call this kernel does not offer for the map (5.10's tries): one syscall per claim. */
static bool no_batch(int err)
{
	return err == -524 /* ENOTSUPP */ || err == -EOPNOTSUPP || err == -EINVAL;
}

static int keep_claim(int source, const struct ipblock_owner_key *k, const struct ipblock_owner *v,
		      struct owner_claims *out)
{
	struct owner_claim c;

	if (source >= 0 && k->source != source)
		return 0;
	claim_from(k, v, &c);
	return owners_claims_push(out, &c);
}

/* owners_read() without batches: walk the keys. */
static int read_each(int fd, int source, struct owner_claims *out)
{
	struct ipblock_owner_key k, next;
	struct ipblock_owner v;
	bool first = true;
	int ret = 0;

	out->n = 0;
	while (!ret && !bpf_map_get_next_key(fd, first ? NULL : &k, &next)) {
		first = false;
		k = next;
		if (bpf_map_lookup_elem(fd, &k, &v))
			ret = errno == ENOENT ? 0 : -errno;
		else
			ret = keep_claim(source, &k, &v, out);
	}
	if (!ret && errno != ENOENT && !first)
		ret = -errno;
	return ret;
}

/* The claims in owners_map (source < 0: all), sorted. */
static int read_stored(const struct owners *o, int source, struct owner_claims *out)
{
	int fd = o->m->pins->fd[IPBLOCK_MAP_OWNERS];
	struct ipblock_owner_key *keys = malloc(CLAIMS_BATCH * sizeof(*keys));
	struct ipblock_owner *vals = malloc(CLAIMS_BATCH * sizeof(*vals));
	struct ipblock_owner_key in_b, out_b; /* the batch token: a bucket, no wider than a key */
	bool first = true;
	int ret = 0;

	out->n = 0;
	if (!keys || !vals) {
		ret = -ENOMEM;
		goto out;
	}
	for (;;) {
		__u32 count = CLAIMS_BATCH;
		int err = bpf_map_lookup_batch(fd, first ? NULL : &in_b, &out_b, keys, vals, &count,
					       NULL)
				  ? -errno
				  : 0;

		if (first && (no_batch(err) || o->m->pins->per_rule)) {
			ret = read_each(fd, source, out);
			break;
		}
		if (err && err != -ENOENT) {
			ret = err;
			goto out;
		}
		for (__u32 i = 0; i < count && !ret; i++)
			ret = keep_claim(source, &keys[i], &vals[i], out);
		if (ret)
			goto out;
		if (err == -ENOENT)
			break;
		in_b = out_b;
		first = false;
	}
	if (!ret)
		owners_claims_sort(out->c, out->n);
out:
	free(keys);
	free(vals);
	return ret;
}

/* How long the run of claims of one prefix starting at c[0] is. */
static size_t run_len(const struct owner_claim *c, size_t n)
{
	size_t k = 1;

	while (k < n && !cidr_compare(&c[0].prefix, &c[k].prefix))
		k++;
	return k;
}

/* The default's claim a rule nobody else names implies. */
static struct owner_claim implied(const struct rule *r)
{
	return (struct owner_claim){ .prefix = r->prefix,
				     .source = OWNERS_DEFAULT,
				     .action = r->action };
}

/*
 * Stored claims s[0..ns) (sorted) of source (< 0: all) merged with the
 * claims the rules r (sorted) imply, in order, into out.
 */
static int merge_implied(const struct ruleset *r, const struct owner_claim *s, size_t ns,
			 int source, struct owner_claims *out)
{
	bool want_implied = source < 0 || source == OWNERS_DEFAULT;
	size_t i = 0, j = 0;
	int ret = 0;

	while (!ret && (i < r->n || j < ns)) {
		int d = i < r->n && j < ns ? cidr_compare(&r->r[i].prefix, &s[j].prefix)
					   : (i < r->n ? -1 : 1);

		if (d < 0) {
			if (want_implied) {
				struct owner_claim c = implied(&r->r[i]);

				ret = owners_claims_push(out, &c);
			}
			i++;
			continue;
		}
		i += d == 0; /* stored claims speak for their prefix */
		for (size_t k = run_len(&s[j], ns - j); k && !ret; k--, j++)
			if (source < 0 || s[j].source == source)
				ret = owners_claims_push(out, &s[j]);
	}
	return ret;
}

/* owners_read() of all claims, with the tries' rules read when not given. */
static int read_all(const struct owners *o, const struct ruleset *rules, int source,
		    struct owner_claims *out)
{
	struct owner_claims st = {};
	struct ruleset own = {};
	int ret = read_stored(o, -1, &st);

	out->n = 0;
	if (!ret && !rules) {
		ret = trie_read(o->m->pins, &own);
		rules = &own;
	}
	if (!ret)
		ret = merge_implied(rules, st.c, st.n, source, out);
	ruleset_free(&own);
	owners_claims_free(&st);
	return ret;
}

int owners_read(const struct owners *o, const struct ruleset *rules, int source,
		struct owner_claims *out)
{
	/* Only the default's claims are implied: another source's are all stored. */
	if (source >= 0 && source != OWNERS_DEFAULT)
		return read_stored(o, source, out);
	return read_all(o, rules, source, out);
}

int owners_read_prefix(const struct owners *o, const struct cidr *p, struct owner_claims *out)
{
	int fd = o->m->pins->fd[IPBLOCK_MAP_OWNERS];

	out->n = 0;
	for (int i = 0; i < IPBLOCK_SOURCES_MAX; i++) {
		struct owner_claim c = { .prefix = *p, .source = (uint16_t)i };
		struct ipblock_owner_key k;
		struct ipblock_owner v;
		int ret;

		if (!o->src.name[i][0])
			continue;
		claim_key(&c, &k);
		if (bpf_map_lookup_elem(fd, &k, &v)) {
			if (errno == ENOENT)
				continue;
			return -errno;
		}
		claim_from(&k, &v, &c);
		ret = owners_claims_push(out, &c);
		if (ret)
			return ret;
	}
	if (out->n == 0) {
		struct rule r;
		int ret = trie_get_active(o->m->pins, p, &r);

		if (ret == -ENOENT)
			return 0;
		if (ret)
			return ret;
		struct owner_claim c = implied(&r);

		return owners_claims_push(out, &c);
	}
	return 0;
}

/*
 * Write (put) or delete claims c[0..n) in owners_map, in batches.  A
 * tolerant delete passes over claims that are not there (undoing puts that
 * may not all have landed).
 */
static int write_claims(const struct owners *o, const struct owner_claim *c, size_t n, bool put,
			bool tolerant)
{
	int fd = o->m->pins->fd[IPBLOCK_MAP_OWNERS];
	struct ipblock_owner_key *keys = malloc(CLAIMS_BATCH * sizeof(*keys));
	struct ipblock_owner *vals = malloc(CLAIMS_BATCH * sizeof(*vals));
	int ret = 0;

	if (!keys || !vals) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t at = 0; at < n && !ret;) {
		__u32 count = (__u32)(n - at < CLAIMS_BATCH ? n - at : CLAIMS_BATCH);

		for (__u32 i = 0; i < count; i++) {
			claim_key(&c[at + i], &keys[i]);
			claim_value(&c[at + i], &vals[i]);
		}
		__u32 want = count;

		if (o->m->pins->per_rule) {
			ret = -EOPNOTSUPP;
			count = 0;
		} else if (put) {
			ret = bpf_map_update_batch(fd, keys, vals, &count, NULL) ? -errno : 0;
		} else {
			ret = bpf_map_delete_batch(fd, keys, &count, NULL) ? -errno : 0;
		}
		if (ret && no_batch(ret) && count == 0) {
			/* One syscall a claim: what this kernel's tries offer. */
			ret = 0;
			for (count = 0; count < want && !ret; count++) {
				if (put)
					ret = bpf_map_update_elem(fd, &keys[count], &vals[count],
								  BPF_ANY)
						      ? -errno
						      : 0;
				else
					ret = bpf_map_delete_elem(fd, &keys[count]) ? -errno : 0;
				if (ret == -ENOENT && tolerant)
					ret = 0;
			}
		}
		if (ret == -ENOENT && tolerant && !put && count < want) {
			ret = 0;
			count++; /* the batch stopped at the absent one */
		}
		at += count;
	}
out:
	free(keys);
	free(vals);
	return ret;
}

/* --- the dirty mark ----------------------------------------------------------------- */

static int mark(const struct owners *o, bool on)
{
	struct ipblock_config cfg;
	int ret = pins_config_read(o->m->pins, &cfg);

	if (ret)
		return ret;
	if (on)
		cfg.flags |= IPBLOCK_CONFIG_OWNERS_DIRTY;
	else
		cfg.flags &= ~IPBLOCK_CONFIG_OWNERS_DIRTY;
	return pins_config_write(o->m->pins, &cfg);
}

/* --- a change of claims, applied to the three maps ---------------------------------- */

/* A prefix whose verdict changes: new 0 means its rule goes. */
struct verdict_change {
	struct cidr prefix;
	uint8_t old, new;
};

struct commit {
	struct owner_claims dels, puts;
	struct owner_claims olds; /* what the puts overwrite, to put back on failure */
	size_t stored;		  /* stored claims after the change */
	struct verdict_change *v;
	size_t nv;
	struct owners_stats st;
};

static void commit_free(struct commit *c)
{
	owners_claims_free(&c->dels);
	owners_claims_free(&c->puts);
	owners_claims_free(&c->olds);
	free(c->v);
}

static int note_verdict(struct commit *c, size_t *cap, const struct cidr *p, uint8_t old,
			uint8_t new)
{
	if (old == new)
		return 0;
	if (c->nv == *cap) {
		struct verdict_change *v;

		*cap = *cap ? *cap * 2 : 64;
		v = realloc(c->v, *cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		c->v = v;
	}
	c->v[c->nv++] = (struct verdict_change){ .prefix = *p, .old = old, .new = new };
	if (!old)
		c->st.rules_added++;
	else if (!new)
		c->st.rules_deleted++;
	else
		c->st.rules_updated++;
	return 0;
}

/*
 * One prefix's claims before (b[0..rb)) and after (a[0..ra)), by source:
 * the claims to write and to delete.  sb: b's are stored; sa: a's will be.
 */
static int diff_prefix(const struct owner_claim *b, size_t rb, bool sb, const struct owner_claim *a,
		       size_t ra, bool sa, struct commit *c)
{
	for (size_t x = 0, y = 0; x < rb || y < ra;) {
		int e = x < rb && y < ra ? (b[x].source > a[y].source) - (b[x].source < a[y].source)
					 : (x < rb ? -1 : 1);
		int ret = 0;

		if (e < 0) {
			if (sb)
				ret = owners_claims_push(&c->dels, &b[x]);
			c->st.released++;
			x++;
		} else if (e > 0) {
			if (sa)
				ret = owners_claims_push(&c->puts, &a[y]);
			c->st.added++;
			y++;
		} else {
			const struct owner_claim *o = &b[x++], *n = &a[y++];
			bool moved = o->action != n->action || o->deadline != n->deadline;

			if (o->action != n->action)
				c->st.changed++;
			else
				c->st.refreshed += o->deadline != n->deadline;
			if (sa && (!sb || moved)) {
				ret = owners_claims_push(&c->puts, n);
				if (!ret && sb)
					ret = owners_claims_push(&c->olds, o);
			}
		}
		if (ret)
			return ret;
	}
	c->stored += sa ? ra : 0;
	return 0;
}

/*
 * Diff sorted claims before and after (both cover every prefix that may
 * change): the claims to delete, to write, and the verdicts that change.
 * A prefix keeps its claims stored once one is, and stores them when a
 * claim other than the default's lasting one comes.
 */
static int diff(const struct owner_claim *b, size_t nb, const struct owner_claim *a, size_t na,
		struct commit *c)
{
	size_t i = 0, j = 0, cap = 0;

	while (i < nb || j < na) {
		const struct cidr *p;
		size_t rb = 0, ra = 0;
		bool sb, sa;
		int d, ret;

		if (i < nb && j < na)
			d = cidr_compare(&b[i].prefix, &a[j].prefix);
		else
			d = i < nb ? -1 : 1;
		p = d <= 0 ? &b[i].prefix : &a[j].prefix;
		if (d <= 0)
			rb = run_len(&b[i], nb - i);
		if (d >= 0)
			ra = run_len(&a[j], na - j);
		sb = rb && b[i].stored;
		sa = ra && (sb || ra > 1 || a[j].source != OWNERS_DEFAULT || a[j].deadline);
		ret = note_verdict(c, &cap, p, owners_resolve(&b[i], rb), owners_resolve(&a[j], ra));
		if (!ret)
			ret = diff_prefix(&b[i], rb, sb, &a[j], ra, sa, c);
		if (ret)
			return ret;
		i += rb;
		j += ra;
	}
	return 0;
}

/* The rule set with the verdict changes made: rules r, changes v (both sorted). */
static int apply_verdicts(const struct ruleset *r, const struct verdict_change *v, size_t nv,
			  struct ruleset *out)
{
	size_t i = 0, j = 0;
	int ret = ruleset_reserve(out, r->n + nv);

	while (!ret && (i < r->n || j < nv)) {
		int d = i < r->n && j < nv ? cidr_compare(&r->r[i].prefix, &v[j].prefix)
					   : (i < r->n ? -1 : 1);

		if (d < 0) {
			ret = ruleset_push(out, &r->r[i++]);
			continue;
		}
		if (v[j].new) {
			struct rule n = { .prefix = v[j].prefix, .action = v[j].new };

			ret = ruleset_push(out, &n);
		}
		j++;
		i += d == 0;
	}
	return ret;
}

/*
 * Bring the tries to the changed verdicts: one rule alone, or all in one
 * switch.  now: the tries' rules if the caller read them, else NULL.
 */
static int apply_tries(struct owners *o, const struct verdict_change *v, size_t nv,
		       const struct ruleset *now, struct maps_replace_stats *st)
{
	struct ruleset own = {}, want = {};
	int ret = 0;

	if (nv == 0)
		return 0;
	if (nv == 1) {
		struct rule r = { .prefix = v[0].prefix, .action = v[0].new };

		if (!v[0].new) {
			ret = maps_rule_delete(o->m, &v[0].prefix);
			return ret == -ENOENT ? 0 : ret;
		}
		return maps_rule_set(o->m, &r);
	}
	if (!now) {
		ret = trie_read(o->m->pins, &own);
		now = &own;
	}
	if (!ret)
		ret = apply_verdicts(now, v, nv, &want);
	ruleset_free(&own);
	if (!ret)
		ret = maps_replace_rules(o->m, want.r, want.n, st);
	ruleset_free(&want);
	return ret;
}

/*
 * Expiry changes at most this many verdicts one rule at a time rather than
 * in one switch: claims that fall due together are unrelated (each is
 * removed atomically, and none early), and a switch compiles a whole new
 * table, seconds at a million rules, for every second with something due.
 */
#define OWNERS_APART_MAX 64

/* The verdict changes one rule at a time, each atomic on its own. */
static int apply_apart(struct owners *o, const struct verdict_change *v, size_t nv)
{
	int ret = 0;

	for (size_t i = 0; i < nv && !ret; i++) {
		struct rule r = { .prefix = v[i].prefix, .action = v[i].new };

		if (v[i].new) {
			ret = maps_rule_set(o->m, &r);
		} else {
			ret = maps_rule_delete(o->m, &v[i].prefix);
			ret = ret == -ENOENT ? 0 : ret;
		}
	}
	return ret;
}

/*
 * Make the claims after (sorted) what before (sorted) was: new claims
 * written first, then the tries (their capacity is checked before any
 * verdict changes), then the claims that went deleted, under the dirty
 * mark; at no point does a source's rule lack its stored claim.  whole:
 * before holds every stored claim, so the claims' capacity and the
 * sources' next deadlines are known exactly.  now: the tries' rules, if
 * read, else NULL.  apart: a few verdict changes may go one at a time
 * (expiry).
 */
static int commit(struct owners *o, const struct owner_claims *before,
		  const struct owner_claims *after, bool whole, bool apart,
		  const struct ruleset *now, struct owners_stats *st)
{
	struct commit c = {};
	uint32_t cap = 0;
	bool changes;
	int ret = diff(before->c, before->n, after->c, after->n, &c);

	if (ret)
		goto out;
	if (whole && !pins_entries(o->m->pins, IPBLOCK_MAP_OWNERS, &cap) && c.stored > cap) {
		ret = -E2BIG;
		goto out;
	}
	changes = c.dels.n || c.puts.n;
	if (changes)
		ret = mark(o, true);
	if (!ret) {
		ret = write_claims(o, c.puts.c, c.puts.n, true, false);
		if (ret == -ENOSPC)
			ret = -E2BIG; /* -ENOSPC says the tries are full */
	}
	if (!ret && apart && c.nv <= OWNERS_APART_MAX) {
		ret = apply_apart(o, c.v, c.nv);
		if (ret)
			goto out; /* some verdicts may have changed: the mark stays for a repair */
	} else if (!ret) {
		ret = apply_tries(o, c.v, c.nv, now, &c.st.verdicts);
	}
	if (ret && changes) {
		/* No verdict changed: take the new claims back; the mark stays if that fails. */
		int undo = write_claims(o, c.puts.c, c.puts.n, false, true);

		if (!undo)
			undo = write_claims(o, c.olds.c, c.olds.n, true, false);
		if (!undo)
			mark(o, false);
		goto out;
	}
	if (ret)
		goto out;
	ret = write_claims(o, c.dels.c, c.dels.n, false, false);
	if (ret)
		goto out; /* the mark stays: the next writer repairs what is half done */

	/* Deadlines: a new one may only make the next one earlier; whole knows them all. */
	uint64_t next[IPBLOCK_SOURCES_MAX];

	memcpy(next, o->src.next_deadline, sizeof(next));
	if (whole) {
		memset(next, 0, sizeof(next));
		for (size_t i = 0; i < after->n; i++) {
			const struct owner_claim *a = &after->c[i];

			if (a->deadline && (!next[a->source] || a->deadline < next[a->source]))
				next[a->source] = a->deadline;
		}
	} else {
		for (size_t i = 0; i < c.puts.n; i++) {
			const struct owner_claim *a = &c.puts.c[i];

			if (a->deadline && (!next[a->source] || a->deadline < next[a->source]))
				next[a->source] = a->deadline;
		}
	}
	for (uint32_t s = 0; s < IPBLOCK_SOURCES_MAX && !ret; s++) {
		if (next[s] == o->src.next_deadline[s])
			continue;
		o->src.next_deadline[s] = next[s];
		ret = write_source(o, s);
	}
	if (!ret && changes)
		ret = mark(o, false);
out:
	if (st)
		*st = c.st;
	commit_free(&c);
	return ret;
}

/* --- the operations ----------------------------------------------------------------- */

/* The tries made exactly what every claim resolves to (after a writer died half-way). */
static int repair(struct owners *o)
{
	struct owner_claims all = {};
	struct ruleset want = {};
	int ret = owners_read(o, NULL, -1, &all);

	for (size_t i = 0; !ret && i < all.n;) {
		size_t k = run_len(&all.c[i], all.n - i);
		struct rule r = { .prefix = all.c[i].prefix,
				  .action = owners_resolve(&all.c[i], k) };

		ret = ruleset_push(&want, &r);
		i += k;
	}
	if (!ret)
		ret = maps_replace_rules(o->m, want.r, want.n, NULL);
	if (!ret)
		ret = mark(o, false);
	ruleset_free(&want);
	owners_claims_free(&all);
	return ret;
}

int owners_begin(struct owners *o, struct maps *m, uint64_t now, bool may_write, size_t *expired)
{
	struct ipblock_config cfg;
	bool due = false;
	int ret;

	o->m = m;
	if (expired)
		*expired = 0;
	ret = read_sources(m->pins, &o->src);
	if (!ret)
		ret = pins_config_read(m->pins, &cfg);
	if (ret)
		return ret;
	if (may_write && (cfg.flags & IPBLOCK_CONFIG_OWNERS_DIRTY)) {
		ret = repair(o);
		if (ret)
			return ret;
	}
	for (int i = 0; i < IPBLOCK_SOURCES_MAX; i++)
		due |= o->src.next_deadline[i] && o->src.next_deadline[i] <= now;
	if (!due)
		return 0;
	if (may_write)
		return owners_expire(o, now, expired);

	struct owner_claims all = {};

	ret = read_stored(o, -1, &all);
	for (size_t i = 0; !ret && expired && i < all.n; i++)
		*expired += all.c[i].deadline && all.c[i].deadline <= now;
	owners_claims_free(&all);
	return ret;
}

int owners_claim(struct owners *o, uint16_t source, const struct rule *r, uint64_t deadline,
		 enum owners_outcome *what, uint8_t *before, uint8_t *after)
{
	struct owner_claims b = {}, a = {};
	struct owner_claim n = {
		.prefix = r->prefix, .source = source, .action = r->action, .deadline = deadline
	};
	enum owners_outcome w = OWNERS_ADDED;
	int ret = owners_read_prefix(o, &r->prefix, &b);

	for (size_t i = 0; !ret && i < b.n; i++) {
		if (b.c[i].source != source) {
			ret = owners_claims_push(&a, &b.c[i]);
			continue;
		}
		w = b.c[i].action == r->action ? OWNERS_REFRESHED : OWNERS_CHANGED;
	}
	if (!ret)
		ret = owners_claims_push(&a, &n);
	owners_claims_sort(a.c, a.n);
	if (before)
		*before = owners_resolve(b.c, b.n);
	if (after)
		*after = owners_resolve(a.c, a.n);
	if (!ret)
		ret = commit(o, &b, &a, false, false, NULL, NULL);
	if (what)
		*what = w;
	owners_claims_free(&b);
	owners_claims_free(&a);
	return ret;
}

int owners_release(struct owners *o, uint16_t source, const struct cidr *p, uint8_t *before,
		   uint8_t *after)
{
	struct owner_claims b = {}, a = {};
	bool held = false;
	int ret = owners_read_prefix(o, p, &b);

	for (size_t i = 0; !ret && i < b.n; i++) {
		if (b.c[i].source == source)
			held = true;
		else
			ret = owners_claims_push(&a, &b.c[i]);
	}
	if (ret)
		goto out;
	if (before)
		*before = owners_resolve(b.c, b.n);
	if (after)
		*after = owners_resolve(a.c, a.n);
	ret = held ? commit(o, &b, &a, false, false, NULL, NULL) : -ENOENT;
out:
	owners_claims_free(&b);
	owners_claims_free(&a);
	return ret;
}

int owners_replace_claims(struct owners *o, const struct owner_claim *claims, size_t n,
			  const bool *replaced, bool merge, struct owners_stats *st)
{
	struct owner_claims b = {}, a = {}, mine = {};
	struct ruleset now = {};
	int ret = trie_read(o->m->pins, &now);

	if (!ret)
		ret = owners_read(o, &now, -1, &b);

	/* The new claims sorted, so that a merge finds them by (prefix, source). */
	for (size_t i = 0; !ret && i < n; i++)
		ret = owners_claims_push(&mine, &claims[i]);
	if (!ret)
		owners_claims_sort(mine.c, mine.n);
	for (size_t i = 0; !ret && i < mine.n; i++)
		if (i && !owners_claim_compare(&mine.c[i - 1], &mine.c[i]))
			ret = -EINVAL; /* one claim per (prefix, source) */
	for (size_t i = 0; !ret && i < b.n; i++) {
		const struct owner_claim *c = &b.c[i];
		bool keep = !replaced[c->source];

		if (!keep && merge)
			keep = !bsearch(c, mine.c, mine.n, sizeof(*c), claim_cmp);
		if (keep)
			ret = owners_claims_push(&a, c);
	}
	for (size_t i = 0; !ret && i < mine.n; i++)
		ret = owners_claims_push(&a, &mine.c[i]);
	if (!ret) {
		owners_claims_sort(a.c, a.n);
		ret = commit(o, &b, &a, true, false, &now, st);
	}
	ruleset_free(&now);
	owners_claims_free(&b);
	owners_claims_free(&a);
	owners_claims_free(&mine);
	return ret;
}

/* Changes in prefix order, and in their given order within a prefix. */
static int change_cmp(const void *x, const void *y, void *base)
{
	const struct owners_change *c = base;
	size_t i = *(const size_t *)x, j = *(const size_t *)y;
	int d = cidr_compare(&c[i].claim.prefix, &c[j].claim.prefix);

	return d ? d : (i > j) - (i < j);
}

/* Change one prefix's claims cur (by source) by ch; *absent counts empty releases. */
static int change_run(struct owner_claims *cur, const struct owners_change *ch, size_t *absent)
{
	size_t k = 0;

	while (k < cur->n && cur->c[k].source != ch->claim.source)
		k++;
	if (ch->release) {
		if (k == cur->n) {
			(*absent)++;
			return 0;
		}
		memmove(&cur->c[k], &cur->c[k + 1], (cur->n - k - 1) * sizeof(*cur->c));
		cur->n--;
		return 0;
	}
	if (k < cur->n) {
		cur->c[k].action = ch->claim.action;
		cur->c[k].deadline = ch->claim.deadline;
		return 0;
	}
	return owners_claims_push(cur, &ch->claim);
}

int owners_apply(struct owners *o, const struct owners_change *c, size_t n,
		 struct owners_stats *st, size_t *absent)
{
	struct owner_claims b = {}, a = {}, run = {}, cur = {};
	size_t *idx = calloc(n + 1, sizeof(*idx)), none = 0;
	int ret = idx ? 0 : -ENOMEM;

	if (!absent)
		absent = &none;
	*absent = 0;
	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	if (!ret && n > 1) {
		/* qsort is not stable: the index breaks ties. */
		qsort_r(idx, n, sizeof(*idx), change_cmp, (void *)c);
	}
	for (size_t i = 0; !ret && i < n;) {
		const struct cidr *p = &c[idx[i]].claim.prefix;

		ret = owners_read_prefix(o, p, &run);
		cur.n = 0;
		for (size_t k = 0; !ret && k < run.n; k++) {
			ret = owners_claims_push(&b, &run.c[k]);
			if (!ret)
				ret = owners_claims_push(&cur, &run.c[k]);
		}
		for (; !ret && i < n && !cidr_compare(&c[idx[i]].claim.prefix, p); i++)
			ret = change_run(&cur, &c[idx[i]], absent);
		owners_claims_sort(cur.c, cur.n);
		for (size_t k = 0; !ret && k < cur.n; k++)
			ret = owners_claims_push(&a, &cur.c[k]);
	}
	if (!ret)
		ret = commit(o, &b, &a, false, false, NULL, st);
	owners_claims_free(&b);
	owners_claims_free(&a);
	owners_claims_free(&run);
	owners_claims_free(&cur);
	free(idx);
	return ret;
}

int owners_replace(struct owners *o, uint16_t source, const struct rule *rules,
		   const uint64_t *deadlines, size_t n, uint64_t deadline, bool merge,
		   struct owners_stats *st)
{
	struct owner_claim *c = calloc(n + 1, sizeof(*c));
	bool replaced[IPBLOCK_SOURCES_MAX] = {};
	int ret;

	if (!c)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		c[i] = (struct owner_claim){ .prefix = rules[i].prefix,
					     .source = source,
					     .action = rules[i].action,
					     .deadline = deadline };
		if (deadlines && deadlines[i])
			c[i].deadline = deadlines[i];
	}
	replaced[source] = true;
	ret = owners_replace_claims(o, c, n, replaced, merge, st);
	free(c);
	return ret;
}

int owners_flush(struct owners *o, int source, size_t *released)
{
	struct owners_stats st = {};
	struct owner_claims all = {};
	int ret;

	if (source >= 0) {
		ret = owners_replace(o, (uint16_t)source, NULL, NULL, 0, 0, false, &st);
		if (released)
			*released = st.released;
		if (ret || source == OWNERS_DEFAULT)
			return ret;
		/* A source without claims gives its slot back. */
		memset(o->src.name[source], 0, IPBLOCK_SOURCE_NAME_LEN);
		o->src.next_deadline[source] = 0;
		return write_source(o, (uint32_t)source);
	}
	/* Every rule of every source: the tries emptied in one switch, then the claims. */
	ret = read_stored(o, -1, &all);
	if (!ret)
		ret = mark(o, true);
	if (!ret)
		ret = maps_flush(o->m, released);
	if (!ret)
		ret = write_claims(o, all.c, all.n, false, false);
	for (uint32_t s = 0; !ret && s < IPBLOCK_SOURCES_MAX; s++) {
		if (!o->src.name[s][0] && !o->src.next_deadline[s])
			continue;
		if (s != OWNERS_DEFAULT)
			memset(o->src.name[s], 0, IPBLOCK_SOURCE_NAME_LEN);
		o->src.next_deadline[s] = 0;
		ret = write_source(o, s);
	}
	if (!ret)
		ret = mark(o, false);
	owners_claims_free(&all);
	return ret;
}

int owners_expire(struct owners *o, uint64_t now, size_t *expired)
{
	struct owner_claims b = {}, a = {};
	/* Only stored claims have deadlines, and a prefix's claims are stored together. */
	int ret = read_stored(o, -1, &b);

	for (size_t i = 0; !ret && i < b.n; i++)
		if (!b.c[i].deadline || b.c[i].deadline > now)
			ret = owners_claims_push(&a, &b.c[i]);
	if (!ret)
		ret = commit(o, &b, &a, true, true, NULL, NULL);
	if (expired)
		*expired = b.n - a.n;
	owners_claims_free(&b);
	owners_claims_free(&a);
	return ret;
}
