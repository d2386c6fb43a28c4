/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The service's CrowdSec bouncer: a thread polling the LAPI's decision
 * stream ([crowdsec] in ipblock.conf) and applying each answer to the
 * rules in one switch (common/bouncer.c).  When the LAPI cannot be reached
 * the rules stay as they are (enforcement goes on) and the polls back off,
 * up to a minute apart; the first answer after that is a startup=true one,
 * so what was missed is caught up with.
 */
#ifndef IPBLOCK_LOADER_CROWDSEC_H
#define IPBLOCK_LOADER_CROWDSEC_H

#include <stdint.h>

#include "config.h"

struct crowdsec;

/*
 * Start the bouncer of cfg (copied) on the maps in pin_dir.  0, or -errno
 * after one sentence on stderr (a bad key file, -ENOMEM).
 */
int crowdsec_start(const struct config_crowdsec *cfg, const char *pin_dir, struct crowdsec **out);

/* Stop the thread and free it; NULL is fine. */
void crowdsec_stop(struct crowdsec *c);

/* Whether a reload must restart the bouncer: its section changed. */
bool crowdsec_changed(const struct config_crowdsec *a, const struct config_crowdsec *b);

/* Unix seconds of the last LAPI answer applied; 0: none yet (or c NULL). */
int64_t crowdsec_last_success(struct crowdsec *c);

#endif /* IPBLOCK_LOADER_CROWDSEC_H */
