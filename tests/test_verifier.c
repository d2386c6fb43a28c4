// SPDX-License-Identifier: GPL-2.0
/*
 * The running kernel offers what ipblock needs, and its verifier accepts
 * the XDP program with a wide margin:
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
#include "kfeatures.h"
#include "pins.h"
#include "verifier.h"

#define VERIFIER_BUDGET 200000
#define VERIFIER_LIMIT	1000000

static char log_buf[VERIFIER_LOG_SIZE];

/* What Linux 6.1 wrote at log level 4 for the program before its probes were global. */
static const char too_large_log[] =
	"BPF program is too large. Processed 1000001 insn\n"
	"verification time 7243955 usec\n"
	"stack depth 128\n"
	"processed 1000001 insns (limit 1000000) max_states_per_insn 63 total_states 27591 "
	"peak_states 4216 mark_read 248\n";

/* ... and for a read of the packet without a bounds check. */
static const char bad_access_log[] =
	"invalid access to packet, off=0 size=4, R1(id=0,off=0,r=0)\n"
	"R1 offset is outside of the packet\n"
	"verification time 85 usec\n"
	"stack depth 0\n"
	"processed 2 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 "
	"mark_read 0\n";

/* ... and for a program it accepted. */
static const char accepted_log[] =
	"verification time 162570 usec\n"
	"stack depth 128+0+0+0+0\n"
	"processed 104555 insns (limit 1000000) max_states_per_insn 20 total_states 1297 "
	"peak_states 859 mark_read 0\n";

static void test_reason_of_too_large_names_the_count(void **state)
{
	char why[256];

	(void)state;
	assert_int_equal(verifier_insns(too_large_log), 1000001);
	assert_int_equal(verifier_reason(too_large_log, why, sizeof(why)), 0);
	assert_string_equal(why,
			    "too large: 1000001 instructions processed, over the limit of 1000000");
}

static void test_reason_of_other_rejection_is_its_error_lines(void **state)
{
	char why[256];

	(void)state;
	assert_int_equal(verifier_reason(bad_access_log, why, sizeof(why)), 0);
	assert_string_equal(why, "invalid access to packet, off=0 size=4, R1(id=0,off=0,r=0); "
				 "R1 offset is outside of the packet");
	/* A short buffer gets a cut sentence, never an overrun. */
	assert_int_equal(verifier_reason(bad_access_log, why, 20), 0);
	assert_int_equal(strlen(why), 19);
}

static void test_accepted_or_empty_log_has_no_reason(void **state)
{
	char why[64];

	(void)state;
	assert_int_equal(verifier_insns(accepted_log), 104555);
	assert_int_equal(verifier_reason(accepted_log, why, sizeof(why)), -ENOENT);
	assert_int_equal(verifier_reason("", why, sizeof(why)), -ENOENT);
	assert_int_equal(verifier_insns(""), -1);
}

/* This kernel has what ipblock needs (the host and every guest of the matrix do). */
static void test_kernel_has_the_features_ipblock_needs(void **state)
{
	char why[256] = "";

	(void)state;
	if (kfeatures_check(why, sizeof(why)))
		fail_msg("%s", why);
}

static void test_release_below_the_minimum_is_refused(void **state)
{
	(void)state;
	assert_false(kfeatures_release_ok("4.19.0-27-amd64"));
	assert_false(kfeatures_release_ok("5.4.0-150-generic"));
	assert_false(kfeatures_release_ok("5.9.16"));
	assert_true(kfeatures_release_ok("5.10.0-33-amd64"));
	assert_true(kfeatures_release_ok("5.15.0-1-generic"));
	assert_true(kfeatures_release_ok("6.1.0-57-amd64"));
	assert_true(kfeatures_release_ok("10.0"));
	/* An unknown scheme leaves the decision to the probes. */
	assert_true(kfeatures_release_ok("custom"));
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
	assert_int_equal(pins_obj_size(skel->obj, 1024), 0);
	/* Level 4: statistics only; a full log takes minutes in an emulated guest. */
	bpf_program__set_log_level(skel->progs.ipblock_xdp, VERIFIER_LOG_STATS);
	bpf_program__set_log_buf(skel->progs.ipblock_xdp, log_buf, sizeof(log_buf));
	ret = ipblock_bpf__load(skel);
	insns = verifier_insns(log_buf);
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
		cmocka_unit_test(test_reason_of_too_large_names_the_count),
		cmocka_unit_test(test_reason_of_other_rejection_is_its_error_lines),
		cmocka_unit_test(test_accepted_or_empty_log_has_no_reason),
		cmocka_unit_test(test_release_below_the_minimum_is_refused),
		cmocka_unit_test(test_kernel_has_the_features_ipblock_needs),
		cmocka_unit_test(test_program_verifies_within_budget),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
