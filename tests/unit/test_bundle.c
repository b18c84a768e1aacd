/* Unit tests for keyset.c and bundle.c with flat keysets (format 1):
 * keyset rules, deterministic packing, the fingerprint, and every
 * refusal rule of bundle_unpack() on tars crafted here with libarchive's
 * writer. test_bundle_tree.c has directories, links, owners, xattrs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <archive.h>
#include <archive_entry.h>
#include <sodium.h>

#include "keyfs/bundle.h"
#include "keyfs/keyset.h"
#include "keyfs/secmem.h"

#include "tap.h"

#define MAX_MEMBER 4096
#define T0 1700000000 /* 2023-11-14T22:13:20Z */

/* One entry of a crafted tar. size < 0 means strlen(data). */
struct tent {
	const char *path;
	mode_t type;
	const char *data;
	const char *link;	/* symlink target or hardlink name */
	long size;
};

/* The reason the last crafted tar was refused with ("" none). */
static char last_log[1024];

static const uint8_t *U8(const char *s)
{
	return (const uint8_t *)s;
}

/* The sample keyset of most tests: "a", "b.pub", "empty". */
static void sample(struct keyset *ks, const char *name)
{
	memset(ks, 0, sizeof(*ks));
	snprintf(ks->name, sizeof(ks->name), "%s", name);
	keyset_add(ks, "empty", 0600, T0, NULL, 0);
	keyset_add(ks, "b.pub", 0644, T0 + 100, U8("public-b"), 8);
	keyset_add(ks, "a", 0600, T0 + 50, U8("secret-a"), 8);
	keyset_sort(ks);
}

/* Writes entries in the given libarchive format into a malloc()ed
 * buffer; NULL if libarchive refused to write them. */
static uint8_t *craft(int format, const struct tent *t, size_t n, size_t *len)
{
	size_t cap = 2u << 20;
	uint8_t *buf = malloc(cap);
	struct archive *a = archive_write_new();
	struct archive_entry *e = archive_entry_new();
	size_t i, size;
	int ok;

	ok = archive_write_set_format(a, format) == ARCHIVE_OK &&
	     archive_write_open_memory(a, buf, cap, len) == ARCHIVE_OK;
	for (i = 0; i < n; i++) {
		size = t[i].size >= 0 ? (size_t)t[i].size :
		       t[i].data ? strlen(t[i].data) : 0;
		archive_entry_clear(e);
		archive_entry_set_pathname(e, t[i].path);
		archive_entry_set_filetype(e, t[i].type);
		archive_entry_set_perm(e, t[i].type == AE_IFDIR ? 0700 : 0600);
		archive_entry_set_mtime(e, T0, 0);
		if (t[i].type == AE_IFLNK)
			archive_entry_set_symlink(e, t[i].link);
		else if (t[i].link != NULL)
			archive_entry_set_hardlink(e, t[i].link);
		if (t[i].type == AE_IFCHR)
			archive_entry_set_rdev(e, 0x0103);
		archive_entry_set_size(e, (la_int64_t)size);
		ok = ok && archive_write_header(a, e) == ARCHIVE_OK;
		/* Entries without data are zero-filled by libarchive. */
		if (ok && size > 0 && t[i].data != NULL)
			ok = archive_write_data(a, t[i].data, size) == (la_ssize_t)size;
	}
	ok = ok && archive_write_close(a) == ARCHIVE_OK;
	archive_write_free(a);
	archive_entry_free(e);
	if (!ok) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* bundle_unpack() of a crafted tar, -1000 for a broken test setup. */
static int unpack_tents(int format, const struct tent *t, size_t n, size_t max)
{
	struct keyset ks = { 0 };
	size_t len;
	uint8_t *tar = craft(format, t, n, &len);
	int ret;

	if (tar == NULL)
		return -1000;
	ret = bundle_unpack_why(tar, len, max, &ks, last_log, sizeof(last_log));

	if (ret < 0 && (ks.n != 0 || ks.m != NULL || ks.name[0] != '\0'))
		ret = -1001; /* not left empty on error */
	keyset_clear(&ks);
	free(tar);
	return ret;
}

#define REFUSE(desc, ...) do { \
	const struct tent t_[] = { __VA_ARGS__ }; \
	TAP_EQ_INT(unpack_tents(ARCHIVE_FORMAT_TAR_USTAR, t_, \
				sizeof(t_) / sizeof(t_[0]), MAX_MEMBER), \
		   -EINVAL, "refused: %s", desc); \
} while (0)

#define DIR_K { "k/", AE_IFDIR, NULL, NULL, 0 }
#define FILE_A { "k/a", AE_IFREG, "secret-a", NULL, -1 }

