// SPDX-License-Identifier: GPL-2.0
/* ipblock-loader: attach, detach and report ipblock's XDP program. */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/libxdp.h>

#include "cli.h"
#include "config.h"
#include "ipblock.skel.h"
#include "kfeatures.h"
#include "stacktrace.h"
#include "tables.h"
#include "trie.h"
#include "verifier.h"

#define BPFFS_ROOT "/sys/fs/bpf"

enum { OPT_PIN_DIR = 256, OPT_MAX_RULES, OPT_LOOKUP, OPT_CHECK_CONFIG, OPT_CREATE };

static const struct cli_opt options[] = {
	{ "dev", 'd', "IFACE", "interface to attach to (or detach from, with -u)" },
	{ "unload", 'u', NULL, "detach from IFACE; the rules stay pinned" },
	{ "mode", 'm', "MODE", "attach mode: native (default, falls back to skb) or skb" },
	{ "status", 's', NULL,
	  "show interfaces, modes, program ids, rule counts, counters; exit 2 unless the maps "
	  "are pinned and the program attached (to IFACE, with -d)" },
	{ "create", OPT_CREATE, NULL,
	  "create and pin the maps without attaching (rules can be staged first); pinned "
	  "maps are kept" },
	{ "pin-dir", OPT_PIN_DIR, "DIR",
	  "where the maps are pinned (" IPBLOCK_PIN_DIR_DEFAULT ")" },
	{ "max-rules", OPT_MAX_RULES, "N",
	  "ceiling of rules per family, set when the maps are created (default 4000000; "
	  "memory follows the rules, not the ceiling)" },
	{ "lookup", OPT_LOOKUP, "KIND",
	  "flat, the only lookup there is (accepted for old scripts)" },
	{ "check-config", OPT_CHECK_CONFIG, "FILE",
	  "check a configuration file (ipblock.conf(5)) and change nothing" },
	{ "verbose", 'v', NULL, "show libbpf/libxdp messages (the verifier log too)" },
	{ "help", 'h', NULL, "show this help" },
	{},
};

struct loader_opts {
	const char *dev;
	const char *pin_dir;
	const char *check_config; /* a file to check, and nothing else */
	bool unload, status, create, verbose;
	bool mode_forced;
	enum xdp_attach_mode mode;
	uint32_t max_rules; /* 0: keep the pinned maps' or the default */
};

static const char *mode_name(enum xdp_attach_mode m)
{
	switch (m) {
	case XDP_MODE_NATIVE:
		return "native";
	case XDP_MODE_SKB:
		return "skb";
	case XDP_MODE_HW:
		return "hw";
	default:
		return "unknown";
	}
}

/* The ipblock program attached to ifindex, if any (caller closes mp). */
static struct xdp_program *find_ipblock(int ifindex, struct xdp_multiprog **mpp)
{
	struct xdp_multiprog *mp = xdp_multiprog__get_from_ifindex(ifindex);
	struct xdp_program *p;

	*mpp = NULL;
	if (libxdp_get_error(mp) || !mp)
		return NULL;
	*mpp = mp;
	if (xdp_multiprog__is_legacy(mp)) {
		p = xdp_multiprog__main_prog(mp);
		return p && !strcmp(xdp_program__name(p), IPBLOCK_PROG_NAME) ? p : NULL;
	}
	for (p = xdp_multiprog__next_prog(NULL, mp); p; p = xdp_multiprog__next_prog(p, mp))
		if (!strcmp(xdp_program__name(p), IPBLOCK_PROG_NAME))
			return p;
	return NULL;
}

