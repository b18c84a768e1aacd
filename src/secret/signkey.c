/* The store's signing key (signkey.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "keyfs/log.h"
#include "keyfs/replace.h"
#include "keyfs/signkey.h"

#define SEED_LEN crypto_sign_SEEDBYTES

/* The secret key is in sodium_malloc() memory (guard pages, locked, left
 * out of core dumps), read-only. Not made inaccessible between
 * signatures: every export is signed, and each mprotect() pair cost two
 * TLB flushes on every CPU the daemon runs on and held the sealing
 * workers in turn, an eighth of a cold seal's time. */
struct signkey {
	uint8_t *sk;
	uint8_t pk[SSHSIG_PK_LEN];
	char principal[SSHSIG_PRINCIPAL_MAX + 1];
};

/* The seed in the file, or a new one written there first. */
static int read_or_make(int sfd, uint8_t *seed)
{
	struct iovec iov = { seed, SEED_LEN };
	struct stat st;
	ssize_t n;
	int fd, ret = 0;

	fd = openat(sfd, SIGNKEY_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		randombytes_buf(seed, SEED_LEN);
		ret = replace_file(sfd, SIGNKEY_FILE, &iov, 1);
		if (ret == 0)
			log_msg(LOG_NOTICE, "made the store's signing key (%s in the state "
				"directory)", SIGNKEY_FILE);
		return ret;
	}
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size != SEED_LEN ||
	    (st.st_mode & 077) || st.st_uid != geteuid())
		ret = -EINVAL;
	else if ((n = read(fd, seed, SEED_LEN)) != SEED_LEN)
		ret = n < 0 ? -errno : -EINVAL;
	close(fd);
	if (ret)
		log_msg(LOG_ERR, "the store's signing key (%s in the state directory) is not a "
			"%d-byte file only keyfs' user reads", SIGNKEY_FILE, SEED_LEN);
	return ret;
}

int signkey_open(int sfd, struct signkey **out)
{
	struct signkey *k;
	uint8_t *seed = NULL;
	char host[HOST_NAME_MAX + 1] = "localhost";
	int ret = -ENOMEM;

	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
	seed = sodium_malloc(SEED_LEN);
	if (!k->sk || !seed)
		goto out;
	ret = read_or_make(sfd, seed);
	if (ret)
		goto out;
	crypto_sign_seed_keypair(k->pk, k->sk, seed);
	sodium_mprotect_readonly(k->sk);
	gethostname(host, sizeof(host) - 1);
	snprintf(k->principal, sizeof(k->principal), "keyfs@%s", host);
	*out = k;
	k = NULL;
out:
	if (seed)
		sodium_free(seed);
	if (k) {
		if (k->sk)
			sodium_free(k->sk);
		free(k);
	}
	return ret;
}

void signkey_free(struct signkey *k)
{
	if (!k)
		return;
	sodium_free(k->sk);
	free(k);
}

void signkey_public(const struct signkey *k, uint8_t pk[static SSHSIG_PK_LEN])
{
	memcpy(pk, k->pk, SSHSIG_PK_LEN);
}

const char *signkey_principal(const struct signkey *k)
{
	return k->principal;
}

int signkey_allowed_line(const struct signkey *k, char *out, size_t size)
{
	return sshsig_allowed_line(k->principal, k->pk, out, size);
}

int signkey_sign(void *arg, const uint8_t *msg, size_t len, char *sig, size_t size)
{
	const struct signkey *k = arg;

	return sshsig_sign(k->sk, SSHSIG_NAMESPACE, msg, len, sig, size);
}
