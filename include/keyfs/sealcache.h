/* Sealed exports: the armored age file of each keyset, sealed once per
 * (keyset version, password) and then served as the same bytes.
 *
 * A struct seal is immutable once published and reference counted, so an
 * open file keeps the bytes it opened while a newer seal replaces it.
 * sealcache_attr() never waits for scrypt or a password; only
 * sealcache_open() may seal. */
#ifndef KEYFS_SEALCACHE_H
#define KEYFS_SEALCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "keyfs/config.h"
#include "keyfs/secret.h"
#include "keyfs/store.h"

struct seal {
	int refs;		/* atomic */
	uint64_t stamp;		/* keyset version it was sealed from */
	uint64_t pwgen;		/* vault generation it was sealed under */
	time_t sealed_at;
	size_t len;
	char *bytes;		/* armored age file */
};

struct export_attr {
	uint64_t ino;		/* stable per keyset name */
	size_t size;		/* exact bytes a read returns */
	time_t mtime;		/* when the bytes were sealed (or the keyset's time before) */
};

struct sealcache;

int sealcache_new(struct sealcache **sc, struct store *st, struct vault *v, const struct config *c);
void sealcache_free(struct sealcache *sc);

/* The inode number of export/<name>.pem: the same on every mount. */
uint64_t sealcache_ino(const char *name);

/* Attributes of export/<name>.pem; -ENOENT if no such keyset. */
int sealcache_attr(struct sealcache *sc, const char *name, struct export_attr *a);

/* A reference to the current seal, sealing now if needed.
 * -ENOKEY without a backup password. Release with seal_put(). */
int sealcache_open(struct sealcache *sc, const char *name, struct seal **out);
void seal_put(struct seal *s);

/* Whether the newest seal is current (keyset and password unchanged) and
 * when it was made; sealed_at is 0 if the keyset was never sealed. */
int sealcache_state(struct sealcache *sc, const char *name, bool *current, time_t *sealed_at);

/* The hint sealed into KEYSET.ini of a keyset ("" if none). */
void sealcache_hint(struct sealcache *sc, const char *name, char *buf, size_t size);

#endif
