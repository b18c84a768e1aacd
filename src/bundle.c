/* Keyset <-> tar archive, KEYSET.ini and the keyset fingerprint.
 *
 * Packing runs libarchive twice over the same input: once to count the
 * bytes, once into an exact sodium_malloc() buffer. Blocking is off
 * (bytes per block 0), so libarchive hands every write straight to our
 * callback and keeps no copy of key bytes in its own heap buffers; the
 * output is headers, data padded to 512 bytes, and the two zero blocks
 * that end a tar, with no padding to a 10240-byte record. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <archive.h>
#include <archive_entry.h>
#include <sodium.h>

#include "keyfs/bundle.h"

#define TAR_BLOCK 512
/* Largest mtime a ustar header holds: 11 octal digits. */
#define USTAR_TIME_MAX ((time_t)077777777777)
/* KEYSET.ini is metadata, a few hundred bytes; bound what we read. */
#define INI_MAX 4096
#define PATH_LEN (KEYSET_NAME_MAX + 1 + KEYSET_MEMBER_NAME_MAX + 1)

_Static_assert(sizeof(KEYSET_INI) <= KEYSET_MEMBER_NAME_MAX + 1,
	       "KEYSET.ini must fit a member path");

void bundle_fingerprint(const struct keyset *ks, char hex[static 2 * BUNDLE_FPR_LEN + 1])
{
	crypto_generichash_state st;
	uint8_t fpr[BUNDLE_FPR_LEN], le[8];
	char mode[5];
	size_t i, j;

	crypto_generichash_init(&st, NULL, 0, sizeof(fpr));
	for (i = 0; i < ks->n; i++) {
		const struct keyset_member *m = &ks->m[i];

		/* The NULs make the encoding unambiguous between fields. */
		crypto_generichash_update(&st, (const uint8_t *)m->name, strlen(m->name) + 1);
		snprintf(mode, sizeof(mode), "%04o", (unsigned int)(m->mode & KEYSET_MODE_MASK));
		crypto_generichash_update(&st, (const uint8_t *)mode, sizeof(mode));
		for (j = 0; j < sizeof(le); j++)
			le[j] = (uint8_t)((uint64_t)m->len >> (8 * j));
		crypto_generichash_update(&st, le, sizeof(le));
		if (m->len > 0)
			crypto_generichash_update(&st, m->data, m->len);
	}
	crypto_generichash_final(&st, fpr, sizeof(fpr));
	sodium_bin2hex(hex, 2 * BUNDLE_FPR_LEN + 1, fpr, sizeof(fpr));
	sodium_memzero(&st, sizeof(st));
}

/* Hints end up in KEYSET.ini lines, README.txt and logs: no control
 * characters, so a hint cannot add a line or a terminal escape. */
