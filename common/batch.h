/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A batch of rule changes as text, for one process to apply at once
 * (ipblock-rule -b): one change a line,
 *
 *   add CIDR allow|deny [source=NAME] [timeout=DURATION|expires=TIME]
 *   del CIDR [source=NAME]
 *
 * with the fields of a rule list (rulefile.h); '#' and ';' start comments,
 * blank lines are fine.  The batch is parsed whole before anything is
 * applied: a bad line refuses it, naming FILE:LINE.  Changes keep their
 * order: a later line about the same prefix and source wins.
 */
#ifndef IPBLOCK_BATCH_H
#define IPBLOCK_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ipblock.h"
#include "rulefile.h"
#include "ruleset.h"

struct batch_change {
	struct rule rule;			 /* the prefix; an add's action */
	uint64_t deadline;			 /* an add's deadline; 0: never */
	char source[IPBLOCK_SOURCE_NAME_LEN];	 /* "": the caller's default */
	bool del;
	uint32_t line;
};

struct batch {
	struct batch_change *c;
	size_t n, cap;
	size_t adds, dels;
	char error[RULEFILE_MSGLEN]; /* why reading failed: "FILE:LINE: reason" */
};

/*
 * Parse text (name for messages) whole; timeout= counts from now.
 * -EINVAL with b->error set, -ENOMEM.
 */
int batch_parse_text(struct batch *b, const char *name, const char *text, size_t len,
		     uint64_t now);

/* batch_parse_text() of the file at path ("-": standard input). */
int batch_read(struct batch *b, const char *path, uint64_t now);

void batch_free(struct batch *b);

#endif /* IPBLOCK_BATCH_H */
