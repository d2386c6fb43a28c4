// SPDX-License-Identifier: GPL-2.0
/* ipblock-rule: add, delete, list and flush the rules in the pinned maps. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "rulecache.h"
#include "stacktrace.h"

enum { OPT_PIN_DIR = 256 };

static const struct cli_opt options[] = {
	{ "add", 'a', "CIDR", "add a rule for CIDR (needs -p); an existing one is updated" },
	{ "policy", 'p', "ACTION", "the rule's action: allow or deny" },
	{ "delete", 'd', "CIDR", "delete the rule for exactly CIDR" },
	{ "list", 'l', NULL, "list every rule, IPv4 then IPv6, sorted, with its action" },
	{ "flush", 'F', NULL, "delete every rule" },
	{ "pin-dir", OPT_PIN_DIR, "DIR", "where the maps are pinned (" IPBLOCK_PIN_DIR_DEFAULT ")" },
	{ "verbose", 'v', NULL, "show libbpf messages" },
	{ "help", 'h', NULL, "show this help" },
	{},
};

enum command { CMD_NONE, CMD_ADD, CMD_DELETE, CMD_LIST, CMD_FLUSH };

struct config {
	enum command cmd;
	const char *cidr;
	const char *policy;
	const char *pin_dir;
	bool verbose;
};

static const char *family_name(const struct cidr *p)
{
	return p->family == AF_INET ? "IPv4" : "IPv6";
}

static int do_add(const struct config *cfg, const struct ipblock_maps *m, const struct cidr *p,
		  uint8_t action)
{
	struct ipblock_rule old, val = { .action = action };
	char text[CIDR_STRLEN];
	bool existed = maps_rule_get(m, p, &old) == 0;
	uint32_t cap = 0;
	int ret;

	(void)cfg;
	cidr_format(p, text, sizeof(text));
	if (existed) {
		/* Keep what a later issue may have stored beside the action. */
		val = old;
		val.action = action;
	}
	ret = maps_rule_set(m, p, &val);
	if (ret == -ENOSPC || ret == -E2BIG) {
		maps_capacity(m, p->family, &cap);
		cli_err("the %s rule map is full (%u rules); delete rules, or recreate the maps "
			"with ipblock-loader --max-rules.",
			family_name(p), cap);
		return ret;
	}
	if (ret) {
		cli_err("cannot add %s: %s.", text, strerror(-ret));
		return ret;
	}
	if (!existed)
		printf("added %s %s\n", text, ipblock_action_name(action));
	else if (old.action != action)
		printf("updated %s: %s -> %s\n", text, ipblock_action_name(old.action),
		       ipblock_action_name(action));
	else
		printf("unchanged %s %s\n", text, ipblock_action_name(action));
	return 0;
}

static int do_delete(const struct ipblock_maps *m, const struct cidr *p)
{
	char text[CIDR_STRLEN];
	int ret = maps_rule_delete(m, p);

	cidr_format(p, text, sizeof(text));
	if (ret == -ENOENT) {
		cli_err("there is no rule for %s.", text);
		return ret;
	}
	if (ret) {
		cli_err("cannot delete %s: %s.", text, strerror(-ret));
		return ret;
	}
	printf("deleted %s\n", text);
	return 0;
}

static int print_rule(const struct rule_entry *e, void *ctx)
{
	char text[CIDR_STRLEN];

	(void)ctx;
	printf("%s %s\n", cidr_format(&e->prefix, text, sizeof(text)),
	       ipblock_action_name(e->action));
	return 0;
}

static int do_list(const struct ipblock_maps *m)
{
	struct rulecache *rc = rulecache_new();
	int ret;

	if (!rc) {
		cli_err("out of memory.");
		return -ENOMEM;
	}
	ret = rulecache_load_maps(rc, m);
	if (ret) {
		cli_err("cannot read the rules: %s.", strerror(-ret));
		goto out;
	}
	ret = rulecache_foreach(rc, print_rule, NULL);
	if (ret) {
		cli_err("cannot list the rules: %s.", strerror(-ret));
		goto out;
	}
	/* Totals as comment lines, so the rule lines stay "CIDR action" only. */
	printf("# %zu rules (%zu IPv4, %zu IPv6); counters, all interfaces:\n",
	       rulecache_count(rc, AF_UNSPEC), rulecache_count(rc, AF_INET),
	       rulecache_count(rc, AF_INET6));
	cli_print_counters(stdout, "#   ", m);
out:
	rulecache_free(rc);
	return ret;
}