static void test_names(void)
{
	char long65[66];

	memset(long65, 'x', 65);
	long65[65] = '\0';
	tap_ok(keyset_name_valid("sm") && keyset_name_valid("a.B_c-9"), "plain names valid");
	tap_ok(keyset_name_valid(long65 + 1), "64 characters valid");
	tap_ok(!keyset_name_valid(long65), "65 characters invalid");
	tap_ok(!keyset_name_valid("") && !keyset_name_valid(".x") &&
	       !keyset_name_valid("..") && !keyset_name_valid("a/b") &&
	       !keyset_name_valid("a b") && !keyset_name_valid("a\nb") &&
	       !keyset_name_valid("caf\xc3\xa9"), "bad keyset names invalid");
	tap_ok(keyset_name_valid(KEYSET_INI) && !keyset_member_name_valid(KEYSET_INI),
	       "KEYSET.ini reserved for members only");
	tap_ok(keyset_member_name_valid("id_ed25519.pub"), "member name valid");
}

static void test_keyset(void)
{
	struct keyset ks = { 0 }, other;
	char name[16];
	int i, ret = 0;

	TAP_EQ_INT(keyset_mtime(&ks), 0, "empty keyset mtime 0");
	sample(&ks, "k");
	TAP_EQ_INT(ks.n, 3, "three members");
	tap_ok(strcmp(ks.m[0].name, "a") == 0 && strcmp(ks.m[2].name, "empty") == 0,
	       "sorted by name");
	tap_ok(ks.m[2].data == NULL && ks.m[2].len == 0, "empty member has no buffer");
	TAP_EQ_INT(keyset_mtime(&ks), T0 + 100, "mtime is the newest member's");
	TAP_EQ_INT(keyset_add(&ks, "a", 0600, 0, U8("x"), 1), -EEXIST, "duplicate refused");
	TAP_EQ_INT(keyset_add(&ks, KEYSET_INI, 0600, 0, U8("x"), 1), -EINVAL,
		   "reserved name refused");
	TAP_EQ_INT(keyset_add(&ks, "../x", 0600, 0, U8("x"), 1), -EINVAL,
		   "bad member name refused");
	sample(&other, "k");
	tap_ok(keyset_equal(&ks, &other), "equal keysets");
	other.m[0].mode = 0640;
	tap_ok(!keyset_equal(&ks, &other), "mode difference seen");
	other.m[0].mode = 0600;
	other.m[0].data[7] ^= 1;
	tap_ok(!keyset_equal(&ks, &other), "content difference seen");
	other.m[0].data[7] ^= 1;
	other.m[0].name[0] = 'A';
	tap_ok(!keyset_equal(&ks, &other), "member name difference seen");
	other.m[0].name[0] = 'a';
	other.m[0].len--;
	tap_ok(!keyset_equal(&ks, &other), "length difference seen");
	other.m[0].len++;
	keyset_clear(&other);
	for (i = 3; i < KEYSET_MEMBERS_MAX && ret == 0; i++) {
		snprintf(name, sizeof(name), "m%03d", i);
		ret = keyset_add(&ks, name, 0600, 0, U8("x"), 1);
	}
	TAP_EQ_INT(ret, 0, "KEYSET_MEMBERS_MAX members accepted");
	TAP_EQ_INT(keyset_add(&ks, "one-more", 0600, 0, NULL, 0), -E2BIG,
		   "one more refused");
	keyset_clear(&ks);
	tap_ok(ks.n == 0 && ks.m == NULL && ks.name[0] == '\0', "clear leaves it empty");
}

static void test_fingerprint(void)
{
	struct keyset ks, other;
	char fpr[2 * BUNDLE_FPR_LEN + 1], fpr2[sizeof(fpr)];

	sample(&ks, "k");
	bundle_fingerprint(&ks, fpr);
	/* Computed independently with Python's hashlib.blake2b(digest_size=32). */
	tap_ok(strcmp(fpr, "8684b05e8787074bd7fbd281abc7154e344631e2ad9e3b4bfd3b7aef6ef31673") == 0,
	       "fingerprint known answer (%s)", fpr);

	sample(&other, "other-name");
	other.m[1].mtime = 1;
	snprintf(other.hint, sizeof(other.hint), "a hint");
	bundle_fingerprint(&other, fpr2);
	tap_ok(strcmp(fpr, fpr2) == 0, "keyset name, mtime and hint not covered");
	other.m[1].data[0] ^= 0x80;
	bundle_fingerprint(&other, fpr2);
	tap_ok(strcmp(fpr, fpr2) != 0, "one content byte changes it");
	other.m[1].data[0] ^= 0x80;
	other.m[1].mode = 0600;
	bundle_fingerprint(&other, fpr2);
	tap_ok(strcmp(fpr, fpr2) != 0, "one mode changes it");
	other.m[1].mode = 0644;
	other.m[1].name[0] = 'c';
	bundle_fingerprint(&other, fpr2);
	tap_ok(strcmp(fpr, fpr2) != 0, "one name changes it");
	keyset_clear(&other);
	keyset_clear(&ks);
}

