/* keyfs' metadata files (see meta.h). */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyfs/dirwalk.h"
#include "keyfs/keyset.h"
#include "keyfs/meta.h"
#include "keyfs/replace.h"

/* A key names a file of its own in the meta directory. */
static bool key_valid(const char *key)
{
	return *key && *key != '.' && !strchr(key, '/');
}

static int meta_path(const char *key, char *path, size_t size)
{
	if (!key_valid(key) || snprintf(path, size, STATE_META "/%s", key) >= (int)size)
		return -EINVAL;
	return 0;
}

/* ---- the values in memory: few (hints, marks), sorted by key ---- */

struct meta_kv {
	char *key;
	char *value;
};

struct meta_cache {
	pthread_mutex_t lock;
	struct meta_kv *kv;
	size_t n;
};

/* Where key is, or would be inserted. Caller holds the lock. */
static size_t find(const struct meta_cache *c, const char *key, bool *found)
{
	size_t lo = 0, hi = c->n, mid;
	int d;

	*found = false;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		d = strcmp(key, c->kv[mid].key);
		if (!d) {
			*found = true;
			return mid;
		}
		if (d < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* Sets (value NULL: removes) key in memory. Caller holds the lock. */
static int put(struct meta_cache *c, const char *key, const char *value)
{
	struct meta_kv *kv;
	char *v = NULL, *k = NULL;
	bool found;
	size_t i = find(c, key, &found);

	if (value && !(v = strdup(value)))
		return -ENOMEM;
	if (found) {
		free(c->kv[i].value);
		c->kv[i].value = v;
		if (!v) {
			free(c->kv[i].key);
			memmove(&c->kv[i], &c->kv[i + 1], (c->n - i - 1) * sizeof(*kv));
			c->n--;
		}
		return 0;
	}
	if (!v)
		return 0;
	kv = realloc(c->kv, (c->n + 1) * sizeof(*kv));
	if (!kv || !(k = strdup(key))) {
		if (kv)
			c->kv = kv;
		free(v);
		return -ENOMEM;
	}
	c->kv = kv;
	memmove(&kv[i + 1], &kv[i], (c->n - i) * sizeof(*kv));
	kv[i] = (struct meta_kv){ k, v };
	c->n++;
	return 0;
}

static int read_value(const struct state *s, const char *path, char *buf, size_t size);

static int load_one(int dirfd, const char *name, const struct stat *st, void *arg)
{
	const struct state *s = arg;
	char path[PATH_MAX], value[META_VALUE_MAX];

	(void)dirfd;
	if (!S_ISREG(st->st_mode) || replace_is_temp(name) || meta_path(name, path, sizeof(path)))
		return 0;
	if (read_value(s, path, value, sizeof(value)))
		return 0; /* unreadable: as if unset, as before */
	return put(s->meta, name, value);
}

int meta_load(struct state *s)
{
	struct meta_cache *c;
	int ret;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	s->meta = c;
	ret = dirwalk_each(s->fd, STATE_META, load_one, s);
	if (ret)
		meta_unload(s);
	return ret;
}

void meta_unload(struct state *s)
{
	struct meta_cache *c = s->meta;
	size_t i;

	if (!c)
		return;
	for (i = 0; i < c->n; i++) {
		free(c->kv[i].key);
		free(c->kv[i].value);
	}
	free(c->kv);
	pthread_mutex_destroy(&c->lock);
	free(c);
	s->meta = NULL;
}

/* ---- the files ---- */

/* A status asks for a hundred thousand hints: from memory, the key is
 * only checked, not made into a path. */
int meta_get(const struct state *s, const char *key, char *buf, size_t size)
{
	char path[PATH_MAX];
	bool found;
	size_t i;
	int ret;

	if (!s->meta) {
		ret = meta_path(key, path, sizeof(path));
		return ret ? ret : read_value(s, path, buf, size);
	}
	if (!key_valid(key))
		return -EINVAL;
	pthread_mutex_lock(&s->meta->lock);
	i = find(s->meta, key, &found);
	if (found)
		snprintf(buf, size, "%s", s->meta->kv[i].value);
	pthread_mutex_unlock(&s->meta->lock);
	return found ? 0 : -ENOENT;
}

static int read_value(const struct state *s, const char *path, char *buf, size_t size)
{
	ssize_t n;
	int fd, ret;

	fd = dirwalk_open_regular(s->fd, path, NULL, NULL);
	if (fd < 0)
		return fd;
	n = read(fd, buf, size - 1);
	ret = n < 0 ? -errno : 0;
	close(fd);
	if (!ret)
		buf[n] = '\0';
	return ret;
}

int meta_set(const struct state *s, const char *key, const char *value)
{
	char path[PATH_MAX];
	int ret;

	ret = meta_path(key, path, sizeof(path));
	if (ret)
		return ret;
	if (!*value)
		ret = unlinkat(s->fd, path, 0) && errno != ENOENT ? -errno : 0;
	else
		ret = replace_file(s->fd, path, &(struct iovec){ (void *)value, strlen(value) }, 1);
	if (!ret && s->meta) {
		pthread_mutex_lock(&s->meta->lock);
		ret = put(s->meta, key, *value ? value : NULL);
		pthread_mutex_unlock(&s->meta->lock);
	}
	return ret;
}

static void hint_key(const char *keyset, char key[static KEYSET_NAME_MAX + 8])
{
	size_t n;

	if (!keyset) {
		strcpy(key, "hint");
		return;
	}
	n = strnlen(keyset, KEYSET_NAME_MAX);
	memcpy(key, "hint.", 5);
	memcpy(key + 5, keyset, n);
	key[5 + n] = '\0';
}

int meta_hint(const struct state *s, const char *keyset, char *buf, size_t size)
{
	char key[KEYSET_NAME_MAX + 8];

	hint_key(keyset, key);
	return meta_get(s, key, buf, size);
}

int meta_set_hint(const struct state *s, const char *keyset, const char *text)
{
	char key[KEYSET_NAME_MAX + 8];

	hint_key(keyset, key);
	return meta_set(s, key, text);
}

/* Drops an editor's trailing line end; false if a control character
 * remains. */
static bool hint_clean(char *h)
{
	size_t n = strlen(h), i;

	while (n && (h[n - 1] == '\n' || h[n - 1] == '\r'))
		h[--n] = '\0';
	for (i = 0; i < n; i++)
		if ((unsigned char)h[i] < 0x20 || h[i] == 0x7f)
			return false;
	return true;
}

int meta_hint_for(const struct state *s, const char *keyset, char *buf, size_t size)
{
	if (meta_hint(s, keyset, buf, size) && meta_hint(s, NULL, buf, size)) {
		buf[0] = '\0';
		return 0;
	}
	if (hint_clean(buf))
		return 0;
	buf[0] = '\0';
	return -EINVAL;
}

static void own_key(const char *keyset, char key[static KEYSET_NAME_MAX + 16])
{
	snprintf(key, KEYSET_NAME_MAX + 16, "own-password.%s", keyset);
}

bool meta_own_password(const struct state *s, const char *keyset)
{
	char key[KEYSET_NAME_MAX + 16], val[8];

	own_key(keyset, key);
	return !meta_get(s, key, val, sizeof(val));
}

int meta_set_own_password(const struct state *s, const char *keyset, bool own)
{
	char key[KEYSET_NAME_MAX + 16];

	own_key(keyset, key);
	return meta_set(s, key, own ? "yes" : "");
}
