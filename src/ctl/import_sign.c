/* Who made a backup (import_sign.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "keyfs/log.h"
#include "keyfs/sshsig.h"

#include "import_sign.h"

/* The allowed_signers file, read anew for each check so an edit needs
 * no reload; like the recipients file, only its owner (root or keyfs'
 * user) may write it, or it is not trusted at all. */
static char *read_signers(const char *path, size_t *len)
{
	struct stat st;
	char *text = NULL;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		log_msg(LOG_WARNING, "import.signers %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || (st.st_mode & 022) ||
	    (st.st_uid != 0 && st.st_uid != geteuid()) || st.st_size > (1 << 20)) {
		log_msg(LOG_WARNING, "import.signers %s: not a file only its owner (root or "
			"keyfs' user) may write: no signer trusted", path);
		goto out;
	}
	text = malloc((size_t)st.st_size + 1);
	n = text ? read(fd, text, (size_t)st.st_size) : -1;
	if (n != st.st_size) {
		free(text);
		text = NULL;
		goto out;
	}
	text[n] = '\0';
	*len = (size_t)n;
out:
	close(fd);
	return text;
}

int import_signature(const struct signkey *sign, const char *signers, const struct keyset *ks,
		     const struct bundle_proof *proof, char *who, size_t size, bool *trusted)
{
	uint8_t pk[SSHSIG_PK_LEN], own[SSHSIG_PK_LEN];
	char principal[SSHSIG_PRINCIPAL_MAX + 1];
	char *text = NULL;
	size_t len = 0;

	*trusted = false;
	if (!proof->sig_len) {
		snprintf(who, size, "unsigned");
		return 0;
	}
	if (!proof->ini || sshsig_verify(proof->sig, proof->sig_len, SSHSIG_NAMESPACE,
					 (const uint8_t *)proof->ini, proof->ini_len, pk)) {
		snprintf(who, size, "its KEYSET.sig does not verify");
		return -EBADMSG;
	}
	if (!bundle_proof_matches(ks, proof)) {
		snprintf(who, size, "its members do not match its signed KEYSET.ini");
		return -EBADMSG;
	}
	if (sign)
		signkey_public(sign, own);
	if (sign && !memcmp(pk, own, sizeof(pk))) {
		snprintf(who, size, "signed by %s (this keyfs)", signkey_principal(sign));
		*trusted = true;
		return 0;
	}
	if (signers && *signers)
		text = read_signers(signers, &len);
	*trusted = text && sshsig_allowed(text, len, pk, SSHSIG_NAMESPACE, (long long)time(NULL),
					  principal, sizeof(principal));
	if (*trusted)
		snprintf(who, size, "signed by %s", principal);
	else
		snprintf(who, size, "signed by a key not in import.signers");
	free(text);
	return 0;
}
