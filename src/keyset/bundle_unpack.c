/* A tar archive -> keyset (bundle_unpack()): every rule that keeps a
 * hostile archive from writing outside its keyset is checked here, on
 * the whole archive, before the keystore sees any of it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <archive.h>
#include <archive_entry.h>
#include <sodium.h>

#include "keyfs/bundle.h"
#include "keyfs/secmem.h"

#include "bundle_priv.h"

/* The daemon links log.c; the tar reader's own unit tests and fuzz
 * target link this file without it, and there the reason is dropped. */

/* State of one bundle_unpack() run. */
struct unpack {
	struct keyset *ks;
	size_t max_member;
	bool have_dir;	/* saw the "<top>/" entry */
	bool have_ini;
	bool have_sig;
	bool format1;	/* KEYSET.ini says: owners not recorded */
	struct bundle_proof *proof;	/* optional: KEYSET.ini's bytes and KEYSET.sig */
	char *why;	/* optional: the tree check's reason */
	size_t why_size;
};

/* Top directory of a path, checked as a keyset name; *rest is what
 * follows the first '/', or NULL. An absolute path has an empty top and
 * "." or ".." fail the alphabet, so both are refused here. */
static int split_path(const char *path, char top[static KEYSET_NAME_MAX + 1],
		      const char **rest)
{
	const char *slash;
	size_t n;

	if (path == NULL)
		return -EINVAL;
	slash = strchr(path, '/');
	n = slash != NULL ? (size_t)(slash - path) : strlen(path);
	if (n == 0 || n > KEYSET_NAME_MAX)
		return -EINVAL;
	memcpy(top, path, n);
	top[n] = '\0';
	if (!keyset_name_valid(top))
		return -EINVAL;
	*rest = slash != NULL ? slash + 1 : NULL;
	return 0;
}

/* Reads exactly len bytes of the current entry; short means truncated. */
static int read_exact(struct archive *a, void *buf, size_t len)
{
	size_t off = 0;
	la_ssize_t r;

	while (off < len) {
		r = archive_read_data(a, (uint8_t *)buf + off, len - off);
		if (r <= 0)
			return -EINVAL;
		off += (size_t)r;
	}
	return 0;
}

/* Declared size of a regular entry, refused above max. */
static int entry_size(struct archive_entry *e, size_t max, size_t *len)
{
	la_int64_t size = archive_entry_size(e);

	if (!archive_entry_size_is_set(e) || size < 0 || (uint64_t)size > max)
		return -EINVAL;
	*len = (size_t)size;
	return 0;
}

/* Strict KEYSET.ini reading: only lines "name = <top>" and
 * "hint = <text>" as bundle_pack() writes them matter; the rest
 * (format, created, fingerprint) is informative. */
static int ini_line(struct unpack *u, const char *line, size_t n, bool *have_hint)
{
	static const char name_key[] = "name = ", hint_key[] = "hint = ", format1[] = "format = 1";
	const size_t klen = sizeof(name_key) - 1;
	const char *top = u->ks->name;
	char *hint = u->ks->hint;

	if (n == sizeof(format1) - 1 && memcmp(line, format1, n) == 0) {
		u->format1 = true;
	} else if (n >= klen && memcmp(line, name_key, klen) == 0) {
		if (n - klen != strlen(top) || memcmp(line + klen, top, n - klen) != 0)
			return -EINVAL;
	} else if (n >= klen && memcmp(line, hint_key, klen) == 0) {
		if (*have_hint || n - klen > KEYSET_HINT_MAX ||
		    !bundle_hint_valid(line + klen, n - klen))
			return -EINVAL;
		memcpy(hint, line + klen, n - klen);
		hint[n - klen] = '\0';
		*have_hint = true;
	}
	return 0;
}

/* Only the [keyset] section speaks of the keyset: [members] lines are
 * named after members, one of which may be called "hint". */
static int parse_ini(struct unpack *u, const char *buf, size_t len)
{
	bool have_hint = false, keyset = true;
	const char *p = buf, *end = buf + len, *nl;
	int ret = 0;

	while (ret == 0 && p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			nl = end;
		if (*p == '[')
			keyset = (size_t)(nl - p) == 8 && !memcmp(p, "[keyset]", 8);
		else if (keyset)
			ret = ini_line(u, p, (size_t)(nl - p), &have_hint);
		p = nl + 1;
	}
	return ret;
}

