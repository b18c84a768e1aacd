/* A keyset in memory: member paths, types, owners, modes, times, link
 * targets and extended attributes, and key bytes in guarded memory. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "keyfs/keyset.h"
#include "keyfs/secmem.h"

static bool has_member(const struct keyset *ks, const char *name)
{
	size_t i;

	for (i = 0; i < ks->n; i++) {
		if (strcmp(ks->m[i].name, name) == 0)
			return true;
	}
	return false;
}

static bool owner_name_ok(const char *s)
{
	return s == NULL || strnlen(s, KEYSET_OWNER_MAX + 1) <= KEYSET_OWNER_MAX;
}

static int meta_check(const char *name, const struct keyset_meta *meta,
		      const uint8_t *data, size_t len)
{
	if (!keyset_member_name_valid(name) || (data == NULL && len > 0) ||
	    !owner_name_ok(meta->user) || !owner_name_ok(meta->group))
		return -EINVAL;
	switch (meta->type) {
	case KEYSET_FILE:
		return meta->link == NULL ? 0 : -EINVAL;
	case KEYSET_DIR:
		return meta->link == NULL && len == 0 ? 0 : -EINVAL;
	case KEYSET_LINK:
		return len == 0 && keyset_link_valid(name, meta->link) ? 0 : -EINVAL;
	}
	return -EINVAL;
}

static void set_owner(struct keyset_member *m, const struct keyset_meta *meta)
{
	m->owned = meta->owned;
	if (!meta->owned)
		return;
	m->uid = meta->uid;
	m->gid = meta->gid;
	if (meta->user)
		memcpy(m->user, meta->user, strlen(meta->user) + 1);
	if (meta->group)
		memcpy(m->group, meta->group, strlen(meta->group) + 1);
}

int keyset_add_member(struct keyset *ks, const char *name, const struct keyset_meta *meta,
		      const uint8_t *data, size_t len, struct keyset_member **out)
{
	struct keyset_member *m;
	uint8_t *copy = NULL;
	char *link = NULL;
	int ret;

	ret = meta_check(name, meta, data, len);
	if (ret)
		return ret;
	if (ks->n >= KEYSET_MEMBERS_MAX)
		return -E2BIG;
	if (has_member(ks, name))
		return -EEXIST;
	ret = -ENOMEM;
	/* an empty member has no buffer */
	if (len > 0 && (copy = secmem_alloc(len)) == NULL)
		goto err;
	if (meta->link && (link = strdup(meta->link)) == NULL)
		goto err;
	/* The array holds names and pointers only, so plain realloc is fine. */
	m = realloc(ks->m, (ks->n + 1) * sizeof(*m));
	if (m == NULL)
		goto err;
	if (len > 0)
		memcpy(copy, data, len);
	ks->m = m;
	m = &ks->m[ks->n++];
	memset(m, 0, sizeof(*m));
	memcpy(m->name, name, strlen(name) + 1);
	m->type = meta->type;
	m->mode = meta->type == KEYSET_LINK ? 0777 : meta->mode & KEYSET_MODE_MASK;
	m->mtime = meta->mtime;
	set_owner(m, meta);
	m->link = link;
	m->data = copy;
	m->len = len;
	if (out)
		*out = m;
	return 0;
err:
	secmem_free(copy);
	free(link);
	return ret;
}

int keyset_add(struct keyset *ks, const char *name, mode_t mode, time_t mtime,
	       const uint8_t *data, size_t len)
{
	const struct keyset_meta meta = {
		.type = KEYSET_FILE, .mode = mode, .mtime = mtime,
	};

	return keyset_add_member(ks, name, &meta, data, len, NULL);
}

static size_t xattr_pos(const struct keyset_member *m, const char *name, bool *found)
{
	size_t i;
	int c = 1;

	for (i = 0; i < m->nxattr && (c = strcmp(m->xattr[i].name, name)) < 0; i++)
		;
	*found = i < m->nxattr && c == 0;
	return i;
}

