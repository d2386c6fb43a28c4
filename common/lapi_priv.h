/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The LAPI client's state, shared by its two halves: lapi_http.c (configuration,
 * key, HTTP) and lapi_decode.c (answer -> changes, the live decisions).
 * Nothing outside those two files includes this.
 */
#ifndef IPBLOCK_LAPI_PRIV_H
#define IPBLOCK_LAPI_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lapi.h"

/* No entry: the end of a chain, an empty hash slot. */
#define LAPI_NONE UINT32_MAX

/* Distinct source names one client hands out (origins, with source_per_origin). */
#define LAPI_MAX_SOURCES 256

/* Decision types and origins kept, at most. */
#define LAPI_MAX_FILTER 32

/* A live decision: it holds its key until expires_ms. */
struct lapi_dec {
	int64_t id;
	uint64_t expires_ms;
	uint32_t key;  /* the (prefix, source) it holds */
	uint32_t next; /* the next decision holding the same key; free list link when unused */
};

/* A (prefix, source) some decision holds, or one this batch released. */
struct lapi_key {
	struct cidr prefix;
	uint16_t source;
	uint32_t head;	    /* first live decision holding it, LAPI_NONE: none */
	uint32_t gen;	    /* batch that last touched it */
	uint32_t touches;   /* decisions of this batch that touched it */
	uint32_t deletions; /* of which deletions */
	int64_t last_id;    /* the decision that touched it last (for a del) */
	uint32_t next_free;
};

/* Open-addressing hash of indices into dec or key; linear probing. */
struct lapi_index {
	uint32_t *slot;
	uint32_t mask; /* slots - 1; 0 when not allocated */
	uint32_t n;
};

struct lapi_client {
	/* Configuration, copied. */
	char *url; /* without a trailing '/' */
	char *key_file;
	char *ca_file;
	char key[LAPI_KEY_LEN];
	unsigned int connect_timeout_ms, timeout_ms;
	size_t max_body;
	char *types[LAPI_MAX_FILTER];
	size_t n_types;
	char *origins[LAPI_MAX_FILTER];
	size_t n_origins;
	unsigned int scopes;
	char source[LAPI_SOURCE_LEN];
	bool source_per_origin;

	/* HTTP. */
	void *curl;	   /* CURL * */
	void *headers;	   /* struct curl_slist * */
	char *stream_url;  /* .../v1/decisions/stream?scopes=... */
	char *startup_url; /* the same with startup=true */
	bool need_startup;
	char *body;
	size_t body_len, body_cap;
	bool body_too_big;

	/* Live decisions (lapi_decode.c). */
	struct lapi_dec *dec;
	uint32_t n_dec, cap_dec, free_dec, live;
	struct lapi_key *keys;
	uint32_t n_keys, cap_keys, free_key;
	struct lapi_index by_id, by_key;
	char sources[LAPI_MAX_SOURCES][LAPI_SOURCE_LEN];
	uint16_t n_sources;
	uint32_t gen;
	uint32_t *touched; /* keys touched by the current batch, in order */
	uint32_t n_touched, cap_touched;
};

/* Forget every live decision (lapi_decode.c). */
void lapi_forget(struct lapi_client *c);

/* Free what lapi_decode() allocated (lapi_decode.c). */
void lapi_decode_free(struct lapi_client *c);

#endif /* IPBLOCK_LAPI_PRIV_H */
