// SPDX-License-Identifier: GPL-2.0
/* ipblock's state as JSON through json-c; see jsonout.h. */
#include <errno.h>
#include <time.h>

#include <json-c/json.h>

#include "jsonout.h"

/* Add v under name, or mark the object failed (set *ok false) if v is NULL. */
static void put(struct json_object *o, const char *name, struct json_object *v, bool *ok)
{
	if (!v || json_object_object_add(o, name, v)) {
		json_object_put(v);
		*ok = false;
	}
}

static struct json_object *claim(const struct owner_claim *c, const struct owners_sources *src,
				 uint64_t now)
{
	struct json_object *o = json_object_new_object();
	bool ok = o != NULL;

	if (!o)
		return NULL;
	put(o, "source", json_object_new_string(src->name[c->source]), &ok);
	put(o, "action", json_object_new_string(ruleset_action_name(c->action)), &ok);
	if (c->deadline) {
		time_t t = (time_t)c->deadline;
		char when[32];

		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
		put(o, "expires", json_object_new_string(when), &ok);
		put(o, "seconds_left",
		    json_object_new_uint64(c->deadline > now ? c->deadline - now : 0), &ok);
	}
	if (!ok) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* {"packets":N,"bytes":N,"last":"2026-...Z"} */
static struct json_object *hits(const struct hits_total *h)
{
	struct json_object *o = json_object_new_object();
	bool ok = o != NULL;

	if (!o)
		return NULL;
	put(o, "packets", json_object_new_uint64(h->packets), &ok);
	put(o, "bytes", json_object_new_uint64(h->bytes), &ok);
	if (h->last_ns) {
		time_t t = hits_wallclock(h->last_ns);
		char when[32];

		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
		put(o, "last", json_object_new_string(when), &ok);
	}
	if (!ok) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

struct json_object *jsonout_rule(const struct rule *r, const struct owner_claim *c, size_t n,
				 const struct owners_sources *src, uint64_t now,
				 const struct hits_total *h)
{
	struct json_object *o = json_object_new_object(), *claims = json_object_new_array();
	char text[CIDR_STRLEN];
	bool ok = o && claims;

	for (size_t i = 0; ok && i < n; i++) {
		struct json_object *x = claim(&c[i], src, now);

		if (!x || json_object_array_add(claims, x)) {
			json_object_put(x);
			ok = false;
		}
	}
	if (!ok) {
		json_object_put(claims);
		json_object_put(o);
		return NULL;
	}
	put(o, "type", json_object_new_string("rule"), &ok);
	put(o, "prefix", json_object_new_string(cidr_format(&r->prefix, text, sizeof(text))), &ok);
	put(o, "family", json_object_new_int(r->prefix.family == AF_INET ? 4 : 6), &ok);
	put(o, "action", json_object_new_string(ruleset_action_name(r->action)), &ok);
	put(o, "claims", claims, &ok);
	if (h)
		put(o, "hits", hits(h), &ok);
	if (!ok) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

struct json_object *jsonout_counters(const struct pins *p)
{
	struct ipblock_counter c[IPBLOCK_STAT_MAX];

	return pins_stats_read(p, c) ? NULL : jsonout_counter_set(c);
}

struct json_object *jsonout_counter_set(const struct ipblock_counter *c)
{
	static const struct {
		const char *name;
		enum ipblock_stat slot;
	} slots[] = {
		{ "dropped", IPBLOCK_STAT_DROP },
		{ "passed_allow", IPBLOCK_STAT_PASS_ALLOW },
		{ "passed_no_rule", IPBLOCK_STAT_PASS_NOMATCH },
		{ "passed_other", IPBLOCK_STAT_PASS_OTHER },
	};
	struct json_object *o;
	bool ok = true;

	o = json_object_new_object();
	if (!o)
		return NULL;
	for (size_t i = 0; i < sizeof(slots) / sizeof(slots[0]); i++) {
		struct json_object *x = json_object_new_object();

		if (!x) {
			ok = false;
			break;
		}
		put(x, "packets", json_object_new_uint64(c[slots[i].slot].packets), &ok);
		put(x, "bytes", json_object_new_uint64(c[slots[i].slot].bytes), &ok);
		put(o, slots[i].name, x, &ok);
	}
	if (!ok) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

struct json_object *jsonout_summary(size_t v4, size_t v6, const struct pins *p,
				    const struct owners_sources *src, const size_t *claims,
				    size_t rules_hit)
{
	struct json_object *o = json_object_new_object(), *s = json_object_new_array();
	bool ok = o && s;

	for (int i = 0; ok && i < IPBLOCK_SOURCES_MAX; i++) {
		struct json_object *x;

		if (!src->name[i][0] || !claims[i])
			continue;
		x = json_object_new_object();
		if (!x || json_object_array_add(s, x)) {
			json_object_put(x);
			ok = false;
			break;
		}
		put(x, "name", json_object_new_string(src->name[i]), &ok);
		put(x, "claims", json_object_new_uint64(claims[i]), &ok);
	}
	if (!ok) {
		json_object_put(s);
		json_object_put(o);
		return NULL;
	}
	put(o, "type", json_object_new_string("summary"), &ok);
	put(o, "rules", json_object_new_uint64(v4 + v6), &ok);
	put(o, "ipv4", json_object_new_uint64(v4), &ok);
	put(o, "ipv6", json_object_new_uint64(v6), &ok);
	put(o, "rules_hit", json_object_new_uint64(rules_hit), &ok);
	put(o, "counters", jsonout_counters(p), &ok);
	put(o, "sources", s, &ok);
	if (!ok) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

int jsonout_print(FILE *f, struct json_object *o)
{
	int ret = 0;

	if (!o)
		return -ENOMEM;
	if (fputs(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							    JSON_C_TO_STRING_NOSLASHESCAPE),
		  f) < 0 ||
	    fputc('\n', f) < 0)
		ret = -EIO;
	json_object_put(o);
	return ret;
}
