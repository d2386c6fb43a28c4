// SPDX-License-Identifier: GPL-2.0
/*
 * The decision stream's answer -> rule changes, and the live decisions that
 * make a "del" mean "no decision holds this any more".
 *
 * Decisions are kept in an array with a free list, indexed by id; the
 * (prefix, source) pairs they hold in another, indexed by the pair, each with
 * a short chain of its decisions (usually one).  A batch touches some pairs;
 * at its end each touched pair yields one change: an add carrying the
 * longest remaining duration of its decisions, or a del when none is left.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "cidr.h"
#include "errbuf.h"
#include "lapi.h"
#include "lapi_priv.h"

#define NS_PER_MS 1000000ULL
#define MS_PER_S  1000ULL

/* JSON is fed to the tokener in pieces of this size (its length is an int). */
#define JSON_CHUNK (1U << 20)

/* Expiry instants stay below this, so that sums of them cannot wrap. */
#define EXPIRY_MAX (UINT64_MAX / 4)

/* --- Go durations ---------------------------------------------------------- */

struct dur_unit {
	const char *name;
	uint64_t ns;
};

/* Longer names first where one is a prefix of another ("ms" before "m"). */
static const struct dur_unit dur_units[] = {
	{ "ns", 1ULL },
	{ "us", 1000ULL },
	{ "\xc2\xb5s", 1000ULL }, /* U+00B5 MICRO SIGN */
	{ "\xce\xbcs", 1000ULL }, /* U+03BC GREEK SMALL LETTER MU */
	{ "ms", 1000000ULL },
	{ "s", 1000000000ULL },
	{ "m", 60ULL * 1000000000ULL },
	{ "h", 3600ULL * 1000000000ULL },
};

int lapi_parse_duration(const char *s, int64_t *ns)
{
	/* Sums stay below 2^64 because each term is checked against 2^63 first. */
	const unsigned __int128 limit = (unsigned __int128)1 << 63;
	unsigned __int128 total = 0;
	bool neg = false;

	if (!s || !*s)
		return -EINVAL;
	if (*s == '-' || *s == '+')
		neg = *s++ == '-';
	if (!strcmp(s, "0")) {
		*ns = 0;
		return 0;
	}
	if (!*s)
		return -EINVAL;
	while (*s) {
		uint64_t whole = 0, frac = 0, scale = 1;
		bool digits = false, big = false;
		const struct dur_unit *u = NULL;

		for (; *s >= '0' && *s <= '9'; s++) {
			digits = true;
			if (whole > (UINT64_MAX - 9) / 10)
				big = true;
			else
				whole = whole * 10 + (uint64_t)(*s - '0');
		}
		if (*s == '.') {
			/* Digits past the 18th cannot change a nanosecond count. */
			for (s++; *s >= '0' && *s <= '9'; s++) {
				digits = true;
				if (scale < 1000000000000000000ULL) {
					frac = frac * 10 + (uint64_t)(*s - '0');
					scale *= 10;
				}
			}
		}
		if (!digits)
			return -EINVAL;
		for (size_t i = 0; i < sizeof(dur_units) / sizeof(dur_units[0]); i++) {
			size_t n = strlen(dur_units[i].name);

			if (!strncmp(s, dur_units[i].name, n)) {
				u = &dur_units[i];
				s += n;
				break;
			}
		}
		if (!u)
			return -EINVAL;
		if (big)
			return -ERANGE;
		total += (unsigned __int128)whole * u->ns + (unsigned __int128)frac * u->ns / scale;
		if (total > limit)
			return -ERANGE;
	}
	if (!neg && total == limit)
		return -ERANGE;
	*ns = neg ? (int64_t)(0 - (uint64_t)total) : (int64_t)total;
	return 0;
}

/* --- the two indexes ----------------------------------------------------------- */

/* A 64-bit finaliser (xorshift-multiply): spreads ids and pair hashes over the slots. */
static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

