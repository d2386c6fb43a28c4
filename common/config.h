/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ipblock.conf, the service's configuration file: its one parser.
 *
 * The format, INI-like as in systemd units and fail2ban (man/ipblock.conf.5
 * is the operator's reference):
 *
 *   # comment                  ';' too; whole-line, or trailing after a space or tab
 *   [ipblock]                  a section; [interface NAME] and [list NAME] take a name
 *   pin-dir = /sys/fs/bpf/ipblock
 *   file = "/srv/a #1.netset"  double quotes keep spaces and '#' ';' (no escapes)
 *
 * Blank lines, spaces and tabs around every token, CRLF endings and a UTF-8
 * byte order mark are fine.  Section and key names are lower case.  Every
 * section and every key appears at most once ([interface NAME] and
 * [list NAME] once per NAME).  The first problem stops the parse with one
 * sentence, "FILE:LINE: what is wrong.", naming the key and what it expects:
 * unknown sections and keys, duplicates, bad or missing values, NUL bytes
 * and other control characters, over-long lines.
 *
 * Parsing only: nothing here opens a pin, an interface or a list file.
 */
#ifndef IPBLOCK_CONFIG_H
#define IPBLOCK_CONFIG_H

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "value.h"

/* Where the service looks without --config. */
#define CONFIG_PATH_DEFAULT "/etc/ipblock/ipblock.conf"

/* Room for any sentence config_parse()/config_read() write; a file name near PATH_MAX is cut. */
#define CONFIG_ERRLEN 1024

/* Larger files are refused unread: no configuration comes near this. */
#define CONFIG_MAX_SIZE (1024 * 1024)

/* Longest line, without its line ending. */
#define CONFIG_MAX_LINE 8192

/* Longest [list NAME], which names the list's source. */
#define CONFIG_NAME_MAX 63

/* Longest crowdsec origin: "crowdsec-ORIGIN" must fit a source name too. */
#define CONFIG_ORIGIN_MAX (CONFIG_NAME_MAX - (sizeof("crowdsec-") - 1))

/* Defaults and bounds of [ipblock]. */
#define CONFIG_STATE_DIR_DEFAULT     "/var/lib/ipblock"
#define CONFIG_CAPACITY_MAX	     100000000 /* as ipblock-loader --max-rules */
#define CONFIG_SAVE_INTERVAL_DEFAULT 1	       /* seconds: a crash loses at most this much */
#define CONFIG_SAVE_INTERVAL_MAX     3600

/* Bounds of [list NAME] refresh (0: never). */
#define CONFIG_REFRESH_MAX (30 * 86400)

/* Default of [metrics] listen. */
#define CONFIG_METRICS_LISTEN_DEFAULT "127.0.0.1:9657"

/* Defaults and bounds of [drop-log]. */
#define CONFIG_DROP_LOG_RATE_DEFAULT 100
#define CONFIG_DROP_LOG_RATE_MAX     1000000
#define CONFIG_DROP_LOG_SAMPLE_MAX   1000000000

/* Defaults and bounds of [crowdsec]. */
#define CONFIG_ORIGINS_MAX		 32 /* origins listed at most */
#define CONFIG_CROWDSEC_URL_DEFAULT	 "http://127.0.0.1:8080/"
#define CONFIG_CROWDSEC_INTERVAL_DEFAULT 10 /* seconds, as crowdsec-firewall-bouncer */
#define CONFIG_CROWDSEC_INTERVAL_MAX	 86400

/* [interface NAME] mode: how XDP is attached. */
enum config_mode {
	CONFIG_MODE_AUTO,   /* native, skb when the driver has none (the loader's default) */
	CONFIG_MODE_NATIVE, /* native only */
	CONFIG_MODE_SKB,    /* generic (skb) only */
};

/* [list NAME] format: what the file's lines look like. */
enum config_format {
	CONFIG_FORMAT_AUTO,	/* any of the below, line by line, as ipblock-rule -i */
	CONFIG_FORMAT_NETSET,	/* FireHOL .netset/.ipset: CIDR per line */
	CONFIG_FORMAT_SPAMHAUS, /* Spamhaus DROP: "CIDR ; SBLnnn" */
	CONFIG_FORMAT_SAVE,	/* ipblock-rule -S: "CIDR allow|deny" */
};

/* [list NAME] action. */
enum config_action {
	CONFIG_ACTION_NONE,  /* each line's own (format = save only) */
	CONFIG_ACTION_DENY,  /* every line denied, as -p deny */
	CONFIG_ACTION_ALLOW, /* every line allowed, as -p allow */
};

/* [drop-log] output. */
enum config_log_output {
	CONFIG_LOG_STDERR,
	CONFIG_LOG_JOURNAL,
	CONFIG_LOG_FILE, /* JSON lines appended to drop_log.file */
};

/* [crowdsec] scopes and types: bit sets. */
enum config_crowdsec_scope {
	CONFIG_CROWDSEC_SCOPE_IP = 1 << 0,
	CONFIG_CROWDSEC_SCOPE_RANGE = 1 << 1,
};

enum config_crowdsec_type {
	CONFIG_CROWDSEC_TYPE_BAN = 1 << 0,
};

/* [crowdsec] source: which ipblock source owns a decision's rule. */
enum config_crowdsec_source {
	CONFIG_CROWDSEC_SOURCE_ONE,	   /* "crowdsec" */
	CONFIG_CROWDSEC_SOURCE_PER_ORIGIN, /* "crowdsec-ORIGIN" */
};

/* One [interface NAME] section. */
struct config_interface {
	char name[IFNAMSIZ];
	enum config_mode mode;
	unsigned int line; /* of its header: later sentences about it say FILE:LINE */
};

/* One [list NAME] section: a named rule source loaded at start. */
struct config_list {
	char name[CONFIG_NAME_MAX + 1]; /* the source its rules belong to */
	char *file;			/* absolute path */
	enum config_action action;	/* NONE only with format = save */
	enum config_format format;
	uint32_t refresh;  /* seconds between re-reads of file; 0: at start and reload only */
	unsigned int line; /* of its header */
};

/* [metrics]: the Prometheus endpoint. */
struct config_metrics {
	bool enabled; /* the section is present */
	struct value_hostport listen;
};

/* [drop-log]: the sampled log of dropped packets. */
struct config_drop_log {
	bool enabled;	 /* the section is present */
	uint32_t rate;	 /* events a second per CPU */
	uint32_t sample; /* one in sample beyond rate; 0: none beyond */
	enum config_log_output output;
	char *file;   /* output = CONFIG_LOG_FILE: absolute path; else NULL */
	bool allowed; /* log allowed packets too */
};

/* [crowdsec]: the bouncer polling a CrowdSec LAPI. */
struct config_crowdsec {
	bool enabled; /* the section is present */
	char *url;
	char *api_key_file;  /* absolute path; required when enabled */
	uint32_t interval;   /* seconds between polls */
	unsigned int scopes; /* enum config_crowdsec_scope bits */
	unsigned int types;  /* enum config_crowdsec_type bits */
	char **origins;	     /* accepted origins; none: every origin */
	size_t n_origins;
	enum config_crowdsec_source source;
};

/* A parsed ipblock.conf, defaults applied.  Owns its strings and arrays. */
struct config {
	/* [ipblock] */
	char *pin_dir;
	char *state_dir;
	uint32_t capacity; /* rules per family */
	bool detach_on_stop;
	uint32_t save_interval; /* seconds */

	struct config_interface *interfaces; /* in file order */
	size_t n_interfaces;
	struct config_list *lists; /* in file order */
	size_t n_lists;

	struct config_metrics metrics;
	struct config_drop_log drop_log;
	struct config_crowdsec crowdsec;
};

/* Fill c with every default, as an empty file would.  0 or -ENOMEM. */
int config_defaults(struct config *c);

/*
 * Parse len bytes of text (need not be NUL-terminated) into c, which need
 * not be initialised; name is the FILE of messages.  0; -EINVAL with the
 * sentence in err (may be NULL); -EFBIG past CONFIG_MAX_SIZE; -ENOMEM.  On failure c
 * is left empty, so a reload can parse into a fresh struct and keep the old
 * one.
 */
int config_parse(struct config *c, const char *name, const char *text, size_t len, char *err,
		 size_t errlen);

/*
 * config_parse() of the file at path.  A file that cannot be read or is
 * larger than CONFIG_MAX_SIZE fails with its -errno and "FILE: why." in err.
 */
int config_read(struct config *c, const char *path, char *err, size_t errlen);

/* Free what c owns and zero it; harmless on a zeroed or failed struct. */
void config_free(struct config *c);

/* The [interface NAME] section named name, or NULL: for reloads to diff. */
const struct config_interface *config_find_interface(const struct config *c, const char *name);

/* The [list NAME] section named name, or NULL. */
const struct config_list *config_find_list(const struct config *c, const char *name);

#endif /* IPBLOCK_CONFIG_H */
