// SPDX-License-Identifier: GPL-2.0
/* ipblock-rule: add, delete, import, replace, list, save and flush the rules. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "maps.h"
#include "rulecache.h"
#include "rulefile.h"
#include "stacktrace.h"
#include "trie.h"

enum { OPT_PIN_DIR = 256, OPT_SKIP_INVALID, OPT_STRICT, OPT_CHECK };

static const struct cli_opt options[] = {
	{ "add", 'a', "CIDR", "add a rule for CIDR (needs -p); an existing one is updated" },
	{ "policy", 'p', "ACTION",
	  "the rule's action: allow or deny; with -i/-R, every line's action" },
	{ "delete", 'd', "CIDR",
	  "delete the rule for exactly CIDR; an absent one is a note, exit 0 (see --strict)" },
	{ "strict", OPT_STRICT, NULL, "with -d: an absent rule is an error (exit 1)" },
	{ "import", 'i', "FILE", "add every prefix in FILE (- for stdin) in one atomic switch" },
	{ "replace", 'R', "FILE", "make FILE the whole rule set, switched atomically" },
	{ "skip-invalid", OPT_SKIP_INVALID, NULL,
	  "with -i/-R: skip bad lines (and say which) instead of refusing the file" },
	{ "list", 'l', NULL, "list every rule, IPv4 then IPv6, sorted, with its action" },
	{ "save", 'S', NULL, "print every rule as 'CIDR allow|deny', for -R or -i" },
	{ "flush", 'F', NULL, "delete every rule" },
	{ "check", OPT_CHECK, NULL,
	  "exit 0 if the maps are pinned and usable (rules can be changed), else 2, 4 or 5" },
	{ "pin-dir", OPT_PIN_DIR, "DIR",
	  "where the maps are pinned (" IPBLOCK_PIN_DIR_DEFAULT ")" },
	{ "verbose", 'v', NULL, "show libbpf messages" },
	{ "help", 'h', NULL, "show this help" },
	{},
};

enum command {
	CMD_NONE,
	CMD_ADD,
	CMD_DELETE,
	CMD_IMPORT,
	CMD_REPLACE,
	CMD_LIST,
	CMD_SAVE,
	CMD_FLUSH,
	CMD_CHECK
};

struct config {
	enum command cmd;
	const char *cidr;
	const char *file;
	const char *policy;
	const char *pin_dir;
	bool skip_invalid;
	bool strict;
	bool verbose;
};

static const char *family_name(int family)
{
	return family == AF_INET ? "IPv4" : "IPv6";
}

static int do_add(const struct config *cfg, struct maps *m, const struct cidr *p, uint8_t action)
{
	struct rule old, val = { .prefix = *p, .action = action };
	char text[CIDR_STRLEN];
	bool existed = trie_get(m->pins, 0, p, &old) == 0; /* set A: what listings show */
	uint32_t cap = 0;
	int ret;

	cidr_format(p, text, sizeof(text));
	if (existed) {
		/* Keep what a later issue may have stored beside the action. */
		val = old;
		val.action = action;
	}
	ret = maps_rule_set(m, &val);
	if (ret == -ENOSPC || ret == -E2BIG) {
		pins_capacity(m->pins, p->family, &cap);
		cli_err("the %s rule map is full (%u rules); delete rules, or recreate the maps "
			"with ipblock-loader --max-rules.",
			family_name(p->family), cap);
		return ret;
	}
	if (ret) {
		cli_err_change(ret, cfg->pin_dir, "cannot add %s", text);
		return ret;
	}
	if (!existed)
		printf("added %s %s\n", text, ruleset_action_name(action));
	else if (old.action != action)
		printf("updated %s: %s -> %s\n", text, ruleset_action_name(old.action),
		       ruleset_action_name(action));
	else
		printf("unchanged %s %s\n", text, ruleset_action_name(action));
	return 0;
}

static int do_delete(const struct config *cfg, struct maps *m, const struct cidr *p)
{
	char text[CIDR_STRLEN];
	int ret = maps_rule_delete(m, p);

	cidr_format(p, text, sizeof(text));
	if (ret == -ENOENT && cfg->strict) {
		cli_err("there is no rule for %s.", text);
		return -EINVAL;
	}
	if (ret == -ENOENT) {
		/*
		 * Deleting is idempotent: a ban lifted twice (fail2ban retries,
		 * CrowdSec repeats deletions) is done, not an error.  The note
		 * tells a person who mistyped the prefix; scripts read the code.
		 */
		cli_note("there is no rule for %s; nothing to delete.", text);
		return 0;
	}
	if (ret) {
		cli_err_change(ret, cfg->pin_dir, "cannot delete %s", text);
		return ret;
	}
	printf("deleted %s\n", text);
	return 0;
}