static bool hint_valid(const char *h, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)h[i];

		if (c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

static bool time_valid(time_t t)
{
	return t >= 0 && t <= USTAR_TIME_MAX;
}

/* Everything bundle_pack() relies on, checked before libarchive runs. */
static int pack_check(const struct keyset *ks)
{
	size_t hint_len = strnlen(ks->hint, sizeof(ks->hint));
	size_t i;

	if (!keyset_name_valid(ks->name) || hint_len == sizeof(ks->hint) ||
	    !hint_valid(ks->hint, hint_len) || ks->n > KEYSET_MEMBERS_MAX)
		return -EINVAL;
	for (i = 0; i < ks->n; i++) {
		const struct keyset_member *m = &ks->m[i];

		/* Sorted and unique, so the same keyset gives the same bytes. */
		if (!keyset_member_name_valid(m->name) || !time_valid(m->mtime) ||
		    (m->data == NULL && m->len > 0) ||
		    (i > 0 && strcmp(ks->m[i - 1].name, m->name) >= 0))
			return -EINVAL;
	}
	return 0;
}

static int format_ini(const struct keyset *ks, char *buf, size_t size)
{
	char hex[2 * BUNDLE_FPR_LEN + 1], created[sizeof("YYYY-MM-DDTHH:MM:SSZ")];
	time_t t = keyset_mtime(ks);
	bool hint = ks->hint[0] != '\0';
	struct tm tm;
	int n;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return -EINVAL;
	bundle_fingerprint(ks, hex);
	n = snprintf(buf, size,
		     "[keyset]\nname = %s\nformat = %d\ncreated = %s\n"
		     "fingerprint = %s\n%s%s%s",
		     ks->name, KEYSET_FORMAT, created, hex,
		     hint ? "hint = " : "", ks->hint, hint ? "\n" : "");
	if (n < 0 || (size_t)n >= size)
		return -EINVAL;
	return n;
}

/* Where libarchive's output goes: counted only when buf is NULL. */
struct sink {
	uint8_t *buf;
	size_t cap;
	size_t len;
};

static la_ssize_t sink_write(struct archive *a, void *priv, const void *p, size_t n)
{
	struct sink *s = priv;

	if (s->buf != NULL) {
		if (n > s->cap - s->len) {
			archive_set_error(a, ENOSPC, "tar grew between passes");
			return -1;
		}
		memcpy(s->buf + s->len, p, n);
	}
	s->len += n;
	return (la_ssize_t)n;
}

static int write_entry(struct archive *a, struct archive_entry *e, const char *path,
		       mode_t type, mode_t perm, time_t mtime,
		       const void *data, size_t len)
{
	/* Only these fields are set: no atime, ctime or pax records. */
	archive_entry_clear(e);
	archive_entry_set_pathname(e, path);
	archive_entry_set_filetype(e, type);
	archive_entry_set_perm(e, perm & 07777);
	archive_entry_set_uid(e, 0);
	archive_entry_set_gid(e, 0);
	archive_entry_set_uname(e, "root");
	archive_entry_set_gname(e, "root");
	archive_entry_set_mtime(e, mtime, 0);
	archive_entry_set_size(e, (la_int64_t)len);
	if (archive_write_header(a, e) != ARCHIVE_OK)
		return -EIO;
	if (len > 0 && archive_write_data(a, data, len) != (la_ssize_t)len)
		return -EIO;
	return 0;
}

static int write_members(struct archive *a, struct archive_entry *e,
			 const struct keyset *ks, const char *ini, size_t ini_len)
{
	time_t t = keyset_mtime(ks);
	char path[PATH_LEN];
	size_t i;
	int ret;

	snprintf(path, sizeof(path), "%s/", ks->name);
	ret = write_entry(a, e, path, AE_IFDIR, 0700, t, NULL, 0);
	for (i = 0; ret == 0 && i < ks->n; i++) {
		const struct keyset_member *m = &ks->m[i];

		snprintf(path, sizeof(path), "%s/%s", ks->name, m->name);
		ret = write_entry(a, e, path, AE_IFREG, m->mode, m->mtime,
				  m->data, m->len);
	}
	if (ret == 0) {
		snprintf(path, sizeof(path), "%s/%s", ks->name, KEYSET_INI);
		ret = write_entry(a, e, path, AE_IFREG, 0600, t, ini, ini_len);
	}
	return ret;
}

static int write_tar(const struct keyset *ks, struct sink *s)
{
	struct archive *a = archive_write_new();
	struct archive_entry *e = archive_entry_new();
	char ini[INI_MAX];
	int ret, n;

	ret = -ENOMEM;
	if (a == NULL || e == NULL)
		goto out;
	ret = n = format_ini(ks, ini, sizeof(ini));
	if (n < 0)
		goto out;
	ret = -EIO;
	if (archive_write_set_format_ustar(a) != ARCHIVE_OK ||
	    archive_write_set_bytes_per_block(a, 0) != ARCHIVE_OK ||
	    archive_write_open(a, s, NULL, sink_write, NULL) != ARCHIVE_OK)
		goto out;
	ret = write_members(a, e, ks, ini, (size_t)n);
	if (ret == 0 && archive_write_close(a) != ARCHIVE_OK)
		ret = -EIO;
out:
	archive_entry_free(e);
	archive_write_free(a);
	return ret;
}

int bundle_size(const struct keyset *ks, size_t *len)
{
	struct sink s = { 0 };
	int ret;

	ret = pack_check(ks);
	if (ret == 0)
		ret = write_tar(ks, &s);
	if (ret == 0)
		*len = s.len;
	return ret;
}

int bundle_pack(const struct keyset *ks, uint8_t **tar, size_t *len)
{
	struct sink s = { 0 };
	int ret;

	ret = bundle_size(ks, &s.cap);
	if (ret < 0)
		goto out;
	ret = -ENOMEM;
	s.buf = sodium_malloc(s.cap);
	if (s.buf == NULL)
		goto out;
	ret = write_tar(ks, &s);
	if (ret == 0 && s.len != s.cap)
		ret = -EIO;
out:
	if (ret < 0) {
		sodium_free(s.buf);
		return ret;
	}
	*tar = s.buf;
	*len = s.len;
	return 0;
}

/* State of one bundle_unpack() run. */
struct unpack {
	struct keyset *ks;
	size_t max_member;
	bool have_dir;	/* saw the "<top>/" entry */
	bool have_ini;
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
static int ini_line(const char *line, size_t n, const char *top, char *hint,
		    bool *have_hint)
{
	static const char name_key[] = "name = ", hint_key[] = "hint = ";
	const size_t klen = sizeof(name_key) - 1;

	if (n >= klen && memcmp(line, name_key, klen) == 0) {
		if (n - klen != strlen(top) || memcmp(line + klen, top, n - klen) != 0)
			return -EINVAL;
	} else if (n >= klen && memcmp(line, hint_key, klen) == 0) {
		if (*have_hint || n - klen > KEYSET_HINT_MAX ||
		    !hint_valid(line + klen, n - klen))
			return -EINVAL;
		memcpy(hint, line + klen, n - klen);
		hint[n - klen] = '\0';
		*have_hint = true;
	}
	return 0;
}

static int parse_ini(const char *buf, size_t len, const char *top,
		     char hint[static KEYSET_HINT_MAX + 1])
{
	bool have_hint = false;
	const char *p = buf, *end = buf + len, *nl;
	int ret = 0;

	while (ret == 0 && p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			nl = end;
		ret = ini_line(p, (size_t)(nl - p), top, hint, &have_hint);
		p = nl + 1;
	}
	return ret;
}

static int read_ini(struct unpack *u, struct archive *a, struct archive_entry *e)
{
	char buf[INI_MAX];
	size_t len;
	int ret;

	if (u->have_ini)
		return -EINVAL;
	u->have_ini = true;
	ret = entry_size(e, sizeof(buf), &len);
	if (ret == 0)
		ret = read_exact(a, buf, len);
	if (ret == 0)
		ret = parse_ini(buf, len, u->ks->name, u->ks->hint);
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

static int read_member(struct unpack *u, struct archive *a,
		       struct archive_entry *e, const char *name)
{
	uint8_t *data = NULL;
	size_t len;
	int ret;

	ret = keyset_member_name_valid(name) ? 0 : -EINVAL;
	if (ret == 0)
		ret = entry_size(e, u->max_member, &len);
	if (ret < 0)
		goto out;
	/* The size is bounded by max_member before anything is allocated. */
	if (len > 0) {
		ret = -ENOMEM;
		data = sodium_malloc(len);
		if (data == NULL)
			goto out;
		ret = read_exact(a, data, len);
		if (ret < 0)
			goto out;
	}
	ret = keyset_add(u->ks, name, archive_entry_perm(e), clamp_time(archive_entry_mtime(e)),
			 data, len);
	/* Duplicates and too many members are malformed archives. */
	if (ret == -EEXIST || ret == -E2BIG)
		ret = -EINVAL;
out:
	sodium_free(data);
	return ret;
}

/* Only regular files and the top directory: links, devices, fifos,
 * sockets and sparse files are refused. */
static bool entry_kind_ok(struct archive_entry *e, mode_t want)
{
	return archive_entry_filetype(e) == want &&
	       archive_entry_hardlink(e) == NULL &&
	       archive_entry_symlink(e) == NULL &&
	       archive_entry_sparse_count(e) == 0;
}

static int unpack_entry(struct unpack *u, struct archive *a, struct archive_entry *e)
{
	char top[KEYSET_NAME_MAX + 1];
	const char *rest;
	int ret;

	ret = split_path(archive_entry_pathname(e), top, &rest);
	if (ret < 0)
		return ret;
	/* The first entry names the keyset; every later one must agree. */
	if (u->ks->name[0] == '\0')
		memcpy(u->ks->name, top, sizeof(top));
	else if (strcmp(u->ks->name, top) != 0)
		return -EINVAL;

	/* "k/" or "k": the top directory itself, once. */
	if (rest == NULL || rest[0] == '\0') {
		if (u->have_dir || !entry_kind_ok(e, AE_IFDIR))
			return -EINVAL;
		u->have_dir = true;
		return 0;
	}
	/* "k/x/..." or a directory "k/x": nesting is not a keyset. */
	if (strchr(rest, '/') != NULL || !entry_kind_ok(e, AE_IFREG))
		return -EINVAL;
	if (strcmp(rest, KEYSET_INI) == 0)
		return read_ini(u, a, e);
	return read_member(u, a, e, rest);
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

int bundle_unpack(const uint8_t *tar, size_t len, size_t max_member, struct keyset *ks)
{
	struct unpack u = { .ks = ks, .max_member = max_member };
	struct archive *a = NULL;
	int ret;

	ret = -EINVAL;
	if (tar == NULL || len == 0)
		goto out;
	ret = -ENOMEM;
	a = archive_read_new();
	if (a == NULL)
		goto out;
	ret = read_tar(&u, a, tar, len);
	if (ret == 0)
		keyset_sort(ks);
out:
	archive_read_free(a);
	if (ret < 0)
		keyset_clear(ks);
	return ret;
}
