/* textbuf: what open_memstream() gives, at any size. */
#include <stdlib.h>
#include <string.h>

#include "keyfs/textbuf.h"

#include "tap.h"

int main(void)
{
	char *buf = (char *)"unset", *want;
	size_t len = 99, i, n = 0;
	FILE *f;

	f = textbuf_open(&buf, &len);
	tap_ok(f && !fclose(f) && buf && len == 0 && !buf[0], "an empty text is \"\", length 0");
	free(buf);

	/* well past the first block and several doublings, in odd pieces */
	want = malloc(1 << 20);
	f = textbuf_open(&buf, &len);
	for (i = 0; f && n + 32 < (1 << 20); i++)
		n += (size_t)fprintf(f, "line %zu\n", i);
	for (i = 0, n = 0; n + 32 < (1 << 20); i++)
		n += (size_t)sprintf(want + n, "line %zu\n", i);
	tap_ok(f && !fclose(f), "a megabyte written and closed");
	tap_ok(len == n && !memcmp(buf, want, n) && buf[n] == '\0',
	       "the text, its length and a NUL after it (%zu bytes)", len);
	free(buf);
	free(want);
	return tap_done();
}
