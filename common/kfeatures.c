// SPDX-License-Identifier: GPL-2.0
/* Probes of the kernel features ipblock needs. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include "kfeatures.h"

bool kfeatures_release_ok(const char *release)
{
	int major = 0, minor = 0;

	if (sscanf(release, "%d.%d", &major, &minor) != 2)
		return true; /* an unknown scheme: the probes decide */
	return major > KFEATURES_MIN_KERNEL_MAJOR ||
	       (major == KFEATURES_MIN_KERNEL_MAJOR && minor >= KFEATURES_MIN_KERNEL_MINOR);
}

/* An array map the tools can mmap() (BPF_F_MMAPABLE, Linux 5.5). */
static int probe_mmapable_array(void)
{
	LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_MMAPABLE);
	long page = sysconf(_SC_PAGESIZE);
	int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, NULL, 4, 8, 1, &opts);
	void *mem;

	if (fd < 0)
		return -errno;
	mem = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (mem == MAP_FAILED)
		return -EOPNOTSUPP;
	munmap(mem, (size_t)page);
	return 0;
}

/* BTF objects (the program's global functions are checked through them). */
static int probe_btf(void)
{
	struct btf *btf = btf__new_empty();
	int ret;

	if (!btf)
		return -ENOMEM;
	ret = btf__add_int(btf, "int", 4, BTF_INT_SIGNED);
	if (ret > 0)
		ret = btf__load_into_kernel(btf);
	btf__free(btf);
	return ret < 0 ? ret : 0;
}

int kfeatures_check(char *why, size_t whylen)
{
	struct utsname u;
	int ret;

	ret = libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_XDP, NULL);
	if (ret <= 0) {
		if (ret == -EPERM) {
			snprintf(why, whylen,
				 "the kernel does not permit BPF here (unprivileged, or locked "
				 "down)");
			return -EPERM;
		}
		snprintf(why, whylen,
			 "the kernel cannot run XDP programs (built without BPF or XDP)");
		return -EOPNOTSUPP;
	}
	if (libbpf_probe_bpf_map_type(BPF_MAP_TYPE_LPM_TRIE, NULL) <= 0) {
		snprintf(why, whylen, "the kernel has no BPF LPM trie maps (Linux 4.11)");
		return -EOPNOTSUPP;
	}
	if (libbpf_probe_bpf_map_type(BPF_MAP_TYPE_ARRAY_OF_MAPS, NULL) <= 0) {
		snprintf(why, whylen, "the kernel has no BPF map-in-map arrays (Linux 4.12)");
		return -EOPNOTSUPP;
	}
	if (probe_mmapable_array()) {
		snprintf(why, whylen,
			 "the kernel cannot memory-map BPF arrays (BPF_F_MMAPABLE, Linux 5.5)");
		return -EOPNOTSUPP;
	}
	if (probe_btf()) {
		snprintf(why, whylen,
			 "the kernel does not accept BTF type information (CONFIG_DEBUG_INFO_BTF "
			 "or Linux 5.x missing)");
		return -EOPNOTSUPP;
	}
	/*
	 * Global BPF functions (5.6) and bounded loops (5.3) show only when
	 * the program is verified; below the oldest kernel tested, say so
	 * before trying.
	 */
	if (!uname(&u) && !kfeatures_release_ok(u.release)) {
		snprintf(why, whylen,
			 "Linux %s is older than %s, the oldest kernel whose verifier ipblock "
			 "is tested against",
			 u.release, KFEATURES_MIN_KERNEL);
		return -EOPNOTSUPP;
	}
	return 0;
}
