/* keyfs' small metadata in the state directory: password hints and the
 * marks of keysets that have a password of their own. Each value is one
 * file under <state>/meta, replaced atomically. The names of the keys
 * are spelled here and nowhere else.
 *
 * The values are read once, when the state directory is opened, and kept
 * in memory with every change written through: a hint is part of every
 * export's version, asked on each lookup, and only keyfs writes them. */
#ifndef KEYFS_META_H
#define KEYFS_META_H

#include <stdbool.h>
#include <stddef.h>

#include "keyfs/state.h"

#define META_VALUE_MAX 4096

/* Reads every value of s into memory (state_open() does); meta_unload()
 * drops them. Without it, each call reads the files. */
int meta_load(struct state *s);
void meta_unload(struct state *s);

/* A value by key; -ENOENT if unset. An empty value removes the key. */
int meta_get(const struct state *s, const char *key, char *buf, size_t size);
int meta_set(const struct state *s, const char *key, const char *value);

/* The hint set for keyset (NULL: the global one), as stored. */
int meta_hint(const struct state *s, const char *keyset, char *buf, size_t size);
int meta_set_hint(const struct state *s, const char *keyset, const char *text);

/* The hint that goes with keyset's backups: its own, else the global one,
 * else "". A stored hint ending in a line end (an editor's) is cleaned;
 * one with any other control character cannot be sealed into KEYSET.ini:
 * buf is then "" and the result -EINVAL, for the caller to report. */
int meta_hint_for(const struct state *s, const char *keyset, char *buf, size_t size);

/* Whether keyset has a password of its own (persistent: it is then never
 * sealed under the backup password, even before its own is given). */
bool meta_own_password(const struct state *s, const char *keyset);
int meta_set_own_password(const struct state *s, const char *keyset, bool own);

#endif