static uint64_t hash_pair(const struct cidr *p, uint16_t source)
{
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a over the pair's bytes */
	uint8_t head[4] = { p->family, p->len, (uint8_t)source, (uint8_t)(source >> 8) };

	for (size_t i = 0; i < sizeof(head); i++)
		h = (h ^ head[i]) * 0x100000001b3ULL;
	for (size_t i = 0; i < sizeof(p->addr); i++)
		h = (h ^ p->addr[i]) * 0x100000001b3ULL;
	return mix64(h);
}

typedef uint64_t (*hash_of_fn)(const struct lapi_client *c, uint32_t idx);

static uint64_t hash_of_dec(const struct lapi_client *c, uint32_t idx)
{
	return mix64((uint64_t)c->dec[idx].id);
}

static uint64_t hash_of_key(const struct lapi_client *c, uint32_t idx)
{
	return hash_pair(&c->keys[idx].prefix, c->keys[idx].source);
}

static int ix_rehash(const struct lapi_client *c, struct lapi_index *ix, uint32_t slots,
		     hash_of_fn hash_of)
{
	uint32_t *old = ix->slot, old_slots = ix->mask ? ix->mask + 1 : 0;
	uint32_t *slot = malloc(sizeof(*slot) * slots);

	if (!slot)
		return -ENOMEM;
	memset(slot, 0xff, sizeof(*slot) * slots); /* LAPI_NONE everywhere */
	for (uint32_t i = 0; i < old_slots; i++) {
		uint32_t j;

		if (old[i] == LAPI_NONE)
			continue;
		j = (uint32_t)hash_of(c, old[i]) & (slots - 1);
		while (slot[j] != LAPI_NONE)
			j = (j + 1) & (slots - 1);
		slot[j] = old[i];
	}
	free(old);
	ix->slot = slot;
	ix->mask = slots - 1;
	return 0;
}

/* Insert idx (not present) under hash h; the table stays at most half full. */
static int ix_insert(const struct lapi_client *c, struct lapi_index *ix, uint64_t h, uint32_t idx,
		     hash_of_fn hash_of)
{
	uint32_t j;

	if (!ix->mask || (uint64_t)(ix->n + 1) * 2 > (uint64_t)ix->mask + 1) {
		uint32_t slots = ix->mask ? (ix->mask + 1) * 2 : 64;
		int err;

		if (!slots)
			return -ENOMEM;
		err = ix_rehash(c, ix, slots, hash_of);
		if (err)
			return err;
	}
	j = (uint32_t)h & ix->mask;
	while (ix->slot[j] != LAPI_NONE)
		j = (j + 1) & ix->mask;
	ix->slot[j] = idx;
	ix->n++;
	return 0;
}

/*
 * Empty slot i by moving later entries of its probe run back (no tombstones:
 * lookups stay short however many decisions come and go).
 */
static void ix_remove_slot(const struct lapi_client *c, struct lapi_index *ix, uint32_t i,
			   hash_of_fn hash_of)
{
	uint32_t j = i;

	for (;;) {
		uint32_t k;

		j = (j + 1) & ix->mask;
		if (ix->slot[j] == LAPI_NONE)
			break;
		k = (uint32_t)hash_of(c, ix->slot[j]) & ix->mask;
		/* The entry at j may move to i unless its home k lies in (i, j]. */
		if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		ix->slot[i] = ix->slot[j];
		i = j;
	}
	ix->slot[i] = LAPI_NONE;
	ix->n--;
}

/* The slot holding decision id, or LAPI_NONE. */
static uint32_t find_dec_slot(const struct lapi_client *c, int64_t id)
{
	const struct lapi_index *ix = &c->by_id;
	uint32_t j;

	if (!ix->mask)
		return LAPI_NONE;
	for (j = (uint32_t)mix64((uint64_t)id) & ix->mask; ix->slot[j] != LAPI_NONE;
	     j = (j + 1) & ix->mask)
		if (c->dec[ix->slot[j]].id == id)
			return j;
	return LAPI_NONE;
}