/* Make sure the pin directory can hold pins: bpffs mounted, directory made. */
static int prepare_pin_dir(const char *pin_dir, bool *created)
{
	*created = false;
	if (!strncmp(pin_dir, BPFFS_ROOT "/", sizeof(BPFFS_ROOT)) && !cli_on_bpffs(BPFFS_ROOT)) {
		if (mount("bpf", BPFFS_ROOT, "bpf", 0, "mode=0700")) {
			cli_err("cannot mount the BPF filesystem on %s: %s.", BPFFS_ROOT,
				strerror(errno));
			return -errno;
		}
	}
	if (mkdir(pin_dir, 0700) == 0) {
		*created = true;
	} else if (errno != EEXIST) {
		cli_err("cannot create the pin directory %s: %s.", pin_dir, strerror(errno));
		return -errno;
	}
	if (!cli_on_bpffs(pin_dir)) {
		cli_err("%s is not on a BPF filesystem (mount one with: mount -t bpf bpf DIR).",
			pin_dir);
		if (*created)
			rmdir(pin_dir);
		return -ENOTDIR;
	}
	return 0;
}

/*
 * Check the pins already there.  Returns 1 when all of them exist and match,
 * 0 when none exist, or a negative error after printing what to do.  The
 * existing tries' capacity goes into *pinned_max.
 */
static int check_pins(const struct loader_opts *cfg, uint32_t *pinned_max)
{
	char err[512] = "";
	size_t found;
	int ret = pins_present(cfg->pin_dir, &found, err, sizeof(err));

	if (ret == -EPROTO) {
		cli_err_other_version(err, cfg->pin_dir);
		return ret;
	}
	if (ret) {
		cli_err("%s.", err);
		return ret;
	}
	if (found == 0)
		return 0;
	if (found != IPBLOCK_MAP_COUNT) {
		cli_err("%s holds only some of ipblock's maps (made by another version of ipblock, "
			"or some removed by hand?); save the rules with the ipblock-rule that made "
			"them (-S), detach it, remove the directory, attach again and restore them "
			"(-R).",
			cfg->pin_dir);
		return -EPROTO;
	}

	struct pins m;

	ret = pins_open(cfg->pin_dir, &m, err, sizeof(err));
	if (!ret)
		ret = pins_capacity(&m, AF_INET, pinned_max);
	pins_close(&m);
	if (ret) {
		cli_err("cannot read the pinned maps in %s: %s.", cfg->pin_dir, strerror(-ret));
		return ret;
	}
	return 1;
}

/* Remove the pins this run created (attach failed: leave nothing half-done). */
static void unpin_created(const char *pin_dir, bool dir_created)
{
	pins_unlink(pin_dir);
	if (dir_created)
		rmdir(pin_dir);
}

/*
 * The verifier's log of the last load try_attach() made (statistics and
 * error lines only; with -v libbpf prints the whole log instead).
 */
static char verifier_log[VERIFIER_LOG_SIZE];

static int try_attach(const struct loader_opts *cfg, int ifindex, enum xdp_attach_mode mode,
		      uint32_t max_rules, uint32_t *prog_id)
{
	struct ipblock_bpf *skel = ipblock_bpf__open();
	struct xdp_program *prog;
	int ret;

	if (!skel)
		return -errno;
	/* Pinned maps are reused as they are; new ones get these sizes. */
	ret = pins_obj_pin(skel->obj, cfg->pin_dir);
	if (!ret)
		ret = pins_obj_size(skel->obj, max_rules);
	if (ret)
		goto out;
	/*
	 * libxdp loads the program (into its dispatcher, or alone) and, when
	 * that fails, may fall back to another way whose error hides the
	 * verifier's: keep the verifier's own words.
	 */
	verifier_log[0] = '\0';
	if (!cfg->verbose) {
		bpf_program__set_log_level(skel->progs.ipblock_xdp, VERIFIER_LOG_STATS);
		bpf_program__set_log_buf(skel->progs.ipblock_xdp, verifier_log,
					 sizeof(verifier_log));
	}

	prog = xdp_program__from_bpf_obj(skel->obj, "xdp");
	ret = libxdp_get_error(prog);
	if (ret)
		goto out;
	ret = xdp_program__attach(prog, ifindex, mode, 0);
	if (!ret)
		*prog_id = xdp_program__id(prog);
	xdp_program__close(prog);
out:
	ipblock_bpf__destroy(skel);
	return ret;
}

