/* What the layers that add keysets by configuration (store_live.c,
 * store_command.c) share: their keysets listed with the store's, and no
 * name in both. */
#ifndef KEYFS_LAYER_H
#define KEYFS_LAYER_H

#include <stddef.h>

#include "keyfs/config.h"
#include "keyfs/store.h"

/* A layer's keysets: n entries stride bytes apart from base, each
 * starting with its struct config_keyset. */
struct layer_keysets {
	const void *base;
	size_t stride, n;
};

static inline const char *layer_name(const struct layer_keysets *l, size_t i)
{
	return ((const struct config_keyset *)((const char *)l->base + i * l->stride))->name;
}

/* inner's keysets and the layer's, sorted (ops->list). */
int layer_list(struct store *inner, const struct layer_keysets *l, char ***names, size_t *n);

/* -EEXIST, logged ("[keyset NAME] has WHAT, but the store holds..."),
 * when a keyset of inner has the name of one of the layer's. */
int layer_check_clash(struct store *inner, const struct layer_keysets *l, const char *what);

#endif