/* Extracts KEYSET.ini from a tar as a NUL-terminated string. */
static void find_ini(const uint8_t *tar, size_t len, char *out, size_t size)
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	la_ssize_t n;

	out[0] = '\0';
	archive_read_support_format_tar(a);
	archive_read_open_memory(a, tar, len);
	while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
		if (strcmp(archive_entry_pathname(e), "k/" KEYSET_INI) == 0) {
			n = archive_read_data(a, out, size - 1);
			out[n > 0 ? n : 0] = '\0';
		}
	}
	archive_read_free(a);
}

static void test_pack_round_trip(void)
{
	struct keyset ks, back = { 0 };
	uint8_t *tar = NULL;
	size_t len = 0, size = 0;
	char ini[1024], fpr[2 * BUNDLE_FPR_LEN + 1], want[1024];

	sample(&ks, "k");
	snprintf(ks.hint, sizeof(ks.hint), "the usual one, \xc3\xa9 2019");
	TAP_EQ_INT(bundle_pack(&ks, &tar, &len), 0, "pack");
	TAP_EQ_INT(bundle_size(&ks, &size), 0, "size");
	TAP_EQ_INT(size, len, "bundle_size matches pack (%zu)", len);
	/* dir + 3 members (one empty) + KEYSET.ini + 2 end blocks */
	find_ini(tar, len, ini, sizeof(ini));
	TAP_EQ_INT(len, 512 * (1 + 2 + 2 + 1 + 1 + (strlen(ini) + 511) / 512 + 2),
		   "smallest tar, no record padding");
	TAP_EQ_INT(bundle_unpack(tar, len, MAX_MEMBER, &back), 0, "unpack");
	tap_ok(keyset_equal(&ks, &back) && strcmp(back.name, "k") == 0, "round trip equal");
	tap_ok(strcmp(back.hint, ks.hint) == 0, "hint round trip");
	tap_ok(back.m[0].mtime == T0 + 50 && back.m[1].mtime == T0 + 100 &&
	       back.m[2].mtime == T0, "member mtimes kept");
	tap_ok(back.m[0].mode == 0600 && back.m[1].mode == 0644, "modes kept");

	bundle_fingerprint(&ks, fpr);
	snprintf(want, sizeof(want), "[keyset]\nname = k\nformat = 1\n"
		 "created = 2023-11-14T22:15:00Z\nfingerprint = %s\nhint = %s\n\n"
		 "[members]\na = file 0600 -\nb.pub = file 0644 -\nempty = file 0600 -\n\n"
		 "[sha256]\n; grep -E '^[0-9a-f]{64}  ' KEYSET.ini | sha256sum -c\n"
		 "8766b9cb08e6040b704f1e3ee1e186efccf2635b1d2634d6525333007e6aeae1  a\n"
		 "0b01bba03b3bac30d70ec1a751a61adcbe0af485871fc0ac7b72d96b76b72265  b.pub\n"
		 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  empty\n",
		 fpr, ks.hint);
	find_ini(tar, len, ini, sizeof(ini));
	tap_ok(strcmp(ini, want) == 0, "KEYSET.ini content");
	secmem_free(tar);
	keyset_clear(&back);

	ks.hint[0] = '\0';
	TAP_EQ_INT(bundle_pack(&ks, &tar, &len), 0, "pack without hint");
	find_ini(tar, len, ini, sizeof(ini));
	tap_ok(strstr(ini, "hint") == NULL, "no hint line when no hint");
	TAP_EQ_INT(bundle_unpack(tar, len, MAX_MEMBER, &back), 0, "unpack without hint");
	tap_ok(back.hint[0] == '\0', "empty hint back");
	secmem_free(tar);
	keyset_clear(&back);

	snprintf(ks.hint, sizeof(ks.hint), "two\nlines");
	TAP_EQ_INT(bundle_pack(&ks, &tar, &len), -EINVAL, "hint with newline refused");
	TAP_EQ_INT(bundle_size(&ks, &len), -EINVAL, "size refuses it too");
	ks.hint[0] = '\0';
	snprintf(ks.m[0].name, sizeof(ks.m[0].name), "z");
	TAP_EQ_INT(bundle_pack(&ks, &tar, &len), -EINVAL, "unsorted keyset refused");
	snprintf(ks.m[0].name, sizeof(ks.m[0].name), "a");
	ks.m[0].mtime = -1;
	TAP_EQ_INT(bundle_pack(&ks, &tar, &len), -EINVAL, "mtime before 1970 refused");
	ks.m[0].mtime = (time_t)1 << 33;
	TAP_EQ_INT(bundle_pack(&ks, &tar, &len), -EINVAL, "mtime past ustar's range refused");
	keyset_clear(&ks);

	memset(&ks, 0, sizeof(ks));
	snprintf(ks.name, sizeof(ks.name), "k");
	TAP_EQ_INT(bundle_pack(&ks, &tar, &len), 0, "pack empty keyset");
	TAP_EQ_INT(bundle_unpack(tar, len, MAX_MEMBER, &back), 0, "unpack empty keyset");
	tap_ok(back.n == 0 && strcmp(back.name, "k") == 0, "empty keyset round trip");
	secmem_free(tar);
	keyset_clear(&back);
}

