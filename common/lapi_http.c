// SPDX-License-Identifier: GPL-2.0
/*
 * The LAPI client's configuration, API key and HTTP side (libcurl).  The
 * answer goes to lapi_decode() (lapi_decode.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "errbuf.h"
#include "lapi.h"
#include "lapi_priv.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 3000
#define DEFAULT_TIMEOUT_MS	   30000
#define DEFAULT_MAX_BODY	   ((size_t)256 << 20)
#define USER_AGENT		   "ipblock-lapi/1"

/* A key file larger than this is not a key file. */
#define KEY_FILE_MAX 4096

static bool is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

int lapi_read_key(const char *path, char *key, size_t keylen, char *err, size_t errlen)
{
	char buf[KEY_FILE_MAX + 1];
	size_t len = 0, start = 0;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		errbuf_set(err, errlen, "Cannot open the CrowdSec API key file %s: %s.", path,
			   strerror(-ret));
		return ret;
	}
	/* Bounded: at most KEY_FILE_MAX + 1 bytes in reads that each make progress. */
	while (len < sizeof(buf)) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			close(fd);
			errbuf_set(err, errlen, "Cannot read the CrowdSec API key file %s: %s.",
				   path, strerror(-ret));
			return ret;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (len > KEY_FILE_MAX) {
		errbuf_set(err, errlen,
			   "The CrowdSec API key file %s is larger than %d bytes: not a key file.",
			   path, KEY_FILE_MAX);
		return -EINVAL;
	}
	while (len > 0 && is_space(buf[len - 1]))
		len--;
	while (start < len && is_space(buf[start]))
		start++;
	if (start == len) {
		errbuf_set(
			err, errlen,
			"The CrowdSec API key file %s is empty: put the key that 'cscli bouncers "
			"add NAME -o raw' printed in it.",
			path);
		return -EINVAL;
	}
	/* It goes into an HTTP header: nothing that could end or split the line. */
	for (size_t i = start; i < len; i++) {
		unsigned char ch = (unsigned char)buf[i];

		if (ch <= ' ' || ch >= 0x7f) {
			errbuf_set(
				err, errlen,
				"The CrowdSec API key in %s holds a space or a non-printable byte "
				"(0x%02x at byte %zu): a key is one word.",
				path, ch, i);
			return -EINVAL;
		}
	}
	if (len - start >= keylen) {
		errbuf_set(
			err, errlen,
			"The CrowdSec API key in %s is %zu bytes long, more than the %zu allowed.",
			path, len - start, keylen - 1);
		return -EINVAL;
	}
	memcpy(key, buf + start, len - start);
	key[len - start] = '\0';
	return 0;
}

unsigned int lapi_backoff_ms(unsigned int failures, unsigned int interval_ms, unsigned int cap_ms,
			     uint32_t rnd)
{
	uint64_t d = interval_ms ? interval_ms : 1;
	uint64_t cap = cap_ms > d ? cap_ms : d;

	if (!failures)
		return (unsigned int)d;
	/* Doubling: d << failures, without shifting past 63 bits. */
	for (unsigned int i = 0; i < failures && d < cap; i++)
		d *= 2;
	if (d > cap)
		d = cap;
	/* Jitter: take off up to a quarter, so a fleet spreads its retries. */
	d -= (uint64_t)rnd % (d / 4 + 1);
	return d ? (unsigned int)d : 1;
}

/* --- configuration ---------------------------------------------------------- */

static int copy_list(const char *const *in, char **out, size_t *n, const char *what, char *err,
		     size_t errlen)
{
	*n = 0;
	for (; in && *in; in++) {
		if (*n >= LAPI_MAX_FILTER) {
			errbuf_set(err, errlen, "More than %d decision %s are configured.",
				   LAPI_MAX_FILTER, what);
			return -EINVAL;
		}
		if (!**in) {
			errbuf_set(err, errlen, "An empty decision %s is configured.", what);
			return -EINVAL;
		}
		out[*n] = strdup(*in);
		if (!out[*n]) {
			errbuf_set(err, errlen, "Out of memory.");
			return -ENOMEM;
		}
		(*n)++;
	}
	return 0;
}

static bool valid_source(const char *s)
{
	if (!*s || strlen(s) >= LAPI_SOURCE_LEN)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '.' || *s == '-' || *s == '_'))
			return false;
	return true;
}

