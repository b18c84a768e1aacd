/* Sealing key ids from the password verifiers (see sealkey.h). */
#include <errno.h>
#include <stdio.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "keyfs/log.h"

#include "sealkey.h"

/* The id of the password vault_read_for(keyset) gives (keyset NULL: the
 * backup password), from the verifier file vpath; -ENOKEY if none. */
static int find_id(int sfd, struct vault *v, int logn, const char *keyset, const char *vpath,
		   uint8_t id[VERIFIER_ID_LEN], uint64_t *gen)
{
	struct age_pass pass;
	bool matched;
	int ret;

	ret = keyset ? vault_read_for(v, keyset, &pass, gen) : vault_read_backup(v, &pass, gen);
	if (ret)
		return ret;
	ret = verifier_id(sfd, vpath, &pass, logn, id, &matched);
	vault_read_end(v);
	if (ret)
		log_msg(LOG_ERR, "password verifier %s: %s", vpath, strerror(-ret));
	else
		log_msg(LOG_INFO, "%s%s%s", keyset ? keyset : "", keyset ? ": " : "",
			matched ? "password matches the cached seals" : "new password: sealing again");
	return ret;
}

int sealkey_find(int sfd, struct vault *v, int logn, struct sealkey_ids *ids)
{
	char names[VAULT_KEYSET_SLOTS][KEYSET_NAME_MAX + 1], vpath[KEYSET_NAME_MAX + 16];
	uint64_t gen = 0, kgen;
	size_t n, i;
	int ret;

	memset(ids, 0, sizeof(*ids));
	ret = find_id(sfd, v, logn, NULL, "verifier", ids->backup, &gen);
	ids->have_backup = !ret;
	if (ret == -ENOKEY)
		gen = vault_generation(v);
	else if (ret)
		return ret;
	n = vault_keysets(v, names, VAULT_KEYSET_SLOTS);
	for (i = 0; i < n; i++) {
		snprintf(vpath, sizeof(vpath), "verifier.%.64s", names[i]);
		ret = find_id(sfd, v, logn, names[i], vpath, ids->own[ids->nown].id, &kgen);
		if (ret)
			return ret;
		strcpy(ids->own[ids->nown++].name, names[i]);
	}
	/* Only current if nothing changed while the verifiers ran. */
	ids->gen = vault_generation(v) == gen ? gen : 0;
	return 0;
}

static const uint8_t *own_id(const struct sealkey_ids *ids, const char *keyset)
{
	size_t i;

	for (i = 0; i < ids->nown; i++)
		if (!strcmp(ids->own[i].name, keyset))
			return ids->own[i].id;
	return NULL;
}

const uint8_t *sealkey_id(const struct sealkey_ids *ids, const char *keyset, bool own_pw)
{
	const uint8_t *id = own_id(ids, keyset);

	if (id)
		return id;
	/* A keyset with a password of its own is never sealed under the
	 * backup password, even while its own is not given yet. */
	return ids->have_backup && !own_pw ? ids->backup : NULL;
}

bool sealkey_has_own(const struct sealkey_ids *ids, const char *keyset)
{
	return own_id(ids, keyset) != NULL;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int sealkey_recipients_id(const char *const *recipients, size_t n,
			  uint8_t id[static VERIFIER_ID_LEN])
{
	static const char label[] = "keyfs-recipients-v1";
	crypto_generichash_state st;
	const char **sorted;
	size_t i;

	sorted = malloc((n ? n : 1) * sizeof(*sorted));
	if (!sorted)
		return -ENOMEM;
	memcpy(sorted, recipients, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), cmp_str);
	crypto_generichash_init(&st, NULL, 0, VERIFIER_ID_LEN);
	crypto_generichash_update(&st, (const uint8_t *)label, sizeof(label));
	for (i = 0; i < n; i++)
		crypto_generichash_update(&st, (const uint8_t *)sorted[i], strlen(sorted[i]) + 1);
	crypto_generichash_final(&st, id, VERIFIER_ID_LEN);
	free(sorted);
	return 0;
}
