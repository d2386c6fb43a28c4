/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What ipblock needs of the running kernel, checked before anything is
 * created: one probe per feature, and a sentence naming the first one
 * missing.  Each probe creates a throw-away map or BTF object and closes
 * it again, so checking changes nothing.
 */
#ifndef IPBLOCK_KFEATURES_H
#define IPBLOCK_KFEATURES_H

#include <stdbool.h>
#include <stddef.h>

/* The oldest kernel ipblock supports (README, "Kernels"). */
#define KFEATURES_MIN_KERNEL_MAJOR 5
#define KFEATURES_MIN_KERNEL_MINOR 10
#define KFEATURES_MIN_KERNEL	   "5.10"

/*
 * 0 when the kernel offers everything the XDP program and the tools use;
 * otherwise a sentence in why (whylen bytes) naming what is missing, and
 * -EOPNOTSUPP (or -EPERM when BPF is not permitted at all).
 */
int kfeatures_check(char *why, size_t whylen);

/* Whether a kernel release ("6.1.0-57-amd64") is at least the minimum. */
bool kfeatures_release_ok(const char *release);

#endif /* IPBLOCK_KFEATURES_H */