static int read_ini(struct unpack *u, struct archive *a, struct archive_entry *e)
{
	char *buf;
	size_t len;
	int ret;

	if (u->have_ini)
		return -EINVAL;
	u->have_ini = true;
	ret = entry_size(e, INI_MAX, &len);
	if (ret)
		return ret;
	buf = malloc(len + 1);
	if (!buf)
		return -ENOMEM;
	ret = read_exact(a, buf, len);
	if (ret == 0)
		ret = parse_ini(u, buf, len);
	if (ret == 0 && u->proof) {
		buf[len] = '\0';
		u->proof->ini = buf;
		u->proof->ini_len = len;
		buf = NULL;
	}
	free(buf);
	return ret;
}

/* KEYSET.sig: kept for the caller to check, never a member. */
static int read_sig(struct unpack *u, struct archive *a, struct archive_entry *e)
{
	char sig[BUNDLE_SIG_MAX];
	size_t len;
	int ret;

	if (u->have_sig)
		return -EINVAL;
	u->have_sig = true;
	ret = entry_size(e, sizeof(sig), &len);
	if (ret == 0)
		ret = read_exact(a, sig, len);
	if (ret == 0 && u->proof) {
		memcpy(u->proof->sig, sig, len);
		u->proof->sig[len] = '\0';
		u->proof->sig_len = len;
	}
	return ret;
}

/* pax and GNU tars hold times a ustar header cannot (before 1970, after
 * 2242). A member time is metadata, not key material: clamping it keeps
 * such a backup restorable and what is restored exportable again, where
 * refusing would make a good copy of the keys useless. */
static time_t clamp_time(time_t t)
{
	return t < 0 ? 0 : t > USTAR_TIME_MAX ? USTAR_TIME_MAX : t;
}

/* Owner names go into the next export's tar headers only: one that
 * would not fit or is not plain printable text is dropped, not refused. */
static const char *owner_name(const char *s)
{
	size_t i;

	if (s == NULL || strnlen(s, KEYSET_OWNER_MAX + 1) > KEYSET_OWNER_MAX)
		return NULL;
	for (i = 0; s[i]; i++) {
		if (s[i] <= ' ' || s[i] > '~')
			return NULL;
	}
	return s;
}

static int entry_meta(struct archive_entry *e, struct keyset_meta *meta)
{
	la_int64_t uid = archive_entry_uid(e), gid = archive_entry_gid(e);

	/* (uid_t)-1 means "no change" to chown: never an owner. */
	if (uid < 0 || uid >= UINT32_MAX || gid < 0 || gid >= UINT32_MAX)
		return -EINVAL;
	meta->mode = archive_entry_perm(e);
	meta->mtime = clamp_time(archive_entry_mtime(e));
	meta->owned = true;
	meta->uid = (uid_t)uid;
	meta->gid = (gid_t)gid;
	meta->user = owner_name(archive_entry_uname(e));
	meta->group = owner_name(archive_entry_gname(e));
	return 0;
}

/* The same xattr twice (bsdtar writes both SCHILY and LIBARCHIVE
 * records) is one; two different values are a malformed archive. */
static int add_xattr(struct keyset_member *m, const char *name, const void *value, size_t len)
{
	int ret = keyset_add_xattr(m, name, value, len);
	size_t i;

	if (ret != -EEXIST)
		return ret == -E2BIG ? -EINVAL : ret;
	for (i = 0; strcmp(m->xattr[i].name, name) != 0; i++)
		;
	return m->xattr[i].len == len && (len == 0 || !memcmp(m->xattr[i].value, value, len)) ?
	       0 : -EINVAL;
}

static int read_xattrs(struct archive_entry *e, struct keyset_member *m)
{
	const char *name;
	const void *value;
	size_t len;
	int ret = 0;

	archive_entry_xattr_reset(e);
	while (ret == 0 && archive_entry_xattr_next(e, &name, &value, &len) == ARCHIVE_OK) {
		if (keyset_xattr_kept(name))
			ret = add_xattr(m, name, value, len);
	}
	return ret;
}

