/* Keyset <-> tar archive, KEYSET.ini and the keyset fingerprint.
 *
 * Packing runs libarchive once, into a buffer of guarded memory sized by
 * a bound (a counting pass only if the bound fell short). Blocking is off
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
#include "keyfs/secmem.h"

#include "bundle_priv.h"

#define PATH_LEN (KEYSET_NAME_MAX + 1 + KEYSET_PATH_MAX + 2)

_Static_assert(sizeof(KEYSET_INI) <= KEYSET_MEMBER_NAME_MAX + 1,
	       "KEYSET.ini must fit a member path");

static void hash_u64(crypto_generichash_state *st, uint64_t v)
{
	uint8_t le[8];
	size_t j;

	for (j = 0; j < sizeof(le); j++)
		le[j] = (uint8_t)(v >> (8 * j));
	crypto_generichash_update(st, le, sizeof(le));
}

static void hash_bytes(crypto_generichash_state *st, const void *p, size_t len)
{
	hash_u64(st, len);
	if (len > 0)
		crypto_generichash_update(st, p, len);
}

/* A regular file with no xattrs, owned by 0:0 or by nobody recorded:
 * what every member of a format 1 keyset was. */
static bool member_plain(const struct keyset_member *m)
{
	return m->type == KEYSET_FILE && m->nxattr == 0 &&
	       (!m->owned || (m->uid == 0 && m->gid == 0));
}

/* What format 2 added, after a "+" that no mode field can start with. */
static void hash_extended(crypto_generichash_state *st, const struct keyset_member *m)
{
	static const char type[] = { [KEYSET_FILE] = 'f', [KEYSET_DIR] = 'd', [KEYSET_LINK] = 'l' };
	bool owned = m->owned && (m->uid != 0 || m->gid != 0);
	size_t i;

	crypto_generichash_update(st, (const uint8_t *)"+", 2);
	crypto_generichash_update(st, (const uint8_t *)&type[m->type], 1);
	hash_u64(st, owned);
	hash_u64(st, owned ? m->uid : 0);
	hash_u64(st, owned ? m->gid : 0);
	hash_bytes(st, m->link, m->link ? strlen(m->link) : 0);
	hash_u64(st, m->nxattr);
	for (i = 0; i < m->nxattr; i++) {
		hash_bytes(st, m->xattr[i].name, strlen(m->xattr[i].name));
		hash_bytes(st, m->xattr[i].value, m->xattr[i].len);
	}
}

void bundle_fingerprint(const struct keyset *ks, char hex[static 2 * BUNDLE_FPR_LEN + 1])
{
	crypto_generichash_state st;
	uint8_t fpr[BUNDLE_FPR_LEN];
	char mode[5];
	size_t i;

	crypto_generichash_init(&st, NULL, 0, sizeof(fpr));
	for (i = 0; i < ks->n; i++) {
		const struct keyset_member *m = &ks->m[i];

		/* The NULs make the encoding unambiguous between fields. */
		crypto_generichash_update(&st, (const uint8_t *)m->name, strlen(m->name) + 1);
		if (!member_plain(m))
			hash_extended(&st, m);
		snprintf(mode, sizeof(mode), "%04o", (unsigned int)(m->mode & 07777 & KEYSET_MODE_MASK));
		crypto_generichash_update(&st, (const uint8_t *)mode, sizeof(mode));
		hash_bytes(&st, m->data, m->len);
	}
	/* "/" is no member's name: the top cannot be taken for one. */
	if (keyset_top_recorded(ks)) {
		snprintf(mode, sizeof(mode), "%04o", (unsigned)(ks->top.mode & KEYSET_MODE_MASK));
		crypto_generichash_update(&st, (const uint8_t *)"/", 2);
		crypto_generichash_update(&st, (const uint8_t *)mode, sizeof(mode));
		hash_u64(&st, ks->top.uid);
		hash_u64(&st, ks->top.gid);
	}
	crypto_generichash_final(&st, fpr, sizeof(fpr));
	sodium_bin2hex(hex, 2 * BUNDLE_FPR_LEN + 1, fpr, sizeof(fpr));
	sodium_memzero(&st, sizeof(st));
}