/* --max-rules against the capacity of maps already pinned: a sentence and -EEXIST if it differs. */
static int check_max_rules(const struct loader_opts *cfg, uint32_t pinned_max)
{
	if (!cfg->max_rules || cfg->max_rules == pinned_max)
		return 0;
	cli_err("the pinned maps hold at most %u rules per family; --max-rules %u needs new "
		"maps: save the rules, detach from every interface, remove %s, attach again.",
		pinned_max, cfg->max_rules, cfg->pin_dir);
	return -EEXIST;
}

/*
 * What attaching and --create both need first: a kernel that can run
 * ipblock, the pin directory (created if missing: *dir_created), and the
 * pinned maps checked.  1 when maps of this layout are pinned
 * (*pinned_max their capacity), 0 when none are, or -errno after a
 * sentence, with nothing left behind.
 */
static int ready_pins(const struct loader_opts *cfg, uint32_t *pinned_max, bool *dir_created)
{
	char why[256];
	int pins, ret = kfeatures_check(why, sizeof(why));

	if (ret) {
		cli_err("ipblock cannot run on this kernel: %s.", why);
		return ret;
	}
	ret = prepare_pin_dir(cfg->pin_dir, dir_created);
	if (ret)
		return ret;
	pins = check_pins(cfg, pinned_max);
	if (pins < 0 && *dir_created)
		rmdir(cfg->pin_dir);
	return pins;
}

/*
 * --create: the maps made and pinned, nothing attached, so rules can be
 * staged before any interface is.  Loading the object makes and pins its
 * maps; its program goes again when the object is closed.  Pinned maps of
 * this layout are kept (running it twice is fine).
 */
static int do_create(const struct loader_opts *cfg)
{
	uint32_t pinned_max = 0, max_rules;
	struct ipblock_bpf *skel;
	bool dir_created;
	int pins, ret;

	pins = ready_pins(cfg, &pinned_max, &dir_created);
	if (pins < 0)
		return pins;
	if (pins) {
		if (check_max_rules(cfg, pinned_max))
			return -EEXIST;
		printf("ipblock's maps are already pinned in %s (at most %u rules per family); "
		       "nothing to create\n",
		       cfg->pin_dir, pinned_max);
		return 0;
	}
	max_rules = cfg->max_rules ? cfg->max_rules : IPBLOCK_MAX_RULES_DEFAULT;
	skel = ipblock_bpf__open();
	ret = skel ? 0 : -errno;
	if (!ret)
		ret = pins_obj_pin(skel->obj, cfg->pin_dir);
	if (!ret)
		ret = pins_obj_size(skel->obj, max_rules);
	if (!ret)
		ret = ipblock_bpf__load(skel);
	ipblock_bpf__destroy(skel);
	if (ret) {
		unpin_created(cfg->pin_dir, dir_created);
		cli_err("cannot create ipblock's maps in %s: %s.", cfg->pin_dir, strerror(-ret));
		return ret;
	}
	printf("created ipblock's maps in %s (at most %u rules per family); nothing attached: "
	       "ipblock-loader -d IFACE attaches\n",
	       cfg->pin_dir, max_rules);
	return 0;
}

