// SPDX-License-Identifier: GPL-2.0
/* Shared command-line plumbing of ipblock-loader and ipblock-rule. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/vfs.h>
#include <linux/magic.h>

#include <bpf/libbpf.h>
#include <xdp/libxdp.h>

#include "cli.h"

#define CLI_MAX_OPTS 32

static bool cli_verbose;

static void vreport(const char *tag, const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: %s", program_invocation_short_name, tag);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void cli_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport("", fmt, ap);
	va_end(ap);
}

void cli_note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport("note: ", fmt, ap);
	va_end(ap);
}

int cli_exit_code(int err)
{
	switch (err) {
	case 0:
		return CLI_EXIT_OK;
	case -ENOSPC:
	case -E2BIG:
		return CLI_EXIT_CAPACITY;
	case -EPERM:
	case -EACCES:
		return CLI_EXIT_PERM;
	case -ENOENT:
		return CLI_EXIT_NOT_LOADED;
	case -EINVAL:
	case -ENOTDIR:
	case -ENODEV:
	case -EEXIST:
	case -EBUSY:
	case -ENODATA:
		return CLI_EXIT_INPUT;
	default:
		return CLI_EXIT_FAIL;
	}
}

void cli_usage(FILE *f, const char *synopsis, const char *about, const struct cli_opt *opts)
{
	fprintf(f, "Usage: %s %s\n%s\n\nOptions:\n", program_invocation_short_name, synopsis,
		about);
	for (const struct cli_opt *o = opts; o->long_name; o++) {
		char left[64];
		int n = 0;

		if (o->short_name < 256)
			n = snprintf(left, sizeof(left), "-%c, ", o->short_name);
		else
			n = snprintf(left, sizeof(left), "    ");
		snprintf(left + n, sizeof(left) - n, "--%s%s%s", o->long_name,
			 o->arg_name ? " " : "", o->arg_name ? o->arg_name : "");
		fprintf(f, "  %-28s %s\n", left, o->help);
	}
}

int cli_getopt(int argc, char **argv, const struct cli_opt *opts)
{
	static struct option longopts[CLI_MAX_OPTS + 1];
	static char shortopts[CLI_MAX_OPTS * 2 + 2];
	static const struct cli_opt *built;

	if (built != opts) {
		size_t i = 0, s = 0;

		/* ':' first: a missing argument returns ':' rather than '?'. */
		shortopts[s++] = ':';
		for (; opts[i].long_name && i < CLI_MAX_OPTS; i++) {
			longopts[i] =
				(struct option){ opts[i].long_name,
						 opts[i].arg_name ? required_argument : no_argument,
						 NULL, opts[i].short_name };
			if (opts[i].short_name < 256) {
				shortopts[s++] = (char)opts[i].short_name;
				if (opts[i].arg_name)
					shortopts[s++] = ':';
			}
		}
		longopts[i] = (struct option){};
		shortopts[s] = '\0';
		built = opts;
		opterr = 0;
	}

	int c = getopt_long(argc, argv, shortopts, longopts, NULL);

	if (c == ':') {
		cli_err("option '%s' needs an argument; see --help.", argv[optind - 1]);
		return '?';
	}
	if (c == '?') {
		if (optopt && optopt < 256)
			cli_err("unknown option '-%c'; see --help.", optopt);
		else
			cli_err("unknown option '%s'; see --help.", argv[optind - 1]);
	}
	return c;
}

