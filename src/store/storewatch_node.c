/* The store watcher's node table: one node per keyset by name, shared by
 * the store operations (storewatch.c) and the watching thread
 * (storewatch_thread.c). */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "storewatch_priv.h"

static bool same_name(const struct hnode *h, const void *name)
{
	return !strcmp(((const struct wnode *)h)->name, name);
}

struct wnode *sw_wnode_find(struct storewatch *w, const char *name)
{
	return (struct wnode *)htab_find(&w->nodes, htab_hash(name), same_name, name);
}

struct wnode *sw_wnode_add(struct storewatch *w, const char *name)
{
	_Static_assert(offsetof(struct wnode, h) == 0, "htab_add_named() returns the hnode");
	return htab_add_named(&w->nodes, sizeof(struct wnode), offsetof(struct wnode, name), name,
			      htab_hash(name));
}

void sw_wnode_free(struct wnode *n)
{
	free(n->versions);
	free(n);
}

void sw_wnode_touch(struct wnode *n)
{
	n->gen++;
	n->valid = false;
	n->pending = true;
}
