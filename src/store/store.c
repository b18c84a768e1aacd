/* The keystore interface: the core's answer for the operations a backend
 * does not have, and what every backend shares. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "keyfs/store.h"

void store_names_free(char **names, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

int store_list_pack(const char *const *src, size_t n, char ***out)
{
	size_t i, len, total = 0;
	char **names, *p;

	for (i = 0; i < n; i++)
		total += strlen(src[i]) + 1;
	*out = NULL;
	names = malloc((n ? n : 1) * sizeof(*names) + total);
	if (!names)
		return -ENOMEM;
	p = (char *)(names + n);
	for (i = 0; i < n; i++) {
		len = strlen(src[i]) + 1;
		names[i] = memcpy(p, src[i], len);
		p += len;
	}
	*out = names;
	return 0;
}

void store_list_free(char **names)
{
	free(names);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void store_names_sort(char **names, size_t n)
{
	if (n > 1)
		qsort(names, n, sizeof(*names), cmp_names);
}

int store_names_add(char ***names, size_t *n, const char *name)
{
	char **grown;

	grown = realloc(*names, (*n + 1) * sizeof(**names));
	if (!grown)
		return -ENOMEM;
	*names = grown;
	grown[*n] = strdup(name);
	if (!grown[*n])
		return -ENOMEM;
	(*n)++;
	return 0;
}

int store_put(struct store *s, const struct keyset *ks, struct store_put *res)
{
	*res = (struct store_put){ STORE_UNCHANGED, 0, 0, false, NULL };
	return s->ops->put ? s->ops->put(s->priv, ks, res) : -EROFS;
}

int store_put_inactive(struct store *s, const struct keyset *ks, const char *fpr,
		       struct store_put *res)
{
	*res = (struct store_put){ STORE_UNCHANGED, 0, 0, true, fpr };
	return s->ops->put ? s->ops->put(s->priv, ks, res) : -EROFS;
}

int store_put_on(struct store *s, const struct keyset *ks, struct store_put *res)
{
	return res->inactive ? store_put_inactive(s, ks, res->unauthenticated, res) :
	       store_put(s, ks, res);
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

int store_read_stamped(struct store *s, const char *name, struct keyset *ks, uint64_t *stamp)
{
	int ret = -EOPNOTSUPP;

	if (s->ops->read_stamped)
		ret = s->ops->read_stamped(s->priv, name, ks, stamp);
	if (ret != -EOPNOTSUPP)
		return ret;
	ret = s->ops->stamp(s->priv, name, stamp);
	return ret ? ret : s->ops->read(s->priv, name, ks);
}

void store_batch(struct store *s, bool on)
{
	if (s->ops->batch)
		s->ops->batch(s->priv, on);
}
