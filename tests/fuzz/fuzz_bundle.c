/* libFuzzer target: the tar reader behind every import. Whatever it
 * accepts, bundle_pack() must either refuse (a value it cannot write
 * faithfully) or write a tar that reads back as the same keyset: name,
 * hint, and each member's path, type, mode, owner, link target, xattrs,
 * mtime and bytes; and every accepted member path, link and directory
 * must stay inside the keyset. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "keyfs/bundle.h"
#include "keyfs/secmem.h"

/* as import does with the default import.max_size */
#define MAX_MEMBER (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_same(const struct keyset *a, const struct keyset *b)
{
	size_t i;

	if (strcmp(a->name, b->name) || strcmp(a->hint, b->hint) || !keyset_equal(a, b))
		abort();
	for (i = 0; i < a->n; i++)
		if (a->m[i].mtime != b->m[i].mtime || a->m[i].type != b->m[i].type ||
		    (a->m[i].owned && (a->m[i].uid != b->m[i].uid || a->m[i].gid != b->m[i].gid)))
			abort();
}

/* What bundle_unpack() promises about what it accepted. */
static void check_safe(const struct keyset *ks)
{
	size_t i;

	if (keyset_check_tree(ks) != 0)
		abort();
	for (i = 0; i < ks->n; i++) {
		const struct keyset_member *m = &ks->m[i];

		if (!keyset_member_name_valid(m->name) ||
		    (m->type == KEYSET_LINK) != (m->link != NULL) ||
		    (m->link && !keyset_link_valid(m->name, m->link)) ||
		    (m->type != KEYSET_FILE && m->len != 0))
			abort();
	}
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
	check_safe(&ks);
	if (bundle_pack(&ks, &tar, &len) == 0) {
		if (bundle_unpack(tar, len, MAX_MEMBER, &again) != 0)
			abort();
		check_same(&ks, &again);
		keyset_clear(&again);
		secmem_free(tar);
	}
	keyset_clear(&ks);
	return 0;
}