bool bundle_hint_valid(const char *h, size_t n)
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

static bool member_valid(const struct keyset_member *m)
{
	if (!keyset_member_name_valid(m->name) || !time_valid(m->mtime) ||
	    (m->data == NULL && m->len > 0))
		return false;
	if (m->type == KEYSET_LINK)
		return m->len == 0 && keyset_link_valid(m->name, m->link);
	return m->link == NULL && (m->type == KEYSET_FILE || m->len == 0);
}

/* Everything bundle_pack() relies on, checked before libarchive runs. */
static int pack_check(const struct keyset *ks)
{
	size_t hint_len = strnlen(ks->hint, sizeof(ks->hint));
	size_t i;

	if (!keyset_name_valid(ks->name) || hint_len == sizeof(ks->hint) ||
	    !bundle_hint_valid(ks->hint, hint_len) || ks->n > KEYSET_MEMBERS_MAX)
		return -EINVAL;
	for (i = 0; i < ks->n; i++) {
		const struct keyset_member *m = &ks->m[i];

		/* Sorted and unique, so the same keyset gives the same bytes. */
		if (!member_valid(m) || (i > 0 && strcmp(ks->m[i - 1].name, m->name) >= 0))
			return -EINVAL;
	}
	return keyset_check_tree(ks);
}

/* A keyset format 1 could hold is written as format 1 wrote it, byte
 * for byte: an unchanged flat keyset keeps an unchanged tar. */
static int keyset_format(const struct keyset *ks)
{
	size_t i;

	/* format 1 recorded no owners, so no top either */
	if (keyset_top_recorded(ks))
		return KEYSET_FORMAT;
	for (i = 0; i < ks->n; i++) {
		if (!member_plain(&ks->m[i]))
			return KEYSET_FORMAT;
	}
	return 1;
}

/* Where libarchive's output goes: counted only when buf is NULL. */
struct sink {
	uint8_t *buf;
	size_t cap;
	size_t len;
	bool full;	/* the tar did not fit in cap */
};

static la_ssize_t sink_write(struct archive *a, void *priv, const void *p, size_t n)
{
	struct sink *s = priv;

	if (s->buf != NULL) {
		if (n > s->cap - s->len) {
			s->full = true;
			archive_set_error(a, ENOSPC, "the tar does not fit");
			return -1;
		}
		memcpy(s->buf + s->len, p, n);
	}
	s->len += n;
	return (la_ssize_t)n;
}

/* The header fields of one entry; only these are set, so that no
 * atime, ctime or other pax records vary between runs. */
static void entry_owner(struct archive_entry *e, const struct keyset_member *m)
{
	/* Without a recorded owner, root's as format 1 wrote. */
	archive_entry_set_uid(e, m && m->owned ? m->uid : 0);
	archive_entry_set_gid(e, m && m->owned ? m->gid : 0);
	archive_entry_set_uname(e, !m || !m->owned ? "root" : m->user[0] ? m->user : NULL);
	archive_entry_set_gname(e, !m || !m->owned ? "root" : m->group[0] ? m->group : NULL);
}

static int entry_begin(struct archive_entry *e, const char *path, mode_t type, mode_t perm,
		       time_t mtime, size_t len)
{
	archive_entry_clear(e);
	archive_entry_set_pathname(e, path);
	archive_entry_set_filetype(e, type);
	archive_entry_set_perm(e, perm & 07777);
	archive_entry_set_mtime(e, mtime, 0);
	archive_entry_set_size(e, (la_int64_t)len);
	return 0;
}

