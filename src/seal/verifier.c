/* The password verifier: one scrypt with its own salt that names a
 * password by a random id (see verifier.h). */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "keyfs/replace.h"
#include "keyfs/verifier.h"

#define VERIFIER_MAGIC "keyfs-verifier 1"
#define VERIFIER_LABEL "keyfs-verifier-v1"
#define SALT_LEN 16
#define HASH_LEN 32

struct verifier {
	int logn;
	uint8_t salt[SALT_LEN];
	uint8_t hash[HASH_LEN];
	uint8_t id[VERIFIER_ID_LEN];
};

static int hash_pass(const struct age_pass *pass, const uint8_t salt[SALT_LEN], int logn,
		     uint8_t out[HASH_LEN])
{
	uint8_t s[sizeof(VERIFIER_LABEL) - 1 + SALT_LEN];

	memcpy(s, VERIFIER_LABEL, sizeof(VERIFIER_LABEL) - 1);
	memcpy(s + sizeof(VERIFIER_LABEL) - 1, salt, SALT_LEN);
	if (crypto_pwhash_scryptsalsa208sha256_ll((const uint8_t *)pass->p, pass->len, s, sizeof(s),
						  1ULL << logn, 8, 1, out, HASH_LEN))
		return -ENOMEM;
	return 0;
}

static int hex_field(const char *hex, uint8_t *bin, size_t len)
{
	size_t got;

	if (strlen(hex) != 2 * len || sodium_hex2bin(bin, len, hex, 2 * len, NULL, &got, NULL) ||
	    got != len)
		return -EINVAL;
	return 0;
}

/* -ENOENT if there is none; -EINVAL if it is unreadable (then replaced). */
static int load(int dfd, const char *path, struct verifier *v)
{
	char buf[256], salt[64], hash[128], id[64];
	ssize_t n;
	int fd;

	fd = openat(dfd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EINVAL;
	buf[n] = '\0';
	if (sscanf(buf, VERIFIER_MAGIC " %d %63s %127s %63s", &v->logn, salt, hash, id) != 4 ||
	    v->logn < 1 || v->logn > AGE_LOGN_MAX || hex_field(salt, v->salt, SALT_LEN) ||
	    hex_field(hash, v->hash, HASH_LEN) || hex_field(id, v->id, VERIFIER_ID_LEN))
		return -EINVAL;
	return 0;
}

static int store(int dfd, const char *path, const struct verifier *v)
{
	char line[256], salt[2 * SALT_LEN + 1], hash[2 * HASH_LEN + 1], id[2 * VERIFIER_ID_LEN + 1];
	int len;

	sodium_bin2hex(salt, sizeof(salt), v->salt, SALT_LEN);
	sodium_bin2hex(hash, sizeof(hash), v->hash, HASH_LEN);
	sodium_bin2hex(id, sizeof(id), v->id, VERIFIER_ID_LEN);
	len = snprintf(line, sizeof(line), VERIFIER_MAGIC " %d %s %s %s\n", v->logn, salt, hash, id);
	return replace_file(dfd, path, &(struct iovec){ line, (size_t)len }, 1);
}

int verifier_id(int dfd, const char *path, const struct age_pass *pass, int logn,
		uint8_t id[static VERIFIER_ID_LEN], bool *matched)
{
	struct verifier v;
	uint8_t hash[HASH_LEN];
	int ret;

	*matched = false;
	ret = load(dfd, path, &v);
	if (!ret) {
		ret = hash_pass(pass, v.salt, v.logn, hash);
		if (ret)
			goto out;
		if (!sodium_memcmp(hash, v.hash, HASH_LEN)) {
			memcpy(id, v.id, VERIFIER_ID_LEN);
			*matched = true;
			if (v.logn == logn)
				goto out;
		}
	}
	/* A new password gets a new id, and every cached seal is stale. The
	 * same password under a new work factor keeps its id (seals carry
	 * their own work factor) but is hashed again at the new cost, so
	 * the verifier is never the cheapest way to guess it. */
	v.logn = logn;
	randombytes_buf(v.salt, SALT_LEN);
	if (!*matched)
		randombytes_buf(v.id, VERIFIER_ID_LEN);
	ret = hash_pass(pass, v.salt, logn, v.hash);
	if (!ret)
		ret = store(dfd, path, &v);
	if (!ret)
		memcpy(id, v.id, VERIFIER_ID_LEN);
out:
	sodium_memzero(hash, sizeof(hash));
	return ret;
}