static int do_attach(const struct loader_opts *cfg)
{
	int ifindex = if_nametoindex(cfg->dev);
	struct xdp_multiprog *mp;
	uint32_t pinned_max = 0, max_rules, prog_id = 0;
	enum xdp_attach_mode mode;
	bool dir_created;
	char why[256];
	int pins, ret;

	if (!ifindex) {
		cli_err("no interface named '%s'.", cfg->dev);
		return -ENODEV;
	}
	if (find_ipblock(ifindex, &mp)) {
		cli_err("ipblock is already attached to %s (%s mode); detach it first with -u.",
			cfg->dev, mode_name(xdp_multiprog__attach_mode(mp)));
		xdp_multiprog__close(mp);
		return -EEXIST;
	}
	if (mp && xdp_multiprog__is_legacy(mp) && xdp_multiprog__main_prog(mp)) {
		struct xdp_program *other = xdp_multiprog__main_prog(mp);

		/*
		 * A program attached without libxdp's dispatcher (loaded by
		 * another tool, or by libxdp on a kernel that refuses the
		 * dispatcher's freplace programs) cannot be chained with.
		 */
		cli_err("%s already runs XDP program '%s' (id %u) outside libxdp's multi-program "
			"dispatcher, so ipblock cannot be added beside it; detach that program "
			"first.",
			cfg->dev, xdp_program__name(other), xdp_program__id(other));
		xdp_multiprog__close(mp);
		return -EBUSY;
	}
	xdp_multiprog__close(mp);

	pins = ready_pins(cfg, &pinned_max, &dir_created);
	if (pins < 0)
		return pins;
	if (pins && check_max_rules(cfg, pinned_max))
		return -EEXIST;
	max_rules = pins ? pinned_max : cfg->max_rules ? cfg->max_rules : IPBLOCK_MAX_RULES_DEFAULT;

	mode = cfg->mode;
	ret = try_attach(cfg, ifindex, mode, max_rules, &prog_id);
	if (ret == -EOPNOTSUPP && !cfg->mode_forced && mode == XDP_MODE_NATIVE) {
		if (!pins)
			unpin_created(cfg->pin_dir, false);
		mode = XDP_MODE_SKB;
		ret = try_attach(cfg, ifindex, mode, max_rules, &prog_id);
		if (!ret)
			cli_note("%s has no native XDP support; attached in skb (generic) mode.",
				 cfg->dev);
	}
	if (ret) {
		char msg[256];

		if (!pins)
			unpin_created(cfg->pin_dir, dir_created);
		libxdp_strerror(ret, msg, sizeof(msg));
		if (!verifier_reason(verifier_log, why, sizeof(why)))
			cli_err("the kernel's verifier rejected ipblock's XDP program (%s); run "
				"with "
				"-v to see its log.",
				why);
		else if (ret == -ENOMEM && !pins)
			cli_err("the kernel could not allocate ipblock's maps (about 1.5 MiB with "
				"no rules): the machine is short of memory.");
		else if (ret == -EACCES || ret == -EINVAL)
			cli_err("the kernel refused to load or attach ipblock on %s in %s mode "
				"(%s); "
				"run with -v to see the verifier log.",
				cfg->dev, mode_name(mode), msg);
		else
			cli_err("cannot attach ipblock to %s in %s mode: %s.", cfg->dev,
				mode_name(mode), msg);
		return ret;
	}

	struct tables_memory mem = {};
	struct pins m;
	size_t v4 = 0, v6 = 0;

	if (!cli_open_maps(cfg->pin_dir, &m)) {
		trie_count(&m, &v4, &v6);
		tables_memory(&m, &mem);
		pins_close(&m);
	}
	printf("ipblock attached to %s (%s mode, program id %u); %s rules: %zu IPv4, %zu IPv6 "
	       "in %s; %.1f MiB of kernel memory\n",
	       cfg->dev, mode_name(mode), prog_id, pins ? "kept" : "new maps,", v4, v6,
	       cfg->pin_dir, mem.total / 1048576.0);
	return 0;
}

static int do_detach(const struct loader_opts *cfg)
{
	int ifindex = if_nametoindex(cfg->dev);
	struct xdp_multiprog *mp;
	struct xdp_program *prog;
	int ret;

	if (!ifindex) {
		cli_err("no interface named '%s'.", cfg->dev);
		return -ENODEV;
	}
	prog = find_ipblock(ifindex, &mp);
	if (!prog) {
		cli_err("ipblock is not attached to %s.", cfg->dev);
		xdp_multiprog__close(mp);
		return -ENOENT;
	}
	ret = xdp_program__detach(prog, ifindex, xdp_multiprog__attach_mode(mp), 0);
	xdp_multiprog__close(mp);
	if (ret) {
		char msg[256];

		libxdp_strerror(ret, msg, sizeof(msg));
		cli_err("cannot detach ipblock from %s: %s.", cfg->dev, msg);
		return ret;
	}
	printf("ipblock detached from %s; the rules stay pinned in %s (ipblock-rule -F removes "
	       "them)\n",
	       cfg->dev, cfg->pin_dir);
	return 0;
}

