/* Recipients files read into immutable, shared snapshots (see
 * recipients.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyfs/recipients.h"

#include "sealkey.h"

struct own {
	char name[KEYSET_NAME_MAX + 1];
	size_t set;
};

struct recipients {
	int refs;		/* atomic builtins */
	struct recipset *sets;	/* one per file, in the order first named */
	size_t nsets;
	size_t global;		/* index of seal.recipients; SIZE_MAX if none */
	struct own *own;	/* keysets with their own file */
	size_t nown;
};

/* Reads path whole, as recipients.h requires it to be kept. */
static int read_file(const char *path, char **text, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	ssize_t n;
	int fd, ret = 0;

	*text = NULL;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return ret;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		ret = -EINVAL;
	} else if ((st.st_mode & 022) || (st.st_uid != geteuid() && st.st_uid != 0)) {
		snprintf(err, errlen, "%s: refused: whoever can write it chooses who opens every "
			 "backup; it must be owned by keyfs' uid %u or root and writable by its owner "
			 "alone", path, (unsigned)geteuid());
		ret = -EACCES;
	} else if (st.st_size > RECIPIENTS_FILE_MAX) {
		snprintf(err, errlen, "%s: larger than %d bytes", path, RECIPIENTS_FILE_MAX);
		ret = -EFBIG;
	} else if (!(*text = malloc((size_t)st.st_size + 1))) {
		ret = -ENOMEM;
	} else if ((n = read(fd, *text, (size_t)st.st_size)) < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
	} else {
		*len = (size_t)n;
	}
	close(fd);
	if (ret) {
		free(*text);
		*text = NULL;
	}
	return ret;
}

static int parse_set(struct recipset *rs, const char *path, char *err, size_t errlen)
{
	char why[256], *text;
	size_t len = 0;
	int ret;

	ret = read_file(path, &text, &len, err, errlen);
	if (ret)
		return ret;
	rs->file = strdup(path);
	ret = rs->file ? age_keys_recipients(&rs->l, text, len, why, sizeof(why)) : -ENOMEM;
	if (ret == -EINVAL)
		snprintf(err, errlen, "%s:%s", path, why + strlen("line "));
	if (!ret)
		ret = sealkey_recipients_id((const char *const *)rs->l.key, rs->l.n, rs->id);
	free(text);
	return ret;
}

/* The index of path's set, read if new; nsets is r's count so far. */
static int set_of(struct recipients *r, const char *path, size_t *idx, char *err, size_t errlen)
{
	struct recipset *s;
	size_t i;

	for (i = 0; i < r->nsets; i++)
		if (!strcmp(r->sets[i].file, path)) {
			*idx = i;
			return 0;
		}
	s = realloc(r->sets, (r->nsets + 1) * sizeof(*s));
	if (!s)
		return -ENOMEM;
	r->sets = s;
	memset(&s[r->nsets], 0, sizeof(*s));
	*idx = r->nsets++;
	return parse_set(&s[*idx], path, err, errlen);
}

static int load(struct recipients *r, const struct config *c, char *err, size_t errlen)
{
	const struct config_keyset *k;
	size_t i;
	int ret = 0;

	r->global = SIZE_MAX;
	if (*c->recipients)
		ret = set_of(r, c->recipients, &r->global, err, errlen);
	r->own = calloc(c->nkeysets ? c->nkeysets : 1, sizeof(*r->own));
	if (!r->own)
		return -ENOMEM;
	for (i = 0; !ret && i < c->nkeysets; i++) {
		k = &c->keysets[i];
		if (!*k->recipients)
			continue;
		strcpy(r->own[r->nown].name, k->name);
		ret = set_of(r, k->recipients, &r->own[r->nown++].set, err, errlen);
	}
	return ret;
}

int recipients_load(const struct config *c, struct recipients **out, char *err, size_t errlen)
{
	struct recipients *r;
	size_t i;
	int ret;

	*out = NULL;
	err[0] = '\0';
	for (i = 0; i < c->nkeysets && !*c->keysets[i].recipients; i++)
		;
	if (!*c->recipients && i == c->nkeysets)
		return 0;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->refs = 1;
	ret = load(r, c, err, errlen);
	if (ret && !*err)
		snprintf(err, errlen, "recipients: %s", strerror(-ret));
	if (ret)
		recipients_put(r);
	else
		*out = r;
	return ret;
}

struct recipients *recipients_ref(struct recipients *r)
{
	if (r)
		__atomic_add_fetch(&r->refs, 1, __ATOMIC_RELAXED);
	return r;
}

void recipients_put(struct recipients *r)
{
	size_t i;

	if (!r || __atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL))
		return;
	for (i = 0; i < r->nsets; i++) {
		age_recipient_list_free(&r->sets[i].l);
		free(r->sets[i].file);
	}
	free(r->sets);
	free(r->own);
	free(r);
}

const struct recipset *recipients_for(const struct recipients *r, const char *keyset, bool *own)
{
	size_t i;

	if (own)
		*own = false;
	if (!r)
		return NULL;
	for (i = 0; i < r->nown; i++)
		if (!strcmp(r->own[i].name, keyset)) {
			if (own)
				*own = true;
			return &r->sets[r->own[i].set];
		}
	return r->global < r->nsets ? &r->sets[r->global] : NULL;
}

size_t recipients_count(const struct recipients *r)
{
	return r ? r->nsets : 0;
}

const struct recipset *recipients_at(const struct recipients *r, size_t i)
{
	return &r->sets[i];
}
