// SPDX-License-Identifier: GPL-2.0
/* The flat tables as this process maps them; see tables.h. */
#include <errno.h>
#include <stddef.h>
#include <sys/mman.h>

#include <bpf/bpf.h>

#include "tables.h"
#include "trie.h"

void *tables_mmap(int map_fd, uint64_t bytes)
{
	void *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, map_fd, 0);

	return mem == MAP_FAILED ? NULL : mem;
}

void tables_munmap(void *mem, uint64_t bytes)
{
	if (mem)
		munmap(mem, bytes);
}

static struct tables_family *family_of(struct tables *t, int family)
{
	return &t->fam[family == AF_INET ? 0 : 1];
}

/* Undo a whole or half-made mapping of one family. */
static void family_unmap(struct tables_family *tf)
{
	for (int i = 0; i < IPBLOCK_FLAT_MAPS; i++)
		tables_munmap(tf->mem[i], tf->bytes[i]);
	*tf = (struct tables_family){};
}

/* The tries alone: one top entry per set sends every region to them. */
static int send_all_to_trie(const struct pins *p, int family)
{
	__u64 ask_trie = ~0ull;
	__u32 zero = 0;

	if (bpf_map_update_elem(pins_flat_fd(p, family, IPBLOCK_FLAT_TOP), &zero, &ask_trie,
				BPF_ANY) ||
	    bpf_map_update_elem(pins_flat_fd(p, family, IPBLOCK_FLAT_TOP_B), &zero, &ask_trie,
				BPF_ANY))
		return -errno;
	return 0;
}

/* mmap() family's maps, checking they have the sizes the tries' capacity gives. */
static int map_family(struct tables_family *tf, const struct pins *p, int family)
{
	uint32_t cap, n[IPBLOCK_FLAT_MAPS];
	int ret = pins_capacity(p, family, &cap);

	if (!ret)
		ret = pins_flat_entries(family, cap, PINS_LOOKUP_FLAT, n, tf->bytes);
	if (!ret)
		ret = flat_sizes(family, cap, &tf->sz);
	for (int i = 0; i < IPBLOCK_FLAT_MAPS && !ret; i++) {
		enum ipblock_map m =
			(family == AF_INET ? IPBLOCK_MAP_FLAT4_TOP : IPBLOCK_MAP_FLAT6_TOP) + i;
		uint32_t have = 0;

		ret = pins_entries(p, m, &have);
		if (!ret && have != n[i])
			ret = -EPROTO;
		if (!ret) {
			tf->mem[i] = tables_mmap(p->fd[m], tf->bytes[i]);
			if (!tf->mem[i])
				ret = -errno;
		}
	}
	return ret;
}

/* Attach a struct flat to each set's memory; each asks its set's trie for parents. */
static int attach_family(struct tables_family *tf, const struct pins *p, int family)
{
	int ret = 0;

	flat_ids_attach(&tf->ids, tf->mem[IPBLOCK_FLAT_IDS], tf->sz.ids_elems);
	for (int s = 0; s < 2 && !ret; s++) {
		tf->trie_fd[s] = pins_trie_fd(p, s, family);
		ret = flat_attach(&tf->t[s], family, &tf->sz,
				  tf->mem[s ? IPBLOCK_FLAT_TOP_B : IPBLOCK_FLAT_TOP],
				  tf->mem[s ? IPBLOCK_FLAT_DATA_B : IPBLOCK_FLAT_DATA], &tf->ids,
				  (unsigned int)s, trie_parent, &tf->trie_fd[s]);
	}
	return ret;
}

int tables_map(struct tables *t, const struct pins *p, int family, struct tables_family **out)
{
	struct tables_family *tf = family_of(t, family);
	uint32_t top = 0;
	int ret;

	*out = NULL;
	if (tf->mapped || tf->trie_only) {
		*out = tf->mapped ? tf : NULL;
		return 0;
	}
	ret = pins_entries(p, family == AF_INET ? IPBLOCK_MAP_FLAT4_TOP : IPBLOCK_MAP_FLAT6_TOP,
			   &top);
	if (ret)
		return ret;
	if (top == 1) {
		ret = send_all_to_trie(p, family);
		tf->trie_only = !ret;
		return ret;
	}
	ret = map_family(tf, p, family);
	if (!ret)
		ret = attach_family(tf, p, family);
	if (ret) {
		family_unmap(tf);
		return ret;
	}
	tf->mapped = true;
	*out = tf;
	return 0;
}

struct tables_family *tables_on(struct tables *t, int family)
{
	struct tables_family *tf = family_of(t, family);

	return tf->mapped ? tf : NULL;
}

void tables_release(struct tables *t)
{
	for (int f = 0; f < 2; f++)
		family_unmap(&t->fam[f]);
	t->damaged = false;
}

int tables_info(struct tables *t, const struct pins *p, int family, int set,
		struct tables_info *out)
{
	struct tables_family *tf;
	struct flat_stats st;
	int ret = tables_map(t, p, family, &tf);

	if (ret)
		return ret;
	if (!tf)
		return -EOPNOTSUPP;
	flat_stats(&tf->t[set ? 1 : 0], &st);
	*out = (struct tables_info){
		.long_rules = st.long_rules - st.missing,
		.fallback_regions = st.fallback_regions,
		.ext_regions = st.ext_regions,
		.split_regions = st.split_regions,
		.nodes = st.nodes,
		.mixed_blocks = st.mixed_blocks,
		.blocks = st.blocks,
	};
	for (uint32_t i = 1; i < tf->ids.n; i++)
		out->ids_used += tf->ids.rules[i].sets != 0;
	return 0;
}
