/* Unit tests for bundles of key trees (format 2): directories, symlinks,
 * owners and xattrs survive pack and unpack; the tar is deterministic
 * and carries xattrs as GNU tar reads them; the fingerprint covers every
 * new field and leaves a format 1 keyset's alone; format 1 archives do
 * not record owners. */
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
#define T0 1700000000

static const uint8_t *U8(const char *s)
{
	return (const uint8_t *)s;
}

/* certbot's shape, with an xattr and another owner. */
static void tree(struct keyset *ks)
{
	struct keyset_meta dir = { .type = KEYSET_DIR, .mode = 0755, .mtime = T0, .owned = true,
				   .user = "root", .group = "root" };
	struct keyset_meta file = dir, link = dir;
	struct keyset_member *m;

	memset(ks, 0, sizeof(*ks));
	snprintf(ks->name, sizeof(ks->name), "tls");
	file.type = KEYSET_FILE;
	file.mode = 0600;
	link.type = KEYSET_LINK;
	link.link = "../../archive/example.org/cert1.pem";
	keyset_add_member(ks, "live", &dir, NULL, 0, NULL);
	keyset_add_member(ks, "live/example.org", &dir, NULL, 0, NULL);
	keyset_add_member(ks, "live/example.org/cert.pem", &link, NULL, 0, NULL);
	keyset_add_member(ks, "archive", &dir, NULL, 0, NULL);
	keyset_add_member(ks, "archive/example.org", &dir, NULL, 0, NULL);
	keyset_add_member(ks, "archive/example.org/cert1.pem", &file, U8("cert"), 4, &m);
	keyset_add_xattr(m, "user.purpose", "tls", 3);
	keyset_add_xattr(m, "security.selinux", "system_u:object_r:cert_t:s0", 28);
	file.uid = 1234;
	file.gid = 5678;
	file.user = "alice";
	file.group = "";
	keyset_add_member(ks, "theirs.key", &file, U8("theirs"), 6, NULL);
	keyset_sort(ks);
}

static const struct keyset_member *find(const struct keyset *ks, const char *name)
{
	size_t i;

	for (i = 0; i < ks->n; i++) {
		if (!strcmp(ks->m[i].name, name))
			return &ks->m[i];
	}
	return NULL;
}

static bool contains(const uint8_t *buf, size_t len, const char *s)
{
	return memmem(buf, len, s, strlen(s)) != NULL;
}

static void test_round_trip(void)
{
	struct keyset ks, back = { 0 };
	const struct keyset_member *m;
	uint8_t *tar = NULL, *again = NULL;
	size_t len = 0, len2 = 0;

	tree(&ks);
	TAP_EQ_INT(ks.n, 7, "seven members");
	TAP_EQ_INT(bundle_pack(&ks, &tar, &len), 0, "pack a tree");
	TAP_EQ_INT(bundle_pack(&ks, &again, &len2), 0, "pack it again");
	tap_ok(len == len2 && !memcmp(tar, again, len), "the same bytes twice");
	tap_ok(contains(tar, len, "SCHILY.xattr.user.purpose=tls") &&
	       !contains(tar, len, "LIBARCHIVE.xattr"), "xattrs as GNU tar reads them, once");
	tap_ok(contains(tar, len, "format = 2\n"), "KEYSET.ini says format 2");
	TAP_EQ_INT(bundle_unpack(tar, len, MAX_MEMBER, &back), 0, "unpack it");
	tap_ok(keyset_equal(&ks, &back), "the same keyset back");
	m = find(&back, "live/example.org/cert.pem");
	tap_ok(m && m->type == KEYSET_LINK && !strcmp(m->link, "../../archive/example.org/cert1.pem")
	       && m->mode == 0777, "a link with its target");
	m = find(&back, "archive/example.org");
	tap_ok(m && m->type == KEYSET_DIR && m->mode == 0755 && m->mtime == T0, "a directory");
	m = find(&back, "archive/example.org/cert1.pem");
	tap_ok(m && m->nxattr == 2 && !strcmp(m->xattr[0].name, "security.selinux") &&
	       m->xattr[0].len == 28, "xattrs, sorted, values whole (with the NUL)");
	m = find(&back, "theirs.key");
	tap_ok(m && m->owned && m->uid == 1234 && m->gid == 5678 && !strcmp(m->user, "alice") &&
	       m->group[0] == '\0', "numeric owner and the names there were");
	secmem_free(tar);
	secmem_free(again);
	keyset_clear(&back);
	keyset_clear(&ks);
}