static void test_determinism(void)
{
	struct keyset ks, rev = { 0 };
	uint8_t *t1, *t2, *t3;
	size_t l1, l2, l3;

	sample(&ks, "k");
	snprintf(rev.name, sizeof(rev.name), "k");
	keyset_add(&rev, "a", 0600, T0 + 50, U8("secret-a"), 8);
	keyset_add(&rev, "b.pub", 0644, T0 + 100, U8("public-b"), 8);
	keyset_add(&rev, "empty", 0600, T0, NULL, 0);
	keyset_sort(&rev);
	bundle_pack(&ks, &t1, &l1);
	bundle_pack(&ks, &t2, &l2);
	bundle_pack(&rev, &t3, &l3);
	tap_ok(l1 == l2 && memcmp(t1, t2, l1) == 0, "same keyset, same bytes");
	tap_ok(l1 == l3 && memcmp(t1, t3, l1) == 0, "insertion order does not matter");
	secmem_free(t1);
	secmem_free(t2);
	secmem_free(t3);
	keyset_clear(&ks);
	keyset_clear(&rev);
}

static void test_truncation(void)
{
	struct keyset ks, back = { 0 };
	uint8_t *tar, garbage[4096];
	size_t len, cut, bad = 0;

	sample(&ks, "k");
	bundle_pack(&ks, &tar, &len);
	for (cut = 0; cut < len; cut++) {
		if (bundle_unpack(tar, cut, MAX_MEMBER, &back) != -EINVAL)
			bad++;
		keyset_clear(&back);
	}
	TAP_EQ_INT(bad, 0, "every truncation refused (%zu cuts)", len);
	tar[600] ^= 1; /* inside the first member's header checksum area */
	TAP_EQ_INT(bundle_unpack(tar, len, MAX_MEMBER, &back), -EINVAL, "corrupt header refused");
	secmem_free(tar);
	keyset_clear(&ks);

	randombytes_buf(garbage, sizeof(garbage));
	TAP_EQ_INT(bundle_unpack(garbage, sizeof(garbage), MAX_MEMBER, &back), -EINVAL,
		   "random bytes refused");
	memset(garbage, 0, sizeof(garbage));
	TAP_EQ_INT(bundle_unpack(garbage, sizeof(garbage), MAX_MEMBER, &back), -EINVAL,
		   "empty archive refused");
	TAP_EQ_INT(bundle_unpack(garbage, 0, MAX_MEMBER, &back), -EINVAL, "no bytes refused");
}

