/* Text in memory through stdio (see textbuf.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "keyfs/textbuf.h"

#define TEXT_FIRST (64 * 1024)

struct text {
	char **buf;
	size_t *len;
	char *b;
	size_t n, cap;
};

/* Room for more bytes and a NUL; false if out of memory. */
static bool grow(struct text *t, size_t more)
{
	size_t cap = t->cap ? t->cap : TEXT_FIRST;
	char *b;

	while (more >= cap - t->n) {
		if (cap > SIZE_MAX / 2)
			return false;
		cap *= 2;
	}
	if (cap == t->cap)
		return true;
	b = realloc(t->b, cap);
	if (!b)
		return false;
	t->b = b;
	t->cap = cap;
	return true;
}

static ssize_t text_write(void *cookie, const char *p, size_t n)
{
	struct text *t = cookie;

	if (!grow(t, n))
		return 0; /* stdio's "error" */
	memcpy(t->b + t->n, p, n);
	t->n += n;
	return (ssize_t)n;
}

static int text_close(void *cookie)
{
	struct text *t = cookie;
	int ret = grow(t, 0) ? 0 : -1;

	if (t->b)
		t->b[t->n] = '\0';
	*t->buf = t->b;
	*t->len = t->n;
	free(t);
	return ret;
}

int textbuf_append(char **buf, size_t *len, size_t *cap, const void *p, size_t n)
{
	size_t want = *cap ? *cap : 4096;
	char *grown;

	while (want < *len + n)
		want *= 2;
	if (want != *cap) {
		grown = realloc(*buf, want);
		if (!grown)
			return -ENOMEM;
		*buf = grown;
		*cap = want;
	}
	memcpy(*buf + *len, p, n);
	*len += n;
	return 0;
}

FILE *textbuf_open(char **buf, size_t *len)
{
	struct text *t = calloc(1, sizeof(*t));
	FILE *f;

	if (!t)
		return NULL;
	t->buf = buf;
	t->len = len;
	*buf = NULL;
	*len = 0;
	f = fopencookie(t, "w", (cookie_io_functions_t){ .write = text_write, .close = text_close });
	if (!f)
		free(t);
	return f;
}
