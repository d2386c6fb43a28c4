/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the kernel's verifier said about a program load, read from the log
 * it writes: how many instructions it processed, and why it rejected the
 * program.  A loader asks for log level 4 (statistics) with its own buffer:
 * the kernel then writes only its error lines and the statistics, where the
 * default retry at level 1 would log every instruction it walked (megabytes,
 * and minutes on a slow machine).
 */
#ifndef IPBLOCK_VERIFIER_H
#define IPBLOCK_VERIFIER_H

#include <stddef.h>

/* The log level that gives the statistics and the error lines only. */
#define VERIFIER_LOG_STATS 4

/* A log buffer large enough for that level. */
#define VERIFIER_LOG_SIZE (64 * 1024)

/* The figure of the log's "processed N insns" line, or -1 when it has none. */
long verifier_insns(const char *log);

/*
 * Why the verifier rejected the program, as a clause for a sentence
 * ("too large: 1000001 instructions processed, over the limit of 1000000",
 * or the verifier's error lines joined by "; "): 0 with out filled, or -ENOENT when
 * the log holds no rejection (the load failed for another reason).
 */
int verifier_reason(const char *log, char *out, size_t outlen);

#endif /* IPBLOCK_VERIFIER_H */