/* url + path + the query of the configured scopes and origins, escaped. */
static char *stream_url(struct lapi_client *c, bool startup)
{
	size_t cap = strlen(c->url) + 128, len;
	char *s = malloc(cap), *p;

	if (!s)
		return NULL;
	len = (size_t)snprintf(s, cap, "%s/v1/decisions/stream?%sscopes=%s%s%s", c->url,
			       startup ? "startup=true&" : "",
			       c->scopes & LAPI_SCOPE_IP ? "ip" : "",
			       c->scopes == (LAPI_SCOPE_IP | LAPI_SCOPE_RANGE) ? "," : "",
			       c->scopes & LAPI_SCOPE_RANGE ? "range" : "");
	for (size_t i = 0; i < c->n_origins; i++) {
		char *esc = curl_easy_escape(c->curl, c->origins[i], 0);
		size_t need;

		if (!esc) {
			free(s);
			return NULL;
		}
		need = len + strlen(esc) + sizeof("&origins=");
		if (need > cap) {
			p = realloc(s, need * 2);
			if (!p) {
				curl_free(esc);
				free(s);
				return NULL;
			}
			s = p;
			cap = need * 2;
		}
		len += (size_t)snprintf(s + len, cap - len, "%s%s", i ? "," : "&origins=", esc);
		curl_free(esc);
	}
	return s;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct lapi_client *c = arg;
	size_t n = size * nmemb;

	if (n > c->max_body - c->body_len) {
		c->body_too_big = true;
		return 0; /* makes curl stop with CURLE_WRITE_ERROR */
	}
	if (c->body_len + n + 1 > c->body_cap) {
		size_t cap = c->body_cap ? c->body_cap : 64 * 1024;
		char *p;

		while (cap < c->body_len + n + 1)
			cap *= 2;
		p = realloc(c->body, cap);
		if (!p)
			return 0;
		c->body = p;
		c->body_cap = cap;
	}
	memcpy(c->body + c->body_len, data, n);
	c->body_len += n;
	c->body[c->body_len] = '\0';
	return n;
}

static int setup_curl(struct lapi_client *c, char *err, size_t errlen)
{
	char header[LAPI_KEY_LEN + 16];
	CURL *h;
	CURLcode rc = CURLE_OK;

	/* Idempotent and, since curl 7.84, thread-safe; paired in lapi_close(). */
	if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
		errbuf_set(err, errlen, "Cannot initialise libcurl.");
		return -ENOMEM;
	}
	h = curl_easy_init();
	if (!h) {
		curl_global_cleanup();
		errbuf_set(err, errlen, "Cannot initialise libcurl.");
		return -ENOMEM;
	}
	c->curl = h;
	snprintf(header, sizeof(header), "X-Api-Key: %s", c->key);
	c->headers = curl_slist_append(NULL, header);
	if (!c->headers) {
		errbuf_set(err, errlen, "Out of memory.");
		return -ENOMEM;
	}
	explicit_bzero(header, sizeof(header));
	/* Signals would interrupt the service's other threads' timers; no redirects
	 * (the key must not follow them); the body goes to on_body. */
	if (!rc)
		rc = curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	if (!rc)
		rc = curl_easy_setopt(h, CURLOPT_HTTPHEADER, (struct curl_slist *)c->headers);
	if (!rc)
		rc = curl_easy_setopt(h, CURLOPT_USERAGENT, USER_AGENT);
	if (!rc)
		rc = curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	if (!rc)
		rc = curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	if (!rc)
		rc = curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)c->connect_timeout_ms);
	if (!rc)
		rc = curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
	if (!rc)
		rc = curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
	/* A proxy from the environment may serve a remote LAPI, never a local one. */
	if (!rc)
		rc = curl_easy_setopt(h, CURLOPT_NOPROXY, "127.0.0.1,localhost,::1");
	if (!rc)
		rc = curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	if (!rc)
		rc = curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
	if (!rc && c->ca_file)
		rc = curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
	if (rc) {
		errbuf_set(err, errlen, "Cannot set up libcurl: %s.", curl_easy_strerror(rc));
		return -EINVAL;
	}
	c->stream_url = stream_url(c, false);
	c->startup_url = stream_url(c, true);
	if (!c->stream_url || !c->startup_url) {
		errbuf_set(err, errlen, "Out of memory.");
		return -ENOMEM;
	}
	return 0;
}

