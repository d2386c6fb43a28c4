// SPDX-License-Identifier: GPL-2.0
/*
 * The running kernel's verifier accepts the XDP program with a wide margin:
 * it must not process more than VERIFIER_BUDGET instructions, a fifth of
 * the kernel's limit of 1,000,000.  Verifiers differ between kernels (Linux
 * 6.1 walks far more than 6.18 for the same object), so this test runs on
 * the host and inside every guest kernel of the matrix; a change that eats
 * the margin fails here, with the figure, before it fails to load anywhere.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include <bpf/libbpf.h>
#include <cmocka.h>

#include "ipblock.skel.h"
#include "maps.h"

#define VERIFIER_BUDGET 200000
#define VERIFIER_LIMIT	1000000

/* Large enough for the statistics lines that log level 4 writes. */
static char log_buf[64 * 1024];

/* The figure in "processed N insns (limit ...)", or -1 when absent. */
static long processed_insns(const char *log)
{
	const char *p = strstr(log, "processed ");

	return p ? strtol(p + strlen("processed "), NULL, 10) : -1;
}

static void test_program_verifies_within_budget(void **state)
{
	struct ipblock_bpf *skel = ipblock_bpf__open();
	struct utsname u;
	long insns;
	int ret;

	(void)state;
	assert_non_null(skel);
	/* Small tables: the map sizes do not change what the verifier walks. */
	assert_int_equal(maps_obj_size(skel->obj, 1024, MAPS_LOOKUP_FLAT), 0);
	/* Level 4: statistics only; a full log takes minutes in an emulated guest. */
	bpf_program__set_log_level(skel->progs.ipblock_xdp, 4);
	bpf_program__set_log_buf(skel->progs.ipblock_xdp, log_buf, sizeof(log_buf));
	ret = ipblock_bpf__load(skel);
	insns = processed_insns(log_buf);
	uname(&u);
	printf("# Linux %s: ipblock_xdp %s, %ld instructions processed (budget %d, limit %d)\n",
	       u.release, ret ? "REJECTED" : "verified", insns, VERIFIER_BUDGET, VERIFIER_LIMIT);
	if (ret)
		printf("# verifier: %s\n", log_buf);
	ipblock_bpf__destroy(skel);
	assert_int_equal(ret, 0);
	assert_true(insns > 0);
	assert_true(insns <= VERIFIER_BUDGET);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_program_verifies_within_budget),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
