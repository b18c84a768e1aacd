/* The seal cache's file format (see sealfile.h). */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyfs/armor.h"
#include "keyfs/keyset.h"
#include "keyfs/replace.h"

#include "sealfile.h"

#define MAGIC1 "keyfs-seal 1"
#define MAGIC2 "keyfs-seal 2"
#define HEADER_MAX 384
/* The armor's first two lines hold "age-encryption.org/v1" and the
 * scrypt stanza with its work factor. */
#define PEEK_B64 128

static int hex_id(const char *hex, uint8_t id[static VERIFIER_ID_LEN])
{
	size_t got;

	if (strlen(hex) != 2 * VERIFIER_ID_LEN ||
	    sodium_hex2bin(id, VERIFIER_ID_LEN, hex, strlen(hex), NULL, &got, NULL) ||
	    got != VERIFIER_ID_LEN)
		return -EINVAL;
	return 0;
}

static int parse(const char *line, struct sealfile *h)
{
	char idhex[64], name[KEYSET_NAME_MAX + 2];
	unsigned long long st, at, ln;
	int logn;

	char content[66] = "-", sum[2 * SEALFILE_SUM_LEN + 2] = "";

	if (sscanf(line, MAGIC2 " %65s %llx %63s %d %llu %llu %65s %33s", name, &st, idhex, &logn,
		   &at, &ln, content, sum) >= 6) {
		if (!keyset_name_valid(name) || logn < 0 || logn > 64 ||
		    (strcmp(content, "-") && strlen(content) != 64) ||
		    (*sum && strlen(sum) != 2 * SEALFILE_SUM_LEN &&
		     strlen(sum) != 2 * crypto_shorthash_BYTES))
			return -EINVAL;
		strcpy(h->sum, sum);
		strcpy(h->content, strcmp(content, "-") ? content : "");
		memcpy(h->name, name, strlen(name) + 1); /* valid: at most KEYSET_NAME_MAX */
		h->logn = logn;
	} else if (sscanf(line, MAGIC1 " %llx %63s %llu %llu", &st, idhex, &at, &ln) == 4) {
		h->name[0] = '\0';
		h->content[0] = '\0';
		h->sum[0] = '\0';
		h->logn = -1; /* from the age header */
	} else {
		return -EINVAL;
	}
	if (ln > UINT32_MAX) /* an entry keeps 32 bits: exports are far smaller */
		return -EINVAL;
	h->stamp = st;
	h->sealed_at = (time_t)at;
	h->len = (size_t)ln;
	return hex_id(idhex, h->pwid);
}

/* The work factor of the scrypt stanza at the start of the armored file. */
static int pem_logn(int fd, size_t off)
{
	char pem[sizeof(ARMOR_BEGIN) + PEEK_B64 + 8], b64[PEEK_B64 + 1];
	uint8_t bin[PEEK_B64];
	const char *p, *s;
	size_t n = 0, got;
	ssize_t r;
	int logn;

	r = pread(fd, pem, sizeof(pem) - 1, (off_t)off);
	if (r <= 0)
		return -EINVAL;
	pem[r] = '\0';
	p = strchr(pem, '\n');
	for (p = p ? p + 1 : pem + r; *p && *p != '-' && n < PEEK_B64; p++)
		if (*p != '\n')
			b64[n++] = *p;
	n &= ~(size_t)3;
	b64[n] = '\0';
	if (sodium_base642bin(bin, sizeof(bin) - 1, b64, n, NULL, &got, NULL,
			      sodium_base64_VARIANT_ORIGINAL))
		return -EINVAL;
	bin[got] = '\0';
	s = strstr((const char *)bin, "\n-> scrypt ");
	if (!s || sscanf(s, "\n-> scrypt %*s %d", &logn) != 1 || logn < 1 || logn > 64)
		return -EINVAL;
	return logn;
}

