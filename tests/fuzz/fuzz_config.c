/* libFuzzer target: the INI config parser (config_load() hands it a
 * NUL-terminated buffer, so the harness does too), then the cross-field
 * checks. A refusal must come with a "name:line: ..." message; a parse
 * that succeeds leaves every number within its row's limits (or zero,
 * for a key without a default that was never set). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keyfs/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_limits(const struct config *c)
{
	const struct config_key *k;
	long long v;
	size_t z;
	int i;

	for (k = config_keys; k->name; k++) {
		if (k->type == CONFIG_INT) {
			memcpy(&i, (const char *)c + k->offset, sizeof(i));
			v = i;
		} else if (k->type == CONFIG_SIZE) {
			memcpy(&z, (const char *)c + k->offset, sizeof(z));
			v = (long long)z;
		} else {
			continue;
		}
		if ((v < k->min || v > k->max) && (k->def || v != 0))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config c;
	const char *why;
	char err[256] = "";
	char *text;

	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	config_defaults(&c);
	if (config_parse(&c, "fuzz.ini", text, err, sizeof(err)) == 0) {
		check_limits(&c);
		config_check(&c, &why);
	} else if (strncmp(err, "fuzz.ini:", 9) != 0) {
		abort();
	}
	config_free(&c);
	free(text);
	return 0;
}