static int entry_write(struct archive *a, struct archive_entry *e, const void *data, size_t len)
{
	if (archive_write_header(a, e) != ARCHIVE_OK)
		return -EIO;
	if (len > 0 && archive_write_data(a, data, len) != (la_ssize_t)len)
		return -EIO;
	return 0;
}

static int write_member(struct archive *a, struct archive_entry *e, const char *top,
			const struct keyset_member *m)
{
	static const mode_t type[] = {
		[KEYSET_FILE] = AE_IFREG, [KEYSET_DIR] = AE_IFDIR, [KEYSET_LINK] = AE_IFLNK,
	};
	char path[PATH_LEN];
	size_t i;

	snprintf(path, sizeof(path), "%s/%s%s", top, m->name, m->type == KEYSET_DIR ? "/" : "");
	entry_begin(e, path, type[m->type], m->mode, m->mtime, m->len);
	entry_owner(e, m);
	if (m->link)
		archive_entry_set_symlink(e, m->link);
	/* Written in name order: the pax header is the same every time. */
	for (i = 0; i < m->nxattr; i++)
		archive_entry_xattr_add_entry(e, m->xattr[i].name, m->xattr[i].value,
					      m->xattr[i].len);
	return entry_write(a, e, m->data, m->len);
}

static int write_members(struct archive *a, struct archive_entry *e,
			 const struct keyset *ks, const char *ini, size_t ini_len, const char *sig,
			 size_t sig_len)
{
	time_t t = keyset_mtime(ks);
	char path[PATH_LEN];
	size_t i;
	int ret;

	snprintf(path, sizeof(path), "%s/", ks->name);
	if (keyset_top_recorded(ks)) {
		entry_begin(e, path, AE_IFDIR, ks->top.mode & KEYSET_MODE_MASK, t, 0);
		entry_owner(e, &ks->top);
	} else {
		entry_begin(e, path, AE_IFDIR, 0700, t, 0);
		entry_owner(e, NULL);
	}
	ret = entry_write(a, e, NULL, 0);
	for (i = 0; ret == 0 && i < ks->n; i++)
		ret = write_member(a, e, ks->name, &ks->m[i]);
	if (ret == 0) {
		snprintf(path, sizeof(path), "%s/%s", ks->name, KEYSET_INI);
		entry_begin(e, path, AE_IFREG, 0600, t, ini_len);
		entry_owner(e, NULL);
		ret = entry_write(a, e, ini, ini_len);
	}
	if (ret == 0 && sig_len) {
		snprintf(path, sizeof(path), "%s/%s", ks->name, KEYSET_SIG);
		entry_begin(e, path, AE_IFREG, 0600, t, sig_len);
		entry_owner(e, NULL);
		ret = entry_write(a, e, sig, sig_len);
	}
	return ret;
}

static int write_tar(const struct keyset *ks, const struct bundle_signer *signer, struct sink *s)
{
	struct archive *a = archive_write_new();
	struct archive_entry *e = archive_entry_new();
	char *ini = NULL, sig[BUNDLE_SIG_MAX], fpr[2 * BUNDLE_FPR_LEN + 1];
	size_t ini_len = 0;
	int ret, sig_len = 0;

	ret = -ENOMEM;
	if (a == NULL || e == NULL)
		goto out;
	bundle_fingerprint(ks, fpr);
	ret = bundle_ini(ks, keyset_format(ks), fpr, &ini, &ini_len);
	if (ret == 0 && signer)
		ret = sig_len = signer->sign(signer->arg, (const uint8_t *)ini, ini_len, sig,
					     sizeof(sig));
	if (ret < 0)
		goto out;
	ret = -EIO;
	/* pax, restricted: a plain ustar header for an entry that needs no
	 * more, pax records only for long paths or links, big ids and
	 * xattrs, and those as GNU tar reads them (SCHILY.xattr) and
	 * nothing else. */
	if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
	    archive_write_set_format_option(a, "pax", "xattrheader", "SCHILY") != ARCHIVE_OK ||
	    archive_write_set_bytes_per_block(a, 0) != ARCHIVE_OK ||
	    archive_write_open(a, s, NULL, sink_write, NULL) != ARCHIVE_OK)
		goto out;
	ret = write_members(a, e, ks, ini, ini_len, sig, (size_t)sig_len);
	if (ret == 0 && archive_write_close(a) != ARCHIVE_OK)
		ret = -EIO;
