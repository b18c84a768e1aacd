/* Identity files read by keyfsctl: checked, and opened with their
 * passphrase when age-encrypted (see idfile.h). */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keyfs/age.h"
#include "keyfs/age_keys.h"
#include "keyfs/agent_proto.h"
#include "keyfs/armor.h"

#include "idfile.h"
#include "prompt.h"

#define AGE_MAGIC "age-encryption.org/v1\n"

/* The conversion keyfs can offer: OpenSSH's key encryption needs
 * bcrypt_pbkdf and AES, which keyfs does not carry. */
#define SSH_ENCRYPTED_HELP                                                          \
	"encrypted OpenSSH keys are not supported (they need bcrypt_pbkdf and AES);\n" \
	"use an age identity protected with age -p: age-keygen | age -p > key.age"

/* The whole file into guarded memory (it may be a secret key). */
static int read_file(const char *path, char **buf, size_t *len)
{
	ssize_t n = 1;
	int fd, ret = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	*len = 0;
	*buf = sodium_malloc(IDFILE_MAX + 1);
	if (!*buf)
		ret = -ENOMEM;
	while (!ret && n > 0 && *len <= IDFILE_MAX) {
		n = read(fd, *buf + *len, IDFILE_MAX + 1 - *len);
		if (n < 0)
			ret = -errno;
		else
			*len += (size_t)n;
	}
	if (!ret && *len > IDFILE_MAX)
		ret = -EFBIG;
	close(fd);
	if (ret && *buf) {
		sodium_free(*buf);
		*buf = NULL;
	}
	return ret;
}

static bool age_encrypted(const char *buf, size_t len)
{
	return (len >= strlen(AGE_MAGIC) && !memcmp(buf, AGE_MAGIC, strlen(AGE_MAGIC))) ||
	       armor_detect((const uint8_t *)buf, len);
}

/* Opens an age -p file with a passphrase asked for; *text replaces the
 * ciphertext in *buf. */
static int decrypt(const char *path, bool from_stdin, char **buf, size_t *len)
{
	char prompt[300], *pw = NULL;
	uint8_t *bin = NULL, *pt = NULL;
	struct age_pass pass;
	size_t binlen = *len, ptlen, n;
	int ret = 0;

	if (armor_detect((const uint8_t *)*buf, *len))
		ret = armor_decode((const uint8_t *)*buf, *len, &bin, &binlen);
	if (ret)
		return ret;
	pw = sodium_malloc(IDFILE_PASS_MAX + 2);
	if (!pw) {
		ret = -ENOMEM;
		goto out;
	}
	snprintf(prompt, sizeof(prompt), "Passphrase of %s: ", path);
	ret = prompt_secret(prompt, from_stdin, pw, IDFILE_PASS_MAX + 2, &n);
	if (ret)
		goto out;
	pass = (struct age_pass){ pw, n };
	ret = age_unseal(bin ? bin : (uint8_t *)*buf, binlen, &pass, 1, &pt, &ptlen, NULL);
	if (ret)
		goto out;
	if (ptlen > IDFILE_MAX) {
		ret = -EFBIG;
		goto out;
	}
	/* the plaintext in the caller's buffer, which sodium_free() wipes */
	sodium_memzero(*buf, IDFILE_MAX + 1);
	memcpy(*buf, pt, ptlen);
	*len = ptlen;
out:
	if (pt)
		sodium_free(pt);
	sodium_free(pw);
	free(bin);
	return ret;
}

/* Says on stderr why path cannot be used. */
static void refusal(const char *path, int err, const char *why)
{
	if (err == AGE_SSH_ENCRYPTED)
		fprintf(stderr, "keyfsctl: %s: " SSH_ENCRYPTED_HELP "\n", path);
	else if (err == -EKEYREJECTED)
		fprintf(stderr, "keyfsctl: %s: wrong passphrase (or not encrypted with age -p)\n", path);
	else if (err == -EFBIG)
		fprintf(stderr, "keyfsctl: %s: larger than an identity file can be (%d bytes)\n", path,
			IDFILE_MAX);
	else if (err == -ENODATA || err == -EMSGSIZE)
		fprintf(stderr, "keyfsctl: %s: no passphrase read (at most %d bytes)\n", path,
			IDFILE_PASS_MAX);
	else if (err == -EINVAL && *why && strncmp(why, "line ", 5) == 0)
		fprintf(stderr, "keyfsctl: %s:%s\n", path, why + 5);
	else if (err == -EINVAL || err == -EBADMSG)
		fprintf(stderr, "keyfsctl: %s: not an identity file, nor an age -p encrypted one\n", path);
	else
		fprintf(stderr, "keyfsctl: %s: %s\n", path, strerror(-err));
}

int idfile_load(const char *path, bool from_stdin, char **text, size_t *len)
{
	struct age_identity_list l;
	char why[200] = "";
	char *buf = NULL;
	int ret;

	ret = read_file(path, &buf, len);
	if (!ret && age_encrypted(buf, *len))
		ret = decrypt(path, from_stdin, &buf, len);
	if (!ret)
		ret = age_keys_identities(&l, buf, *len, why, sizeof(why));
	if (!ret)
		age_identity_list_free(&l);
	if (ret) {
		refusal(path, ret, why);
		sodium_free(buf);
		return ret == AGE_SSH_ENCRYPTED || ret == -EBADMSG ? -EINVAL : ret;
	}
	*text = buf;
	return 0;
}

int idfile_agent_name(const char *text, size_t len, char *name, size_t size)
{
	static const char pre[] = "identity:";
	char r[AGE_IDENTITY_RECIPIENT_MAX];
	struct age_identity_list l;
	size_t i;
	int ret;

	if (len > AGENT_FIELD_MAX)
		return -EFBIG; /* one field of the agent's protocol */
	ret = age_keys_identities(&l, text, len, NULL, 0);
	if (ret)
		return ret;
	ret = age_identity_recipient(&l.id[0], r, sizeof(r));
	age_identity_list_free(&l);
	if (ret)
		return ret;
	if (snprintf(name, size, "%s%s", pre, r) >= (int)size)
		return -ENOSPC;
	/* base64's '+' and '/', and the space after "ssh-ed25519" */
	for (i = 0; name[i]; i++)
		if (!agent_name_valid((const uint8_t *)name + i, 1))
			name[i] = name[i] == '+' ? '-' : name[i] == '/' ? '_' : ':';
	return agent_name_valid((const uint8_t *)name, strlen(name)) ? 0 : -ENOSPC;
}
