/* A chained hash table that grows with what it holds: the seal cache's
 * entries, the store watcher's keysets and the backup records each hold
 * one node per keyset, and there may be a hundred thousand keysets.
 * Nodes are embedded in the caller's structures; the table owns only its
 * bucket array. Not thread-safe: callers lock. */
#ifndef KEYFS_HTAB_H
#define KEYFS_HTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hnode {
	struct hnode *next;
	uint64_t hash;
};

struct htab {
	struct hnode **b;
	size_t nb;		/* buckets: 0 or a power of two */
	size_t n;		/* nodes held */
};

/* FNV-1a of a string: the hash every user of the table keys names by. */
uint64_t htab_hash(const char *s);

/* The node whose hash is hash and for which eq(node, key) holds; NULL if
 * none. */
struct hnode *htab_find(const struct htab *t, uint64_t hash,
			bool (*eq)(const struct hnode *n, const void *key), const void *key);
/* Adds n (n->hash set by the caller). -ENOMEM only if the table has no
 * bucket at all; when growing fails it keeps its buckets, longer chains. */
int htab_add(struct htab *t, struct hnode *n);
/* Allocates a zeroed node of size bytes that starts with its struct
 * hnode and ends with its name (a flexible array at name_off, sized to
 * fit: a table may hold a hundred thousand names), and adds it with
 * hash. free() it once deleted. NULL if out of memory. */
void *htab_add_named(struct htab *t, size_t size, size_t name_off, const char *name,
		     uint64_t hash);
void htab_del(struct htab *t, struct hnode *n);
/* Iteration: start with *pos = 0 and prev NULL; returns NULL at the end.
 * The table must not change meanwhile. */
struct hnode *htab_next(const struct htab *t, size_t *pos, struct hnode *prev);
/* Frees the bucket array (not the nodes) and empties t. */
void htab_free(struct htab *t);

#endif
