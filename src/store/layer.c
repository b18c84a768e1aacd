/* Keysets a layer adds by configuration (layer.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "keyfs/log.h"

#include "layer.h"

int layer_list(struct store *inner, const struct layer_keysets *l, char ***names, size_t *n)
{
	char **all, **below;
	size_t nb, i;
	int ret;

	ret = inner->ops->list(inner->priv, &below, &nb);
	if (ret || !l->n) { /* sorted already */
		*names = ret ? NULL : below;
		*n = ret ? 0 : nb;
		return ret;
	}
	all = malloc((nb + l->n) * sizeof(*all));
	ret = all ? 0 : -ENOMEM;
	if (!ret) {
		memcpy(all, below, nb * sizeof(*all));
		for (i = 0; i < l->n; i++)
			all[nb + i] = (char *)layer_name(l, i); /* only read */
		store_names_sort(all, nb + l->n);
		ret = store_list_pack((const char *const *)all, nb + l->n, names);
	}
	*n = ret ? 0 : nb + l->n;
	free(all);
	store_list_free(below);
	return ret;
}

static bool layer_has(const struct layer_keysets *l, const char *name)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (!strcmp(layer_name(l, i), name))
			return true;
	return false;
}

int layer_check_clash(struct store *inner, const struct layer_keysets *l, const char *what)
{
	char **names;
	size_t n, i;
	int ret;

	ret = inner->ops->list(inner->priv, &names, &n);
	if (ret)
		return ret;
	for (i = 0; i < n; i++) {
		if (layer_has(l, names[i])) {
			log_msg(LOG_ERR, "[keyset %s] has %s, but the store holds a keyset of that "
				"name too: rename one of them", names[i], what);
			ret = -EEXIST;
		}
	}
	store_list_free(names);
	return ret;
}
