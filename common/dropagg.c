// SPDX-License-Identifier: GPL-2.0
/* The drop log's aggregation; see dropagg.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "dropagg.h"

/* value: rule_id in bits 0-31, frame length 32-47, L4 protocol 48-55, IPv6 bit 56. */
#define V_LEN_SHIFT   32
#define V_PROTO_SHIFT 48
#define V_V6	      (1ULL << 56)

void dropagg_pack(const struct droplog_event *ev, struct lfq_item *out)
{
	uint64_t len = ev->frame_len > 0xffff ? 0xffff : ev->frame_len;

	/* IPv4 fills the first four bytes and leaves the rest zero. */
	memcpy(&out->key, ev->source.addr, sizeof(out->key));
	out->value = (uint64_t)ev->rule_id | len << V_LEN_SHIFT |
		     (uint64_t)ev->l4_proto << V_PROTO_SHIFT |
		     (ev->source.family == AF_INET6 ? V_V6 : 0);
}

void dropagg_unpack(const struct lfq_item *it, struct dropagg_event *out)
{
	bool v6 = it->value & V_V6;

	memset(out, 0, sizeof(*out));
	out->source.family = v6 ? AF_INET6 : AF_INET;
	out->source.len = v6 ? 64 : 32;
	memcpy(out->source.addr, &it->key, sizeof(it->key));
	if (!v6)
		memset(out->source.addr + 4, 0, 4);
	out->rule_id = (uint32_t)it->value;
	out->frame_len = (uint32_t)(it->value >> V_LEN_SHIFT) & 0xffff;
	out->l4_proto = (uint8_t)(it->value >> V_PROTO_SHIFT);
}

enum kind { K_SOURCE = 1, K_NET };

struct slot {
	uint8_t kind; /* 0: free */
	struct cidr key;
	uint32_t rule_id;
	uint64_t events, bytes;
};

struct dropagg {
	struct slot *s;
	size_t mask, used, max_keys;
	uint64_t events, bytes, lost, overflowed;
};

struct dropagg *dropagg_new(size_t max_keys)
{
	struct dropagg *a = calloc(1, sizeof(*a));
	size_t n = 16;

	if (!a)
		return NULL;
	while (n < 2 * max_keys)
		n <<= 1;
	a->s = calloc(n, sizeof(*a->s));
	if (!a->s) {
		free(a);
		return NULL;
	}
	a->mask = n - 1;
	a->max_keys = max_keys;
	return a;
}

void dropagg_free(struct dropagg *a)
{
	if (!a)
		return;
	free(a->s);
	free(a);
}

static uint64_t slot_hash(uint8_t kind, const struct cidr *k, uint32_t rule_id)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	const uint8_t *b = k->addr;

	h = (h ^ kind) * 1099511628211ULL;
	h = (h ^ k->family) * 1099511628211ULL;
	h = (h ^ k->len) * 1099511628211ULL;
	for (size_t i = 0; i < sizeof(k->addr); i++)
		h = (h ^ b[i]) * 1099511628211ULL;
	for (int i = 0; i < 4; i++)
		h = (h ^ ((rule_id >> (8 * i)) & 0xff)) * 1099511628211ULL;
	return h;
}

/* The slot of a key, made when missing and there is room; NULL when full. */
static struct slot *slot_get(struct dropagg *a, uint8_t kind, const struct cidr *k, uint32_t id)
{
	size_t i = slot_hash(kind, k, id) & a->mask;

	for (;; i = (i + 1) & a->mask) {
		struct slot *s = &a->s[i];

		if (!s->kind) {
			if (a->used >= a->max_keys)
				return NULL;
			a->used++;
			s->kind = kind;
			s->key = *k;
			s->rule_id = id;
			return s;
		}
		if (s->kind == kind && s->rule_id == id && !cidr_compare(&s->key, k))
			return s;
	}
}

