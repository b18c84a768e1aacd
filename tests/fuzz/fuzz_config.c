/* libFuzzer target: the INI config parser (config_load() hands it a
 * NUL-terminated buffer, so the harness does too), then the cross-field
 * checks. A refusal must come with a "name:line: ..." message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keyfs/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
	if (config_parse(&c, "fuzz.ini", text, err, sizeof(err)) == 0)
		config_check(&c, &why);
	else if (strncmp(err, "fuzz.ini:", 9) != 0)
		abort();
	free(text);
	return 0;
}
