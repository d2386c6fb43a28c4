// SPDX-License-Identifier: GPL-2.0
/* The flat tables as this process maps them; see tables.h. */
#include <stddef.h>
#include <sys/mman.h>

#include "tables.h"

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
