/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The service's rule state on disk: every claim of every source with its
 * action and deadline, in ipblock-rule -S's save format between a header
 * line and an end line that counts the lines and carries a CRC-32 of
 * everything before it, so a truncated or corrupted file is told from a
 * good one.  Written atomically (a temporary file, fsync, rename, fsync of
 * the directory), keeping the copy before it beside it; read whole and
 * checked before anything is applied.
 */
#ifndef IPBLOCK_STATEFILE_H
#define IPBLOCK_STATEFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "owners.h"
#include "rulefile.h"
#include "ruleset.h"

/* The files in the state directory. */
#define STATEFILE_NAME "rules.state"	     /* the newest good copy */
#define STATEFILE_PREV "rules.state.prev"    /* the copy before it */
#define STATEFILE_TMP  "rules.state.tmp"     /* being written; never read */
#define STATEFILE_BAD  "rules.state.refused" /* a copy refused at start, kept to look at */

/* The first line of every state file. */
#define STATEFILE_HEADER "# ipblock state 1"

/* Room for any sentence statefile_*() write. */
#define STATEFILE_ERRLEN 1200

/*
 * The state as text (malloc()ed into *text, *len bytes): the claims cl of
 * sources src, and the rules of rules[0..nr) (sorted) that no source
 * claims as the default source's, as ipblock-rule -S writes them.
 * -ENOMEM.
 */
int statefile_format(const struct owners_sources *src, const struct rule *rules, size_t nr,
		     const struct owner_claims *cl, char **text, size_t *len);

/*
 * Write text as dir/STATEFILE_NAME, atomically and durably, after making
 * the file there before it dir/STATEFILE_PREV.  -errno with one sentence
 * in err naming the file; the copies already there stay as they were.
 */
int statefile_write(const char *dir, const char *text, size_t len, char *err, size_t errlen);

/*
 * Check and parse a state file's text (name for messages): the header,
 * the end line's count and CRC, then every line (rulefile_parse_text()).
 * -EINVAL with "NAME:LINE: what is wrong; refused." in err; -ENOMEM.  On
 * success rf holds the rules (free it with rulefile_free()).
 */
int statefile_parse(const char *name, const char *text, size_t len, uint64_t now,
		    struct rulefile *rf, char *err, size_t errlen);

/* statefile_parse() of the file at path.  -ENOENT (err set too) when there is none. */
int statefile_read(const char *path, uint64_t now, struct rulefile *rf, char *err, size_t errlen);

/*
 * Make the claims of every source rf names exactly rf's, in one atomic
 * switch (owners_replace_claims()); claims whose deadline is at or before
 * now are left out (*late counts them), and lines without a source are
 * the default source's.  Caller holds the exclusive lock.  *restored gets
 * the claims applied.
 */
int statefile_apply(struct owners *o, const struct rulefile *rf, uint64_t now, size_t *restored,
		    size_t *late);

#endif /* IPBLOCK_STATEFILE_H */
