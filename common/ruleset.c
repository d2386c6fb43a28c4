// SPDX-License-Identifier: GPL-2.0
/* Rule arrays: sort, check, search, diff, merge; see ruleset.h. */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ruleset.h"

int ruleset_reserve(struct ruleset *s, size_t more)
{
	struct rule *r;
	size_t cap;

	if (s->n + more <= s->cap)
		return 0;
	cap = s->cap ? s->cap : 4096;
	while (cap < s->n + more)
		cap += cap / 2;
	r = realloc(s->r, cap * sizeof(*r));
	if (!r)
		return -ENOMEM;
	s->r = r;
	s->cap = cap;
	return 0;
}

int ruleset_push(struct ruleset *s, const struct rule *r)
{
	int ret = ruleset_reserve(s, 1);

	if (!ret)
		s->r[s->n++] = *r;
	return ret;
}

int ruleset_copy(struct ruleset *s, const struct rule *r, size_t n)
{
	int ret;

	s->n = 0;
	ret = ruleset_reserve(s, n + 1);
	if (ret)
		return ret;
	if (n)
		memcpy(s->r, r, n * sizeof(*r));
	s->n = n;
	return 0;
}

void ruleset_free(struct ruleset *s)
{
	free(s->r);
	*s = (struct ruleset){};
}

/* --- sorting ----------------------------------------------------------------- */

/* IPv4 sort key: address << 8 | length orders as cidr_compare() does. */
struct v4_item {
	uint64_t key;
	uint32_t idx;
};

struct v6_item {
	uint64_t hi, lo;
	uint32_t len, idx;
};

/*
 * LSD radix sort, one byte per pass: stable, so equal prefixes keep their
 * input order, and a million keys take a few tens of milliseconds against
 * a few hundred for a comparison sort.  Passes whose byte is the same in
 * every key (the length byte of a /24 list, say) are skipped.
 */
static struct v4_item *radix_v4(struct v4_item *a, struct v4_item *tmp, size_t n)
{
	for (unsigned int shift = 0; shift < 40; shift += 8) {
		size_t count[256] = { 0 }, sum = 0;
		bool trivial = false;

		for (size_t i = 0; i < n; i++)
			count[(a[i].key >> shift) & 0xff]++;
		for (int d = 0; d < 256; d++) {
			size_t c = count[d];

			trivial |= c == n;
			count[d] = sum;
			sum += c;
		}
		if (trivial)
			continue;
		for (size_t i = 0; i < n; i++)
			tmp[count[(a[i].key >> shift) & 0xff]++] = a[i];
		struct v4_item *t = a;

		a = tmp;
		tmp = t;
	}
	return a;
}

static int v6_cmp(const void *pa, const void *pb)
{
	const struct v6_item *a = pa, *b = pb;
	int c = ruleset_key_compare(a->hi, a->lo, a->len, b->hi, b->lo, b->len);

	/* The input position last: qsort() is not stable by itself. */
	return c ? c : a->idx < b->idx ? -1 : a->idx > b->idx;
}

static uint64_t be64_at(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return be64toh(v);
}

static const struct rule *rule_at(const struct rule *first, size_t stride, size_t i)
{
	return (const struct rule *)((const char *)first + i * stride);
}

int ruleset_order(const struct rule *first, size_t stride, size_t n, uint32_t **perm)
{
	size_t n4 = 0, n6 = 0, at = 0;
	struct v4_item *a4 = NULL, *t4 = NULL, *s4;
	struct v6_item *a6 = NULL;
	int ret = -ENOMEM;

	*perm = NULL;
	if (n > UINT32_MAX)
		return -E2BIG;
	for (size_t i = 0; i < n; i++)
		n4 += rule_at(first, stride, i)->prefix.family == AF_INET;
	n6 = n - n4;
	a4 = malloc((n4 + 1) * sizeof(*a4));
	t4 = malloc((n4 + 1) * sizeof(*t4));
	a6 = malloc((n6 + 1) * sizeof(*a6));
	if (!a4 || !t4 || !a6)
		goto done;

	n4 = n6 = 0;
	for (size_t i = 0; i < n; i++) {
		const struct cidr *p = &rule_at(first, stride, i)->prefix;

		if (p->family == AF_INET)
			a4[n4++] = (struct v4_item){
				.key = (be64_at(p->addr) >> 32) << 8 | p->len,
				.idx = (uint32_t)i,
			};
		else
			a6[n6++] = (struct v6_item){ .hi = be64_at(p->addr),
						     .lo = be64_at(p->addr + 8),
						     .len = p->len,
						     .idx = (uint32_t)i };
	}
	s4 = radix_v4(a4, t4, n4);
	qsort(a6, n6, sizeof(*a6), v6_cmp);
	/* The radix scratch is done with: give it back before the next allocation. */
	if (s4 == a4) {
		free(t4);
		t4 = NULL;
	} else {
		free(a4);
		a4 = NULL;
	}
	*perm = malloc((n + 1) * sizeof(**perm));
	if (!*perm)
		goto done;
	for (size_t i = 0; i < n4; i++)
		(*perm)[at++] = s4[i].idx;
	for (size_t i = 0; i < n6; i++)
		(*perm)[at++] = a6[i].idx;
	ret = 0;
done:
	free(a4);
	free(t4);
	free(a6);
	return ret;
}

