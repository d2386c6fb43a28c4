/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The flat tables as one process maps them: the maps mmap()ed and a
 * struct flat attached to each set's memory.
 */
#ifndef IPBLOCK_TABLES_H
#define IPBLOCK_TABLES_H

#include <stdint.h>

/* mmap() a BPF_F_MMAPABLE array map read-write; NULL with errno on failure. */
void *tables_mmap(int map_fd, uint64_t bytes);

/* Undo tables_mmap(); NULL is a no-op. */
void tables_munmap(void *mem, uint64_t bytes);

#endif /* IPBLOCK_TABLES_H */
