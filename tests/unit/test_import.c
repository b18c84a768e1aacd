/* Unit tests for import.c over a real directory store: the work factor
 * limit (refused before any scrypt, whatever the password), the EFBIG
 * report for a file over the per-file limit, that re-importing a
 * backup whose members have modes the keystore does not apply changes
 * nothing, and files sealed to public keys opened with the keyring's
 * identities (the key fixtures of tests/vectors/keys). */
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
#include "keyfs/keyring.h"
#include "keyfs/secmem.h"
#include "keyfs/store.h"
#include "keyfs/vault.h"

#include "tap.h"

#define PASSWORD "Correct-Horse-7"
#define T0 1700000000
/* age.pub and id_ed25519.pub of tests/vectors/keys */
#define AGE_PUB "age1ws0c709qz5lexlgvzwg0c2eafdwcm48cf7nf8lrz3gu0khkhnvtq7ec7uf"
#define SSH_PUB "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAWHDFHUlx3VmzcoylXwphY5jqYDDNZx8izuxlEQbsRk test@keyfs"

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
	secmem_free(tar);
	keyset_clear(&ks);
	return ret;
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

static char keys_dir[4096];

/* A key fixture, parsed as an identity file. */
static void identity(struct age_identity_list *l, const char *name)
{
	char path[8192], text[4096];
	size_t n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", keys_dir, name);
	f = fopen(path, "r");
	if (f) {
		n = fread(text, 1, sizeof(text), f);
		fclose(f);
	}
	if (!tap_ok(age_keys_identities(l, text, n, NULL, 0) == 0, "identity %s", name))
		exit(tap_done());
}

static int give(struct keyring *kr, const char *name)
{
	struct age_identity_list l;

	identity(&l, name);
	return keyring_add(kr, KEYRING_CONTROL, &l, 1);
}

/* A backup of keyset name sealed to the recipients of text. */
static int sealed_to(const char *name, const char *text, uint8_t **out, size_t *outlen)
{
	struct age_recipient_list r;
	struct keyset ks = { 0 };
	uint8_t *tar = NULL;
	size_t len;
	int ret;

	snprintf(ks.name, sizeof(ks.name), "%s", name);
	ret = keyset_add(&ks, "a.key", 0600, T0, (const uint8_t *)"a-key", 5);
	if (!ret)
		ret = bundle_pack(&ks, &tar, &len);
	if (!ret)
		ret = age_keys_recipients(&r, text, strlen(text), NULL, 0);
	if (!ret) {
		ret = age_seal_to(tar, len, r.r, r.n, out, outlen);
		age_recipient_list_free(&r);
	}
	secmem_free(tar);
	keyset_clear(&ks);
	return ret;
}

static crypto_generichash_state digest_state;

static int digest_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	uint8_t buf[4096];
	size_t n;
	FILE *f;

	(void)ftw;
	crypto_generichash_update(&digest_state, (const uint8_t *)path, strlen(path) + 1);
	crypto_generichash_update(&digest_state, (const uint8_t *)&sb->st_mode, sizeof(sb->st_mode));
	if (flag != FTW_F || !(f = fopen(path, "rb")))
		return 0;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		crypto_generichash_update(&digest_state, buf, n);
	fclose(f);
	return 0;
}

/* Every name, mode and byte below root. */
static void digest(const char *root, uint8_t out[static 32])
{
	crypto_generichash_init(&digest_state, NULL, 0, 32);
	nftw(root, digest_one, 16, FTW_PHYS);
	crypto_generichash_final(&digest_state, out, 32);
}

