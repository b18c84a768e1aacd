/* What the live layer tells others (store_live.h): hook results and
 * what the restore rules left out, for the status and the metrics, and
 * the restore rules for an archive about to be restored. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "keyfs/escape.h"
#include "keyfs/store_live.h"

#include "store_live_priv.h"

size_t store_live_hooks_failed(const struct store *s, void (*fn)(void *arg, const char *keyset),
			       void *arg)
{
	struct live_store *ls = store_live_of(s);
	size_t i, n = 0;

	if (!ls)
		return 0;
	pthread_mutex_lock(&ls->lock);
	for (i = 0; i < ls->n; i++) {
		const struct hook_result *h = &ls->live[i].hook;

		if (!h->when || (h->status == 0 && !h->timed_out))
			continue;
		fn(arg, ls->live[i].cfg.name);
		n++;
	}
	pthread_mutex_unlock(&ls->lock);
	return n;
}

int store_live_hook_words(const struct store *s, const char *name, char *buf, size_t size)
{
	struct live_store *ls = store_live_of(s);
	size_t i;

	for (i = 0; ls && i < ls->n; i++) {
		if (strcmp(ls->live[i].cfg.name, name))
			continue;
		pthread_mutex_lock(&ls->lock);
		hook_describe(&ls->live[i].hook, buf, size);
		pthread_mutex_unlock(&ls->lock);
		return 0;
	}
	return -ENOENT;
}

void store_live_status(const struct store *s, char *buf, size_t size)
{
	char desc[HOOK_OUTPUT_MAX * 2 + 128];
	struct live_store *ls = store_live_of(s);
	size_t i, len = 0;

	*buf = '\0';
	if (!ls)
		return;
	pthread_mutex_lock(&ls->lock);
	for (i = 0; i < ls->n && len < size; i++) {
		if (!*ls->live[i].cfg.on_activate)
			continue;
		hook_describe(&ls->live[i].hook, desc, sizeof(desc));
		len += (size_t)snprintf(buf + len, size - len, "on_activate %s: %s\n",
					ls->live[i].cfg.name, desc);
	}
	pthread_mutex_unlock(&ls->lock);
	pthread_mutex_lock(&ls->note_lock);
	for (i = 0; i < ls->n && len < size; i++) {
		const struct live *l = &ls->live[i];

		if (!l->nleft_out)
			continue;
		escape_str(desc, sizeof(desc), l->left_out, 0);
		len += (size_t)snprintf(buf + len, size - len, "left out of %s's backup "
					"(restore rules): %s", l->cfg.name, desc);
		if (len < size && l->nleft_out > 1)
			len += (size_t)snprintf(buf + len, size - len, ", and %zu more members",
						l->nleft_out - 1);
		if (len < size)
			len += (size_t)snprintf(buf + len, size - len, "\n");
	}
	pthread_mutex_unlock(&ls->note_lock);
}

void store_live_apply(const struct store *s, struct keyset *ks)
{
	struct live_store *ls = store_live_of(s);
	struct store_policy p;

	if (!ls)
		return;
	p = store_live_policy(ls, ks->name);
	store_policy_apply(ks, &p, "restore", NULL, 0);
	/* a keystore keyset's directory is the keystore's own */
	if (!store_live_is_live(s, ks->name))
		memset(&ks->top, 0, sizeof(ks->top));
}
