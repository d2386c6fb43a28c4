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

#include <json-c/json.h>

#include "attach.h"
#include "cli.h"
#include "service.h"
#include "config.h"
#include "droplog.h"
#include "jsonout.h"
#include "ipblock.skel.h"
#include "kfeatures.h"
#include "stacktrace.h"
#include "tables.h"
#include "trie.h"
#include "verifier.h"
#include "watch.h"

#define BPFFS_ROOT "/sys/fs/bpf"

enum {
	OPT_PIN_DIR = 256,
	OPT_MAX_RULES,
	OPT_LOOKUP,
	OPT_CHECK_CONFIG,
	OPT_CREATE,
	OPT_JSON,
	OPT_SERVICE,
	OPT_CONFIG,
	OPT_WATCH,
	OPT_COUNT,
};

static const struct cli_opt options[] = {
	{ "dev", 'd', "IFACE", "interface to attach to (or detach from, with -u)" },
	{ "unload", 'u', NULL, "detach from IFACE; the rules stay pinned" },
	{ "mode", 'm', "MODE", "attach mode: native (default, falls back to skb) or skb" },
	{ "status", 's', NULL,
	  "show interfaces, modes, program ids, rule counts, counters; exit 2 unless the maps "
	  "are pinned and the program attached (to IFACE, with -d)" },
	{ "json", OPT_JSON, NULL, "with -s: one JSON document instead of the text" },
	{ "watch", OPT_WATCH, NULL,
	  "with -s: a live view refreshed each second (rates per verdict, top rules by hits "
	  "a second, top dropped sources from the service's drop log); one line a second "
	  "when not on a terminal" },
	{ "count", OPT_COUNT, "N", "with --watch: stop after N refreshes" },
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
	{ "service", OPT_SERVICE, NULL,
	  "run as the service (ipblock.service): restore the saved rules, load the lists, "
	  "attach, then expire, save and reload on SIGHUP until SIGTERM" },
	{ "config", OPT_CONFIG, "FILE",
	  "with --service: the configuration file (" CONFIG_PATH_DEFAULT ")" },
	{ "verbose", 'v', NULL, "show libbpf/libxdp messages (the verifier log too)" },
	{ "help", 'h', NULL, "show this help" },
	{},
};

