// SPDX-License-Identifier: GPL-2.0
/* The rule cache: per-length hash tables under one rwlock; see rulecache.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "linprobe.h"
#include "rulecache.h"
#include "rwlock.h"

#define MAX_LENS    129 /* IPv6 /0../128; IPv4 uses the first 33 */
#define MIN_SLOTS   8
#define MIN_ENTRIES 64

/*
 * A slot is 8 bytes: the key's 32-bit hash and the entry's index + 1 (0 =
 * empty).  Probing walks these small slots and touches an entry only when
 * the hash matches, and a rehash moves slots without reading entries, which
 * is what keeps a million inserts well under a second.
 */
struct slot {
	uint32_t hash;
	uint32_t idx1;
};

/* All prefixes of one family and length: linear probing, power-of-two size. */
struct table {
	struct slot *slots;
	uint32_t mask; /* capacity - 1; slots is NULL when the table is empty */
	uint32_t count;
};

/*
 * One family's rules.  Entries are dense (a removal moves the last one into
 * the hole), so a snapshot is one memcpy and the array grows by realloc,
 * which for large blocks remaps pages instead of copying them.
 */
struct family_set {
	struct rulecache_entry *entries;
	uint32_t n, cap;
	struct table t[MAX_LENS];
};

struct rulecache {
	struct rwlock lock;
	struct family_set fam[2]; /* [0] IPv4, [1] IPv6 */
};

/*
 * Readers take the lock too, which writes its word: the cache behind a
 * const pointer is still heap memory the caller may not change but we may.
 */
static struct rwlock *lock_of(const struct rulecache *rc)
{
	return (struct rwlock *)&rc->lock;
}

static int family_index(int family)
{
	if (family == AF_INET)
		return 0;
	if (family == AF_INET6)
		return 1;
	return -1;
}

static unsigned int family_bits(int idx)
{
	return idx == 0 ? 32 : 128;
}

/* Copy the first len bits of src and zero the rest of the 16 bytes. */
static inline void mask_addr(uint8_t dst[16], const uint8_t *src, unsigned int len)
{
	unsigned int full = len / 8, rem = len % 8;

	memset(dst, 0, 16);
	memcpy(dst, src, full);
	if (rem)
		dst[full] = src[full] & (uint8_t)(0xff << (8 - rem));
}

/*
 * Sequential addresses (a block of /32s) differ only in a few bits, so mix
 * all 128 bits into the 32 the table uses.
 */
static inline uint32_t hash_key(const uint8_t key[16])
{
	uint64_t x, y, h;

	memcpy(&x, key, 8);
	memcpy(&y, key + 8, 8);
	h = x * 0x9e3779b97f4a7c15ull ^ (y + 0x632be59bd9b4e019ull) * 0xc2b2ae3d27d4eb4full;
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 32;
	return (uint32_t)h;
}

/* Slot holding key, or the empty slot where it would go. */
static inline uint32_t probe(const struct family_set *f, const struct table *t,
			     const uint8_t key[16], uint32_t h, bool *found)
{
	uint32_t i = h & t->mask;

	for (; t->slots[i].idx1; i = (i + 1) & t->mask) {
		if (t->slots[i].hash == h &&
		    !memcmp(f->entries[t->slots[i].idx1 - 1].rule.prefix.addr, key, 16)) {
			*found = true;
			return i;
		}
	}
	*found = false;
	return i;
}

static const struct rulecache_entry *family_find(const struct family_set *f, unsigned int len,
						 const uint8_t key[16])
{
	const struct table *t = &f->t[len];
	bool found;
	uint32_t i;

	if (!t->count)
		return NULL;
	i = probe(f, t, key, hash_key(key), &found);
	return found ? &f->entries[t->slots[i].idx1 - 1] : NULL;
}

/* Rehash into cap slots (a power of two), or free the table for cap 0. */
static int table_resize(struct table *t, uint32_t cap)
{
	struct slot *old = t->slots, *slots;
	uint32_t old_cap = old ? t->mask + 1 : 0;

	if (!cap) {
		free(old);
		t->slots = NULL;
		t->mask = 0;
		return 0;
	}
	slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	for (uint32_t j = 0; j < old_cap; j++) {
		uint32_t i;

		if (!old[j].idx1)
			continue;
		for (i = old[j].hash & (cap - 1); slots[i].idx1; i = (i + 1) & (cap - 1))
			;
		slots[i] = old[j];
	}
	free(old);
	t->slots = slots;
	t->mask = cap - 1;
	return 0;
}

