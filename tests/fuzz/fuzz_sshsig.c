/* libFuzzer target: SSH signatures and allowed_signers. The input is
 * taken as an armored signature of a fixed message (the message of
 * tests/vectors/sshsig, which the seeds sign) and as an allowed_signers
 * file searched for that signer. Beyond not crashing: an accepted
 * signature fails for a changed message and for another namespace; a
 * principal found is NUL-terminated, non-empty, free of control bytes
 * and no longer than SSHSIG_PRINCIPAL_MAX, a cut copy of it is its
 * prefix, and the lookup only ever holds for a text that names the key. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "keyfs/sshsig.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The test key of tests/vectors/sshsig (id_ed25519.pub). */
static const char key_b64[] = "AAAAC3NzaC1lZDI1NTE5AAAAIHSs/9v5zFP/40Z7Wog+BlXG6hvblVxkQv8QZ2l63l5Q";
static const char message[] = "[keyset]\nname = sm\nformat = 2\nfingerprint = 3f1c0a3e\n\n"
			      "[member sm/key.pem]\nsha256 = "
			      "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n";
static uint8_t pk[SSHSIG_PK_LEN];
/* 2030-07-01T12:00:00Z: after the vectors' valid-after, before 2099. */
static const long long now = 1909137600;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	uint8_t blob[51];
	size_t n;

	(void)argc;
	(void)argv;
	/* Local times in allowed_signers go through mktime(): one zone, so
	 * a run is reproducible. */
	setenv("TZ", "UTC", 1);
	if (sodium_init() < 0 ||
	    sodium_base642bin(blob, sizeof(blob), key_b64, strlen(key_b64), NULL, &n, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    n != sizeof(blob))
		abort();
	memcpy(pk, blob + sizeof(blob) - sizeof(pk), sizeof(pk));
	return 0;
}

static void check_verify(const char *sig, size_t size)
{
	uint8_t got[SSHSIG_PK_LEN], again[SSHSIG_PK_LEN];
	const size_t len = sizeof(message) - 1;
	uint8_t *m;
	int ret;

	ret = sshsig_verify(sig, size, SSHSIG_NAMESPACE, (const uint8_t *)message, len, got);
	if (ret != 0 && ret != -EINVAL && ret != -EBADMSG)
		abort();
	if (ret != 0)
		return;
	m = malloc(len);
	if (!m)
		abort();
	memcpy(m, message, len);
	m[len - 1] ^= 0x01;
	if (sshsig_verify(sig, size, SSHSIG_NAMESPACE, m, len, again) != -EBADMSG ||
	    sshsig_verify(sig, size, "other", (const uint8_t *)message, len, again) != -EBADMSG)
		abort();
	free(m);
}

static void check_allowed(const char *text, size_t size)
{
	char p[SSHSIG_PRINCIPAL_MAX + 1], cut[5];
	size_t n, i;

	if (!sshsig_allowed(text, size, pk, SSHSIG_NAMESPACE, now, p, sizeof(p)))
		return;
	n = strlen(p);
	if (n == 0 || n > SSHSIG_PRINCIPAL_MAX)
		abort();
	for (i = 0; i < n; i++)
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
			abort();
	if (!sshsig_allowed(text, size, pk, SSHSIG_NAMESPACE, now, cut, sizeof(cut)) ||
	    strncmp(cut, p, sizeof(cut) - 1) != 0 || strlen(cut) > sizeof(cut) - 1)
		abort();
	if (!memmem(text, size, key_b64, sizeof(key_b64) - 1))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_verify((const char *)data, size);
	check_allowed((const char *)data, size);
	return 0;
}