static void test_refusals(void)
{
	struct tent fake_ini[] = {
		DIR_K, { "k/" KEYSET_INI, AE_IFREG, "name = j\n", NULL, -1 },
	};

	REFUSE("absolute path", { "/k/", AE_IFDIR, NULL, NULL, 0 },
	       { "/k/a", AE_IFREG, "x", NULL, -1 });
	REFUSE("../x", DIR_K, { "../x", AE_IFREG, "x", NULL, -1 });
	REFUSE("k/../x", DIR_K, { "k/../x", AE_IFREG, "x", NULL, -1 });
	REFUSE("k/..", DIR_K, { "k/..", AE_IFREG, "x", NULL, -1 });
	REFUSE("./k/a", { "./k/a", AE_IFREG, "x", NULL, -1 });
	REFUSE("symlink up and out", DIR_K, FILE_A, { "k/l", AE_IFLNK, NULL, "../x", 0 });
	REFUSE("symlink to an absolute path", DIR_K, { "k/l", AE_IFLNK, NULL, "/etc/shadow", 0 });
	REFUSE("symlink out from a subdirectory", DIR_K, { "k/d/", AE_IFDIR, NULL, NULL, 0 },
	       { "k/d/l", AE_IFLNK, NULL, "../../x", 0 });
	REFUSE("symlink out through its own dir", DIR_K, { "k/d/", AE_IFDIR, NULL, NULL, 0 },
	       { "k/d/l", AE_IFLNK, NULL, "../d/../../k", 0 });
	REFUSE("empty symlink", DIR_K, { "k/l", AE_IFLNK, NULL, "", 0 });
	REFUSE("file under a symlink", DIR_K, { "k/l", AE_IFLNK, NULL, ".", 0 },
	       { "k/l/a", AE_IFREG, "x", NULL, -1 });
	REFUSE("file under a file", DIR_K, FILE_A, { "k/a/b", AE_IFREG, "x", NULL, -1 });
	REFUSE("block device", DIR_K, { "k/sda", AE_IFBLK, NULL, NULL, 0 });
	REFUSE("directory twice", DIR_K, { "k/d/", AE_IFDIR, NULL, NULL, 0 },
	       { "k/d", AE_IFDIR, NULL, NULL, 0 });
	REFUSE("directory and file of one name", DIR_K, { "k/d/", AE_IFDIR, NULL, NULL, 0 },
	       { "k/d", AE_IFREG, "x", NULL, -1 });
	REFUSE("k/d/./a", DIR_K, { "k/d/", AE_IFDIR, NULL, NULL, 0 },
	       { "k/d/./a", AE_IFREG, "x", NULL, -1 });
	REFUSE("k/d//a", DIR_K, { "k/d/", AE_IFDIR, NULL, NULL, 0 },
	       { "k/d//a", AE_IFREG, "x", NULL, -1 });
	REFUSE("file with a trailing slash", DIR_K, { "k/a/", AE_IFREG, "x", NULL, -1 });
	REFUSE("hardlink", DIR_K, FILE_A, { "k/h", AE_IFREG, NULL, "k/a", 0 });
	REFUSE("char device", DIR_K, { "k/tty", AE_IFCHR, NULL, NULL, 0 });
	REFUSE("fifo", DIR_K, { "k/fifo", AE_IFIFO, NULL, NULL, 0 });
	REFUSE("nested file without its directory", DIR_K, { "k/sub/f", AE_IFREG, "x", NULL, -1 });
	REFUSE("two top dirs", DIR_K, FILE_A, { "j/", AE_IFDIR, NULL, NULL, 0 });
	REFUSE("top dir twice", DIR_K, FILE_A, DIR_K);
	REFUSE("file outside top dir", DIR_K, FILE_A, { "a", AE_IFREG, "x", NULL, -1 });
	REFUSE("top is a file", { "k", AE_IFREG, "x", NULL, -1 });
	REFUSE("duplicate member", DIR_K, FILE_A, FILE_A);
	REFUSE("bad keyset name", { ".k/", AE_IFDIR, NULL, NULL, 0 });
	REFUSE("bad member name", DIR_K, { "k/a b", AE_IFREG, "x", NULL, -1 });
	REFUSE("newline in member", DIR_K, { "k/a\nb", AE_IFREG, "x", NULL, -1 });
	REFUSE("newline in keyset", { "k\n/a", AE_IFREG, "x", NULL, -1 });
	REFUSE("oversize member", DIR_K, { "k/big", AE_IFREG, NULL, NULL, MAX_MEMBER + 1 });
	REFUSE("KEYSET.ini names another keyset", fake_ini[0], fake_ini[1]);
	REFUSE("hint with control character", DIR_K,
	       { "k/" KEYSET_INI, AE_IFREG, "hint = a\tb\n", NULL, -1 });
	REFUSE("two hints", DIR_K,
	       { "k/" KEYSET_INI, AE_IFREG, "hint = a\nhint = b\n", NULL, -1 });
	REFUSE("KEYSET.ini twice", DIR_K,
	       { "k/" KEYSET_INI, AE_IFREG, "", NULL, -1 },
	       { "k/" KEYSET_INI, AE_IFREG, "", NULL, -1 });
}

#define DIR_CONF { "k/conf/", AE_IFDIR, NULL, NULL, 0 }
#define LINK(path, target) { path, AE_IFLNK, NULL, target, 0 }

/* Link targets resolved through the archive's other links: each alone
 * stays inside, together they lead out. The log names the member. */