static void fpr_of(const struct keyset *ks, char hex[static 2 * BUNDLE_FPR_LEN + 1])
{
	bundle_fingerprint(ks, hex);
}

static void test_fingerprint(void)
{
	char base[2 * BUNDLE_FPR_LEN + 1], f[sizeof(base)];
	struct keyset ks, flat = { 0 };
	struct keyset_member *m;

	tree(&ks);
	fpr_of(&ks, base);
	m = (struct keyset_member *)find(&ks, "theirs.key");
	m->uid = 1235;
	fpr_of(&ks, f);
	tap_ok(strcmp(base, f), "the uid is covered");
	m->uid = 1234;
	snprintf(m->user, sizeof(m->user), "bob");
	fpr_of(&ks, f);
	tap_ok(!strcmp(base, f), "owner names are not");
	m = (struct keyset_member *)find(&ks, "live/example.org/cert.pem");
	m->link[strlen(m->link) - 5] = '2';
	fpr_of(&ks, f);
	tap_ok(strcmp(base, f), "the link target is covered");
	m->link[strlen(m->link) - 5] = '1';
	m = (struct keyset_member *)find(&ks, "archive/example.org/cert1.pem");
	m->xattr[1].value[0] = 'T';
	fpr_of(&ks, f);
	tap_ok(strcmp(base, f), "an xattr value is covered");
	m->xattr[1].value[0] = 't';
	m = (struct keyset_member *)find(&ks, "archive");
	m->type = KEYSET_FILE;
	fpr_of(&ks, f);
	tap_ok(strcmp(base, f), "the type is covered");
	keyset_clear(&ks);

	/* A file owned by 0:0 fingerprints as format 1 did, owned or not. */
	snprintf(flat.name, sizeof(flat.name), "k");
	keyset_add(&flat, "a", 0600, T0, U8("secret-a"), 8);
	fpr_of(&flat, base);
	flat.m[0].owned = true;
	fpr_of(&flat, f);
	tap_ok(!strcmp(base, f), "0:0 recorded or not: one fingerprint");
	flat.m[0].gid = 1;
	fpr_of(&flat, f);
	tap_ok(strcmp(base, f), "a gid other than 0 is covered");
	keyset_clear(&flat);
}

/* An archive with KEYSET.ini "format = 1" did not record owners. */
static void test_format1_owners(void)
{
	struct keyset flat = { 0 }, back = { 0 };
	uint8_t *tar = NULL;
	size_t len = 0;

	snprintf(flat.name, sizeof(flat.name), "k");
	keyset_add(&flat, "a", 0600, T0, U8("secret-a"), 8);
	TAP_EQ_INT(bundle_pack(&flat, &tar, &len), 0, "pack a flat keyset");
	tap_ok(contains(tar, len, "format = 1\n"), "written as format 1");
	TAP_EQ_INT(bundle_unpack(tar, len, MAX_MEMBER, &back), 0, "unpack it");
	tap_ok(back.n == 1 && !back.m[0].owned, "the owner is the keystore's, not 0:0");
	secmem_free(tar);
	keyset_clear(&back);
	keyset_clear(&flat);
}

/* bsdtar and libarchive's default pax write each xattr twice (SCHILY and
 * LIBARCHIVE records); xattrs outside user.* and security.* are dropped. */
static void test_foreign_xattrs(void)
{
	size_t cap = 64 * 1024, len = 0;
	uint8_t *buf = malloc(cap);
	struct archive *a = archive_write_new();
	struct archive_entry *e = archive_entry_new();
	struct keyset ks = { 0 };
	int ok;

	ok = archive_write_set_format_pax(a) == ARCHIVE_OK &&
	     archive_write_open_memory(a, buf, cap, &len) == ARCHIVE_OK;
	archive_entry_set_pathname(e, "k/a");
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0600);
	archive_entry_set_size(e, 1);
	archive_entry_xattr_add_entry(e, "user.x", "1", 1);
	archive_entry_xattr_add_entry(e, "trusted.y", "2", 1);
	archive_entry_xattr_add_entry(e, "user.a%b", "3", 1);
	archive_entry_xattr_add_entry(e, "user.c=d", "4", 1);
	ok = ok && archive_write_header(a, e) == ARCHIVE_OK && archive_write_data(a, "a", 1) == 1 &&
	     archive_write_close(a) == ARCHIVE_OK;
	archive_write_free(a);
	archive_entry_free(e);
	tap_ok(ok && contains(buf, len, "LIBARCHIVE.xattr.user.x"), "crafted a pax tar");
	TAP_EQ_INT(bundle_unpack(buf, len, MAX_MEMBER, &ks), 0, "it unpacks");
	tap_ok(ks.n == 1 && ks.m[0].nxattr == 1 && !strcmp(ks.m[0].xattr[0].name, "user.x"),
	       "user.x once; trusted.y, user.a%%b and user.c=d dropped");
	tap_ok(keyset_add_xattr(&(struct keyset_member){ 0 }, "user.a%b", "3", 1) == -EINVAL &&
	       keyset_add_xattr(&(struct keyset_member){ 0 }, "user.c=d", "4", 1) == -EINVAL,
	       "names a pax tar would not give back the same are not kept");
	tap_ok(ks.n == 1 && ks.m[0].owned && ks.m[0].uid == 0, "without KEYSET.ini owners are kept");
	keyset_clear(&ks);
	free(buf);
}

