// SPDX-License-Identifier: GPL-2.0
/* The drop log's latest report, published for the live view; see droptop.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "droptop.h"

int droptop_path(const char *pin_dir, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/droplog", DROPTOP_DIR);
	size_t at;

	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	at = (size_t)n;
	if (pin_dir[0] != '/' && at + 1 < len)
		buf[at++] = '-';
	for (const char *c = pin_dir; *c && at + 1 < len; c++)
		buf[at++] = *c == '/' ? '-' : *c;
	/* A trailing slash names the same directory. */
	while (at > 0 && buf[at - 1] == '-' && at > strlen(DROPTOP_DIR "/droplog"))
		at--;
	if (at + sizeof(".json") > len)
		return -ENAMETOOLONG;
	memcpy(buf + at, ".json", sizeof(".json"));
	return 0;
}

int droptop_publish(const char *path, const char *text, size_t len)
{
	char tmp[4096];
	int fd, ret = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	/* No fsync: under /run, and a report a second old is worth no disk flush. */
	if (write(fd, text, len) != (ssize_t)len)
		ret = errno ? -errno : -EIO;
	if (close(fd) && !ret)
		ret = -errno;
	if (!ret && rename(tmp, path))
		ret = -errno;
	if (ret)
		unlink(tmp);
	return ret;
}

static uint64_t num(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? (uint64_t)json_object_get_int64(v) : 0;
}

static const char *str(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

int droptop_read(const char *path, struct droptop *out)
{
	struct json_object *o, *v, *list;
	struct timespec now;
	struct stat st;
	int ret = 0;

	memset(out, 0, sizeof(*out));
	if (stat(path, &st))
		return -errno;
	o = json_object_from_file(path);
	if (!o)
		return access(path, R_OK) ? -errno : -EINVAL;
	clock_gettime(CLOCK_REALTIME, &now);
	out->age = (double)(now.tv_sec - st.st_mtim.tv_sec) +
		   (double)(now.tv_nsec - st.st_mtim.tv_nsec) / 1e9;
	if (!json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, "sources", &list) ||
	    !json_object_is_type(list, json_type_array)) {
		ret = -EINVAL;
		goto out;
	}
	if (json_object_object_get_ex(o, "seconds", &v))
		out->seconds = json_object_get_double(v);
	out->drops = num(o, "drops");
	out->lost = num(o, "lost");
	for (size_t i = 0; i < json_object_array_length(list) && out->n < DROPTOP_MAX; i++) {
		struct json_object *s = json_object_array_get_idx(list, i);
		struct droptop_source *d = &out->src[out->n];
		const char *a = str(s, "source"), *r = str(s, "rule");

		if (!a || !r) {
			ret = -EINVAL;
			goto out;
		}
		snprintf(d->source, sizeof(d->source), "%s", a);
		snprintf(d->rule, sizeof(d->rule), "%s", r);
		d->drops = num(s, "drops");
		out->n++;
	}
out:
	json_object_put(o);
	return ret;
}