static uint32_t find_key_slot(const struct lapi_client *c, const struct cidr *p, uint16_t source)
{
	const struct lapi_index *ix = &c->by_key;
	uint32_t j;

	if (!ix->mask)
		return LAPI_NONE;
	for (j = (uint32_t)hash_pair(p, source) & ix->mask; ix->slot[j] != LAPI_NONE;
	     j = (j + 1) & ix->mask) {
		const struct lapi_key *k = &c->keys[ix->slot[j]];

		if (k->source == source && !cidr_compare(&k->prefix, p))
			return j;
	}
	return LAPI_NONE;
}

/* --- decisions and pairs ----------------------------------------------------------- */

static int grow(void **arr, uint32_t *cap, size_t size, uint32_t need)
{
	uint32_t n = *cap ? *cap : 64;
	void *p;

	if (need <= *cap)
		return 0;
	while (n < need) {
		if (n > UINT32_MAX / 2)
			return -ENOMEM;
		n *= 2;
	}
	p = realloc(*arr, size * n);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = n;
	return 0;
}

/* Mark key k touched by this batch, once in c->touched. */
static int touch(struct lapi_client *c, uint32_t k, int64_t id, bool deletion)
{
	struct lapi_key *key = &c->keys[k];

	if (key->gen != c->gen) {
		int err = grow((void **)&c->touched, &c->cap_touched, sizeof(*c->touched),
			       c->n_touched + 1);

		if (err)
			return err;
		c->touched[c->n_touched++] = k;
		key->gen = c->gen;
		key->touches = 0;
		key->deletions = 0;
	}
	key->touches++;
	key->deletions += deletion;
	key->last_id = id;
	return 0;
}

/* The pair's index, created (holding nothing) when new; LAPI_NONE on -ENOMEM. */
static uint32_t get_key(struct lapi_client *c, const struct cidr *p, uint16_t source)
{
	uint32_t slot = find_key_slot(c, p, source), k;
	struct lapi_key *key;

	if (slot != LAPI_NONE)
		return c->by_key.slot[slot];
	if (c->free_key != LAPI_NONE) {
		k = c->free_key;
		c->free_key = c->keys[k].next_free;
	} else {
		if (grow((void **)&c->keys, &c->cap_keys, sizeof(*c->keys), c->n_keys + 1))
			return LAPI_NONE;
		k = c->n_keys++;
	}
	key = &c->keys[k];
	memset(key, 0, sizeof(*key));
	key->prefix = *p;
	key->source = source;
	key->head = LAPI_NONE;
	key->gen = c->gen - 1;
	if (ix_insert(c, &c->by_key, hash_pair(p, source), k, hash_of_key)) {
		key->next_free = c->free_key;
		c->free_key = k;
		return LAPI_NONE;
	}
	return k;
}

static void put_key(struct lapi_client *c, uint32_t k)
{
	struct lapi_key *key = &c->keys[k];
	uint32_t slot = find_key_slot(c, &key->prefix, key->source);

	if (slot != LAPI_NONE)
		ix_remove_slot(c, &c->by_key, slot, hash_of_key);
	key->next_free = c->free_key;
	c->free_key = k;
}

/* Drop decision d (found at by_id slot) from its pair's chain and the index. */
static void drop_dec(struct lapi_client *c, uint32_t slot)
{
	uint32_t d = c->by_id.slot[slot];
	struct lapi_key *key = &c->keys[c->dec[d].key];
	uint32_t *link = &key->head;

	while (*link != LAPI_NONE && *link != d)
		link = &c->dec[*link].next;
	if (*link == d)
		*link = c->dec[d].next;
	ix_remove_slot(c, &c->by_id, slot, hash_of_dec);
	c->dec[d].key = LAPI_NONE;
	c->dec[d].next = c->free_dec;
	c->free_dec = d;
	c->live--;
}

static int add_dec(struct lapi_client *c, int64_t id, uint32_t k, uint64_t expires_ms)
{
	uint32_t d;
	int err;

	if (c->free_dec != LAPI_NONE) {
		d = c->free_dec;
		c->free_dec = c->dec[d].next;
	} else {
		err = grow((void **)&c->dec, &c->cap_dec, sizeof(*c->dec), c->n_dec + 1);
		if (err)
			return err;
		d = c->n_dec++;
	}
	c->dec[d].id = id;
	c->dec[d].expires_ms = expires_ms;
	c->dec[d].key = k;
	err = ix_insert(c, &c->by_id, mix64((uint64_t)id), d, hash_of_dec);
	if (err) {
		c->dec[d].key = LAPI_NONE;
		c->dec[d].next = c->free_dec;
		c->free_dec = d;
		return err;
	}
	c->dec[d].next = c->keys[k].head;
	c->keys[k].head = d;
	c->live++;
	return 0;
}