static void test_rules(void)
{
	char deep[KEYSET_PATH_MAX + 2];
	struct keyset ks = { 0 };
	struct keyset_meta link = { .type = KEYSET_LINK, .link = "../x" };
	int i;

	tap_ok(keyset_member_name_valid("live/example.org/cert.pem"), "a nested path is valid");
	tap_ok(!keyset_member_name_valid("a//b") && !keyset_member_name_valid("a/../b") &&
	       !keyset_member_name_valid("/a") && !keyset_member_name_valid("a/") &&
	       !keyset_member_name_valid("a/.b") && keyset_member_name_valid("a/" KEYSET_INI),
	       "empty, dot and absolute components are not; KEYSET.ini below the top is");
	deep[0] = '\0';
	for (i = 0; i <= KEYSET_DEPTH_MAX; i++)
		strcat(deep, "d/");
	strcat(deep, "f");
	tap_ok(!keyset_member_name_valid(deep), "deeper than KEYSET_DEPTH_MAX is not");
	tap_ok(keyset_link_valid("a/b/l", "../../x") && !keyset_link_valid("a/b/l", "../../../x") &&
	       !keyset_link_valid("l", "/etc/shadow") && !keyset_link_valid("l", "") &&
	       keyset_link_valid("l", "./a/../b") && !keyset_link_valid("l", "a/../../b"),
	       "link targets resolved from the link's directory");
	snprintf(ks.name, sizeof(ks.name), "k");
	TAP_EQ_INT(keyset_add_member(&ks, "l", &link, NULL, 0, NULL), -EINVAL,
		   "a link out of the keyset is not a member");
	keyset_clear(&ks);
}

/* A keyset "k" from (name, target) pairs: a target of NULL makes a
 * directory, "" a file, anything else a link. Sorted, as read. */
static void links(struct keyset *ks, const char *const *spec)
{
	struct keyset_meta meta = { .mode = 0755, .mtime = T0 };
	size_t i;

	memset(ks, 0, sizeof(*ks));
	snprintf(ks->name, sizeof(ks->name), "k");
	for (i = 0; spec[i]; i += 2) {
		meta.type = !spec[i + 1] ? KEYSET_DIR : spec[i + 1][0] ? KEYSET_LINK : KEYSET_FILE;
		meta.link = meta.type == KEYSET_LINK ? spec[i + 1] : NULL;
		if (keyset_add_member(ks, spec[i], &meta, meta.type == KEYSET_FILE ? U8("x") : NULL,
				      meta.type == KEYSET_FILE, NULL))
			tap_ok(false, "add %s", spec[i]);
	}
	keyset_sort(ks);
}

/* keyset_check_tree_why() of a keyset made by links(); the reason in why. */
static int check(const char *const *spec, char *why, size_t size)
{
	struct keyset ks;
	int ret;

	links(&ks, spec);
	why[0] = '\0';
	ret = keyset_check_tree_why(&ks, why, size);
	keyset_clear(&ks);
	return ret;
}

/* Each link target is inside the keyset on its own; only resolving one
 * through another shows where it leads. */