static int do_flush(const struct ipblock_maps *m)
{
	size_t removed = 0;
	int ret = maps_flush(m, &removed);

	if (ret) {
		cli_err("flush stopped after %zu rules: %s.", removed, strerror(-ret));
		return ret;
	}
	printf("flushed %zu rules\n", removed);
	return 0;
}

static void usage(FILE *f)
{
	cli_usage(f, "-a CIDR -p allow|deny | -d CIDR | -l | -F",
		  "Change the rules of the ipblock XDP firewall.  A bare address is a /32 (/128);\n"
		  "the longest matching prefix decides, no match passes.",
		  options);
}

static int set_cmd(struct config *cfg, enum command cmd)
{
	if (cfg->cmd != CMD_NONE && cfg->cmd != cmd) {
		cli_err("give one of -a, -d, -l, -F at a time.");
		return -EINVAL;
	}
	cfg->cmd = cmd;
	return 0;
}

int main(int argc, char **argv)
{
	struct config cfg = { .pin_dir = IPBLOCK_PIN_DIR_DEFAULT };
	struct ipblock_maps m = IPBLOCK_MAPS_INIT;
	uint8_t action = 0;
	struct cidr p;
	int c, ret = 0;

	stacktrace_init();
	while ((c = cli_getopt(argc, argv, options)) != -1) {
		switch (c) {
		case 'a':
			ret = set_cmd(&cfg, CMD_ADD);
			cfg.cidr = optarg;
			break;
		case 'd':
			ret = set_cmd(&cfg, CMD_DELETE);
			cfg.cidr = optarg;
			break;
		case 'l':
			ret = set_cmd(&cfg, CMD_LIST);
			break;
		case 'F':
			ret = set_cmd(&cfg, CMD_FLUSH);
			break;
		case 'p':
			cfg.policy = optarg;
			break;
		case OPT_PIN_DIR:
			cfg.pin_dir = optarg;
			break;
		case 'v':
			cfg.verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return 2;
		}
		if (ret)
			return 2;
	}
	if (optind < argc) {
		cli_err("unexpected argument '%s'; see --help.", argv[optind]);
		return 2;
	}
	if (cfg.cmd == CMD_NONE) {
		cli_err("nothing to do: give -a CIDR -p allow|deny, -d CIDR, -l or -F.");
		return 2;
	}
	if (cfg.cmd == CMD_ADD && !cfg.policy) {
		cli_err("-a needs -p allow or -p deny.");
		return 2;
	}
	if (cfg.cmd != CMD_ADD && cfg.policy) {
		cli_err("-p goes with -a only.");
		return 2;
	}
	if (cfg.policy && ipblock_action_parse(cfg.policy, &action)) {
		cli_err("unknown policy '%s': use allow or deny.", cfg.policy);
		return 2;
	}
	/* Everything the user typed is checked before anything is touched. */
	if ((cfg.cmd == CMD_ADD || cfg.cmd == CMD_DELETE) && cli_parse_prefix(cfg.cidr, &p))
		return 2;

	cli_set_verbose(cfg.verbose);
	if (cli_require_root())
		return 1;
	if (cli_open_maps(cfg.pin_dir, &m))
		return 1;

	/* Writers exclusive, listings shared: no listing sees half a replace. */
	ret = maps_lock(&m, cfg.cmd != CMD_LIST);
	if (ret) {
		cli_err("cannot lock %s: %s.", cfg.pin_dir, strerror(-ret));
		maps_close(&m);
		return 1;
	}
	switch (cfg.cmd) {
	case CMD_ADD:
		ret = do_add(&cfg, &m, &p, action);
		break;
	case CMD_DELETE:
		ret = do_delete(&m, &p);
		break;
	case CMD_LIST:
		ret = do_list(&m);
		break;
	case CMD_FLUSH:
		ret = do_flush(&m);
		break;
	default:
		break;
	}
	maps_unlock(&m);
	maps_close(&m);
	return ret ? 1 : 0;
}
