/* libFuzzer target: the age recipients and identity file parsers, both on
 * every input, from an exact-size copy (so a read past the end is caught).
 * A refusal must come with a "line N: ..." message and leave the list
 * empty; a success gives at least one key, a printable display string per
 * recipient, and recipients age_seal_to() accepts at the size announced. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "keyfs/age.h"
#include "keyfs/age_keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_why(int ret, const char *why)
{
	if (ret < 0 && strncmp(why, "line ", 5) != 0)
		abort();
}

static void recipients(const char *text, size_t size)
{
	struct age_recipient_list l;
	uint8_t *c = NULL;
	char why[256] = "";
	size_t i, j, n = 0;
	int ret;

	ret = age_keys_recipients(&l, text, size, why, sizeof(why));
	check_why(ret, why);
	if (ret < 0) {
		if (l.n || l.r || l.display)
			abort();
		return;
	}
	if (l.n == 0)
		abort();
	for (i = 0; i < l.n; i++)
		for (j = 0; l.display[i][j]; j++)
			if (l.display[i][j] < 0x20 || l.display[i][j] >= 0x7f)
				abort();
	if (age_seal_to((const uint8_t *)"x", 1, l.r, l.n, &c, &n) != 0 ||
	    n != age_sealed_size_for(l.r, l.n, 1))
		abort();
	free(c);
	age_recipient_list_free(&l);
}

static void identities(const char *text, size_t size)
{
	struct age_identity_list l;
	char why[256] = "";
	int ret;

	ret = age_keys_identities(&l, text, size, why, sizeof(why));
	check_why(ret, why);
	if (ret < 0 ? (l.n || l.id) : l.n == 0)
		abort();
	age_identity_list_free(&l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size ? size : 1);

	if (!text)
		return 0;
	memcpy(text, data, size);
	recipients(text, size);
	identities(text, size);
	free(text);
	return 0;
}
