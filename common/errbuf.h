/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A sentence into a caller's buffer: how the parsers and clients of
 * common/ hand an error back to the tool that prints it.
 */
#ifndef IPBLOCK_ERRBUF_H
#define IPBLOCK_ERRBUF_H

#include <stddef.h>

/* printf into err (errlen bytes, cut to fit); nothing when err is NULL or errlen 0. */
void errbuf_set(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif /* IPBLOCK_ERRBUF_H */
