/* libFuzzer target: the preset catalog's parser (presets_load() hands it
 * a NUL-terminated file, so the harness does too), twice into one
 * catalog as two files of a directory would go, then each preset applied
 * to an empty [keyset] section. A refusal must come with a "name:line:
 * ..." message; every preset parsed has a name, as the catalog's sections
 * do. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keyfs/presets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct presets p = { 0 };
	struct config_keyset ks;
	const char *why;
	char err[512] = "";
	char *text;
	size_t i;

	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	for (i = 0; i < 2; i++) {
		err[0] = '\0';
		if (presets_parse(&p, "fuzz.ini", text, err, sizeof(err)) != 0 &&
		    strncmp(err, "fuzz.ini:", 9) != 0)
			abort();
	}
	for (i = 0; i < p.n; i++) {
		if (!p.v[i].ks.name[0] || presets_find(&p, p.v[i].ks.name) == NULL)
			abort();
		memset(&ks, 0, sizeof(ks));
		strcpy(ks.name, "k");
		preset_apply(&p.v[i], &ks, &why);
	}
	presets_free(&p);
	free(text);
	return 0;
}