void lapi_forget(struct lapi_client *c)
{
	if (c->by_id.mask)
		memset(c->by_id.slot, 0xff, sizeof(uint32_t) * (c->by_id.mask + 1));
	if (c->by_key.mask)
		memset(c->by_key.slot, 0xff, sizeof(uint32_t) * (c->by_key.mask + 1));
	c->by_id.n = c->by_key.n = 0;
	c->n_dec = c->n_keys = c->live = 0;
	c->free_dec = c->free_key = LAPI_NONE;
	c->n_touched = 0;
}

void lapi_decode_free(struct lapi_client *c)
{
	free(c->dec);
	free(c->keys);
	free(c->by_id.slot);
	free(c->by_key.slot);
	free(c->touched);
	c->dec = NULL;
	c->keys = NULL;
	c->touched = NULL;
	memset(&c->by_id, 0, sizeof(c->by_id));
	memset(&c->by_key, 0, sizeof(c->by_key));
	c->cap_dec = c->cap_keys = c->cap_touched = 0;
	lapi_forget(c);
}

size_t lapi_live_decisions(const struct lapi_client *c)
{
	return c->live;
}

/* Forget decisions whose time ran out: their rules expire by their own timeout. */
static void prune_expired(struct lapi_client *c, uint64_t now_ms)
{
	for (uint32_t d = 0; d < c->n_dec; d++) {
		uint32_t k = c->dec[d].key, slot;

		if (k == LAPI_NONE || c->dec[d].expires_ms > now_ms)
			continue;
		slot = find_dec_slot(c, c->dec[d].id);
		if (slot == LAPI_NONE)
			continue; /* cannot happen: every live decision is indexed */
		drop_dec(c, slot);
		if (c->keys[k].head == LAPI_NONE)
			put_key(c, k);
	}
}

/* --- one decision ------------------------------------------------------------ */

/* A decision as far as ipblock cares. */
struct decision {
	int64_t id;
	bool has_id;
	struct cidr prefix;
	uint16_t source;
	int64_t dur_ns;
};

static void note(struct lapi_batch *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void note(struct lapi_batch *b, const char *fmt, ...)
{
	va_list ap;

	if (b->n_notes >= LAPI_MAX_NOTES)
		return;
	va_start(ap, fmt);
	vsnprintf(b->notes[b->n_notes++], LAPI_NOTELEN, fmt, ap);
	va_end(ap);
}

/* 0 and the string, -ENOENT when absent or null, -EINVAL when not a string. */
static int get_str(json_object *o, const char *name, const char **s, size_t *len)
{
	json_object *v;

	if (!json_object_object_get_ex(o, name, &v) || !v)
		return -ENOENT;
	if (!json_object_is_type(v, json_type_string))
		return -EINVAL;
	*s = json_object_get_string(v);
	*len = (size_t)json_object_get_string_len(v);
	/* A NUL inside would make C see less than JSON says. */
	if (strlen(*s) != *len)
		return -EINVAL;
	return 0;
}

static bool in_list(char *const *list, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (!strcasecmp(list[i], s))
			return true;
	return false;
}

/* An origin's character as it appears in a source name: [a-z0-9._-], else '_'. */
static char source_char(char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return (char)(ch - 'A' + 'a');
	if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' ||
	    ch == '_')
		return ch;
	return '_';
}