/* One "CIDR action" line. */
static void print_rule(const struct rule *r)
{
	char text[CIDR_STRLEN];

	fputs(cidr_format(&r->prefix, text, sizeof(text)), stdout);
	putchar(' ');
	fputs(ruleset_action_name(r->action), stdout);
	putchar('\n');
}

static int print_entry(const struct rulecache_entry *e, void *ctx)
{
	(void)ctx;
	print_rule(&e->rule);
	return 0;
}

/*
 * -l's lines: walked through the rule cache, the user-space picture of the
 * rule set (the in-memory set of the coming service mode), in cidr_compare()
 * order.  r is freed once the cache holds it.
 */
static int print_through_cache(struct ruleset *r)
{
	struct rulecache *rc = rulecache_new();
	int ret = rc ? rulecache_load(rc, r->r, r->n) : -ENOMEM;

	ruleset_free(r);
	if (!ret)
		ret = rulecache_foreach(rc, print_entry, NULL);
	rulecache_free(rc);
	return ret;
}

/*
 * -l and -S: the rules the program judges by now, read in one batch pass
 * (sorted), as "CIDR action" lines.  -S starts with a header, -l ends with
 * the totals and counters; both as comment lines, so the output reads back
 * with -R.  -S prints the array as read: through the rule cache, a
 * million-rule save would cost a third more time and its memory twice
 * over.  A million lines go out through one large stdio buffer, and a
 * write error (a full disk under -S > FILE) is reported rather than
 * leaving a silently cut listing.
 */
static int do_list(const struct pins *pins, bool save)
{
	struct ruleset r = {};
	size_t v4, v6;
	int ret = trie_read(pins, &r);

	if (ret) {
		cli_err("cannot read the rules: %s.", strerror(-ret));
		return ret;
	}
	ruleset_count(r.r, r.n, &v4, &v6);
	if (save) {
		time_t now = time(NULL);
		char when[32];

		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
		printf("# ipblock rule set saved %s: %zu rules (%zu IPv4, %zu IPv6)\n", when, r.n,
		       v4, v6);
		printf("# restore with: ipblock-rule -R FILE\n");
		for (size_t i = 0; i < r.n; i++)
			print_rule(&r.r[i]);
	} else {
		ret = print_through_cache(&r);
		if (ret) {
			cli_err("cannot list the rules: %s.", strerror(-ret));
			goto out;
		}
		printf("# %zu rules (%zu IPv4, %zu IPv6); counters, all interfaces:\n", v4 + v6, v4,
		       v6);
		cli_print_counters(stdout, "#   ", pins);
	}
	if (fflush(stdout) || ferror(stdout)) {
		cli_err("cannot write the rules: %s.", strerror(errno ? errno : EIO));
		ret = -EIO;
	}
out:
	ruleset_free(&r);
	return ret;
}

/* Read and check the whole list before the maps are locked or touched. */
static int load_list(const struct config *cfg, uint8_t action, struct rulefile *rf)
{
	struct rulefile_opts o = { .action = action, .skip_invalid = cfg->skip_invalid };
	int ret = rulefile_read(rf, &o, cfg->file);

	if (ret == -ENOMEM)
		cli_err("out of memory reading %s.", cfg->file);
	else if (ret)
		cli_err("%s", rf->error);
	if (ret)
		return ret;
	if (cfg->cmd == CMD_REPLACE && rf->n == 0) {
		/* A failed download must not empty the firewall: -F says it on purpose. */
		cli_err("%s holds no rules; replacing with it would delete every rule (use -F to "
			"delete them all).",
			rf->opts.name);
		return -ENODATA;
	}
	return 0;
}

