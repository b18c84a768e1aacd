/* A growing chained hash table (see htab.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "keyfs/htab.h"

#define FIRST_BUCKETS 64

uint64_t htab_hash(const char *s)
{
	uint64_t h = 14695981039346656037ULL;

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ULL;
	return h;
}

struct hnode *htab_find(const struct htab *t, uint64_t hash,
			bool (*eq)(const struct hnode *n, const void *key), const void *key)
{
	struct hnode *n;

	if (!t->nb)
		return NULL;
	for (n = t->b[hash & (t->nb - 1)]; n; n = n->next)
		if (n->hash == hash && eq(n, key))
			return n;
	return NULL;
}

/* Doubles the buckets once the table holds as many nodes as buckets, so
 * chains stay about one node long: a status looks up every keyset in
 * three tables, and each node passed over on the way is a cache miss. */
static void grow(struct htab *t)
{
	size_t nb = t->nb ? t->nb * 2 : FIRST_BUCKETS, i;
	struct hnode **b, *n, *next;

	b = calloc(nb, sizeof(*b));
	if (!b)
		return;
	for (i = 0; i < t->nb; i++) {
		for (n = t->b[i]; n; n = next) {
			next = n->next;
			n->next = b[n->hash & (nb - 1)];
			b[n->hash & (nb - 1)] = n;
		}
	}
	free(t->b);
	t->b = b;
	t->nb = nb;
}

int htab_add(struct htab *t, struct hnode *n)
{
	struct hnode **b;

	if (t->n >= t->nb)
		grow(t);
	if (!t->nb)
		return -ENOMEM;
	b = &t->b[n->hash & (t->nb - 1)];
	n->next = *b;
	*b = n;
	t->n++;
	return 0;
}

void *htab_add_named(struct htab *t, size_t size, size_t name_off, const char *name,
		     uint64_t hash)
{
	size_t len = strlen(name);
	struct hnode *n;

	/* The name may begin in the structure's tail padding. */
	n = calloc(1, name_off + len + 1 > size ? name_off + len + 1 : size);
	if (!n)
		return NULL;
	memcpy((char *)n + name_off, name, len + 1);
	n->hash = hash;
	if (htab_add(t, n)) {
		free(n);
		return NULL;
	}
	return n;
}

void htab_del(struct htab *t, struct hnode *n)
{
	struct hnode **p;

	if (!t->nb)
		return;
	for (p = &t->b[n->hash & (t->nb - 1)]; *p; p = &(*p)->next) {
		if (*p == n) {
			*p = n->next;
			t->n--;
			return;
		}
	}
}

struct hnode *htab_next(const struct htab *t, size_t *pos, struct hnode *prev)
{
	if (prev && prev->next)
		return prev->next;
	if (prev)
		(*pos)++;
	for (; *pos < t->nb; (*pos)++)
		if (t->b[*pos])
			return t->b[*pos];
	return NULL;
}

void htab_free(struct htab *t)
{
	free(t->b);
	t->b = NULL;
	t->nb = t->n = 0;
}
