#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyfs/keyset.h"
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
	char hdr[HEADER_MAX], idhex[2 * VERIFIER_ID_LEN + 1], tmp[KEYSET_NAME_MAX + 16];
	int fd, n, ret = 0;

	sodium_bin2hex(idhex, sizeof(idhex), h->pwid, VERIFIER_ID_LEN);
	n = snprintf(hdr, sizeof(hdr), MAGIC " %016llx %s %llu %zu\n", (unsigned long long)h->stamp,
		     idhex, (unsigned long long)h->sealed_at, h->len);
	h->off = (size_t)n;
	snprintf(tmp, sizeof(tmp), ".%s.tmp", name);
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (write(fd, hdr, (size_t)n) != n || write(fd, pem, h->len) != (ssize_t)h->len || fsync(fd))
		ret = errno ? -errno : -EIO;
	if (close(fd) && !ret)
		ret = -errno;
	/* rename: an open export keeps the file it opened */
	if (!ret && renameat(dfd, tmp, dfd, name))
		ret = -errno;
	if (ret)
		unlinkat(dfd, tmp, 0);
	return ret;
}

int sealfile_is_temp(const char *name)
{
	size_t n = strlen(name);

	return name[0] == '.' && n > 5 && !strcmp(name + n - 4, ".tmp");
}