static void net_of(const struct cidr *src, struct cidr *net)
{
	*net = *src;
	if (src->family == AF_INET) {
		net->len = 24;
		net->addr[3] = 0;
	} else {
		net->len = 48;
		memset(net->addr + 6, 0, sizeof(net->addr) - 6);
	}
}

void dropagg_add(struct dropagg *a, const struct dropagg_event *e)
{
	struct cidr net;
	struct slot *s;
	bool over = false;

	a->events++;
	a->bytes += e->frame_len;
	s = slot_get(a, K_SOURCE, &e->source, e->rule_id);
	if (s) {
		s->events++;
		s->bytes += e->frame_len;
	} else {
		over = true;
	}
	net_of(&e->source, &net);
	s = slot_get(a, K_NET, &net, 0);
	if (s) {
		s->events++;
		s->bytes += e->frame_len;
	} else {
		over = true;
	}
	if (over)
		a->overflowed++;
}

void dropagg_add_lost(struct dropagg *a, uint64_t n)
{
	a->lost += n;
}

bool dropagg_empty(const struct dropagg *a)
{
	return !a->events && !a->lost;
}

/* Most events first; ties by key, so reports are stable. */
static int top_cmp(const void *x, const void *y)
{
	const struct dropagg_top *a = x, *b = y;
	int c;

	if (a->events != b->events)
		return a->events > b->events ? -1 : 1;
	c = cidr_compare(&a->key, &b->key);
	if (c)
		return c;
	return a->rule_id < b->rule_id ? -1 : a->rule_id > b->rule_id;
}