static int read_member(struct unpack *u, struct archive *a, struct archive_entry *e,
		       const char *name, struct keyset_meta *meta)
{
	struct keyset_member *m;
	uint8_t *data = NULL;
	size_t len = 0;
	int ret;

	ret = keyset_member_name_valid(name) ? entry_meta(e, meta) : -EINVAL;
	if (ret == 0 && meta->type == KEYSET_FILE)
		ret = entry_size(e, u->max_member, &len);
	if (ret < 0)
		goto out;
	/* The size is bounded by max_member before anything is allocated. */
	if (len > 0) {
		ret = -ENOMEM;
		data = secmem_alloc(len);
		if (data == NULL)
			goto out;
		ret = read_exact(a, data, len);
		if (ret < 0)
			goto out;
	}
	ret = keyset_add_member(u->ks, name, meta, data, len, &m);
	/* Duplicates and too many members are malformed archives. */
	if (ret == -EEXIST || ret == -E2BIG)
		ret = -EINVAL;
	if (ret == 0)
		ret = read_xattrs(e, m);
out:
	secmem_free(data);
	return ret;
}

/* Regular files, directories and symlinks: hard links, devices, fifos,
 * sockets and sparse files are refused. */
static int entry_kind(struct archive_entry *e, struct keyset_meta *meta)
{
	if (archive_entry_hardlink(e) != NULL || archive_entry_sparse_count(e) != 0)
		return -EINVAL;
	memset(meta, 0, sizeof(*meta));
	switch (archive_entry_filetype(e)) {
	case AE_IFREG:
		meta->type = KEYSET_FILE;
		return archive_entry_symlink(e) == NULL ? 0 : -EINVAL;
	case AE_IFDIR:
		meta->type = KEYSET_DIR;
		return archive_entry_symlink(e) == NULL ? 0 : -EINVAL;
	case AE_IFLNK:
		meta->type = KEYSET_LINK;
		meta->link = archive_entry_symlink(e);
		return meta->link != NULL ? 0 : -EINVAL;
	}
	return -EINVAL;
}

/* The top entry as bundle_pack() writes it (0700, 0:0) says nothing
 * was recorded: a restore then keeps to the keystore's 0700. */
static int unpack_top(struct unpack *u, const struct keyset_meta *meta)
{
	struct keyset_member *t = &u->ks->top;

	if ((meta->mode & KEYSET_MODE_MASK) == 0700 && meta->uid == 0 && meta->gid == 0)
		return 0;
	t->type = KEYSET_DIR;
	t->mode = meta->mode & KEYSET_MODE_MASK;
	t->owned = true;
	t->uid = meta->uid;
	t->gid = meta->gid;
	snprintf(t->user, sizeof(t->user), "%s", meta->user ? meta->user : "");
	snprintf(t->group, sizeof(t->group), "%s", meta->group ? meta->group : "");
	return 0;
}

static int unpack_entry(struct unpack *u, struct archive *a, struct archive_entry *e)
{
	char top[KEYSET_NAME_MAX + 1], rest[KEYSET_PATH_MAX + 2];
	struct keyset_meta meta;
	const char *after;
	size_t n;
	int ret;

	ret = split_path(archive_entry_pathname(e), top, &after);
	if (ret == 0)
		ret = entry_kind(e, &meta);
	if (ret < 0)
		return ret;
	/* The first entry names the keyset; every later one must agree. */
	if (u->ks->name[0] == '\0')
		memcpy(u->ks->name, top, sizeof(top));
	else if (strcmp(u->ks->name, top) != 0)
		return -EINVAL;

	/* "k/" or "k": the top directory itself, once. */
	if (after == NULL || after[0] == '\0') {
		if (u->have_dir || meta.type != KEYSET_DIR)
			return -EINVAL;
		u->have_dir = true;
		ret = entry_meta(e, &meta);
		return ret ? ret : unpack_top(u, &meta);
	}
	n = strnlen(after, sizeof(rest));
	if (n == sizeof(rest))
		return -EINVAL;
	memcpy(rest, after, n + 1);
	/* "k/a/": a directory may end in one slash, nothing else may. */
	if (meta.type == KEYSET_DIR && rest[n - 1] == '/')
		rest[n - 1] = '\0';
	if (strcmp(rest, KEYSET_INI) == 0)
		return meta.type == KEYSET_FILE ? read_ini(u, a, e) : -EINVAL;
	if (strcmp(rest, KEYSET_SIG) == 0)
		return meta.type == KEYSET_FILE ? read_sig(u, a, e) : -EINVAL;
	return read_member(u, a, e, rest, &meta);
}

/* libarchive reports a clean EOF when the input simply stops at a
 * header boundary, so a tar cut there would pass. Insist on the two
 * zero blocks every tar writer puts at the end. After ARCHIVE_EOF the
 * header position is where that end marker starts. */