static int64_t slot_home(void *ctx, uint32_t j)
{
	const struct table *t = ctx;

	return t->slots[j].idx1 ? (int64_t)(t->slots[j].hash & t->mask) : -1;
}

static void slot_move(void *ctx, uint32_t from, uint32_t to)
{
	struct table *t = ctx;

	t->slots[to] = t->slots[from];
}

/* Empty slot i (no tombstones: later slots of its run move back). */
static void table_delete_at(struct table *t, uint32_t i)
{
	t->slots[linprobe_delete(i, t->mask, t, slot_home, slot_move)].idx1 = 0;
	t->count--;
}

static void family_free(struct family_set *f)
{
	for (unsigned int len = 0; len < MAX_LENS; len++)
		free(f->t[len].slots);
	free(f->entries);
	memset(f, 0, sizeof(*f));
}

struct rulecache *rulecache_new(void)
{
	struct rulecache *rc = calloc(1, sizeof(*rc));

	if (!rc)
		return NULL;
	rwlock_init(&rc->lock);
	return rc;
}

void rulecache_free(struct rulecache *rc)
{
	if (!rc)
		return;
	family_free(&rc->fam[0]);
	family_free(&rc->fam[1]);
	free(rc);
}

/* Insert with the lock held; the action is not checked (rulecache_load() keeps odd ones). */
static int insert_locked(struct rulecache *rc, const struct rulecache_entry *e, bool *created)
{
	const struct cidr *p = &e->rule.prefix;
	int fi = family_index(p->family);
	struct family_set *f;
	struct table *t;
	uint8_t key[16];
	bool found;
	uint32_t h, i;
	int err;

	if (fi < 0 || p->len > family_bits(fi))
		return -EINVAL;
	f = &rc->fam[fi];
	t = &f->t[p->len];
	mask_addr(key, p->addr, p->len);
	h = hash_key(key);

	if (t->count) {
		i = probe(f, t, key, h, &found);
		if (found) {
			struct rulecache_entry *dst = &f->entries[t->slots[i].idx1 - 1];

			*dst = *e;
			memcpy(dst->rule.prefix.addr, key, 16);
			if (created)
				*created = false;
			return 0;
		}
	}

	if (f->n == f->cap) {
		/* Grow by a quarter: realloc remaps large blocks, so small steps are cheap. */
		uint64_t cap = f->cap < MIN_ENTRIES ? MIN_ENTRIES : (uint64_t)f->cap + f->cap / 4;
		struct rulecache_entry *entries;

		if (cap > UINT32_MAX - 1)
			return -ENOMEM;
		entries = realloc(f->entries, cap * sizeof(*entries));
		if (!entries)
			return -ENOMEM;
		f->entries = entries;
		f->cap = (uint32_t)cap;
	}
	if (!t->slots || (uint64_t)(t->count + 1) * 4 > ((uint64_t)t->mask + 1) * 3) {
		uint64_t cap = t->slots ? ((uint64_t)t->mask + 1) * 2 : MIN_SLOTS;

		if (cap > (1ull << 31))
			return -ENOMEM;
		err = table_resize(t, (uint32_t)cap);
		if (err)
			return err;
	}
	for (i = h & t->mask; t->slots[i].idx1; i = (i + 1) & t->mask)
		;
	f->entries[f->n] = *e;
	memcpy(f->entries[f->n].rule.prefix.addr, key, 16);
	t->slots[i].hash = h;
	t->slots[i].idx1 = ++f->n;
	t->count++;
	if (created)
		*created = true;
	return 0;
}

/* Remove the entry at slot i of table len, keeping entries dense. */
static void remove_locked(struct family_set *f, unsigned int len, uint32_t i)
{
	struct table *t = &f->t[len];
	uint32_t idx = t->slots[i].idx1 - 1, last = f->n - 1;

	table_delete_at(t, i);
	if (idx != last) {
		/* Move the last entry into the hole and repoint its slot. */
		const struct rulecache_entry *moved = &f->entries[last];
		struct table *mt = &f->t[moved->rule.prefix.len];
		uint32_t j = hash_key(moved->rule.prefix.addr) & mt->mask;

		while (mt->slots[j].idx1 != last + 1)
			j = (j + 1) & mt->mask;
		mt->slots[j].idx1 = idx + 1;
		f->entries[idx] = *moved;
	}
	f->n--;

	/* Give memory back after mass removal; failing to shrink is harmless. */
	if (!t->count)
		table_resize(t, 0);
	else if (t->mask + 1 > MIN_SLOTS && (uint64_t)t->count * 8 < t->mask + 1u) {
		table_resize(t, (t->mask + 1) / 4);
	}
	if (!f->n) {
		free(f->entries);
		f->entries = NULL;
		f->cap = 0;
	} else if (f->cap > MIN_ENTRIES && (uint64_t)f->n * 4 < f->cap) {
		struct rulecache_entry *entries =
			realloc(f->entries, (size_t)f->n * 2 * sizeof(*entries));

		if (entries) {
			f->entries = entries;
			f->cap = f->n * 2;
		}
	}
}

