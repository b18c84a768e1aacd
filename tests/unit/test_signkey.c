/* Unit tests for signkey.c: the store's signing key is made once, kept
 * as a 0600 seed in the state directory, loaded again unchanged, refused
 * when others may read it, and signs what sshsig_verify() accepts. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "keyfs/signkey.h"
#include "keyfs/sshsig.h"

#include "tap.h"

int main(void)
{
	char dir[] = "/tmp/keyfs-signkey-XXXXXX", sig[SSHSIG_ARMOR_MAX], line[256];
	uint8_t pk[SSHSIG_PK_LEN], pk2[SSHSIG_PK_LEN], got[SSHSIG_PK_LEN];
	const uint8_t msg[] = "[keyset]\nname = k\n";
	struct signkey *k = NULL, *again = NULL;
	struct stat st;
	int sfd, n;

	if (sodium_init() < 0 || !mkdtemp(dir)) {
		tap_ok(false, "setup");
		return tap_done();
	}
	sfd = open(dir, O_RDONLY | O_DIRECTORY);
	TAP_EQ_INT(signkey_open(sfd, &k), 0, "made at first open");
	tap_ok(!fstatat(sfd, SIGNKEY_FILE, &st, 0) && st.st_size == 32 &&
	       (st.st_mode & 0777) == 0600, "kept as a 32-byte 0600 seed");
	signkey_public(k, pk);
	TAP_EQ_INT(signkey_open(sfd, &again), 0, "opened again");
	signkey_public(again, pk2);
	tap_ok(!memcmp(pk, pk2, sizeof(pk)), "... the same key");
	n = signkey_sign(k, msg, sizeof(msg) - 1, sig, sizeof(sig));
	tap_ok(n > 0 && !strncmp(sig, "-----BEGIN SSH SIGNATURE-----\n", 30), "signs");
	TAP_EQ_INT(sshsig_verify(sig, (size_t)n, SSHSIG_NAMESPACE, msg, sizeof(msg) - 1, got), 0,
		   "sshsig_verify accepts it");
	tap_ok(!memcmp(got, pk, sizeof(pk)), "... as the key's");
	tap_ok(signkey_allowed_line(k, line, sizeof(line)) > 0 && !strncmp(line, "keyfs@", 6) &&
	       strstr(line, " namespaces=\"keyfs\" ssh-ed25519 AAAA"), "allowed_signers line");
	tap_ok(sshsig_allowed(line, strlen(line), pk, SSHSIG_NAMESPACE, 0, NULL, 0),
	       "... which allows it");
	signkey_free(again);
	again = NULL;
	fchmodat(sfd, SIGNKEY_FILE, 0644, 0);
	TAP_EQ_INT(signkey_open(sfd, &again), -EINVAL, "a key others may read is refused");
	signkey_free(k);
	unlinkat(sfd, SIGNKEY_FILE, 0);
	close(sfd);
	rmdir(dir);
	return tap_done();
}
