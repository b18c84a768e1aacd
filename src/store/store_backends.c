/* The keystore backends, by the name store.backend gives: one line per
 * backend, the only list of their names (the configuration keeps
 * store.backend as text and asks store_backend_check()). */
#include <errno.h>
#include <stdio.h>
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

int store_backend_check(const char *backend, const char **why)
{
	static __thread char text[128];
	size_t i, n;

	*why = NULL;
	if (store_backend_known(backend))
		return 0;
	/* The value is not quoted, as the config's refusals never are. */
	n = (size_t)snprintf(text, sizeof(text), "not a known backend (known:");
	for (i = 0; i < sizeof(backends) / sizeof(backends[0]) && n < sizeof(text); i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "%s \"%s\"", i ? "," : "",
				      backends[i].name);
	if (n < sizeof(text))
		snprintf(text + n, sizeof(text) - n, ")");
	*why = text;
	return -ENOENT;
}