int keyset_add_xattr(struct keyset_member *m, const char *name, const void *value, size_t len)
{
	struct keyset_xattr *x, add = { NULL, NULL, len };
	bool found;
	size_t i;

	if (!keyset_xattr_kept(name) || len > KEYSET_XATTR_SIZE_MAX || (value == NULL && len > 0))
		return -EINVAL;
	i = xattr_pos(m, name, &found);
	if (found)
		return -EEXIST;
	if (m->nxattr >= KEYSET_XATTRS_MAX)
		return -E2BIG;
	add.name = strdup(name);
	add.value = len ? malloc(len) : NULL;
	x = realloc(m->xattr, (m->nxattr + 1) * sizeof(*x));
	if (!add.name || (len && !add.value) || !x) {
		free(add.name);
		free(add.value);
		if (x)
			m->xattr = x;
		return -ENOMEM;
	}
	if (len)
		memcpy(add.value, value, len);
	m->xattr = x;
	memmove(&x[i + 1], &x[i], (m->nxattr - i) * sizeof(*x));
	x[i] = add;
	m->nxattr++;
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

static const struct keyset_member *find(const struct keyset *ks, const char *name, size_t n)
{
	size_t lo = 0, hi = ks->n, mid;
	int c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		c = strncmp(ks->m[mid].name, name, n);
		if (c == 0 && ks->m[mid].name[n] != '\0')
			c = 1;
		if (c == 0)
			return &ks->m[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
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

static bool xattrs_equal(const struct keyset_member *x, const struct keyset_member *y)
{
	size_t i;

	if (x->nxattr != y->nxattr)
		return false;
	for (i = 0; i < x->nxattr; i++) {
		const struct keyset_xattr *a = &x->xattr[i], *b = &y->xattr[i];

		if (strcmp(a->name, b->name) || a->len != b->len ||
		    (a->len && memcmp(a->value, b->value, a->len)))
			return false;
	}
	return true;
}

static bool member_equal(const struct keyset_member *x,
			 const struct keyset_member *y)
{
	if (strcmp(x->name, y->name) != 0 || x->type != y->type ||
	    (x->mode & KEYSET_MODE_MASK) != (y->mode & KEYSET_MODE_MASK) || x->len != y->len)
		return false;
	/* An archive without owners takes whatever the keystore has. */
	if (x->owned && y->owned && (x->uid != y->uid || x->gid != y->gid))
		return false;
	if ((x->link || y->link) && (!x->link || !y->link || strcmp(x->link, y->link)))
		return false;
	if (!xattrs_equal(x, y))
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
	if (a->top.owned && b->top.owned &&
	    ((a->top.mode ^ b->top.mode) & KEYSET_MODE_MASK || a->top.uid != b->top.uid ||
	     a->top.gid != b->top.gid))
		return false;
	for (i = 0; i < a->n; i++) {
		if (!member_equal(&a->m[i], &b->m[i]))
			return false;
	}
	return true;
}

static int copy_member(struct keyset *dst, const struct keyset_member *m)
{
	const struct keyset_meta meta = {
		.type = m->type, .mode = m->mode, .mtime = m->mtime, .owned = m->owned,
		.uid = m->uid, .gid = m->gid, .user = m->user, .group = m->group, .link = m->link,
	};
	struct keyset_member *c;
	size_t i;
	int ret;

	ret = keyset_add_member(dst, m->name, &meta, m->data, m->len, &c);
	for (i = 0; ret == 0 && i < m->nxattr; i++)
		ret = keyset_add_xattr(c, m->xattr[i].name, m->xattr[i].value, m->xattr[i].len);
	return ret;
}

int keyset_copy(struct keyset *dst, const struct keyset *src)
{
	size_t i;
	int ret = 0;

	keyset_clear(dst);
	memcpy(dst->name, src->name, sizeof(dst->name));
	memcpy(dst->hint, src->hint, sizeof(dst->hint));
	dst->top = src->top;
	for (i = 0; ret == 0 && i < src->n; i++)
		ret = copy_member(dst, &src->m[i]);
	if (ret)
		keyset_clear(dst);
	else
		keyset_sort(dst);
	return ret;
}

static void member_free(struct keyset_member *m)
{
	size_t i;

	secmem_free(m->data); /* wipes it */
	free(m->link);
	for (i = 0; i < m->nxattr; i++) {
		free(m->xattr[i].name);
		if (m->xattr[i].len)
			sodium_memzero(m->xattr[i].value, m->xattr[i].len);
		free(m->xattr[i].value);
	}
	free(m->xattr);
}

bool keyset_top_recorded(const struct keyset *ks)
{
	const struct keyset_member *t = &ks->top;

	return t->owned && ((t->mode & KEYSET_MODE_MASK) != 0700 || t->uid || t->gid);
}

const struct keyset_member *keyset_find(const struct keyset *ks, const char *name)
{
	return find(ks, name, strlen(name));
}

/* Does any file or link of ks lie below directory member d? */
static bool holds_keys(const struct keyset *ks, const char *d)
{
	size_t i, n = strlen(d);

	for (i = 0; i < ks->n; i++) {
		if (ks->m[i].type != KEYSET_DIR && !strncmp(ks->m[i].name, d, n) &&
		    ks->m[i].name[n] == '/')
			return true;
	}
	return false;
}

void keyset_prune_dirs(struct keyset *ks)
{
	size_t i, kept = 0;

	for (i = 0; i < ks->n; i++) {
		if (ks->m[i].type == KEYSET_DIR && !holds_keys(ks, ks->m[i].name)) {
			member_free(&ks->m[i]);
			continue;
		}
		ks->m[kept++] = ks->m[i];
	}
	ks->n = kept;
}

void keyset_clear(struct keyset *ks)
{
	size_t i;

	for (i = 0; i < ks->n; i++)
		member_free(&ks->m[i]);
	free(ks->m);
	memset(ks, 0, sizeof(*ks));
}