out:
	free(ini);
	archive_entry_free(e);
	archive_write_free(a);
	return ret;
}

int bundle_size_signed(const struct keyset *ks, const struct bundle_signer *signer, size_t *len)
{
	struct sink s = { 0 };
	int ret;

	ret = pack_check(ks);
	if (ret == 0)
		ret = write_tar(ks, signer, &s);
	if (ret == 0)
		*len = s.len;
	return ret;
}

int bundle_size(const struct keyset *ks, size_t *len)
{
	return bundle_size_signed(ks, NULL, len);
}

static size_t blocks(size_t n)
{
	return (n + 511) / 512 * 512;
}

/* More than the tar of ks takes: a header and a pax header with room
 * for every record of each entry (names, link, xattrs, twice over), its
 * data, KEYSET.ini and the end. Big enough that one pass writes it. */
static size_t tar_bound(const struct keyset *ks)
{
	size_t i, j, ini = 1024 + KEYSET_HINT_MAX, n = 8 * 512 + blocks(BUNDLE_SIG_MAX);

	for (i = 0; i < ks->n; i++) {
		const struct keyset_member *m = &ks->m[i];
		size_t link = m->link ? strlen(m->link) : 0;
		size_t rec = 512 + 2 * (sizeof(ks->name) + strlen(m->name) + link +
					2 * KEYSET_OWNER_MAX);

		/* its lines in KEYSET.ini: escapes at most four bytes a byte */
		ini += 2 * strlen(m->name) + 4 * link + 2 * KEYSET_OWNER_MAX + 160;
		for (j = 0; j < m->nxattr; j++) {
			rec += 64 + 2 * (strlen(m->xattr[j].name) + m->xattr[j].len);
			ini += 4 * strlen(m->xattr[j].name) + 1;
		}
		n += 2 * 512 + blocks(rec) + blocks(m->len);
	}
	return n + blocks(ini);
}

/* Into a buffer of cap bytes; 1 if the tar does not fit. */
static int pack_into(const struct keyset *ks, const struct bundle_signer *signer, size_t cap,
		     struct sink *s)
{
	int ret;

	*s = (struct sink){ .buf = secmem_alloc(cap), .cap = cap };
	if (!s->buf)
		return -ENOMEM;
	ret = write_tar(ks, signer, s);
	if (ret < 0) {
		secmem_free(s->buf);
		s->buf = NULL;
	}
	return ret < 0 && s->full ? 1 : ret;
}

/* One pass into a buffer sized by tar_bound(); should the bound ever
 * fall short, a counting pass sizes it exactly. */
int bundle_pack_signed(const struct keyset *ks, const struct bundle_signer *signer, uint8_t **tar,
		       size_t *len)
{
	struct sink s;
	size_t exact;
	int ret;

	ret = pack_check(ks);
	if (ret == 0)
		ret = pack_into(ks, signer, tar_bound(ks), &s);
	if (ret == 1) {
		ret = bundle_size_signed(ks, signer, &exact);
		if (ret == 0)
			ret = pack_into(ks, signer, exact, &s);
		if (ret == 1)
			ret = -EIO; /* the tar grew between passes */
	}
	if (ret < 0)
		return ret;
	*tar = s.buf;
	*len = s.len;
	return 0;
}

int bundle_pack(const struct keyset *ks, uint8_t **tar, size_t *len)
{
	return bundle_pack_signed(ks, NULL, tar, len);
}