static int check_end(struct archive *a, const uint8_t *tar, size_t len)
{
	static const uint8_t zero[2 * TAR_BLOCK];
	la_int64_t pos = archive_read_header_position(a);

	if (pos < 0 || (uint64_t)pos > len || len - (size_t)pos < sizeof(zero) ||
	    memcmp(tar + pos, zero, sizeof(zero)) != 0)
		return -EINVAL;
	return 0;
}

static int read_tar(struct unpack *u, struct archive *a, const uint8_t *tar, size_t len)
{
	struct archive_entry *e;
	int r = ARCHIVE_FATAL, ret = 0;

	if (archive_read_support_format_tar(a) != ARCHIVE_OK ||
	    archive_read_support_filter_none(a) != ARCHIVE_OK ||
	    archive_read_open_memory(a, tar, len) != ARCHIVE_OK)
		return -EINVAL;
	/* Anything but a clean header, warnings included, is refused. */
	while (ret == 0 && (r = archive_read_next_header(a, &e)) == ARCHIVE_OK)
		ret = unpack_entry(u, a, e);
	if (ret < 0)
		return ret;
	if (r != ARCHIVE_EOF || u->ks->name[0] == '\0')
		return -EINVAL;
	return check_end(a, tar, len);
}

/* Whole-archive rules, once every entry is in. A refusal here is about
 * one member (its directory, or where its link leads through the other
 * links): the caller only learns -EINVAL, so the member is named in
 * the log, which names the keyset and no secret. */
static int finish(struct unpack *u)
{
	size_t i;
	int ret;

	keyset_sort(u->ks);
	/* Format 1 wrote 0:0 for every file whoever owned it. */
	if (u->format1)
		memset(&u->ks->top, 0, sizeof(u->ks->top));
	for (i = 0; u->format1 && i < u->ks->n; i++) {
		struct keyset_member *m = &u->ks->m[i];

		m->owned = false;
		m->uid = 0;
		m->gid = 0;
		m->user[0] = m->group[0] = '\0';
	}
	ret = keyset_check_tree_why(u->ks, u->why, u->why_size);
	if (ret && u->why && *u->why) {
		char member[KEYSET_PATH_MAX * 2 + 128];

		snprintf(member, sizeof(member), "%s", u->why);
		snprintf(u->why, u->why_size, "keyset \"%s\": %s", u->ks->name, member);
	}
	return ret;
}

int bundle_unpack(const uint8_t *tar, size_t len, size_t max_member, struct keyset *ks)
{
	return bundle_unpack_why(tar, len, max_member, ks, NULL, 0);
}

int bundle_unpack_why(const uint8_t *tar, size_t len, size_t max_member, struct keyset *ks,
		      char *why, size_t why_size)
{
	return bundle_unpack_proof(tar, len, max_member, ks, NULL, why, why_size);
}

void bundle_proof_free(struct bundle_proof *proof)
{
	free(proof->ini);
	memset(proof, 0, sizeof(*proof));
}

int bundle_unpack_proof(const uint8_t *tar, size_t len, size_t max_member, struct keyset *ks,
			struct bundle_proof *proof, char *why, size_t why_size)
{
	struct unpack u = { .ks = ks, .max_member = max_member, .why = why, .why_size = why_size,
			    .proof = proof };
	struct archive *a = NULL;
	int ret;

	if (why && why_size)
		*why = '\0';
	ret = -EINVAL;
	if (tar == NULL || len == 0)
		goto out;
	ret = -ENOMEM;
	a = archive_read_new();
	if (a == NULL)
		goto out;
	ret = read_tar(&u, a, tar, len);
	if (ret == 0)
		ret = finish(&u);
out:
	archive_read_free(a);
	if (ret < 0)
		keyset_clear(ks);
	if (ret < 0 && proof)
		bundle_proof_free(proof);
	return ret;
}

bool bundle_proof_matches(const struct keyset *ks, const struct bundle_proof *proof)
{
	char fpr[2 * BUNDLE_FPR_LEN + 1], *ini;
	size_t len;
	bool same;

	if (!proof->ini)
		return false;
	bundle_fingerprint(ks, fpr);
	/* format 1 or 2, as the archive's own KEYSET.ini said */
	if (bundle_ini(ks, strstr(proof->ini, "\nformat = 1\n") ? 1 : KEYSET_FORMAT, fpr, &ini,
		       &len))
		return false;
	same = len == proof->ini_len && !memcmp(ini, proof->ini, len);
	free(ini);
	return same;
}
