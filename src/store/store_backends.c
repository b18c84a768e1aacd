/* The keystore backends, by the name store.backend gives: one line per
 * backend (keep config.c's list of choices in step). */
#include <errno.h>
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