/* The source index for an origin; LAPI_NONE when the table is full. */
static uint32_t source_of(struct lapi_client *c, const char *origin)
{
	char name[LAPI_SOURCE_LEN];
	size_t n;

	n = (size_t)snprintf(name, sizeof(name), "%s", c->source);
	if (c->source_per_origin && *origin && n + 1 < sizeof(name)) {
		name[n++] = '-';
		for (const char *o = origin; *o && n + 1 < sizeof(name); o++)
			name[n++] = source_char(*o);
		name[n] = '\0';
	}
	for (uint16_t i = 0; i < c->n_sources; i++)
		if (!strcmp(c->sources[i], name))
			return i;
	if (c->n_sources >= LAPI_MAX_SOURCES)
		return LAPI_NONE;
	memcpy(c->sources[c->n_sources], name, sizeof(name));
	return c->n_sources++;
}

static const char *list_name(bool is_new)
{
	return is_new ? "new" : "deleted";
}

/*
 * Read decision `i` of list "new" or "deleted".  1: keep *out; 0: not
 * configured (type, scope, origin) or, for "new", already expired (counted);
 * -EINVAL: malformed (counted, noted).
 */
static int read_decision(struct lapi_client *c, json_object *o, bool is_new, size_t i,
			 struct decision *out, struct lapi_batch *b)
{
	const char *scope, *type, *origin = "", *value, *dur;
	char what[64], cerr[CIDR_ERRLEN];
	size_t len;
	json_object *v;
	unsigned int scope_bit;
	uint32_t source;
	int err;

	memset(out, 0, sizeof(*out));
	if (!json_object_is_type(o, json_type_object)) {
		note(b, "entry %zu of \"%s\" is not an object.", i, list_name(is_new));
		goto bad;
	}
	if (json_object_object_get_ex(o, "id", &v) && json_object_is_type(v, json_type_int)) {
		out->id = json_object_get_int64(v);
		out->has_id = true;
		snprintf(what, sizeof(what), "decision %lld in \"%s\"", (long long)out->id,
			 list_name(is_new));
	} else {
		snprintf(what, sizeof(what), "entry %zu of \"%s\"", i, list_name(is_new));
	}

	if (get_str(o, "scope", &scope, &len)) {
		note(b, "%s has no scope string.", what);
		goto bad;
	}
	if (get_str(o, "type", &type, &len)) {
		note(b, "%s has no type string.", what);
		goto bad;
	}
	err = get_str(o, "origin", &origin, &len);
	if (err == -EINVAL) {
		note(b, "%s has an origin that is not a string.", what);
		goto bad;
	}
	if (err)
		origin = "";
	scope_bit = !strcasecmp(scope, "ip")	  ? LAPI_SCOPE_IP
		    : !strcasecmp(scope, "range") ? LAPI_SCOPE_RANGE
						  : 0;
	if (!(scope_bit & c->scopes) || !in_list(c->types, c->n_types, type) ||
	    (c->n_origins && !in_list(c->origins, c->n_origins, origin))) {
		b->stats.ignored++;
		return 0;
	}
	if (!out->has_id) {
		note(b, "%s has no integer id.", what);
		goto bad;
	}
	if (get_str(o, "value", &value, &len)) {
		note(b, "%s has no value string.", what);
		goto bad;
	}
	if (cidr_parse(value, &out->prefix, NULL, cerr, sizeof(cerr))) {
		note(b, "%s: %s", what, cerr);
		goto bad;
	}
	if (scope_bit == LAPI_SCOPE_IP && out->prefix.len != cidr_max_len(&out->prefix)) {
		note(b, "%s: an Ip decision holds the /%u prefix '%.64s', not one address.", what,
		     out->prefix.len, value);
		goto bad;
	}
	if (is_new) {
		if (get_str(o, "duration", &dur, &len)) {
			note(b, "%s has no duration string.", what);
			goto bad;
		}
		err = lapi_parse_duration(dur, &out->dur_ns);
		if (err) {
			note(b, "%s: '%.40s' is not a Go duration%s.", what, dur,
			     err == -ERANGE ? " (out of range)" : "");
			goto bad;
		}
		if (out->dur_ns <= 0) {
			b->stats.expired++;
			return 0;
		}
	}
	source = source_of(c, origin);
	if (source == LAPI_NONE) {
		note(b, "%s: more than %d origins; its origin '%.40s' gets no source.", what,
		     LAPI_MAX_SOURCES, origin);
		goto bad;
	}
	out->source = (uint16_t)source;
	return 1;
bad:
	b->stats.bad++;
	return -EINVAL;
}

