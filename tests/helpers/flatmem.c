// SPDX-License-Identifier: GPL-2.0
/* The flat tables' memory for tests; see flatmem.h. */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "flatmem.h"

#define PAGE 4096ull

static uint64_t page_up(uint64_t n)
{
	return (n + PAGE - 1) & ~(PAGE - 1);
}

/* Bytes a pool reserves: whole pages. */
static size_t pool_bytes(const struct flatmem_pool *p)
{
	return page_up((uint64_t)p->reserved * p->elem);
}

static int pool_reserve(struct flatmem_pool *p, size_t elem, uint32_t reserved, uint32_t step,
			bool shared)
{
	void *mem;

	*p = (struct flatmem_pool){ .elem = elem, .reserved = reserved, .step = step ? step : 1 };
	p->ceiling = reserved;
	mem = mmap(NULL, pool_bytes(p), PROT_NONE,
		   (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		return -errno;
	p->base = mem;
	return 0;
}

static void pool_release(struct flatmem_pool *p)
{
	if (p->base)
		munmap(p->base, pool_bytes(p));
	p->base = NULL;
}

/* Make [0, n) read-write (n <= reserved): the pages from the current end on. */
static int pool_map(struct flatmem_pool *p, uint32_t n)
{
	uint64_t from = ((uint64_t)p->cap * p->elem) & ~(PAGE - 1);
	uint64_t to = page_up((uint64_t)n * p->elem);

	if (n <= p->cap)
		return 0;
	if (n > p->reserved)
		return -ENOSPC;
	if (to > from && mprotect(p->base + from, to - from, PROT_READ | PROT_WRITE))
		return -errno;
	p->cap = n;
	return 0;
}

/* flat_mem.grow's work on one pool: a whole number of steps, up to the ceiling. */
static int pool_grow(struct flatmem_pool *p, uint64_t want, uint32_t *cap)
{
	uint64_t n = (want + p->step - 1) / p->step * p->step;
	uint32_t had = p->cap;
	int ret;

	if (want > p->ceiling) {
		p->refused++;
		return -ENOSPC;
	}
	if (n > p->ceiling)
		n = p->ceiling;
	ret = pool_map(p, (uint32_t)n);
	if (ret)
		return ret;
	p->grows += p->cap > had;
	*cap = p->cap;
	return 0;
}

static int table_grow(void *ctx, enum flat_pool pool, uint64_t want, uint32_t *cap)
{
	struct flatmem *m = ctx;

	if (pool != FLAT_POOL_CHUNKS && pool != FLAT_POOL_EXT)
		return -EINVAL;
	return pool_grow(&m->pool[pool], want, cap);
}

static int ids_grow(void *ctx, enum flat_pool pool, uint64_t want, uint32_t *cap)
{
	struct flatmem_ids *x = ctx;

	if (pool != FLAT_POOL_IDS)
		return -EINVAL;
	/* ids.n is flat_ids_alloc()'s to update. */
	return pool_grow(&x->pool, want, cap);
}

/* Where the parts of the fixed mapping lie. */
static size_t hdr_off(void)
{
	return page_up((uint64_t)FLAT_BLOCKS * sizeof(uint32_t));
}

static size_t slots_off(void)
{
	return hdr_off() + page_up((uint64_t)FLAT_HDR_ELEMS * FLAT_BLOCKS_VALUE);
}

static size_t cnt_off(uint8_t bits)
{
	return slots_off() + page_up(((uint64_t)1 << bits) * sizeof(struct flat_slot));
}

int flatmem_open(struct flatmem *m, uint8_t slot_bits, const struct flatmem_opts *o)
{
	struct flatmem_opts d = o ? *o : (struct flatmem_opts){ 0 };
	int ret;

	memset(m, 0, sizeof(*m));
	if (slot_bits > 30)
		return -EINVAL;
	m->slot_bits = slot_bits;
	m->shared = d.shared;
	m->fixed_bytes =
		cnt_off(slot_bits) + page_up(((uint64_t)1 << slot_bits) * sizeof(uint64_t));
	m->fixed =
		mmap(NULL, m->fixed_bytes, PROT_READ | PROT_WRITE,
		     (d.shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m->fixed == MAP_FAILED) {
		m->fixed = NULL;
		return -errno;
	}
	/* Chunk numbers are at most FLAT_BLOCKS (tables.c caps them there too). */
	ret = pool_reserve(&m->pool[FLAT_POOL_CHUNKS], FLAT_CHUNK_ENTRIES * sizeof(uint32_t),
			   FLAT_BLOCKS, d.chunk_step ? d.chunk_step : 4, d.shared);
	if (!ret)
		ret = pool_reserve(&m->pool[FLAT_POOL_EXT], sizeof(struct flat_ext),
				   d.ext_ceiling ? d.ext_ceiling : 1u << 20,
				   d.ext_step ? d.ext_step : 512, d.shared);
	if (!ret && d.chunk_ceiling)
		m->pool[FLAT_POOL_CHUNKS].ceiling = d.chunk_ceiling;
	if (!ret)
		ret = pool_map(&m->pool[FLAT_POOL_CHUNKS], d.chunks);
	if (!ret)
		ret = pool_map(&m->pool[FLAT_POOL_EXT], d.ext);
	if (ret) {
		flatmem_close(m);
		return ret;
	}
	m->mem = (struct flat_mem){ .grow = table_grow, .ctx = m };
	return 0;
}

void flatmem_close(struct flatmem *m)
{
	for (int k = 0; k < FLAT_POOL_IDS; k++)
		pool_release(&m->pool[k]);
	if (m->fixed)
		munmap(m->fixed, m->fixed_bytes);
	m->fixed = NULL;
}

void flatmem_area(const struct flatmem *m, struct flat_area *a)
{
	char *f = m->fixed;

	*a = (struct flat_area){
		.blocks = (uint32_t *)f,
		.hdr = (struct flat_hdr *)(f + hdr_off()),
		.chunks = (uint32_t *)m->pool[FLAT_POOL_CHUNKS].base,
		.ext = (struct flat_ext *)m->pool[FLAT_POOL_EXT].base,
		.slots = (struct flat_slot *)(f + slots_off()),
		.cnt = (uint64_t *)(f + cnt_off(m->slot_bits)),
		.chunk_cap = m->pool[FLAT_POOL_CHUNKS].cap,
		.ext_cap = m->pool[FLAT_POOL_EXT].cap,
		.slot_bits = m->slot_bits,
	};
}

void flatmem_wipe(struct flatmem *m)
{
	memset(m->fixed, 0, m->fixed_bytes);
}

int flatmem_follow(struct flatmem *m)
{
	struct flat_area a;
	uint32_t chunks, ext;
	uint8_t bits;
	int ret;

	flatmem_area(m, &a);
	flat_area_need(a.hdr, &chunks, &ext, &bits);
	if (bits && bits != m->slot_bits)
		return -EPROTO;
	ret = pool_map(&m->pool[FLAT_POOL_CHUNKS], chunks);
	return ret ? ret : pool_map(&m->pool[FLAT_POOL_EXT], ext);
}

int flatmem_ids_open(struct flatmem_ids *x, uint32_t ceiling, bool shared)
{
	int ret;

	memset(x, 0, sizeof(*x));
	x->shared = shared;
	ret = pool_reserve(&x->pool, sizeof(struct flat_rule), ceiling, 64, shared);
	if (ret)
		return ret;
	x->mem = (struct flat_mem){ .grow = ids_grow, .ctx = x };
	flat_ids_attach(&x->ids, x->pool.base, 0, &x->mem);
	return 0;
}

int flatmem_ids_grow(struct flatmem_ids *x, uint32_t n)
{
	int ret = pool_map(&x->pool, n);

	if (!ret)
		x->ids.n = x->pool.cap;
	return ret;
}

void flatmem_ids_close(struct flatmem_ids *x)
{
	pool_release(&x->pool);
	memset(&x->ids, 0, sizeof(x->ids));
}