int lapi_open(const struct lapi_config *cfg, struct lapi_client **out, char *err, size_t errlen)
{
	static const char *const default_types[] = { "ban", NULL };
	struct lapi_client *c;
	size_t n;
	int ret;

	*out = NULL;
	if (!cfg->url || (strncmp(cfg->url, "http://", 7) && strncmp(cfg->url, "https://", 8))) {
		errbuf_set(err, errlen,
			   "The LAPI URL '%s' does not start with http:// or https://.",
			   cfg->url ? cfg->url : "");
		return -EINVAL;
	}
	if (cfg->source && !valid_source(cfg->source)) {
		errbuf_set(err, errlen,
			   "The source name '%s' is not 1 to %d letters, digits, '.', '-' or '_'.",
			   cfg->source, LAPI_SOURCE_LEN - 1);
		return -EINVAL;
	}
	if (cfg->scopes & ~(unsigned int)(LAPI_SCOPE_IP | LAPI_SCOPE_RANGE)) {
		errbuf_set(err, errlen, "Unknown decision scope bits 0x%x.", cfg->scopes);
		return -EINVAL;
	}
	if (!cfg->key_file) {
		errbuf_set(err, errlen, "No CrowdSec API key file is configured.");
		return -EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		errbuf_set(err, errlen, "Out of memory.");
		return -ENOMEM;
	}
	lapi_forget(c);
	c->need_startup = true;
	c->connect_timeout_ms = cfg->connect_timeout_ms ?: DEFAULT_CONNECT_TIMEOUT_MS;
	c->timeout_ms = cfg->timeout_ms ?: DEFAULT_TIMEOUT_MS;
	c->max_body = cfg->max_body ?: DEFAULT_MAX_BODY;
	c->scopes = cfg->scopes ?: LAPI_SCOPE_IP | LAPI_SCOPE_RANGE;
	c->source_per_origin = cfg->source_per_origin;
	snprintf(c->source, sizeof(c->source), "%s", cfg->source ? cfg->source : "crowdsec");

	ret = -ENOMEM;
	c->url = strdup(cfg->url);
	c->key_file = strdup(cfg->key_file);
	if (!c->url || !c->key_file || (cfg->ca_file && !(c->ca_file = strdup(cfg->ca_file)))) {
		errbuf_set(err, errlen, "Out of memory.");
		goto fail;
	}
	n = strlen(c->url);
	while (n > 0 && c->url[n - 1] == '/')
		c->url[--n] = '\0';
	ret = copy_list(cfg->types ? cfg->types : default_types, c->types, &c->n_types, "types",
			err, errlen);
	if (!ret)
		ret = copy_list(cfg->origins, c->origins, &c->n_origins, "origins", err, errlen);
	if (ret)
		goto fail;
	if (!c->n_types) {
		errbuf_set(err, errlen,
			   "No decision type is configured: nothing would be enforced.");
		ret = -EINVAL;
		goto fail;
	}
	ret = lapi_read_key(c->key_file, c->key, sizeof(c->key), err, errlen);
	if (ret)
		goto fail;
	ret = setup_curl(c, err, errlen);
	if (ret)
		goto fail;
	*out = c;
	return 0;
fail:
	lapi_close(c);
	return ret;
}

void lapi_close(struct lapi_client *c)
{
	if (!c)
		return;
	if (c->curl) {
		curl_easy_cleanup(c->curl);
		curl_global_cleanup();
	}
	curl_slist_free_all(c->headers);
	for (size_t i = 0; i < c->n_types; i++)
		free(c->types[i]);
	for (size_t i = 0; i < c->n_origins; i++)
		free(c->origins[i]);
	lapi_decode_free(c);
	free(c->stream_url);
	free(c->startup_url);
	free(c->body);
	free(c->url);
	free(c->key_file);
	free(c->ca_file);
	explicit_bzero(c->key, sizeof(c->key));
	free(c);
}

void lapi_resync(struct lapi_client *c)
{
	c->need_startup = true;
}

/* --- one poll ------------------------------------------------------------------ */

