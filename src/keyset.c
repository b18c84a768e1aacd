/* A keyset in memory: names, modes, times, and key bytes in guarded memory. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "keyfs/keyset.h"

static bool name_char_ok(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

/* One alphabet for both kinds of names: it keeps ".", "..", "/",
 * newlines and non-ASCII bytes out of paths, tar headers and logs. */
static bool name_valid(const char *name, size_t max)
{
	size_t i;

	if (name == NULL || name[0] == '\0' || name[0] == '.')
		return false;
	for (i = 0; name[i] != '\0'; i++) {
		if (i == max || !name_char_ok(name[i]))
			return false;
	}
	return true;
}

bool keyset_name_valid(const char *name)
{
	return name_valid(name, KEYSET_NAME_MAX);
}

bool keyset_member_name_valid(const char *name)
{
	/* KEYSET.ini lives beside the members in the tar. */
	return name_valid(name, KEYSET_MEMBER_NAME_MAX) &&
	       strcmp(name, KEYSET_INI) != 0;
}

static bool has_member(const struct keyset *ks, const char *name)
{
	size_t i;

	for (i = 0; i < ks->n; i++) {
		if (strcmp(ks->m[i].name, name) == 0)
			return true;
	}
	return false;
}

int keyset_add(struct keyset *ks, const char *name, mode_t mode, time_t mtime,
	       const uint8_t *data, size_t len)
{
	struct keyset_member *m;
	uint8_t *copy = NULL;

	if (!keyset_member_name_valid(name) || (data == NULL && len > 0))
		return -EINVAL;
	if (ks->n >= KEYSET_MEMBERS_MAX)
		return -E2BIG;
	if (has_member(ks, name))
		return -EEXIST;
	/* sodium_malloc(0) is not allowed: an empty member has no buffer. */
	if (len > 0) {
		copy = sodium_malloc(len);
		if (copy == NULL)
			return -ENOMEM;
		memcpy(copy, data, len);
	}
	/* The array holds names and pointers only, so plain realloc is fine. */
	m = realloc(ks->m, (ks->n + 1) * sizeof(*m));
	if (m == NULL) {
		sodium_free(copy);
		return -ENOMEM;
	}
	ks->m = m;
	m = &ks->m[ks->n++];
	memset(m, 0, sizeof(*m));
	memcpy(m->name, name, strlen(name) + 1);
	m->mode = mode & KEYSET_MODE_MASK;
	m->mtime = mtime;
	m->data = copy;
	m->len = len;
	return 0;
}

static int member_cmp(const void *a, const void *b)
{
	const struct keyset_member *x = a, *y = b;

	return strcmp(x->name, y->name);
}

void keyset_sort(struct keyset *ks)
{
	if (ks->n > 1)
		qsort(ks->m, ks->n, sizeof(*ks->m), member_cmp);
}

time_t keyset_mtime(const struct keyset *ks)
{
	time_t t = 0;
	size_t i;

	for (i = 0; i < ks->n; i++) {
		if (i == 0 || ks->m[i].mtime > t)
			t = ks->m[i].mtime;
	}
	return t;
}

static bool member_equal(const struct keyset_member *x,
			 const struct keyset_member *y)
{
	if (strcmp(x->name, y->name) != 0 ||
	    (x->mode & KEYSET_MODE_MASK) != (y->mode & KEYSET_MODE_MASK) || x->len != y->len)
		return false;
	/* Lengths are equal and not secret; the contents are. */
	return x->len == 0 || sodium_memcmp(x->data, y->data, x->len) == 0;
}

bool keyset_equal(const struct keyset *a, const struct keyset *b)
{
	size_t i;

	/* Content only: callers compare a keyset under one name with
	 * what an archive or another store version holds. */
	if (a->n != b->n)
		return false;
	for (i = 0; i < a->n; i++) {
		if (!member_equal(&a->m[i], &b->m[i]))
			return false;
	}
	return true;
}

void keyset_clear(struct keyset *ks)
{
	size_t i;

	/* sodium_free() wipes the guarded pages before unmapping them. */
	for (i = 0; i < ks->n; i++)
		sodium_free(ks->m[i].data);
	free(ks->m);
	memset(ks, 0, sizeof(*ks));
}