static void test_identities(const char *root)
{
	static const char both[] = AGE_PUB "\n" SSH_PUB "\n";
	uint8_t *to_both = NULL, *to_ssh = NULL, before[32], after[32];
	size_t both_len, ssh_len;
	struct importer *im = NULL;
	struct keyring *kr = NULL;
	struct store st = { 0 };
	struct state state;
	struct vault *v = NULL;
	char path[512];
	struct stat sb;

	snprintf(path, sizeof(path), "%s/.keyfs", root);
	if (!tap_ok(state_open(&state, path) == 0 && store_open("dir", root, &state, &st) == 0 &&
		    vault_new(&v) == 0 && import_new(&im, &st, &state, v) == 0 &&
		    keyring_new(&kr) == 0, "state, store, vault, importer, keyring"))
		return;
	import_set_keyring(im, kr);
	TAP_EQ_INT(sealed_to("both", both, &to_both, &both_len), 0, "sealed to age.pub and id_ed25519.pub");
	TAP_EQ_INT(sealed_to("ssh", SSH_PUB, &to_ssh, &ssh_len), 0, "sealed to id_ed25519.pub");
	digest(root, before);
	TAP_EQ_INT(import_file(im, false, to_both, both_len), -ENOKEY, "nothing held: ENOKEY");
	vault_set(v, PASSWORD, strlen(PASSWORD));
	TAP_EQ_INT(import_file(im, false, to_both, both_len), -EKEYREJECTED,
		   "a password alone: EKEYREJECTED");
	vault_forget(v);
	TAP_EQ_INT(give(kr, "age2.key"), 1, "a wrong identity held");
	TAP_EQ_INT(import_file(im, false, to_both, both_len), -EKEYREJECTED, "wrong identity: EKEYREJECTED");
	TAP_EQ_INT(import_file(im, true, to_ssh, ssh_len), -EKEYREJECTED, "... verify too");
	digest(root, after);
	tap_ok(!memcmp(before, after, 32), "the store is byte for byte unchanged");

	TAP_EQ_INT(give(kr, "age.key"), 1, "age.key held too");
	TAP_EQ_INT(import_file(im, true, to_both, both_len), 0, "verify with age.key");
	TAP_EQ_INT(import_file(im, false, to_both, both_len), 0, "import with age.key");
	/* sealed to recipients and unsigned: nothing vouches for it */
	snprintf(path, sizeof(path), "%s/both/a.key", root);
	tap_ok(stat(path, &sb) != 0, "... not installed by itself");
	snprintf(path, sizeof(path), "%s/.keyfs/versions/both/1/a.key", root);
	tap_ok(stat(path, &sb) == 0, "... but kept as inactive version 1");
	TAP_EQ_INT(import_file(im, false, to_ssh, ssh_len), -EKEYREJECTED, "not the ssh key");
	keyring_forget(kr);
	TAP_EQ_INT(give(kr, "id_ed25519"), 1, "the ssh key alone");
	TAP_EQ_INT(import_file(im, false, to_both, both_len), 0, "opens the two-recipient file alone");
	TAP_EQ_INT(import_file(im, false, to_ssh, ssh_len), 0, "and the ssh one");
	snprintf(path, sizeof(path), "%s/.keyfs/versions/ssh/1/a.key", root);
	tap_ok(stat(path, &sb) == 0, "... kept as inactive version 1");
	keyring_forget(kr);
	TAP_EQ_INT(import_file(im, false, to_ssh, ssh_len), -ENOKEY, "forgotten: ENOKEY again");
	free(to_both);
	free(to_ssh);
	import_free(im);
	keyring_free(kr);
	vault_free(v);
	store_close(&st);
	state_close(&state);
}

int main(void)
{
	char root[] = "/tmp/keyfs-test-import.XXXXXX", root2[] = "/tmp/keyfs-test-import.XXXXXX";
	const char *v = getenv("VECTORS");

	if (sodium_init() < 0 || !mkdtemp(root) || !mkdtemp(root2)) {
		tap_ok(false, "sodium_init and mkdtemp");
		return tap_done();
	}
	snprintf(keys_dir, sizeof(keys_dir), "%s/../keys", v ? v : ".");
	test_import(root);
	test_identities(root2);
	tap_rmtree(root);
	tap_rmtree(root2);
	return tap_done();
}
