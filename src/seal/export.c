/* Sealing a keyset into its export (see export.h). */
#include <errno.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keyfs/armor.h"
#include "keyfs/bundle.h"
#include "keyfs/secmem.h"

#include "export.h"

int export_size(const struct keyset *ks, const struct export_key *key, size_t *size)
{
	size_t tar_len, bin_len;
	int ret;

	ret = bundle_size_signed(ks, key->signer, &tar_len);
	if (ret)
		return ret;
	bin_len = age_sealed_size_for(key->r, key->n, tar_len);
	if (!bin_len)
		return -EINVAL;
	*size = armor_size(bin_len);
	return 0;
}

void export_content_id(const struct keyset *ks, char hex[static 65])
{
	char fpr[2 * BUNDLE_FPR_LEN + 1];
	crypto_generichash_state st;
	uint8_t id[32];

	bundle_fingerprint(ks, fpr);
	crypto_generichash_init(&st, NULL, 0, sizeof(id));
	crypto_generichash_update(&st, (const uint8_t *)fpr, strlen(fpr) + 1);
	crypto_generichash_update(&st, (const uint8_t *)ks->hint, strlen(ks->hint) + 1);
	crypto_generichash_final(&st, id, sizeof(id));
	sodium_bin2hex(hex, 65, id, sizeof(id));
}

int export_seal(const struct keyset *ks, const struct export_key *key, char **pem, size_t *len)
{
	uint8_t *tar = NULL, *bin = NULL;
	size_t tar_len = 0, bin_len;
	int ret;

	ret = bundle_pack_signed(ks, key->signer, &tar, &tar_len);
	if (!ret)
		ret = age_seal_to(tar, tar_len, key->r, key->n, &bin, &bin_len);
	if (!ret)
		ret = armor_encode(bin, bin_len, pem, len);
	free(bin);
	if (tar)
		secmem_free(tar);
	return ret;
}