static int print_libbpf(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	/* Without -v our own sentence says what failed; libbpf's detail is noise. */
	(void)level;
	if (!cli_verbose)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

static int print_libxdp(enum libxdp_print_level level, const char *fmt, va_list ap)
{
	(void)level;
	if (!cli_verbose)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

void cli_set_verbose(bool verbose)
{
	cli_verbose = verbose;
	libbpf_set_print(print_libbpf);
	libxdp_set_print(print_libxdp);
}

int cli_require_root(void)
{
	if (geteuid() == 0)
		return 0;
	cli_err("must run as root (it changes BPF maps and XDP programs).");
	return -EPERM;
}

int cli_parse_u32(const char *opt, const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	if (*s < '0' || *s > '9')
		goto bad;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		goto bad;
	*out = (uint32_t)v;
	return 0;
bad:
	cli_err("%s '%s' is not a number from %u to %u.", opt, s, min, max);
	return -EINVAL;
}

bool cli_on_bpffs(const char *path)
{
	struct statfs st;

	return statfs(path, &st) == 0 && st.f_type == BPF_FS_MAGIC;
}

int cli_open_maps(const char *pin_dir, struct pins *p)
{
	char err[512] = "";
	int ret = pins_open(pin_dir, p, err, sizeof(err));
	size_t found = 0;

	switch (ret) {
	case 0:
		return 0;
	case -ENOENT:
		if (pins_present(pin_dir, &found, err, sizeof(err)) || found)
			cli_err("%s holds only some of ipblock's maps; detach ipblock from every "
				"interface, remove the directory and attach again.",
				pin_dir);
		else if (!access(pin_dir, F_OK) && !cli_on_bpffs(pin_dir))
			cli_err("ipblock is not loaded: run ipblock-loader -d IFACE (or --create) "
				"first (%s is not on a BPF filesystem).",
				pin_dir);
		else
			cli_err("ipblock is not loaded: run ipblock-loader -d IFACE (or --create) "
				"first.");
		break;
	case -EPROTO:
		cli_err_other_version(err, pin_dir);
		break;
	case -EPERM:
	case -EACCES:
		cli_err("permission denied opening the maps in %s: run as root.", pin_dir);
		break;
	default:
		cli_err("cannot open the maps in %s: %s.", pin_dir, strerror(-ret));
	}
	return ret;
}

int cli_parse_prefix(const char *text, struct cidr *out, char *note, size_t notelen)
{
	char err[CIDR_ERRLEN], stored[CIDR_STRLEN];
	unsigned int notes = 0;

	note[0] = '\0';
	if (cidr_parse(text, out, &notes, err, sizeof(err))) {
		cli_err("%s", err);
		return -EINVAL;
	}
	cidr_format(out, stored, sizeof(stored));
	if (notes & CIDR_NOTE_V4_MAPPED)
		snprintf(note, notelen,
			 "%s is an IPv4-mapped IPv6 prefix; it is stored as the IPv4 rule %s.",
			 text, stored);
	else if (notes & CIDR_NOTE_HOST_BITS)
		snprintf(note, notelen, "%s has host bits set; it is stored as %s.", text, stored);
	return 0;
}

void cli_print_counters(FILE *f, const char *indent, const struct pins *p)
{
	struct ipblock_counter c[IPBLOCK_STAT_MAX];

	if (pins_stats_read(p, c)) {
		fprintf(f, "%scounters: unreadable\n", indent);
		return;
	}
	/* Slots in the order an operator reads them: drops first. */
	static const enum ipblock_stat order[] = { IPBLOCK_STAT_DROP, IPBLOCK_STAT_PASS_ALLOW,
						   IPBLOCK_STAT_PASS_NOMATCH,
						   IPBLOCK_STAT_PASS_OTHER };
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		fprintf(f, "%s%-30s %12llu packets %16llu bytes\n", indent,
			pins_stat_name(order[i]), (unsigned long long)c[order[i]].packets,
			(unsigned long long)c[order[i]].bytes);
}

void cli_print_counter_line(FILE *f, const char *indent, const struct ipblock_counter *c)
{
	fprintf(f, "%sdropped %llu packets (%llu bytes); passed %llu by allow rules, %llu by no "
		   "rule, %llu unparsed\n",
		indent, (unsigned long long)c[IPBLOCK_STAT_DROP].packets,
		(unsigned long long)c[IPBLOCK_STAT_DROP].bytes,
		(unsigned long long)c[IPBLOCK_STAT_PASS_ALLOW].packets,
		(unsigned long long)c[IPBLOCK_STAT_PASS_NOMATCH].packets,
		(unsigned long long)c[IPBLOCK_STAT_PASS_OTHER].packets);
}

void cli_err_other_version(const char *what, const char *pin_dir)
{
	cli_err("%s (made by another ipblock version): save the rules with ipblock-rule -S, "
		"detach ipblock from every interface, remove %s and attach again.",
		what, pin_dir);
}

void cli_err_change(int err, const char *pin_dir, const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (err != -EPROTO) {
		cli_err("%s: %s.", what, strerror(-err));
		return;
	}
	strncat(what, ": the pinned lookup tables do not fit this build",
		sizeof(what) - strlen(what) - 1);
	cli_err_other_version(what, pin_dir);
}
