/* libFuzzer target: hook_split(), the on_activate command splitter, on
 * the input up to its first NUL, into a buffer of exactly the size it
 * needs (so a write past it is caught) and into one a byte too small.
 * Its words must be what a plain reading of the input gives: the
 * maximal runs of bytes other than space and tab, in order, each in
 * the buffer and NUL-terminated, argv ending with NULL; -E2BIG exactly
 * when the command does not fit or has more than HOOK_ARGS_MAX words,
 * -EINVAL exactly when it has none. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keyfs/hook.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool blank(char c)
{
	return c == ' ' || c == '\t';
}

/* The words of cmd, counted the plain way. */
static size_t count_words(const char *cmd)
{
	size_t n = 0;

	for (; *cmd; cmd++)
		if (!blank(*cmd) && (cmd[1] == '\0' || blank(cmd[1])))
			n++;
	return n;
}

static void check(const char *cmd, size_t len, size_t size)
{
	char *buf = malloc(size ? size : 1), *argv[HOOK_ARGS_MAX + 1];
	const char *p = cmd;
	size_t words = count_words(cmd), i, wl;
	int ret;

	if (!buf)
		return;
	ret = hook_split(cmd, buf, size, argv);
	if (len >= size || words > HOOK_ARGS_MAX) {
		if (ret != -E2BIG)
			abort();
	} else if (words == 0) {
		if (ret != -EINVAL)
			abort();
	} else {
		if (ret != 0)
			abort();
		for (i = 0; i < words; i++) {
			while (blank(*p))
				p++;
			wl = strcspn(p, " \t");
			if (!argv[i] || argv[i] < buf || argv[i] + wl >= buf + size ||
			    strlen(argv[i]) != wl || memcmp(argv[i], p, wl) != 0)
				abort();
			p += wl;
		}
		if (argv[words] != NULL)
			abort();
	}
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *cmd = malloc(size + 1);
	size_t len;

	if (!cmd)
		return 0;
	memcpy(cmd, data, size);
	cmd[size] = '\0';
	len = strlen(cmd);
	check(cmd, len, len + 1);
	check(cmd, len, len);
	check(cmd, len, HOOK_CMD_MAX + 1);
	free(cmd);
	return 0;
}
