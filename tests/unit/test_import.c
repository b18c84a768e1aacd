/* Unit tests for import.c over a real directory store: the work factor
 * limit (refused before any scrypt, whatever the password), the EFBIG
 * report for a file over the per-file limit, and that re-importing a
 * backup whose members have modes the keystore does not apply changes
 * nothing. */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "keyfs/age.h"
#include "keyfs/bundle.h"
#include "keyfs/import.h"
#include "keyfs/secret.h"
#include "keyfs/store.h"
#include "tap.h"

#define PASSWORD "Correct-Horse-7"
#define T0 1700000000

/* A backup of keyset "k" (members modes 0664 and 0600), sealed at logn. */
static int backup(int logn, uint8_t **out, size_t *outlen)
{
	struct age_pass pass = { PASSWORD, strlen(PASSWORD) };
	struct keyset ks = { 0 };
	uint8_t *tar = NULL;
	size_t len;
	int ret;

	snprintf(ks.name, sizeof(ks.name), "k");
	ret = keyset_add(&ks, "group.key", 0664, T0, (const uint8_t *)"group-key", 9);
	if (!ret)
		ret = keyset_add(&ks, "own.key", 0600, T0, (const uint8_t *)"own-key", 7);
	keyset_sort(&ks);
	/* keyset_add() keeps 0644; a tar -c of a group-writable file says
	 * 0664, and bundle_pack() writes what the member holds. */
	ks.m[0].mode = 0664;
	if (!ret)
		ret = bundle_pack(&ks, &tar, &len);
	if (!ret)
		ret = age_seal(tar, len, &pass, logn, out, outlen);
	sodium_free(tar);
	keyset_clear(&ks);
	return ret;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void test_import(const char *root)
{
	struct importer *im = NULL;
	struct store st = { 0 };
	struct state state;
	struct vault *v = NULL;
	uint8_t *sealed = NULL;
	unsigned *versions = NULL;
	size_t len, nv = 99;
	struct stat sb;
	char path[512];

	snprintf(path, sizeof(path), "%s/.keyfs", root);
	if (!tap_ok(state_open(&state, path) == 0 && store_open("dir", root, &state, &st) == 0 &&
		    vault_new(&v) == 0 && import_new(&im, &st, &state, v) == 0,
		    "state, store, vault and importer"))
		return;
	TAP_EQ_INT(import_file(im, false, (const uint8_t *)"x", 1), -EINVAL,
		   "not an age file: EINVAL");
	TAP_EQ_INT(import_file(im, false, NULL, 4096), -EFBIG,
		   "data NULL (over the stage's limit): EFBIG");
	TAP_EQ_INT(backup(12, &sealed, &len), 0, "a backup sealed at work factor 12");
	TAP_EQ_INT(import_file(im, false, sealed, len), -ENOKEY, "no password: ENOKEY");
	vault_set(v, PASSWORD, strlen(PASSWORD));

	import_set_max_work_factor(im, 11);
	TAP_EQ_INT(import_file(im, true, sealed, len), -EKEYREJECTED,
		   "limit 11: refused, though the password fits");
	TAP_EQ_INT(import_file(im, false, sealed, len), -EKEYREJECTED, "... for import too");
	snprintf(path, sizeof(path), "%s/k", root);
	tap_ok(stat(path, &sb) != 0, "... and nothing restored");

	import_set_max_work_factor(im, 12);
	TAP_EQ_INT(import_file(im, false, sealed, len), 0, "limit 12: restored");
	snprintf(path, sizeof(path), "%s/k/group.key", root);
	tap_ok(stat(path, &sb) == 0 && (sb.st_mode & 07777) == 0644, "group write not applied");
	TAP_EQ_INT(import_file(im, false, sealed, len), 0, "imported again");
	TAP_EQ_INT(st.ops->versions(st.priv, "k", &versions, &nv), 0, "versions listed");
	TAP_EQ_INT(nv, 0, "... none: the second import changed nothing");
	free(versions);
	free(sealed);
	import_free(im);
	vault_free(v);
	store_close(&st);
	state_close(&state);
}

int main(void)
{
	char root[] = "/tmp/keyfs-test-import.XXXXXX";

	if (sodium_init() < 0 || !mkdtemp(root)) {
		tap_ok(false, "sodium_init and mkdtemp");
		return tap_done();
	}
	test_import(root);
	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return tap_done();
}
