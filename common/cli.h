/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What both command-line tools share: an option table declared as data with
 * the usage text generated from it, one-sentence error reporting, privilege
 * and bpffs checks, and opening the pinned maps with a sentence per failure.
 */
#ifndef IPBLOCK_CLI_H
#define IPBLOCK_CLI_H

#include <getopt.h> /* optarg, optind for the mains */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "cidr.h"
#include "pins.h"

/*
 * Exit codes of both tools, documented in the README and in -h: scripts
 * (fail2ban actions, the CrowdSec bouncer) tell the cases apart by them.
 */
enum cli_exit {
	CLI_EXIT_OK = 0,	 /* done (also: deleting what is not there) */
	CLI_EXIT_INPUT = 1,	 /* bad option, prefix, list or interface: nothing changed */
	CLI_EXIT_NOT_LOADED = 2, /* no usable maps at the pin directory, or not attached */
	CLI_EXIT_CAPACITY = 3,	 /* a rule map is full: nothing changed */
	CLI_EXIT_PERM = 4,	 /* not root, or the kernel refused permission */
	CLI_EXIT_FAIL = 5,	 /* anything else: kernel error, maps of another version, I/O */
};

/* The exit-code table as lines for -h. */
#define CLI_EXIT_HELP                                                                              \
	"Exit codes: 0 done (deleting an absent rule too), 1 bad input (nothing changed),\n"       \
	"2 not loaded (no maps pinned, or not attached), 3 a rule map is full (nothing\n"           \
	"changed), 4 not permitted (not root), 5 any other failure."

/*
 * The exit code for a failure -err of a command: -ENOSPC/-E2BIG capacity,
 * -EPERM/-EACCES not permitted, -ENOENT not loaded, -EINVAL/-ENODEV/
 * -ENOTDIR/-EEXIST/-EBUSY/-ENODATA bad input, anything else a failure.  0 for 0.
 */
int cli_exit_code(int err);

struct cli_opt {
	const char *long_name;
	int short_name;	      /* a letter, or a value >= 256 for long-only options */
	const char *arg_name; /* NULL: the option takes no argument */
	const char *help;
};

/* Print the usage text generated from opts (terminated by a zeroed entry). */
void cli_usage(FILE *f, const char *synopsis, const char *about, const struct cli_opt *opts);

/*
 * getopt_long() over opts.  Returns the option's short_name, -1 at the end,
 * or '?' after printing a sentence for an unknown option or missing argument.
 */
int cli_getopt(int argc, char **argv, const struct cli_opt *opts);

/* Print "PROG: MESSAGE" on stderr. */
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print "PROG: note: MESSAGE" on stderr (a notice that changes no outcome). */
void cli_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Route libbpf's and libxdp's messages: warnings only, everything when verbose. */
void cli_set_verbose(bool verbose);

/* 0 when running as root, else a sentence and -EPERM. */
int cli_require_root(void);

/* Parse a decimal number within [min, max]; a sentence and -EINVAL otherwise. */
int cli_parse_u32(const char *opt, const char *s, uint32_t min, uint32_t max, uint32_t *out);

/* Whether path lies on a mounted BPF filesystem. */
bool cli_on_bpffs(const char *path);

/*
 * Open the pinned maps at pin_dir; on failure print the sentence that tells
 * the user what to do (not loaded, other layout, no permission) and return
 * the -errno.
 */
int cli_open_maps(const char *pin_dir, struct pins *p);

/*
 * Parse a prefix given on the command line: on error print the parser's
 * sentence and return -EINVAL.  When host bits were cleared or an
 * IPv4-mapped prefix became an IPv4 one, note (notelen bytes) gets the
 * sentence to show once the change succeeded; otherwise it is emptied.
 */
int cli_parse_prefix(const char *text, struct cidr *out, char *note, size_t notelen);

/*
 * The one sentence for maps another ipblock version made: "WHAT (made by
 * another ipblock version): ...what to do..." naming pin_dir.
 */
void cli_err_other_version(const char *what, const char *pin_dir);

/*
 * A change of the rules failed with err: "PREFIX: why." on stderr, PREFIX
 * from fmt ("cannot add 192.0.2.0/24"); for -EPROTO (tables of another
 * version) the sentence of cli_err_other_version().
 */
void cli_err_change(int err, const char *pin_dir, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Print the verdict counters, one line each, with the given indent. */
void cli_print_counters(FILE *f, const char *indent, const struct pins *p);

/* One interface's counters c[IPBLOCK_STAT_MAX] on one line: "dropped N packets (B bytes), passed N". */
void cli_print_counter_line(FILE *f, const char *indent, const struct ipblock_counter *c);

#endif /* IPBLOCK_CLI_H */