static void test_link_chains(void)
{
	const struct tent certbot[] = {
		DIR_K, { "k/archive/", AE_IFDIR, NULL, NULL, 0 },
		{ "k/archive/example.org/", AE_IFDIR, NULL, NULL, 0 },
		{ "k/archive/example.org/privkey1.pem", AE_IFREG, "key-1", NULL, -1 },
		{ "k/live/", AE_IFDIR, NULL, NULL, 0 },
		{ "k/live/example.org/", AE_IFDIR, NULL, NULL, 0 },
		LINK("k/live/example.org/privkey.pem", "../../archive/example.org/privkey1.pem"),
		LINK("k/live/example.org/key.pem", "privkey.pem"),
	};

	last_log[0] = '\0';
	REFUSE("a symlink chain out", DIR_K, DIR_CONF, LINK("k/conf/l", ".."),
	       LINK("k/conf/server.key", "l/../../secret"));
	tap_ok(strstr(last_log, "\"k\"") && strstr(last_log, "\"conf/server.key\"") &&
	       strstr(last_log, "leaving the keyset"), "the reason names the member: %s", last_log);
	REFUSE("a symlink chain out, the helper link second", DIR_K, DIR_CONF,
	       LINK("k/conf/a.key", "z/../../secret"), LINK("k/conf/z", "."));
	REFUSE("a symlink loop", DIR_K, LINK("k/a", "b"), LINK("k/b", "a"));
	tap_ok(strstr(last_log, "loop") != NULL, "the reason is a loop: %s", last_log);
	last_log[0] = '\0';
	TAP_EQ_INT(unpack_tents(ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, certbot,
				sizeof(certbot) / sizeof(certbot[0]), MAX_MEMBER), 0,
		   "certbot's live/ -> archive/ links and a link to a link unpack");
	tap_ok(last_log[0] == '\0', "no reason given");
}

static void test_limits(void)
{
	char hint_ini[KEYSET_HINT_MAX + 16];
	const struct tent exact[] = {
		DIR_K, { "k/big", AE_IFREG, NULL, NULL, MAX_MEMBER },
	};
	struct tent many[KEYSET_MEMBERS_MAX + 2], ini[2] = {
		DIR_K, { "k/" KEYSET_INI, AE_IFREG, hint_ini, NULL, -1 },
	};
	char names[KEYSET_MEMBERS_MAX + 1][16];
	size_t i;

	TAP_EQ_INT(unpack_tents(ARCHIVE_FORMAT_TAR_USTAR, exact, 2, MAX_MEMBER), 0,
		   "member of exactly max_member accepted");
	many[0] = (struct tent)DIR_K;
	for (i = 0; i <= KEYSET_MEMBERS_MAX; i++) {
		snprintf(names[i], sizeof(names[i]), "k/m%03zu", i);
		many[i + 1] = (struct tent){ names[i], AE_IFREG, "x", NULL, -1 };
	}
	TAP_EQ_INT(unpack_tents(ARCHIVE_FORMAT_TAR_USTAR, many, KEYSET_MEMBERS_MAX + 1,
				MAX_MEMBER), 0, "KEYSET_MEMBERS_MAX members accepted");
	TAP_EQ_INT(unpack_tents(ARCHIVE_FORMAT_TAR_USTAR, many, KEYSET_MEMBERS_MAX + 2,
				MAX_MEMBER), -EINVAL, "one member more refused");

	snprintf(hint_ini, sizeof(hint_ini), "hint = %0*d\n", KEYSET_HINT_MAX, 0);
	TAP_EQ_INT(unpack_tents(ARCHIVE_FORMAT_TAR_USTAR, ini, 2, MAX_MEMBER), 0,
		   "hint of KEYSET_HINT_MAX accepted");
	snprintf(hint_ini, sizeof(hint_ini), "hint = %0*d\n", KEYSET_HINT_MAX + 1, 0);
	TAP_EQ_INT(unpack_tents(ARCHIVE_FORMAT_TAR_USTAR, ini, 2, MAX_MEMBER), -EINVAL,
		   "longer hint refused");
}

/* The same content written as pax, GNU and ustar by libarchive, without
 * a top directory entry or KEYSET.ini, reads back as the same keyset. */
static void test_formats(void)
{
	static const int formats[] = {
		ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE,
		ARCHIVE_FORMAT_TAR_GNUTAR, ARCHIVE_FORMAT_TAR_USTAR,
	};
	const struct tent t[] = {
		{ "k/b.pub", AE_IFREG, "public-b", NULL, -1 },
		{ "k/a", AE_IFREG, "secret-a", NULL, -1 },
	};
	struct keyset ref = { 0 }, ks = { 0 };
	uint8_t *tar;
	size_t i, len;

	snprintf(ref.name, sizeof(ref.name), "k");
	keyset_add(&ref, "a", 0600, T0, U8("secret-a"), 8);
	keyset_add(&ref, "b.pub", 0600, T0, U8("public-b"), 8);
	keyset_sort(&ref);
	for (i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		tar = craft(formats[i], t, 2, &len);
		TAP_EQ_INT(tar ? bundle_unpack(tar, len, MAX_MEMBER, &ks) : -1000, 0,
			   "format %#x unpacks",
			   formats[i]);
		tap_ok(keyset_equal(&ref, &ks) && strcmp(ks.name, "k") == 0,
		       "format %#x gives the same keyset", formats[i]);
		keyset_clear(&ks);
		free(tar);
	}
	keyset_clear(&ref);
}

