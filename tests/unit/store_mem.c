/* The in-memory keystore backend for tests (see store_mem.h). Each keyset
 * is its active keys and a list of inactive versions; the stamp is a
 * counter bumped on every change. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "store_mem.h"

#define MEM_KEYSETS 64
#define MEM_VERSIONS 16

struct mem_keyset {
	char name[KEYSET_NAME_MAX + 1];
	bool active;
	struct keyset keys;
	uint64_t stamp;
	struct keyset versions[MEM_VERSIONS];
	unsigned numbers[MEM_VERSIONS];
	size_t nversions;
};

struct mem_store {
	pthread_mutex_t lock;
	struct mem_keyset ks[MEM_KEYSETS];
	size_t n;
	uint64_t clock;
};

static int copy(struct keyset *dst, const struct keyset *src)
{
	int ret = keyset_copy(dst, src);

	/* A store keeps keys, not hints, as the directory store reads them. */
	dst->hint[0] = '\0';
	return ret;
}

static struct mem_keyset *find(struct mem_store *m, const char *name, bool create)
{
	size_t i;

	for (i = 0; i < m->n; i++)
		if (!strcmp(m->ks[i].name, name))
			return &m->ks[i];
	if (!create || m->n == MEM_KEYSETS)
		return NULL;
	memset(&m->ks[m->n], 0, sizeof(m->ks[0]));
	strcpy(m->ks[m->n].name, name);
	return &m->ks[m->n++];
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int mem_list(void *priv, char ***names, size_t *n)
{
	struct mem_store *m = priv;
	const char **active;
	size_t i, k = 0;
	int ret;

	pthread_mutex_lock(&m->lock);
	active = calloc(m->n + 1, sizeof(*active));
	for (i = 0; active && i < m->n; i++)
		if (m->ks[i].active)
			active[k++] = m->ks[i].name;
	if (active) {
		qsort(active, k, sizeof(*active), cmp_names);
		ret = store_list_pack(active, k, names);
	} else {
		ret = -ENOMEM;
	}
	pthread_mutex_unlock(&m->lock);
	free(active);
	*n = ret ? 0 : k;
	return ret;
}

static int mem_stamp(void *priv, const char *name, uint64_t *stamp)
{
	struct mem_store *m = priv;
	struct mem_keyset *k;
	int ret = -ENOENT;

	pthread_mutex_lock(&m->lock);
	k = find(m, name, false);
	if (k && k->active) {
		*stamp = k->stamp;
		ret = 0;
	}
	pthread_mutex_unlock(&m->lock);
	return ret;
}

static int mem_why(void *priv, const char *name, char *buf, size_t size)
{
	uint64_t stamp;

	if (size)
		buf[0] = '\0';
	return mem_stamp(priv, name, &stamp);
}

static int mem_read(void *priv, const char *name, struct keyset *ks)
{
	struct mem_store *m = priv;
	struct mem_keyset *k;
	int ret = -ENOENT;

	pthread_mutex_lock(&m->lock);
	k = find(m, name, false);
	if (k && k->active)
		ret = copy(ks, &k->keys);
	pthread_mutex_unlock(&m->lock);
	return ret;
}

static int put_locked(struct mem_store *m, const struct keyset *ks, struct store_put *res)
{
	struct mem_keyset *k = find(m, ks->name, true);
	size_t i;
	int ret;

	if (!k)
		return -ENOSPC;
	res->version = 0;
	if (!k->active) {
		res->outcome = STORE_CREATED;
		k->active = true;
		k->stamp = ++m->clock;
		return copy(&k->keys, ks);
	}
	if (keyset_equal(&k->keys, ks)) {
		res->outcome = STORE_UNCHANGED;
		return 0;
	}
	for (i = 0; i < k->nversions; i++) {
		if (keyset_equal(&k->versions[i], ks)) {
			res->outcome = STORE_KNOWN;
			res->version = k->numbers[i];
			return 0;
		}
	}
	if (k->nversions == MEM_VERSIONS)
		return -ENOSPC;
	ret = copy(&k->versions[k->nversions], ks);
	if (ret)
		return ret;
	res->outcome = STORE_VERSIONED;
	res->version = k->nversions ? k->numbers[k->nversions - 1] + 1 : 1;
	k->numbers[k->nversions++] = res->version;
	return 0;
}

static int mem_put(void *priv, const struct keyset *ks, struct store_put *res)
{
	struct mem_store *m = priv;
	int ret;

	pthread_mutex_lock(&m->lock);
	ret = put_locked(m, ks, res);
	pthread_mutex_unlock(&m->lock);
	return ret;
}

static int mem_versions(void *priv, const char *name, unsigned **v, size_t *n)
{
	struct mem_store *m = priv;
	struct mem_keyset *k;
	int ret = 0;

	pthread_mutex_lock(&m->lock);
	k = find(m, name, false);
	*n = k ? k->nversions : 0;
	*v = *n ? malloc(*n * sizeof(**v)) : NULL;
	if (*n && !*v)
		ret = -ENOMEM;
	else if (*n)
		memcpy(*v, k->numbers, *n * sizeof(**v));
	pthread_mutex_unlock(&m->lock);
	return ret;
}

static int activate_locked(struct mem_store *m, const char *name, unsigned version, unsigned *kept)
{
	struct mem_keyset *k = find(m, name, false);
	struct keyset tmp;
	size_t i;

	for (i = 0; k && i < k->nversions && k->numbers[i] != version; i++)
		;
	if (!k || i == k->nversions)
		return -ENOENT;
	/* the replaced keys become the next version number */
	tmp = k->keys;
	k->keys = k->versions[i];
	memmove(&k->versions[i], &k->versions[i + 1], (k->nversions - i - 1) * sizeof(tmp));
	memmove(&k->numbers[i], &k->numbers[i + 1], (k->nversions - i - 1) * sizeof(unsigned));
	k->nversions--;
	*kept = 0;
	if (k->active) {
		*kept = k->nversions ? k->numbers[k->nversions - 1] + 1 : version + 1;
		if (*kept <= version)
			*kept = version + 1;
		k->versions[k->nversions] = tmp;
		k->numbers[k->nversions++] = *kept;
	}
	k->active = true;
	k->stamp = ++m->clock;
	return 0;
}

static int mem_activate(void *priv, const char *name, unsigned version, unsigned *kept)
{
	struct mem_store *m = priv;
	int ret;

	pthread_mutex_lock(&m->lock);
	ret = activate_locked(m, name, version, kept);
	pthread_mutex_unlock(&m->lock);
	return ret;
}

static void mem_destroy(void *priv)
{
	struct mem_store *m = priv;
	size_t i, j;

	for (i = 0; i < m->n; i++) {
		keyset_clear(&m->ks[i].keys);
		for (j = 0; j < m->ks[i].nversions; j++)
			keyset_clear(&m->ks[i].versions[j]);
	}
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static const struct store_ops mem_ops = {
	.list = mem_list,
	.stamp = mem_stamp,
	.why = mem_why,
	.read = mem_read,
	.put = mem_put,
	.versions = mem_versions,
	.activate = mem_activate,
	.destroy = mem_destroy,
};

int store_mem_open(const char *path, const struct state *state, struct store *s)
{
	struct mem_store *m;

	(void)path;
	(void)state;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	pthread_mutex_init(&m->lock, NULL);
	s->ops = &mem_ops;
	s->priv = m;
	return 0;
}

int store_mem_set(struct store *s, const struct keyset *ks, bool remove)
{
	struct mem_store *m = s->priv;
	struct mem_keyset *k;
	int ret = 0;

	pthread_mutex_lock(&m->lock);
	k = find(m, ks->name, true);
	if (!k) {
		ret = -ENOSPC;
	} else if (remove) {
		k->active = false;
	} else {
		ret = copy(&k->keys, ks);
		k->active = true;
		k->stamp = ++m->clock;
	}
	pthread_mutex_unlock(&m->lock);
	return ret;
}