/*
 * Move r (and tags) into the order perm gives (position i receives the
 * rule at perm[i]), one cycle at a time: no second copy of the rules, which
 * at a million rules is 28 MB less at the peak.  perm is used up.
 */
static void permute(struct rule *r, uint32_t *tags, uint32_t *perm, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct rule save;
		uint32_t save_tag = 0;
		size_t j = i;

		if (perm[i] == i)
			continue;
		save = r[i];
		if (tags)
			save_tag = tags[i];
		for (;;) {
			size_t k = perm[j];

			perm[j] = (uint32_t)j;
			if (k == i) {
				r[j] = save;
				if (tags)
					tags[j] = save_tag;
				break;
			}
			r[j] = r[k];
			if (tags)
				tags[j] = tags[k];
			j = k;
		}
	}
}

int ruleset_sort(struct rule *r, uint32_t *tags, size_t n)
{
	uint32_t *perm;
	int ret;

	if (n < 2)
		return 0;
	ret = ruleset_order(r, sizeof(*r), n, &perm);
	if (ret)
		return ret;
	permute(r, tags, perm, n);
	free(perm);
	return 0;
}

int ruleset_sorted(const struct rule *r, size_t n, struct ruleset *copy)
{
	bool ordered = true;
	int ret;

	*copy = (struct ruleset){};
	for (size_t i = 0; i < n; i++) {
		const struct cidr *p = &r[i].prefix;

		if ((p->family != AF_INET && p->family != AF_INET6) || p->len > cidr_max_len(p))
			return -EINVAL;
		if (i && cidr_compare(&r[i - 1].prefix, p) >= 0)
			ordered = false;
	}
	if (ordered)
		return 0;
	ret = ruleset_copy(copy, r, n);
	if (!ret)
		ret = ruleset_sort(copy->r, NULL, n);
	for (size_t i = 1; !ret && i < n; i++)
		if (!cidr_compare(&copy->r[i - 1].prefix, &copy->r[i].prefix))
			ret = -EINVAL;
	if (ret)
		ruleset_free(copy);
	return ret;
}

/* --- searching ------------------------------------------------------------------- */

