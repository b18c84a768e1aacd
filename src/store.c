/* The keystore interface: backends by name, and the core's answer for
 * the operations a backend does not have. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "keyfs/store.h"

static const struct {
	const char *name;
	store_open_fn *open;
} backends[] = {
	{ "dir", store_dir_open },
};

int store_open(const char *backend, const char *path, const struct state *state, struct store *s)
{
	size_t i;

	for (i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (!strcmp(backends[i].name, backend))
			return backends[i].open(path, state, s);
	return -ENOENT;
}

bool store_backend_known(const char *backend)
{
	size_t i;

	for (i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (!strcmp(backends[i].name, backend))
			return true;
	return false;
}

void store_names_free(char **names, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

int store_put(struct store *s, const struct keyset *ks, struct store_put *res)
{
	return s->ops->put ? s->ops->put(s->priv, ks, res) : -EROFS;
}

int store_versions(struct store *s, const char *name, unsigned **v, size_t *n)
{
	*v = NULL;
	*n = 0;
	return s->ops->versions ? s->ops->versions(s->priv, name, v, n) : 0;
}

int store_activate(struct store *s, const char *name, unsigned version, unsigned *kept)
{
	*kept = 0;
	return s->ops->activate ? s->ops->activate(s->priv, name, version, kept) : -ENOENT;
}