static void test_link_chains(void)
{
	static const char *const chain[] = {
		"conf", NULL, "conf/l", "..", "conf/server.key", "l/../../secret", NULL,
	};
	static const char *const through_dir_link[] = {
		"d", ".", "x", "d/../secret", NULL,
	};
	static const char *const deep[] = {
		"a", NULL, "a/b", NULL, "a/b/up", "../..", "a/b/k", "up/../etc", NULL,
	};
	static const char *const certbot[] = {
		"archive", NULL, "archive/example.org", NULL,
		"archive/example.org/cert1.pem", "", "archive/example.org/privkey1.pem", "",
		"live", NULL, "live/example.org", NULL,
		"live/example.org/cert.pem", "../../archive/example.org/cert1.pem",
		"live/example.org/privkey.pem", "../../archive/example.org/privkey1.pem",
		/* a link to a link, and through a directory link */
		"live/example.org/key.pem", "privkey.pem",
		"live/current", "example.org", "tls.key", "live/current/key.pem",
		"conf", NULL, "conf/l", "..", "conf/k", "l/live/current/./key.pem",
		NULL,
	};
	static const char *const dangling[] = {
		"conf", NULL, "conf/a", "missing", "conf/b", "gone/../../x", "conf/c", "a/../b",
		NULL,
	};
	static const char *const loop[] = { "a", "b", "b", "a", NULL };
	static const char *const self[] = { "d", NULL, "d/s", "s/x", NULL };
	char why[512];
	struct keyset ks;
	uint8_t *tar = NULL;
	size_t len = 0;

	TAP_EQ_INT(check(chain, why, sizeof(why)), -EINVAL, "conf/l -> .. with "
		   "conf/server.key -> l/../../secret refused");
	tap_ok(strstr(why, "\"conf/server.key\"") && strstr(why, "leaving the keyset") &&
	       strstr(why, "\"conf/l\""), "the member and the link it goes through named: %s", why);
	TAP_EQ_INT(check(through_dir_link, why, sizeof(why)), -EINVAL,
		   "d -> . with x -> d/../secret refused");
	tap_ok(strstr(why, "\"x\"") != NULL, "member x named: %s", why);
	TAP_EQ_INT(check(deep, why, sizeof(why)), -EINVAL, "a/b/up -> ../.. with "
		   "a/b/k -> up/../etc refused");
	tap_ok(strstr(why, "\"a/b/k\"") != NULL, "member a/b/k named: %s", why);
	TAP_EQ_INT(check(certbot, why, sizeof(why)), 0,
		   "certbot's live/ -> archive/ links, a link to a link, a directory link: "
		   "accepted (%s)", why);
	TAP_EQ_INT(check(dangling, why, sizeof(why)), 0,
		   "links dangling inside the keyset are accepted (%s)", why);
	TAP_EQ_INT(check(loop, why, sizeof(why)), -EINVAL, "a -> b, b -> a refused");
	tap_ok(strstr(why, "\"a\"") && strstr(why, "loop"), "... as a loop: %s", why);
	TAP_EQ_INT(check(self, why, sizeof(why)), -EINVAL, "d/s -> s/x refused");

	/* bundle_pack() refuses what it could not write safely either. */
	links(&ks, chain);
	TAP_EQ_INT(bundle_pack(&ks, &tar, &len), -EINVAL, "the chain is not packed");
	keyset_clear(&ks);
	links(&ks, certbot);
	TAP_EQ_INT(bundle_pack(&ks, &tar, &len), 0, "the certbot tree is");
	secmem_free(tar);
	keyset_clear(&ks);
}

/* l00 -> l01 -> ... -> f: open() of l00 follows n links. */
static int chain_of(unsigned n, char *why, size_t size)
{
	char names[KEYSET_LINK_FOLLOW_MAX + 2][8];
	const char *spec[2 * (KEYSET_LINK_FOLLOW_MAX + 2) + 1];
	unsigned i;

	for (i = 0; i <= n; i++)
		snprintf(names[i], sizeof(names[i]), "l%02u", i);
	for (i = 0; i < n; i++) {
		spec[2 * i] = names[i];
		spec[2 * i + 1] = names[i + 1];
	}
	/* the last name is the file the chain ends at */
	spec[2 * n] = names[n];
	spec[2 * n + 1] = "";
	spec[2 * n + 2] = NULL;
	return check(spec, why, size);
}

static void test_link_depth(void)
{
	char why[512];

	TAP_EQ_INT(chain_of(KEYSET_LINK_FOLLOW_MAX, why, sizeof(why)), 0,
		   "a chain of %d links is accepted (%s)", KEYSET_LINK_FOLLOW_MAX, why);
	TAP_EQ_INT(chain_of(KEYSET_LINK_FOLLOW_MAX + 1, why, sizeof(why)), -EINVAL,
		   "a chain of %d links is refused", KEYSET_LINK_FOLLOW_MAX + 1);
	tap_ok(strstr(why, "\"l00\"") && strstr(why, "more than 40"), "l00 named: %s", why);
}

int main(void)
{
	if (sodium_init() < 0) {
		tap_ok(false, "sodium_init");
		return tap_done();
	}
	test_round_trip();
	test_fingerprint();
	test_format1_owners();
	test_foreign_xattrs();
	test_rules();
	test_link_chains();
	test_link_depth();
	return tap_done();
}