/* A tar of "k/a" with the given mode and mtime, in a libarchive format. */
static uint8_t *craft_member(int format, mode_t perm, time_t mtime, size_t *len)
{
	size_t cap = 64 * 1024;
	uint8_t *buf = malloc(cap);
	struct archive *a = archive_write_new();
	struct archive_entry *e = archive_entry_new();
	int ok;

	ok = archive_write_set_format(a, format) == ARCHIVE_OK &&
	     archive_write_open_memory(a, buf, cap, len) == ARCHIVE_OK;
	archive_entry_set_pathname(e, "k/a");
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, perm);
	archive_entry_set_mtime(e, mtime, 0);
	archive_entry_set_size(e, 8);
	ok = ok && archive_write_header(a, e) == ARCHIVE_OK &&
	     archive_write_data(a, "secret-a", 8) == 8 && archive_write_close(a) == ARCHIVE_OK;
	archive_write_free(a);
	archive_entry_free(e);
	if (!ok) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* Modes are kept as the keystore applies them (& 0755) everywhere: the
 * comparison, the fingerprint and the tar agree with what is restored. */
static void test_modes(void)
{
	char f1[2 * BUNDLE_FPR_LEN + 1], f2[sizeof(f1)];
	struct keyset ks = { 0 }, applied = { 0 }, back = { 0 };
	uint8_t *tar;
	size_t len;

	snprintf(ks.name, sizeof(ks.name), "k");
	snprintf(applied.name, sizeof(applied.name), "k");
	TAP_EQ_INT(keyset_add(&ks, "a", 0666, T0, U8("secret-a"), 8), 0, "add a 0666 member");
	TAP_EQ_INT(ks.m[0].mode, 0644, "... kept as 0644, as the keystore writes it");
	keyset_add(&ks, "s", 04775, T0, U8("x"), 1);
	TAP_EQ_INT(ks.m[1].mode, 0755, "setuid and group write dropped: 0755");
	keyset_add(&applied, "a", 0644, T0, U8("secret-a"), 8);
	keyset_add(&applied, "s", 0755, T0, U8("x"), 1);
	tap_ok(keyset_equal(&ks, &applied), "equal to the keyset as restored");
	bundle_fingerprint(&ks, f1);
	bundle_fingerprint(&applied, f2);
	tap_ok(!strcmp(f1, f2), "the same fingerprint as the keyset restored");
	keyset_clear(&ks);
	keyset_clear(&applied);

	tar = craft_member(ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, 0664, T0, &len);
	TAP_EQ_INT(tar ? bundle_unpack(tar, len, MAX_MEMBER, &back) : -1000, 0,
		   "unpack a 0664 member");
	TAP_EQ_INT(back.n == 1 ? back.m[0].mode : 0, 0644, "... read as 0644");
	free(tar);
	keyset_clear(&back);
}

/* Member times a ustar header cannot hold are clamped on the way in, so
 * whatever was imported can be exported again. */
static void test_times(void)
{
	static const struct {
		int format;
		time_t in, want;
		const char *desc;
	} c[] = {
		{ ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, -86400, 0, "pax, before 1970" },
		{ ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, (time_t)1 << 40, 077777777777, "pax, year 36812" },
		{ ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, 077777777777, 077777777777, "ustar's last second" },
		{ ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, 0, 0, "the epoch" },
	};
	struct keyset ks = { 0 }, again = { 0 };
	uint8_t *tar, *out;
	size_t i, len, outlen;

	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		out = NULL;
		tar = craft_member(c[i].format, 0600, c[i].in, &len);
		TAP_EQ_INT(tar ? bundle_unpack(tar, len, MAX_MEMBER, &ks) : -1000, 0,
			   "%s: unpacks", c[i].desc);
		tap_ok(ks.n == 1 && ks.m[0].mtime == c[i].want, "%s: mtime %lld", c[i].desc,
		       ks.n == 1 ? (long long)ks.m[0].mtime : -1LL);
		TAP_EQ_INT(bundle_pack(&ks, &out, &outlen), 0, "%s: packs again", c[i].desc);
		TAP_EQ_INT(bundle_unpack(out, outlen, MAX_MEMBER, &again), 0, "%s: round trip",
			   c[i].desc);
		tap_ok(keyset_equal(&ks, &again) && again.m[0].mtime == c[i].want,
		       "%s: same keyset and time back", c[i].desc);
		secmem_free(out);
		keyset_clear(&again);
		keyset_clear(&ks);
		free(tar);
	}
}