size_t ruleset_lower_bound(const struct rule *r, size_t n, const struct cidr *p)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (cidr_compare(&r[mid].prefix, p) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void ruleset_family(const struct rule *r, size_t n, int family, const struct rule **part,
		    size_t *np)
{
	static const struct cidr first_v6 = { .family = AF_INET6 };
	size_t v6 = ruleset_lower_bound(r, n, &first_v6);

	*part = family == AF_INET || !n ? r : r + v6;
	*np = family == AF_INET ? v6 : n - v6;
}

void ruleset_count(const struct rule *r, size_t n, size_t *v4, size_t *v6)
{
	size_t n4 = 0;

	for (size_t i = 0; i < n; i++)
		n4 += r[i].prefix.family == AF_INET;
	if (v4)
		*v4 = n4;
	if (v6)
		*v6 = n - n4;
}

/* --- comparing and combining ------------------------------------------------------- */

bool ruleset_same_value(const struct rule *a, const struct rule *b)
{
	return a->action == b->action && a->flags == b->flags && a->id == b->id;
}

bool ruleset_equal(const struct rule *a, size_t na, const struct rule *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (cidr_compare(&a[i].prefix, &b[i].prefix) || !ruleset_same_value(&a[i], &b[i]))
			return false;
	return true;
}

int ruleset_diff(const struct rule *have, size_t nh, const struct rule *want, size_t nw,
		 const struct ruleset_diff *h, void *ctx)
{
	size_t i = 0, j = 0;
	int ret = 0;

	while (!ret && (i < nh || j < nw)) {
		int c = i == nh ? 1 : j == nw ? -1 : cidr_compare(&have[i].prefix, &want[j].prefix);

		if (c < 0) {
			ret = h->gone ? h->gone(&have[i], ctx) : 0;
			i++;
		} else if (c > 0) {
			ret = h->added ? h->added(&want[j], ctx) : 0;
			j++;
		} else {
			if (!ruleset_same_value(&have[i], &want[j]) && h->changed)
				ret = h->changed(&have[i], &want[j], ctx);
			i++;
			j++;
		}
	}
	return ret;
}

static int delta_gone(const struct rule *old, void *ctx)
{
	(void)old;
	((struct ruleset_delta *)ctx)->gone++;
	return 0;
}

static int delta_added(const struct rule *new, void *ctx)
{
	(void)new;
	((struct ruleset_delta *)ctx)->added++;
	return 0;
}

static int delta_changed(const struct rule *old, const struct rule *new, void *ctx)
{
	(void)old;
	(void)new;
	((struct ruleset_delta *)ctx)->changed++;
	return 0;
}

void ruleset_delta(const struct rule *have, size_t nh, const struct rule *want, size_t nw,
		   struct ruleset_delta *out)
{
	static const struct ruleset_diff hooks = { delta_gone, delta_added, delta_changed };

	*out = (struct ruleset_delta){};
	ruleset_diff(have, nh, want, nw, &hooks, out); /* the hooks never fail */
}

static int change_push(struct ruleset_changes *l, const struct rule *old, const struct rule *new)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 1024;
		struct ruleset_change *grown = realloc(l->c, cap * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		l->c = grown;
		l->cap = cap;
	}
	l->c[l->n++] = (struct ruleset_change){ old, new };
	return 0;
}

static int change_gone(const struct rule *old, void *ctx)
{
	return change_push(ctx, old, NULL);
}

static int change_added(const struct rule *new, void *ctx)
{
	return change_push(ctx, NULL, new);
}

static int change_changed(const struct rule *old, const struct rule *new, void *ctx)
{
	return change_push(ctx, old, new);
}

int ruleset_changes(const struct rule *have, size_t nh, const struct rule *want, size_t nw,
		    struct ruleset_changes *out)
{
	static const struct ruleset_diff hooks = { change_gone, change_added, change_changed };

	return ruleset_diff(have, nh, want, nw, &hooks, out);
}

void ruleset_changes_free(struct ruleset_changes *out)
{
	free(out->c);
	*out = (struct ruleset_changes){};
}

int ruleset_merge(const struct rule *x, size_t nx, const struct rule *y, size_t ny,
		  struct ruleset *out)
{
	size_t i = 0, j = 0;

	out->n = 0;
	if (ruleset_reserve(out, nx + ny + 1))
		return -ENOMEM;
	while (i < nx || j < ny) {
		int c = i == nx ? 1 : j == ny ? -1 : cidr_compare(&x[i].prefix, &y[j].prefix);

		if (c < 0) {
			out->r[out->n++] = x[i++];
		} else {
			out->r[out->n++] = y[j++];
			i += c == 0;
		}
	}
	return 0;
}

int ruleset_common(const struct rule *x, size_t nx, const struct rule *y, size_t ny,
		   struct ruleset *out)
{
	size_t i = 0, j = 0;

	out->n = 0;
	if (ruleset_reserve(out, (nx < ny ? nx : ny) + 1))
		return -ENOMEM;
	while (i < nx && j < ny) {
		int c = cidr_compare(&x[i].prefix, &y[j].prefix);

		if (!c)
			out->r[out->n++] = x[i];
		i += c <= 0;
		j += c >= 0;
	}
	return 0;
}

/* --- action names ---------------------------------------------------------------- */

const char *ruleset_action_name(uint8_t action)
{
	switch (action) {
	case IPBLOCK_ACTION_ALLOW:
		return "allow";
	case IPBLOCK_ACTION_DENY:
		return "deny";
	default:
		return "?";
	}
}

int ruleset_action_parse(const char *s, uint8_t *action)
{
	if (!strcmp(s, "allow"))
		*action = IPBLOCK_ACTION_ALLOW;
	else if (!strcmp(s, "deny"))
		*action = IPBLOCK_ACTION_DENY;
	else
		return -EINVAL;
	return 0;
}