static int take_top(const struct dropagg *a, uint8_t kind, size_t top_n, struct dropagg_top **out,
		    size_t *n_out)
{
	struct dropagg_top *t;
	size_t n = 0;

	*out = NULL;
	*n_out = 0;
	t = calloc(a->used ? a->used : 1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	for (size_t i = 0; i <= a->mask; i++) {
		const struct slot *s = &a->s[i];

		if (s->kind != kind)
			continue;
		t[n++] = (struct dropagg_top){
			.key = s->key, .rule_id = s->rule_id, .events = s->events, .bytes = s->bytes
		};
	}
	qsort(t, n, sizeof(*t), top_cmp);
	*out = t;
	*n_out = n < top_n ? n : top_n;
	return 0;
}

int dropagg_report(struct dropagg *a, double seconds, size_t top_n, struct dropagg_report *out)
{
	int ret;

	memset(out, 0, sizeof(*out));
	out->seconds = seconds;
	out->events = a->events;
	out->bytes = a->bytes;
	out->lost = a->lost;
	out->overflowed = a->overflowed;
	ret = take_top(a, K_SOURCE, top_n, &out->sources, &out->n_sources);
	if (!ret)
		ret = take_top(a, K_NET, top_n, &out->nets, &out->n_nets);
	if (ret) {
		dropagg_report_free(out);
		return ret;
	}
	memset(a->s, 0, (a->mask + 1) * sizeof(*a->s));
	a->used = 0;
	a->events = a->bytes = a->lost = a->overflowed = 0;
	return 0;
}

void dropagg_report_free(struct dropagg_report *r)
{
	free(r->sources);
	free(r->nets);
	r->sources = r->nets = NULL;
	r->n_sources = r->n_nets = 0;
}

/* snprintf appending at *pos, never past len; *pos counts what would have been written. */
static void put(char *buf, size_t len, size_t *pos, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void put(char *buf, size_t len, size_t *pos, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(*pos < len ? buf + *pos : NULL, *pos < len ? len - *pos : 0, fmt, ap);
	va_end(ap);
	if (n > 0)
		*pos += (size_t)n;
}

static double per_second(uint64_t n, double seconds)
{
	return seconds > 0 ? (double)n / seconds : (double)n;
}

/* The source's text: an address for a /32, a prefix for an IPv6 /64. */
static const char *source_text(const struct cidr *c, char *buf, size_t len)
{
	char *slash;

	cidr_format(c, buf, len);
	slash = strchr(buf, '/');
	if (slash && c->family == AF_INET && c->len == 32)
		*slash = '\0';
	return buf;
}

static const char *rule_text(const struct dropagg_top *t, dropagg_rule_fn rule, void *ctx,
			     char *buf, size_t len)
{
	if (!rule || !rule(t->key.family, t->rule_id, buf, len, ctx))
		snprintf(buf, len, "id %u", t->rule_id);
	return buf;
}

size_t dropagg_format_text(const struct dropagg_report *r, dropagg_rule_fn rule, void *ctx,
			   char *buf, size_t len)
{
	char a[CIDR_STRLEN], b[CIDR_STRLEN + 16];
	size_t pos = 0;

	if (len)
		buf[0] = '\0';
	put(buf, len, &pos, "drop-log: %llu drops in %.1f s (%.0f/s, %llu bytes), %llu lost%s\n",
	    (unsigned long long)r->events, r->seconds, per_second(r->events, r->seconds),
	    (unsigned long long)r->bytes, (unsigned long long)r->lost,
	    r->overflowed ? ", some sources counted in the totals only" : "");
	for (size_t i = 0; i < r->n_sources; i++) {
		const struct dropagg_top *t = &r->sources[i];

		put(buf, len, &pos,
		    "drop-log:   source %s rule %s: %llu drops (%.0f/s), %llu bytes\n",
		    source_text(&t->key, a, sizeof(a)), rule_text(t, rule, ctx, b, sizeof(b)),
		    (unsigned long long)t->events, per_second(t->events, r->seconds),
		    (unsigned long long)t->bytes);
	}
	for (size_t i = 0; i < r->n_nets; i++) {
		const struct dropagg_top *t = &r->nets[i];

		put(buf, len, &pos, "drop-log:   net %s: %llu drops (%.0f/s)\n",
		    cidr_format(&t->key, a, sizeof(a)), (unsigned long long)t->events,
		    per_second(t->events, r->seconds));
	}
	return pos < len ? pos : (len ? len - 1 : 0);
}

size_t dropagg_format_json(const struct dropagg_report *r, time_t when, dropagg_rule_fn rule,
			   void *ctx, char *buf, size_t len)
{
	char a[CIDR_STRLEN], b[CIDR_STRLEN + 16], ts[32];
	struct tm tm;
	size_t pos = 0;

	if (len)
		buf[0] = '\0';
	gmtime_r(&when, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	/* Addresses, prefixes and numbers only: nothing needs escaping. */
	put(buf, len, &pos,
	    "{\"time\":\"%s\",\"seconds\":%.3f,\"drops\":%llu,\"bytes\":%llu,\"lost\":%llu,"
	    "\"overflowed\":%llu,\"sources\":[",
	    ts, r->seconds, (unsigned long long)r->events, (unsigned long long)r->bytes,
	    (unsigned long long)r->lost, (unsigned long long)r->overflowed);
	for (size_t i = 0; i < r->n_sources; i++) {
		const struct dropagg_top *t = &r->sources[i];

		put(buf, len, &pos,
		    "%s{\"source\":\"%s\",\"rule\":\"%s\",\"drops\":%llu,\"bytes\":%llu}",
		    i ? "," : "", source_text(&t->key, a, sizeof(a)),
		    rule_text(t, rule, ctx, b, sizeof(b)), (unsigned long long)t->events,
		    (unsigned long long)t->bytes);
	}
	put(buf, len, &pos, "],\"nets\":[");
	for (size_t i = 0; i < r->n_nets; i++) {
		const struct dropagg_top *t = &r->nets[i];

		put(buf, len, &pos, "%s{\"net\":\"%s\",\"drops\":%llu,\"bytes\":%llu}",
		    i ? "," : "", cidr_format(&t->key, a, sizeof(a)), (unsigned long long)t->events,
		    (unsigned long long)t->bytes);
	}
	put(buf, len, &pos, "]}\n");
	return pos < len ? pos : (len ? len - 1 : 0);
}