/* A live keyset's own directory: in the tar and the fingerprint when
 * recorded as anything but 0700 0:0, and back from the tar as it was;
 * a keyset without one keeps its bytes. */
static void test_top(void)
{
	char f1[2 * BUNDLE_FPR_LEN + 1], f2[2 * BUNDLE_FPR_LEN + 1];
	struct keyset ks, back = { 0 };
	uint8_t *plain, *t;
	size_t lp, l;

	sample(&ks, "k");
	bundle_pack(&ks, &plain, &lp);
	bundle_fingerprint(&ks, f1);
	ks.top = (struct keyset_member){ .type = KEYSET_DIR, .mode = 0700, .owned = true };
	bundle_pack(&ks, &t, &l);
	tap_ok(l == lp && !memcmp(t, plain, l), "a 0700 root top: the bytes of none");
	secmem_free(t);
	ks.top.mode = 0755;
	snprintf(ks.top.user, sizeof(ks.top.user), "root");
	snprintf(ks.top.group, sizeof(ks.top.group), "root");
	bundle_fingerprint(&ks, f2);
	tap_ok(strcmp(f1, f2) != 0, "a recorded top is fingerprinted");
	tap_ok(bundle_pack(&ks, &t, &l) == 0 && bundle_unpack(t, l, 1 << 20, &back) == 0,
	       "a recorded top packs and unpacks");
	tap_ok(back.top.owned && back.top.mode == 0755 && back.top.uid == 0 &&
	       !strcmp(back.top.group, "root"), "... as it was, though its members are plain");
	bundle_fingerprint(&back, f1);
	tap_ok(!strcmp(f1, f2), "... with the same fingerprint");
	secmem_free(t);
	secmem_free(plain);
	keyset_clear(&back);
	keyset_clear(&ks);
}

/* A stand-in signer: what bundle.h asks of one, a fixed length for the
 * same bytes. */
static int fake_sign(void *arg, const uint8_t *ini, size_t len, char *sig, size_t size)
{
	(void)arg;
	return snprintf(sig, size, "signed %zu bytes starting %.8s\n", len, (const char *)ini);
}

/* KEYSET.sig beside KEYSET.ini, never a member; the proof lists the
 * keyset exactly, and any change of a member no longer matches it. */
static void test_signed(void)
{
	const struct bundle_signer signer = { fake_sign, NULL };
	struct bundle_proof proof = { 0 };
	struct keyset ks, back = { 0 };
	uint8_t *tar;
	size_t len, size;

	sample(&ks, "k");
	TAP_EQ_INT(bundle_pack_signed(&ks, &signer, &tar, &len), 0, "signed pack");
	TAP_EQ_INT(bundle_size_signed(&ks, &signer, &size), 0, "signed size");
	TAP_EQ_INT(size, len, "... agree");
	TAP_EQ_INT(bundle_unpack_proof(tar, len, MAX_MEMBER, &back, &proof, NULL, 0), 0,
		   "signed unpack");
	tap_ok(back.n == 3 && !keyset_find(&back, KEYSET_SIG), "KEYSET.sig is no member");
	tap_ok(proof.sig_len && !strncmp(proof.sig, "signed ", 7) && proof.ini &&
	       strstr(proof.ini, "[members]"), "the proof: KEYSET.ini and KEYSET.sig");
	tap_ok(bundle_proof_matches(&back, &proof), "it lists the keyset");
	back.m[1].mode = 0600;
	tap_ok(!bundle_proof_matches(&back, &proof), "a changed mode does not match");
	back.m[1].mode = 0644;
	back.m[0].data[0] ^= 1;
	tap_ok(!bundle_proof_matches(&back, &proof), "changed contents do not match");
	bundle_proof_free(&proof);
	keyset_clear(&back);
	secmem_free(tar);
	tap_ok(!keyset_member_name_valid(KEYSET_SIG), "KEYSET.sig is a reserved name");
	keyset_clear(&ks);
}

int main(void)
{
	if (sodium_init() < 0) {
		tap_ok(false, "sodium_init");
		return tap_done();
	}
	test_names();
	test_keyset();
	test_fingerprint();
	test_pack_round_trip();
	test_determinism();
	test_truncation();
	test_refusals();
	test_link_chains();
	test_limits();
	test_formats();
	test_modes();
	test_times();
	test_top();
	test_signed();
	return tap_done();
}