int rulecache_insert(struct rulecache *rc, const struct rulecache_entry *e, bool *created)
{
	int err;

	if (e->rule.action != IPBLOCK_ACTION_ALLOW && e->rule.action != IPBLOCK_ACTION_DENY)
		return -EINVAL;
	err = rwlock_write_lock(&rc->lock);
	if (err)
		return err;
	err = insert_locked(rc, e, created);
	rwlock_write_unlock(&rc->lock);
	return err;
}

int rulecache_remove(struct rulecache *rc, const struct cidr *p)
{
	int fi = family_index(p->family);
	struct family_set *f;
	uint8_t key[16];
	bool found;
	uint32_t i;
	int err;

	if (fi < 0 || p->len > family_bits(fi))
		return -EINVAL;
	mask_addr(key, p->addr, p->len);
	err = rwlock_write_lock(&rc->lock);
	if (err)
		return err;
	f = &rc->fam[fi];
	err = -ENOENT;
	if (f->t[p->len].count) {
		i = probe(f, &f->t[p->len], key, hash_key(key), &found);
		if (found) {
			remove_locked(f, p->len, i);
			err = 0;
		}
	}
	rwlock_write_unlock(&rc->lock);
	return err;
}

int rulecache_find(const struct rulecache *rc, const struct cidr *p, struct rulecache_entry *out)
{
	int fi = family_index(p->family);
	const struct rulecache_entry *e;
	uint8_t key[16];
	int err;

	if (fi < 0 || p->len > family_bits(fi))
		return -EINVAL;
	mask_addr(key, p->addr, p->len);
	err = rwlock_read_lock(lock_of(rc));
	if (err)
		return err;
	e = family_find(&rc->fam[fi], p->len, key);
	if (e && out)
		*out = *e;
	rwlock_read_unlock(lock_of(rc));
	return e ? 0 : -ENOENT;
}

size_t rulecache_count(const struct rulecache *rc, int family)
{
	int fi = family_index(family);
	size_t n = 0;

	if (fi < 0 && family != AF_UNSPEC)
		return 0;
	if (rwlock_read_lock(lock_of(rc)))
		return 0;
	if (fi >= 0)
		n = rc->fam[fi].n;
	else
		n = (size_t)rc->fam[0].n + rc->fam[1].n;
	rwlock_read_unlock(lock_of(rc));
	return n;
}

size_t rulecache_memory(const struct rulecache *rc)
{
	size_t bytes = sizeof(*rc);

	if (rwlock_read_lock(lock_of(rc)))
		return 0;
	for (int fi = 0; fi < 2; fi++) {
		const struct family_set *f = &rc->fam[fi];

		bytes += (size_t)f->cap * sizeof(struct rulecache_entry);
		for (unsigned int len = 0; len <= family_bits(fi); len++)
			if (f->t[len].slots)
				bytes += ((size_t)f->t[len].mask + 1) * sizeof(struct slot);
	}
	rwlock_read_unlock(lock_of(rc));
	return bytes;
}

void rulecache_clear(struct rulecache *rc)
{
	struct family_set old[2];

	if (rwlock_write_lock(&rc->lock))
		return;
	memcpy(old, rc->fam, sizeof(old));
	memset(rc->fam, 0, sizeof(rc->fam));
	rwlock_write_unlock(&rc->lock);
	/* Freeing a million-slot table need not hold readers back. */
	family_free(&old[0]);
	family_free(&old[1]);
}

/* A private copy of every rule and the order to visit them in. */
struct snapshot {
	struct rulecache_entry *e;
	uint32_t *order; /* ruleset_order() of e */
	size_t n;
};

static void snapshot_free(struct snapshot *s)
{
	free(s->e);
	free(s->order);
}