/* The tables of the active set, and the memory everything takes. */
static void print_tables(const struct pins *m, uint32_t cap)
{
	struct tables_memory mem;
	struct tables t = {};
	uint32_t active = 0;

	if (pins_active_set(m, &active) || tables_memory(m, &mem))
		return;
	printf("  memory: %.1f MiB of kernel memory (flat tables %.1f, tries %.1f, per-rule "
	       "counters %.1f); ceiling %u rules per family\n",
	       mem.total / 1048576.0, mem.tables / 1048576.0, mem.tries / 1048576.0,
	       mem.hits / 1048576.0, cap);
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

/* The drop log's setting and counts: {"rate":N,"sample":N,"events":N,"lost":N}. */
static struct json_object *droplog_json(const struct pins *m)
{
	struct json_object *o = json_object_new_object();
	uint32_t rate = 0, sample = 0;
	uint64_t events = 0, lost = 0;

	if (!o)
		return NULL;
	droplog_get(m, &rate, &sample);
	droplog_counts(m, &events, &lost);
	json_object_object_add(o, "rate", json_object_new_uint64(rate));
	json_object_object_add(o, "sample", json_object_new_uint64(sample));
	json_object_object_add(o, "events", json_object_new_uint64(events));
	json_object_object_add(o, "lost", json_object_new_uint64(lost));
	return o;
}

static void print_droplog(const struct pins *m)
{
	uint32_t rate = 0, sample = 0;
	uint64_t events = 0, lost = 0;

	droplog_get(m, &rate, &sample);
	droplog_counts(m, &events, &lost);
	if (rate || sample)
		printf("  drop log: on, %u events a second per CPU, then 1 in %u", rate, sample);
	else
		printf("  drop log: off");
	printf(" (%llu events so far, %llu lost to a full ring)\n", (unsigned long long)events,
	       (unsigned long long)lost);
}

/* -s --json: {"pin_dir":..,"loaded":bool,"interfaces":[..],"rules":{..},"counters":{..}} */
static int status_json(const struct loader_opts *cfg, struct json_object *ifs, const struct pins *m,
		       bool pinned, int attached)
{
	struct json_object *o = json_object_new_object(), *rules = NULL;

	if (!o) {
		json_object_put(ifs);
		return -ENOMEM;
	}
	json_object_object_add(o, "pin_dir", json_object_new_string(cfg->pin_dir));
	json_object_object_add(o, "loaded", json_object_new_boolean(pinned && attached));
	json_object_object_add(o, "maps_pinned", json_object_new_boolean(pinned));
	json_object_object_add(o, "interfaces", ifs);
	if (pinned) {
		size_t v4 = 0, v6 = 0;
		uint32_t cap = 0;

		trie_count(m, &v4, &v6);
		pins_capacity(m, AF_INET, &cap);
		rules = json_object_new_object();
		if (rules) {
			json_object_object_add(rules, "ipv4", json_object_new_uint64(v4));
			json_object_object_add(rules, "ipv6", json_object_new_uint64(v6));
			json_object_object_add(rules, "capacity", json_object_new_uint64(cap));
		}
		json_object_object_add(o, "rules", rules);
		json_object_object_add(o, "counters", jsonout_counters(m));
		json_object_object_add(o, "drop_log", droplog_json(m));
	}
	return jsonout_print(stdout, o);
}

static int do_status(const struct loader_opts *cfg)
{
	struct if_nameindex *ifs = if_nameindex(), *i;
	struct json_object *jifs = cfg->json ? json_object_new_array() : NULL;
	int attached = 0;

	if (cfg->json && !jifs) {
		if (ifs)
			if_freenameindex(ifs);
		return -ENOMEM;
	}
	struct pins m = PINS_INIT;
	char err[512] = "";
	int ret = pins_open(cfg->pin_dir, &m, err, sizeof(err));
	struct ipblock_counter c[IPBLOCK_STAT_MAX];

	if (!cfg->json)
		printf("ipblock status\n  interfaces:\n");
	for (i = ifs; i && i->if_index; i++) {
		struct xdp_multiprog *mp;
		struct xdp_program *p;

		if (cfg->dev && strcmp(cfg->dev, i->if_name))
			continue;
		p = attach_find(i->if_index, &mp);
		if (p && jifs) {
			struct json_object *x = json_object_new_object();
			int others = xdp_multiprog__is_legacy(mp)
					     ? 0
					     : xdp_multiprog__program_count(mp) - 1;

			if (x) {
				json_object_object_add(x, "name", json_object_new_string(i->if_name));
				json_object_object_add(
					x, "mode",
					json_object_new_string(
						attach_mode_name(xdp_multiprog__attach_mode(mp))));
				json_object_object_add(x, "program_id",
						       json_object_new_uint64(xdp_program__id(p)));
				json_object_object_add(x, "other_programs",
						       json_object_new_int(others > 0 ? others : 0));
				if (!ret && i->if_index < IPBLOCK_STAT_IFACES &&
				    !pins_stats_read_iface(&m, i->if_index, c))
					json_object_object_add(x, "counters",
							       jsonout_counter_set(c));
				json_object_array_add(jifs, x);
			}
			attached++;
		} else if (p) {
			printf("    %-16s %-6s program id %u", i->if_name,
			       attach_mode_name(xdp_multiprog__attach_mode(mp)), xdp_program__id(p));
			if (!xdp_multiprog__is_legacy(mp) && xdp_multiprog__program_count(mp) > 1)
				printf(", with %d other XDP program(s)",
				       xdp_multiprog__program_count(mp) - 1);
			printf("\n");
			/* Past IPBLOCK_STAT_IFACES interfaces share their counters. */
			if (!ret && i->if_index < IPBLOCK_STAT_IFACES &&
			    !pins_stats_read_iface(&m, i->if_index, c))
				cli_print_counter_line(stdout, "      ", c);
			attached++;
		}
		xdp_multiprog__close(mp);
	}
	if (ifs)
		if_freenameindex(ifs);
	if (!attached && !cfg->json)
		printf("    (attached to no interface in this network namespace)\n");

	if (ret && ret != -ENOENT) {
		json_object_put(jifs);
		return cli_open_maps(cfg->pin_dir, &m);
	}
	if (cfg->json) {
		int jret = status_json(cfg, jifs, &m, ret == 0, attached);

		pins_close(&m);
		if (jret)
			return jret;
		return ret == 0 && attached ? 0 : -ENOENT;
	}
	if (ret == -ENOENT) {
		/* Not loaded: scripts read it from the exit code (2). */
		printf("  rules: none pinned at %s (ipblock is not loaded)\n", cfg->pin_dir);
		return -ENOENT;
	}

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
	print_droplog(&m);
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
	cli_usage(f,
		  "-d IFACE [-m native|skb] | -d IFACE -u | -s [-d IFACE] [--json] | "
		  "-s --watch [--count N] | --create | --service [--config FILE]",
		  "Attach ipblock's XDP firewall to an interface, detach it, or show its status.\n"
		  "Every interface shares the rule set pinned in the pin directory.\n" CLI_EXIT_HELP,
		  options);
}

int main(int argc, char **argv)
{
	struct loader_opts cfg = { .pin_dir = IPBLOCK_PIN_DIR_DEFAULT, .mode = XDP_MODE_NATIVE };
	const char *config_path = NULL;
	bool service = false, watch = false;
	uint32_t count = 0;
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
		case OPT_JSON:
			cfg.json = true;
			break;
		case OPT_WATCH:
			watch = true;
			break;
		case OPT_COUNT:
			if (cli_parse_u32("--count", optarg, 1, 1000000000, &count))
				return CLI_EXIT_INPUT;
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
		case OPT_SERVICE:
			service = true;
			break;
		case OPT_CONFIG:
			config_path = optarg;
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
	if (config_path && !service) {
		cli_err("--config goes with --service (to check a file: --check-config FILE).");
		return CLI_EXIT_INPUT;
	}
	if (service) {
		if (cfg.dev || cfg.status || cfg.create || cfg.unload) {
			cli_err("--service takes its interfaces from the configuration file; leave "
				"-d, -u, -s and --create out.");
			return CLI_EXIT_INPUT;
		}
		cli_set_verbose(cfg.verbose);
		if (cli_require_root())
			return CLI_EXIT_PERM;
		return service_run(config_path ? config_path : CONFIG_PATH_DEFAULT, cfg.verbose);
	}
	if (!cfg.status && !cfg.dev && !cfg.create) {
		cli_err("nothing to do: give -d IFACE to attach (-u to detach), -s for status or "
			"--create.");
		return CLI_EXIT_INPUT;
	}
	if (cfg.status && cfg.unload) {
		cli_err("-s and -u cannot be combined.");
		return CLI_EXIT_INPUT;
	}
	if (cfg.json && !cfg.status) {
		cli_err("--json goes with -s only.");
		return CLI_EXIT_INPUT;
	}
	if ((watch && (!cfg.status || cfg.json || cfg.dev)) || (count && !watch)) {
		cli_err("--watch goes with -s alone (and --count N, --pin-dir); --count with "
			"--watch.");
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

	if (watch)
		ret = watch_run(cfg.pin_dir, count, isatty(STDOUT_FILENO));
	else if (cfg.create)
		ret = attach_create(&cfg);
	else if (cfg.status)
		ret = do_status(&cfg);
	else if (cfg.unload)
		ret = attach_detach(&cfg);
	else
		ret = attach_dev(&cfg);
	return cli_exit_code(ret);
}