/* The tables of the active set, and the memory everything takes. */
static void print_tables(const struct pins *m, uint32_t cap)
{
	struct tables_memory mem;
	struct tables t = {};
	uint32_t active = 0;

	if (pins_active_set(m, &active) || tables_memory(m, &mem))
		return;
	printf("  memory: %.1f MiB of kernel memory (flat tables %.1f, tries %.1f); ceiling %u "
	       "rules per family\n",
	       mem.total / 1048576.0, mem.tables / 1048576.0, mem.tries / 1048576.0, cap);
	for (int f = 0; f < 2; f++) {
		struct tables_info in;

		if (tables_info(&t, m, f ? AF_INET6 : AF_INET, (int)active, &in))
			continue;
		printf("    %s: %u rules longer than /24 in %u regions (%u crowded, split into "
		       "%u nodes); %u of %u /16 blocks mixed; slots %u of %u, chunks %u, "
		       "records %u, ids %u\n",
		       f ? "IPv6" : "IPv4", in.long_rules, in.ext_regions, in.split_regions,
		       in.nodes, in.mixed_blocks, in.blocks, in.live_slots, in.slots, in.chunk_cap,
		       in.ext_cap, in.ids_cap);
	}
	tables_release(&t);
}

static int do_status(const struct loader_opts *cfg)
{
	struct if_nameindex *ifs = if_nameindex(), *i;
	int attached = 0;

	printf("ipblock status\n  interfaces:\n");
	for (i = ifs; i && i->if_index; i++) {
		struct xdp_multiprog *mp;
		struct xdp_program *p;

		if (cfg->dev && strcmp(cfg->dev, i->if_name))
			continue;
		p = find_ipblock(i->if_index, &mp);
		if (p) {
			printf("    %-16s %-6s program id %u", i->if_name,
			       mode_name(xdp_multiprog__attach_mode(mp)), xdp_program__id(p));
			if (!xdp_multiprog__is_legacy(mp) && xdp_multiprog__program_count(mp) > 1)
				printf(", with %d other XDP program(s)",
				       xdp_multiprog__program_count(mp) - 1);
			printf("\n");
			attached++;
		}
		xdp_multiprog__close(mp);
	}
	if (ifs)
		if_freenameindex(ifs);
	if (!attached)
		printf("    (attached to no interface in this network namespace)\n");

	struct pins m = PINS_INIT;
	char err[512] = "";
	int ret = pins_open(cfg->pin_dir, &m, err, sizeof(err));

	if (ret == -ENOENT) {
		/* Not loaded: scripts read it from the exit code (2). */
		printf("  rules: none pinned at %s (ipblock is not loaded)\n", cfg->pin_dir);
		return -ENOENT;
	}
	if (ret)
		return cli_open_maps(cfg->pin_dir, &m);

	size_t v4 = 0, v6 = 0;
	uint32_t cap = 0;

	trie_count(&m, &v4, &v6);
	pins_capacity(&m, AF_INET, &cap);
	printf("  rules (pinned in %s, kept across detach; ipblock-rule -F removes them):\n",
	       cfg->pin_dir);
	printf("    IPv4 %zu of %u, IPv6 %zu of %u\n", v4, cap, v6, cap);
	print_tables(&m, cap);
	printf("  counters (all interfaces):\n");
	cli_print_counters(stdout, "    ", &m);
	pins_close(&m);
	/* Maps without an attachment judge no packet: not loaded, for scripts. */
	return attached ? 0 : -ENOENT;
}

