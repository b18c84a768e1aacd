/* The checks shared by the unwrap fuzz targets (unwrap.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "keyfs/age.h"
#include "keyfs/armor.h"

#include "unwrap.h"

static bool documented(int ret)
{
	return ret == -EINVAL || ret == -EKEYREJECTED || ret == -EBADMSG || ret == -ENOMEM;
}

void fuzz_unwrap(const uint8_t *data, size_t size, const struct age_identity *ours,
		 const struct age_identity *other)
{
	const struct age_identity both[2] = { *other, *ours };
	uint8_t *bin = NULL, *pt1 = NULL, *pt2 = NULL;
	const uint8_t *in = data;
	size_t len = size, len1 = 0, len2 = 0, which1 = 9, which2 = 9;
	int ret1, ret2;

	if (armor_detect(data, size)) {
		if (armor_decode(data, size, &bin, &len) != 0)
			return;
		in = bin;
	}
	ret1 = age_unseal_with(in, len, ours, 1, &pt1, &len1, &which1);
	ret2 = age_unseal_with(in, len, both, 2, &pt2, &len2, &which2);
	if (ret1 ? !documented(ret1) : which1 != 0 || len1 >= len)
		abort();
	if (ret2 ? !documented(ret2) : which2 != 1)
		abort();
	if (ret2 == 0 && (ret1 != 0 || len1 != len2 || sodium_memcmp(pt1, pt2, len1) != 0))
		abort();
	if (ret1 == 0 && ret2 == -EKEYREJECTED)
		abort();
	if (pt1)
		sodium_free(pt1);
	if (pt2)
		sodium_free(pt2);
	free(bin);
}