static int do_bulk(const struct config *cfg, struct maps *m, const struct rulefile *rf)
{
	bool import = cfg->cmd == CMD_IMPORT;
	struct maps_replace_stats st = {};
	int ret = import ? maps_import_rules(m, rf->rules, rf->n, &st)
			 : maps_replace_rules(m, rf->rules, rf->n, &st);
	const char *name = rf->opts.name;

	if (ret == -ENOSPC) {
		int family = st.v4 > st.cap_v4 ? AF_INET : AF_INET6;

		cli_err("the %s rule map holds at most %u rules but %s %s would need %zu; nothing "
			"was changed (ipblock-loader --max-rules sets the capacity when the maps "
			"are created).",
			family_name(family), family == AF_INET ? st.cap_v4 : st.cap_v6,
			import ? "importing" : "replacing with", name,
			family == AF_INET ? st.v4 : st.v6);
		return ret;
	}
	if (ret) {
		cli_err_change(ret, cfg->pin_dir, "cannot %s %s",
			       import ? "import" : "replace the rules with", name);
		return ret;
	}
	if (import)
		printf("imported %zu rules from %s: %zu added, %zu updated, %zu unchanged; now "
		       "%zu IPv4 and %zu IPv6 rules\n",
		       rf->n, name, st.added, st.updated, rf->n - st.added - st.updated, st.v4,
		       st.v6);
	else
		printf("replaced the rule set with %s: %zu added, %zu updated, %zu deleted; now "
		       "%zu IPv4 and %zu IPv6 rules\n",
		       name, st.added, st.updated, st.deleted, st.v4, st.v6);
	return 0;
}

static int do_flush(const struct config *cfg, struct maps *m)
{
	size_t removed = 0;
	int ret = maps_flush(m, &removed);

	if (ret) {
		cli_err_change(ret, cfg->pin_dir, "flush stopped after %zu rules", removed);
		return ret;
	}
	printf("flushed %zu rules\n", removed);
	return 0;
}

static void usage(FILE *f)
{
	cli_usage(f,
		  "-a CIDR -p allow|deny | -d CIDR | -i FILE [-p ACTION] | -R FILE [-p ACTION] |\n"
		  "       -l | -S | -F | --check",
		  "Change the rules of the ipblock XDP firewall.  A bare address is a /32 (/128);\n"
		  "the longest matching prefix decides, no match passes.\n"
		  "FILE: one address or prefix a line, optionally followed by allow or deny;\n"
		  "'#' and ';' start comments (FireHOL netsets, Spamhaus DROP and -S output read\n"
		  "as they are).  A bad line refuses the whole file, changing nothing.\n" CLI_EXIT_HELP,
		  options);
}

static int set_cmd(struct config *cfg, enum command cmd)
{
	if (cfg->cmd != CMD_NONE && cfg->cmd != cmd) {
		cli_err("give one of -a, -d, -i, -R, -l, -S, -F, --check at a time.");
		return -EINVAL;
	}
	cfg->cmd = cmd;
	return 0;
}

/* Read the options into cfg: -1 to go on, else the exit code (0 after -h, 1 on a bad one). */
static int parse_options(int argc, char **argv, struct config *cfg)
{
	int c, ret = 0;

	while ((c = cli_getopt(argc, argv, options)) != -1) {
		switch (c) {
		case 'a':
			ret = set_cmd(cfg, CMD_ADD);
			cfg->cidr = optarg;
			break;
		case 'd':
			ret = set_cmd(cfg, CMD_DELETE);
			cfg->cidr = optarg;
			break;
		case 'i':
			ret = set_cmd(cfg, CMD_IMPORT);
			cfg->file = optarg;
			break;
		case 'R':
			ret = set_cmd(cfg, CMD_REPLACE);
			cfg->file = optarg;
			break;
		case 'l':
			ret = set_cmd(cfg, CMD_LIST);
			break;
		case 'S':
			ret = set_cmd(cfg, CMD_SAVE);
			break;
		case OPT_SKIP_INVALID:
			cfg->skip_invalid = true;
			break;
		case 'F':
			ret = set_cmd(cfg, CMD_FLUSH);
			break;
		case OPT_CHECK:
			ret = set_cmd(cfg, CMD_CHECK);
			break;
		case OPT_STRICT:
			cfg->strict = true;
			break;
		case 'p':
			cfg->policy = optarg;
			break;
		case OPT_PIN_DIR:
			cfg->pin_dir = optarg;
			break;
		case 'v':
			cfg->verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return CLI_EXIT_INPUT;
		}
		if (ret)
			return CLI_EXIT_INPUT;
	}
	if (optind < argc) {
		cli_err("unexpected argument '%s'; see --help.", argv[optind]);
		return CLI_EXIT_INPUT;
	}
	return -1;
}

static bool is_bulk(const struct config *cfg)
{
	return cfg->cmd == CMD_IMPORT || cfg->cmd == CMD_REPLACE;
}

/*
 * Everything the user typed is checked before anything is touched: the
 * options go together, the policy is one, the prefix parses (*p, with the
 * normalisation note to show once the change is made).  0, or -EINVAL
 * after a sentence.
 */
