#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyfs/keyset.h"
#include "keyfs/replace.h"
#include "keyfs/sealfile.h"

#define MAGIC "keyfs-seal 1"
#define HEADER_MAX 128

static int parse(const char *buf, size_t n, struct sealfile *h)
{
	char line[HEADER_MAX + 1], idhex[2 * VERIFIER_ID_LEN + 9];
	unsigned long long st, at, ln;
	const char *nl;
	size_t got;

	nl = memchr(buf, '\n', n);
	if (!nl || (size_t)(nl - buf) >= sizeof(line))
		return -EINVAL;
	memcpy(line, buf, (size_t)(nl - buf));
	line[nl - buf] = '\0';
	if (sscanf(line, MAGIC " %llx %40s %llu %llu", &st, idhex, &at, &ln) != 4 ||
	    sodium_hex2bin(h->pwid, VERIFIER_ID_LEN, idhex, strlen(idhex), NULL, &got, NULL) ||
	    got != VERIFIER_ID_LEN)
		return -EINVAL;
	h->stamp = st;
	h->sealed_at = (time_t)at;
	h->len = (size_t)ln;
	h->off = (size_t)(nl - buf) + 1;
	return 0;
}

int sealfile_read(int fd, struct sealfile *h)
{
	char buf[HEADER_MAX];
	struct stat st;
	ssize_t n;
	int ret;

	n = pread(fd, buf, sizeof(buf), 0);
	if (n <= 0)
		return -EINVAL;
	ret = parse(buf, (size_t)n, h);
	if (ret)
		return ret;
	if (fstat(fd, &st) || (size_t)st.st_size != h->off + h->len)
		return -EINVAL;
	return 0;
}

int sealfile_write(int dfd, const char *name, struct sealfile *h, const char *pem)
{
	char hdr[HEADER_MAX], idhex[2 * VERIFIER_ID_LEN + 1];
	int n;

	sodium_bin2hex(idhex, sizeof(idhex), h->pwid, VERIFIER_ID_LEN);
	n = snprintf(hdr, sizeof(hdr), MAGIC " %016llx %s %llu %zu\n", (unsigned long long)h->stamp,
		     idhex, (unsigned long long)h->sealed_at, h->len);
	h->off = (size_t)n;
	return file_replace(dfd, name, (struct iovec[]){ { hdr, (size_t)n }, { (void *)pem, h->len } },
			    2);
}