static uint64_t now_ms(void)
{
	struct timespec ts;

	/* Boot time: a suspended machine's decisions run out while it sleeps. */
	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The "message" of a JSON error answer ({"message":"access forbidden"}), or "". */
static void answer_message(const struct lapi_client *c, char *msg, size_t len)
{
	json_tokener *tok;
	json_object *root = NULL, *m;
	size_t n = 0;

	msg[0] = '\0';
	if (!c->body_len || c->body_len > 64 * 1024 || !(tok = json_tokener_new()))
		return;
	root = json_tokener_parse_ex(tok, c->body, (int)c->body_len);
	json_tokener_free(tok);
	if (root && json_object_object_get_ex(root, "message", &m) &&
	    json_object_is_type(m, json_type_string)) {
		/* Into a one-line sentence: printable ASCII only. */
		for (const char *p = json_object_get_string(m); *p && n + 1 < len; p++)
			msg[n++] = (*p >= ' ' && *p < 0x7f) ? *p : '?';
		msg[n] = '\0';
	}
	json_object_put(root);
}

static int transfer_error(struct lapi_client *c, CURLcode rc, const char *curl_err, char *err,
			  size_t errlen)
{
	const char *why = *curl_err ? curl_err : curl_easy_strerror(rc);

	switch (rc) {
	case CURLE_COULDNT_CONNECT:
		errbuf_set(err, errlen, "Cannot connect to the CrowdSec LAPI at %s: %s.", c->url,
			   why);
		return -ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		errbuf_set(err, errlen,
			   "The CrowdSec LAPI at %s did not answer in time (connect %u ms, whole "
			   "request %u ms): %s.",
			   c->url, c->connect_timeout_ms, c->timeout_ms, why);
		return -ETIMEDOUT;
	case CURLE_COULDNT_RESOLVE_HOST:
		errbuf_set(err, errlen, "Cannot resolve the CrowdSec LAPI's host in %s: %s.",
			   c->url, why);
		return -EHOSTUNREACH;
	case CURLE_WRITE_ERROR:
		if (c->body_too_big) {
			errbuf_set(err, errlen,
				   "The CrowdSec LAPI's answer is larger than %zu bytes; refused.",
				   c->max_body);
			return -EFBIG;
		}
		errbuf_set(err, errlen, "Out of memory for the CrowdSec LAPI's answer.");
		return -ENOMEM;
	case CURLE_PARTIAL_FILE:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
		errbuf_set(err, errlen, "The CrowdSec LAPI at %s broke off its answer: %s.", c->url,
			   why);
		return -EPROTO;
	default:
		errbuf_set(err, errlen, "Polling the CrowdSec LAPI at %s failed: %s.", c->url, why);
		return -EPROTO;
	}
}

int lapi_poll(struct lapi_client *c, struct lapi_batch *batch, char *err, size_t errlen)
{
	char curl_err[CURL_ERROR_SIZE] = "", msg[128];
	bool startup = c->need_startup;
	long status = 0;
	CURLcode rc;
	int ret;

	lapi_batch_free(batch);
	c->body_len = 0;
	c->body_too_big = false;
	if (c->body)
		c->body[0] = '\0';
	/* Until this poll has been decoded whole, the next one must list everything. */
	c->need_startup = true;
	rc = curl_easy_setopt(c->curl, CURLOPT_URL, startup ? c->startup_url : c->stream_url);
	if (!rc)
		rc = curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, curl_err);
	if (!rc)
		rc = curl_easy_perform(c->curl);
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, NULL);
	if (rc)
		return transfer_error(c, rc, curl_err, err, errlen);
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status == 403) {
		answer_message(c, msg, sizeof(msg));
		errbuf_set(err, errlen,
			   "The CrowdSec LAPI at %s refused the API key in %s (403 %s): the key is "
			   "wrong or its bouncer was deleted (see cscli bouncers list).",
			   c->url, c->key_file, *msg ? msg : "forbidden");
		return -EACCES;
	}
	if (status != 200) {
		answer_message(c, msg, sizeof(msg));
		errbuf_set(err, errlen, "The CrowdSec LAPI at %s answered HTTP %ld%s%s.", c->url,
			   status, *msg ? ": " : "", msg);
		return -EPROTO;
	}
	ret = lapi_decode(c, c->body ? c->body : "", c->body_len, startup, now_ms(), batch, err,
			  errlen);
	if (ret)
		return ret;
	c->need_startup = false;
	/* A huge startup answer need not stay in memory until the next one. */
	if (c->body_cap > (size_t)4 << 20) {
		free(c->body);
		c->body = NULL;
		c->body_cap = 0;
	}
	return 0;
}