static int check_options(const struct config *cfg, uint8_t *action, struct cidr *p, char *note,
			 size_t notelen)
{
	if (cfg->cmd == CMD_NONE) {
		cli_err("nothing to do: give -a CIDR -p allow|deny, -d CIDR, -i FILE, -R FILE, -l, "
			"-S, -F or --check.");
		return -EINVAL;
	}
	if (cfg->strict && cfg->cmd != CMD_DELETE) {
		cli_err("--strict goes with -d only.");
		return -EINVAL;
	}
	if (cfg->cmd == CMD_ADD && !cfg->policy) {
		cli_err("-a needs -p allow or -p deny.");
		return -EINVAL;
	}
	if (cfg->cmd != CMD_ADD && !is_bulk(cfg) && cfg->policy) {
		cli_err("-p goes with -a, -i or -R only.");
		return -EINVAL;
	}
	if (!is_bulk(cfg) && cfg->skip_invalid) {
		cli_err("--skip-invalid goes with -i or -R only.");
		return -EINVAL;
	}
	if (cfg->policy && ruleset_action_parse(cfg->policy, action)) {
		cli_err("unknown policy '%s': use allow or deny.", cfg->policy);
		return -EINVAL;
	}
	if ((cfg->cmd == CMD_ADD || cfg->cmd == CMD_DELETE) &&
	    cli_parse_prefix(cfg->cidr, p, note, notelen))
		return -EINVAL;
	return 0;
}

/* The command itself, the maps locked. */
static int run(const struct config *cfg, struct maps *m, uint8_t action, const struct cidr *p,
	       const struct rulefile *rf)
{
	switch (cfg->cmd) {
	case CMD_ADD:
		return do_add(cfg, m, p, action);
	case CMD_DELETE:
		return do_delete(cfg, m, p);
	case CMD_IMPORT:
	case CMD_REPLACE:
		return do_bulk(cfg, m, rf);
	case CMD_LIST:
	case CMD_SAVE:
		/* Big listings go out in large writes. */
		setvbuf(stdout, NULL, _IOFBF, 1 << 16);
		return do_list(m->pins, cfg->cmd == CMD_SAVE);
	case CMD_FLUSH:
		return do_flush(cfg, m);
	default:
		return 0;
	}
}

int main(int argc, char **argv)
{
	struct config cfg = { .pin_dir = IPBLOCK_PIN_DIR_DEFAULT };
	struct pins pins = PINS_INIT;
	struct maps m;
	struct rulefile rf = {};
	uint8_t action = 0;
	struct cidr p;
	char note[2 * CIDR_ERRLEN] = "";
	int ret;

	stacktrace_init();
	ret = parse_options(argc, argv, &cfg);
	if (ret >= 0)
		return ret;
	if (check_options(&cfg, &action, &p, note, sizeof(note)))
		return CLI_EXIT_INPUT;

	cli_set_verbose(cfg.verbose);
	if (cli_require_root())
		return CLI_EXIT_PERM;
	ret = cli_open_maps(cfg.pin_dir, &pins);
	if (ret)
		return cli_exit_code(ret);
	if (cfg.cmd == CMD_CHECK) {
		/* Opening checked every map's layout: rules can be changed. */
		printf("ready: ipblock's maps are pinned in %s\n", cfg.pin_dir);
		pins_close(&pins);
		return CLI_EXIT_OK;
	}
	maps_init(&m, &pins);
	if (is_bulk(&cfg)) {
		ret = load_list(&cfg, action, &rf);
		if (ret) {
			rulefile_free(&rf);
			pins_close(&pins);
			return ret == -ENOMEM ? CLI_EXIT_FAIL : CLI_EXIT_INPUT;
		}
	}

	/* Writers exclusive, listings shared: no listing sees half a replace. */
	ret = pins_lock(&pins, cfg.cmd != CMD_LIST && cfg.cmd != CMD_SAVE);
	if (ret) {
		cli_err("cannot lock %s: %s.", cfg.pin_dir, strerror(-ret));
		pins_close(&pins);
		rulefile_free(&rf);
		return CLI_EXIT_FAIL;
	}
	ret = run(&cfg, &m, action, &p, &rf);
	pins_unlock(&pins);
	/* Normalisation notes only once the change they describe was made. */
	if (!ret && note[0])
		cli_note("%s", note);
	for (size_t i = 0; !ret && i < rf.n_notes; i++)
		cli_note("%s", rf.notes[i]);
	maps_release(&m);
	pins_close(&pins);
	rulefile_free(&rf);
	return cli_exit_code(ret);
}
