/* libFuzzer target: the tar reader behind every import. Whatever it
 * accepts, bundle_pack() must either refuse (a value ustar cannot hold) or
 * write a tar that reads back as the same keyset: name, hint, and each
 * member's name, mode, mtime and bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "keyfs/bundle.h"

/* as import does with the default import.max_size */
#define MAX_MEMBER (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_same(const struct keyset *a, const struct keyset *b)
{
	size_t i;

	if (strcmp(a->name, b->name) || strcmp(a->hint, b->hint) || !keyset_equal(a, b))
		abort();
	for (i = 0; i < a->n; i++)
		if (a->m[i].mtime != b->m[i].mtime)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct keyset ks = { 0 }, again = { 0 };
	uint8_t *tar;
	size_t len;

	if (bundle_unpack(data, size, MAX_MEMBER, &ks) != 0) {
		/* a refusal must leave the keyset empty, as promised */
		if (ks.n != 0 || ks.m != NULL)
			abort();
		return 0;
	}
	if (bundle_pack(&ks, &tar, &len) == 0) {
		if (bundle_unpack(tar, len, MAX_MEMBER, &again) != 0)
			abort();
		check_same(&ks, &again);
		keyset_clear(&again);
		sodium_free(tar);
	}
	keyset_clear(&ks);
	return 0;
}