/*
 * The configuration file parsed as the service will parse it: one
 * sentence naming FILE:LINE on a fault.  Needs no root and touches nothing.
 */
static int check_config(const char *path)
{
	struct config c;
	char err[512];
	int ret = config_read(&c, path, err, sizeof(err));

	if (ret) {
		cli_err("%s", err);
		return ret;
	}
	printf("%s: fine: %zu interface%s, %zu list%s.\n", path, c.n_interfaces,
	       c.n_interfaces == 1 ? "" : "s", c.n_lists, c.n_lists == 1 ? "" : "s");
	config_free(&c);
	return 0;
}

static void usage(FILE *f)
{
	cli_usage(f, "-d IFACE [-m native|skb] | -d IFACE -u | -s [-d IFACE] | --create",
		  "Attach ipblock's XDP firewall to an interface, detach it, or show its status.\n"
		  "Every interface shares the rule set pinned in the pin directory.\n" CLI_EXIT_HELP,
		  options);
}

int main(int argc, char **argv)
{
	struct loader_opts cfg = { .pin_dir = IPBLOCK_PIN_DIR_DEFAULT, .mode = XDP_MODE_NATIVE };
	int c, ret;

	stacktrace_init();
	while ((c = cli_getopt(argc, argv, options)) != -1) {
		switch (c) {
		case 'd':
			cfg.dev = optarg;
			break;
		case 'u':
			cfg.unload = true;
			break;
		case 'm':
			if (!strcmp(optarg, "native")) {
				cfg.mode = XDP_MODE_NATIVE;
			} else if (!strcmp(optarg, "skb")) {
				cfg.mode = XDP_MODE_SKB;
			} else {
				cli_err("unknown mode '%s': use native or skb.", optarg);
				return CLI_EXIT_INPUT;
			}
			cfg.mode_forced = true;
			break;
		case 's':
			cfg.status = true;
			break;
		case OPT_CREATE:
			cfg.create = true;
			break;
		case OPT_PIN_DIR:
			cfg.pin_dir = optarg;
			break;
		case OPT_MAX_RULES:
			if (cli_parse_u32("--max-rules", optarg, 1, 100000000, &cfg.max_rules))
				return CLI_EXIT_INPUT;
			break;
		case OPT_CHECK_CONFIG:
			cfg.check_config = optarg;
			break;
		case OPT_LOOKUP:
			if (strcmp(optarg, "flat")) {
				cli_err("--lookup %s is no more: the flat tables grow with the rules "
					"and need less memory than the tries alone did; leave the "
					"option out.",
					optarg);
				return CLI_EXIT_INPUT;
			}
			break;
		case 'v':
			cfg.verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return CLI_EXIT_INPUT;
		}
	}
	if (optind < argc) {
		cli_err("unexpected argument '%s'; see --help.", argv[optind]);
		return CLI_EXIT_INPUT;
	}
	if (cfg.check_config)
		return check_config(cfg.check_config) ? CLI_EXIT_INPUT : 0;
	if (!cfg.status && !cfg.dev && !cfg.create) {
		cli_err("nothing to do: give -d IFACE to attach (-u to detach), -s for status or "
			"--create.");
		return CLI_EXIT_INPUT;
	}
	if (cfg.status && cfg.unload) {
		cli_err("-s and -u cannot be combined.");
		return CLI_EXIT_INPUT;
	}
	if (cfg.create && (cfg.status || cfg.dev || cfg.unload)) {
		cli_err("--create goes alone (with --max-rules, --pin-dir); attach with -d IFACE "
			"afterwards.");
		return CLI_EXIT_INPUT;
	}
	cli_set_verbose(cfg.verbose);
	if (cli_require_root())
		return CLI_EXIT_PERM;

	if (cfg.create)
		ret = do_create(&cfg);
	else if (cfg.status)
		ret = do_status(&cfg);
	else if (cfg.unload)
		ret = do_detach(&cfg);
	else
		ret = do_attach(&cfg);
	return cli_exit_code(ret);
}