static json_object *parse_json(const char *body, size_t len, char *err, size_t errlen)
{
	json_tokener *tok = json_tokener_new();
	enum json_tokener_error jerr = json_tokener_continue;
	json_object *root = NULL;
	size_t off = 0, end;

	if (!tok) {
		errbuf_set(err, errlen, "Out of memory for the JSON parser.");
		return NULL;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	while (off < len) {
		size_t n = len - off < JSON_CHUNK ? len - off : JSON_CHUNK;

		root = json_tokener_parse_ex(tok, body + off, (int)n);
		jerr = json_tokener_get_error(tok);
		if (jerr != json_tokener_continue) {
			off += json_tokener_get_parse_end(tok);
			break;
		}
		off += n;
	}
	if (jerr == json_tokener_success) {
		for (end = off; end < len && isspace((unsigned char)body[end]); end++)
			;
		if (end == len) {
			json_tokener_free(tok);
			return root;
		}
		errbuf_set(err, errlen,
			   "The LAPI's answer has bytes after its JSON value (at byte %zu of %zu).",
			   end, len);
	} else if (jerr == json_tokener_continue) {
		errbuf_set(err, errlen,
			   len ? "The LAPI's answer ends in the middle of its JSON (%zu bytes): it "
				 "was cut short."
			       : "The LAPI's answer is empty (%zu bytes), not JSON.",
			   len);
	} else {
		errbuf_set(err, errlen,
			   "The LAPI's answer is not valid JSON: %s at byte %zu of %zu.",
			   json_tokener_error_desc(jerr), off, len);
	}
	json_object_put(root);
	json_tokener_free(tok);
	return NULL;
}

/* The array under name, or NULL for null; -EBADMSG when absent or of another type. */
static int get_list(json_object *root, const char *name, json_object **list, char *err,
		    size_t errlen)
{
	if (!json_object_object_get_ex(root, name, list)) {
		errbuf_set(err, errlen,
			   "The LAPI's answer has no \"%s\" list: not a decision stream.", name);
		return -EBADMSG;
	}
	if (*list && !json_object_is_type(*list, json_type_array)) {
		errbuf_set(err, errlen,
			   "The LAPI's answer has a \"%s\" that is neither a list nor null.", name);
		return -EBADMSG;
	}
	return 0;
}

static int push_change(struct lapi_batch *b, const struct lapi_change *ch)
{
	if (b->n == b->cap) {
		size_t n = b->cap ? b->cap * 2 : 64;
		struct lapi_change *p = realloc(b->changes, n * sizeof(*p));

		if (!p)
			return -ENOMEM;
		b->changes = p;
		b->cap = n;
	}
	b->changes[b->n++] = *ch;
	return 0;
}

static int change_cmp(const void *a, const void *b)
{
	const struct lapi_change *x = a, *y = b;
	int r = strcmp(x->source, y->source);

	return r ? r : cidr_compare(&x->prefix, &y->prefix);
}

/* One change per touched pair: what it must be after this batch. */
static int emit(struct lapi_client *c, uint64_t now_ms, struct lapi_batch *b)
{
	for (uint32_t t = 0; t < c->n_touched; t++) {
		uint32_t k = c->touched[t], best = LAPI_NONE;
		struct lapi_key *key = &c->keys[k];
		struct lapi_change ch;
		int err;

		for (uint32_t d = key->head; d != LAPI_NONE; d = c->dec[d].next)
			if (best == LAPI_NONE || c->dec[d].expires_ms > c->dec[best].expires_ms)
				best = d;
		memset(&ch, 0, sizeof(ch));
		ch.prefix = key->prefix;
		memcpy(ch.source, c->sources[key->source], sizeof(ch.source));
		b->stats.merged += key->touches - 1;
		if (best != LAPI_NONE) {
			uint64_t left = c->dec[best].expires_ms - now_ms;
			uint64_t s = (left + MS_PER_S - 1) / MS_PER_S;

			ch.op = LAPI_ADD;
			ch.timeout = s < 1 ? 1 : s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
			ch.decision_id = c->dec[best].id;
			b->stats.still_held += key->deletions;
		} else {
			ch.op = LAPI_DEL;
			ch.decision_id = key->last_id;
			put_key(c, k);
		}
		err = push_change(b, &ch);
		if (err)
			return err;
	}
	c->n_touched = 0;
	if (b->n > 1)
		qsort(b->changes, b->n, sizeof(*b->changes), change_cmp);
	return 0;
}

static int apply_list(struct lapi_client *c, json_object *list, bool is_new, uint64_t now_ms,
		      struct lapi_batch *b)
{
	size_t n = list ? json_object_array_length(list) : 0;

	for (size_t i = 0; i < n; i++) {
		struct decision d;
		uint32_t slot, k;
		int err;

		if (is_new)
			b->stats.new_seen++;
		else
			b->stats.deleted_seen++;
		if (read_decision(c, json_object_array_get_idx(list, i), is_new, i, &d, b) <= 0)
			continue;
		k = get_key(c, &d.prefix, d.source);
		if (k == LAPI_NONE)
			return -ENOMEM;
		/* A decision seen before: drop it (a "new" then replaces it). */
		slot = find_dec_slot(c, d.id);
		if (slot != LAPI_NONE) {
			uint32_t held = c->dec[c->by_id.slot[slot]].key;

			drop_dec(c, slot);
			/* An id that moved to another pair (never seen) releases the old one. */
			if (held != k) {
				err = touch(c, held, d.id, true);
				if (err)
					return err;
			}
		}
		if (is_new) {
			uint64_t ns = (uint64_t)d.dur_ns;
			uint64_t ms = ns / NS_PER_MS + !!(ns % NS_PER_MS);
			uint64_t expires = ms > EXPIRY_MAX - now_ms ? EXPIRY_MAX : now_ms + ms;

			err = add_dec(c, d.id, k, expires);
			if (err)
				return err;
		}
		/* A deletion of a decision never seen live still releases its pair,
		 * unless another decision holds it (emit() decides). */
		err = touch(c, k, d.id, !is_new);
		if (err)
			return err;
	}
	return 0;
}

int lapi_decode(struct lapi_client *c, const char *body, size_t len, bool full, uint64_t now_ms,
		struct lapi_batch *b, char *err, size_t errlen)
{
	json_object *root, *news, *dels;
	int ret;

	lapi_batch_free(b);
	if (now_ms > EXPIRY_MAX / 2)
		now_ms = EXPIRY_MAX / 2;
	root = parse_json(body, len, err, errlen);
	if (!root)
		return -EBADMSG;
	if (!json_object_is_type(root, json_type_object)) {
		errbuf_set(err, errlen,
			   "The LAPI's answer is JSON but not an object: not a decision "
			   "stream.");
		ret = -EBADMSG;
		goto out;
	}
	ret = get_list(root, "new", &news, err, errlen);
	if (!ret)
		ret = get_list(root, "deleted", &dels, err, errlen);
	if (ret)
		goto out;

	/* From here on the live decisions change: a failure must be followed by a resync. */
	if (full)
		lapi_forget(c);
	c->gen++;
	c->n_touched = 0;
	b->full = full;
	prune_expired(c, now_ms);
	/* Deletions first: a prefix both deleted and new in one answer stays held. */
	ret = apply_list(c, dels, false, now_ms, b);
	if (!ret)
		ret = apply_list(c, news, true, now_ms, b);
	if (!ret)
		ret = emit(c, now_ms, b);
	if (ret) {
		errbuf_set(err, errlen, "Out of memory decoding the LAPI's answer (%zu bytes).",
			   len);
		lapi_forget(c);
		lapi_batch_free(b);
	}
out:
	json_object_put(root);
	return ret;
}

void lapi_batch_free(struct lapi_batch *b)
{
	free(b->changes);
	memset(b, 0, sizeof(*b));
}

const char *lapi_op_name(uint8_t op)
{
	return op == LAPI_ADD ? "add" : op == LAPI_DEL ? "del" : "?";
}