int sealfile_read(int fd, struct sealfile *h)
{
	char buf[HEADER_MAX + 1], *nl;
	struct stat st;
	ssize_t n;
	int ret;

	n = pread(fd, buf, HEADER_MAX, 0);
	if (n <= 0)
		return -EINVAL;
	buf[n] = '\0';
	nl = strchr(buf, '\n');
	if (!nl)
		return -EINVAL;
	*nl = '\0';
	ret = parse(buf, h);
	if (ret)
		return ret;
	h->off = (size_t)(nl - buf) + 1;
	if (fstat(fd, &st) || (size_t)st.st_size != h->off + h->len)
		return -EINVAL;
	if (h->logn < 0) {
		ret = pem_logn(fd, h->off);
		if (ret < 0)
			return ret;
		h->logn = ret;
	}
	return 0;
}

/* The sum only tells a file torn by a crash from a whole one: whoever
 * can write the cache can write its headers too, so a keyed hash under a
 * fixed key serves, SipHash-2-4 at a fifth of BLAKE2b's cost here (it is
 * computed on every seal and every open). Files written before it carry
 * BLAKE2b-128, told apart by the sum's length, and are checked as such. */
static const uint8_t sum_key[crypto_shorthash_KEYBYTES + 1] = "keyfs-seal sum 1";

static void sum_of(const char *pem, size_t len, size_t hexlen,
		   char hex[static 2 * SEALFILE_SUM_LEN + 1])
{
	uint8_t sum[SEALFILE_SUM_LEN];

	if (hexlen == 2 * SEALFILE_SUM_LEN) {
		crypto_generichash(sum, SEALFILE_SUM_LEN, (const uint8_t *)pem, len, NULL, 0);
	} else {
		crypto_shorthash(sum, (const uint8_t *)pem, len, sum_key);
		hexlen = 2 * crypto_shorthash_BYTES;
	}
	sodium_bin2hex(hex, 2 * SEALFILE_SUM_LEN + 1, sum, hexlen / 2);
}

int sealfile_write(int dfd, const char *name, struct sealfile *h, const char *pem)
{
	char hdr[HEADER_MAX], idhex[2 * VERIFIER_ID_LEN + 1];
	int n;

	sodium_bin2hex(idhex, sizeof(idhex), h->pwid, VERIFIER_ID_LEN);
	sum_of(pem, h->len, 0, h->sum);
	n = snprintf(hdr, sizeof(hdr), MAGIC2 " %s %016llx %s %d %llu %zu %s %s\n", h->name,
		     (unsigned long long)h->stamp, idhex, h->logn, (unsigned long long)h->sealed_at,
		     h->len, h->content[0] ? h->content : "-", h->sum);
	if (n < 0 || n >= (int)sizeof(hdr))
		return -EINVAL;
	h->off = (size_t)n;
	return replace_file_unsynced(dfd, name,
				     (struct iovec[]){ { hdr, (size_t)n }, { (void *)pem, h->len } }, 2);
}

int sealfile_check(int fd, const struct sealfile *h)
{
	char *pem, hex[2 * SEALFILE_SUM_LEN + 1];
	int ret = 0;

	if (!*h->sum)
		return 0; /* written with fsync, before sums */
	pem = malloc(h->len ? h->len : 1);
	if (!pem)
		return -ENOMEM;
	if (pread(fd, pem, h->len, (off_t)h->off) != (ssize_t)h->len)
		ret = -EINVAL;
	if (!ret) {
		sum_of(pem, h->len, strlen(h->sum), hex);
		ret = strcmp(hex, h->sum) ? -EINVAL : 0;
	}
	free(pem);
	return ret;
}

int sealfile_rewrite(int dfd, const char *name, int fd, struct sealfile *h)
{
	char *pem;
	int ret = 0;

	pem = malloc(h->len + 1);
	if (!pem)
		return -ENOMEM;
	if (pread(fd, pem, h->len, (off_t)h->off) != (ssize_t)h->len)
		ret = -EIO;
	if (!ret)
		ret = sealfile_write(dfd, name, h, pem);
	free(pem);
	return ret;
}
