/* Keysets a layer adds by configuration (layer.h). */
#include <errno.h>
#include <string.h>

#include "keyfs/log.h"

#include "layer.h"

int layer_list(struct store *inner, const struct layer_keysets *l, char ***names, size_t *n)
{
	size_t i;
	int ret;

	ret = inner->ops->list(inner->priv, names, n);
	for (i = 0; ret == 0 && i < l->n; i++)
		ret = store_names_add(names, n, layer_name(l, i));
	if (ret) {
		store_names_free(*names, *n);
		*names = NULL;
		*n = 0;
		return ret;
	}
	store_names_sort(*names, *n);
	return 0;
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
	store_names_free(names, n);
	return ret;
}