/*
 * Copy under the read lock, sort after dropping it: callbacks then run
 * unlocked, so they may be slow (printing) or change the cache without
 * blocking writers or deadlocking.
 */
static int snapshot_take(const struct rulecache *rc, struct snapshot *s)
{
	size_t n4;
	int err;

	memset(s, 0, sizeof(*s));
	err = rwlock_read_lock(lock_of(rc));
	if (err)
		return err;
	n4 = rc->fam[0].n;
	s->n = n4 + rc->fam[1].n;
	s->e = malloc((s->n + 1) * sizeof(*s->e));
	if (s->e) {
		if (n4)
			memcpy(s->e, rc->fam[0].entries, n4 * sizeof(*s->e));
		if (s->n - n4)
			memcpy(s->e + n4, rc->fam[1].entries, (s->n - n4) * sizeof(*s->e));
	}
	rwlock_read_unlock(lock_of(rc));
	err = s->e ? ruleset_order(&s->e[0].rule, sizeof(*s->e), s->n, &s->order) : -ENOMEM;
	if (err)
		snapshot_free(s);
	return err;
}

static inline const struct rulecache_entry *snapshot_at(const struct snapshot *s, size_t i)
{
	return &s->e[s->order[i]];
}

int rulecache_foreach(const struct rulecache *rc, rulecache_cb cb, void *ctx)
{
	struct snapshot s;
	int ret;

	ret = snapshot_take(rc, &s);
	if (ret)
		return ret;
	for (size_t i = 0; i < s.n && !ret; i++)
		ret = cb(snapshot_at(&s, i), ctx);
	snapshot_free(&s);
	return ret;
}

/*
 * Give a new, private cache the room r[0..n) needs, so that loading it
 * grows no array and rehashes no table.
 */
static int presize(struct rulecache *rc, const struct rule *r, size_t n)
{
	uint32_t count[2][MAX_LENS] = {}, per[2] = {};

	for (size_t i = 0; i < n; i++) {
		int fi = family_index(r[i].prefix.family);

		/* A bad prefix is refused by the insert; it needs no room. */
		if (fi >= 0 && r[i].prefix.len <= family_bits(fi) && per[fi] < UINT32_MAX - 1) {
			count[fi][r[i].prefix.len]++;
			per[fi]++;
		}
	}
	for (int fi = 0; fi < 2; fi++) {
		struct family_set *f = &rc->fam[fi];

		if (!per[fi])
			continue;
		f->cap = per[fi] < MIN_ENTRIES ? MIN_ENTRIES : per[fi];
		f->entries = malloc((size_t)f->cap * sizeof(*f->entries));
		if (!f->entries)
			return -ENOMEM;
		for (unsigned int len = 0; len < MAX_LENS; len++) {
			uint64_t cap = MIN_SLOTS;

			if (!count[fi][len])
				continue;
			/* The load factor insert_locked() keeps: at most 3/4. */
			while ((uint64_t)count[fi][len] * 4 > cap * 3)
				cap *= 2;
			if (cap > (1ull << 31) || table_resize(&f->t[len], (uint32_t)cap))
				return -ENOMEM;
		}
	}
	return 0;
}

int rulecache_load(struct rulecache *rc, const struct rule *r, size_t n)
{
	struct rulecache *fresh = rulecache_new();
	struct family_set old[2];
	int err;

	if (!fresh)
		return -ENOMEM;
	/* fresh is private until the swap below: no lock needed to fill it. */
	err = presize(fresh, r, n);
	for (size_t i = 0; i < n && !err; i++)
		err = insert_locked(fresh, &(struct rulecache_entry){ .rule = r[i] }, NULL);
	if (!err)
		err = rwlock_write_lock(&rc->lock);
	if (err)
		goto out;
	memcpy(old, rc->fam, sizeof(old));
	memcpy(rc->fam, fresh->fam, sizeof(old));
	rwlock_write_unlock(&rc->lock);
	memcpy(fresh->fam, old, sizeof(old));
out:
	rulecache_free(fresh);
	return err;
}

int rulecache_rules(const struct rulecache *rc, struct ruleset *out)
{
	struct snapshot s;
	int ret = snapshot_take(rc, &s);

	out->n = 0;
	if (!ret)
		ret = ruleset_reserve(out, s.n + 1);
	for (size_t i = 0; !ret && i < s.n; i++)
		out->r[out->n++] = snapshot_at(&s, i)->rule;
	snapshot_free(&s);
	return ret;
}
