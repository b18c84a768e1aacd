/* What the command layer tells the status report and the metrics
 * (store_command.h). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "keyfs/store_command.h"

#include "store_command_priv.h"

int store_command_restore_words(const struct store *s, const char *name, char *buf,
				size_t size)
{
	struct command_store *cs = store_command_of(s);
	size_t i;

	for (i = 0; cs && i < cs->n; i++) {
		const struct cmd_keyset *k = &cs->k[i];

		if (strcmp(k->cfg.name, name))
			continue;
		pthread_mutex_lock(&cs->lock);
		if (*k->restore_why)
			snprintf(buf, size, "%s", k->restore_why);
		else
			hook_describe(&k->restore, buf, size);
		pthread_mutex_unlock(&cs->lock);
		return k->restore.when || *k->restore_why ? 0 : -ENOENT;
	}
	return -ENOENT;
}

void store_command_status(const struct store *s, char *buf, size_t size)
{
	char desc[COMMAND_WHY_MAX];
	struct command_store *cs = store_command_of(s);
	size_t i, len = 0;

	*buf = '\0';
	if (!cs)
		return;
	pthread_mutex_lock(&cs->lock);
	for (i = 0; i < cs->n && len < size; i++) {
		const struct cmd_keyset *k = &cs->k[i];

		/* the words name the program already */
		if (k->error)
			snprintf(desc, sizeof(desc), "%s",
				 strncmp(k->why, "backup_command ", 15) ? k->why : k->why + 15);
		else
			hook_describe(&k->last, desc, sizeof(desc));
		len += (size_t)snprintf(buf + len, size - len, "backup_command %s: %s\n",
					k->cfg.name, desc);
	}
	pthread_mutex_unlock(&cs->lock);
	if (len >= size && size > 1)
		buf[size - 2] = '\n';
}

size_t store_command_failed(const struct store *s, void (*fn)(void *arg, const char *keyset),
			    void *arg)
{
	struct command_store *cs = store_command_of(s);
	size_t i, n = 0;

	if (!cs)
		return 0;
	pthread_mutex_lock(&cs->lock);
	for (i = 0; i < cs->n; i++) {
		if (!cs->k[i].error)
			continue;
		fn(arg, cs->k[i].cfg.name);
		n++;
	}
	pthread_mutex_unlock(&cs->lock);
	return n;
}
