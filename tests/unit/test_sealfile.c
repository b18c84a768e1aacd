/* The seal cache's file format (sealfile.h) on real files: a file written
 * now reads back whole with its SipHash sum; a file that carries the
 * BLAKE2b-128 sum of the release before still checks whole; a changed
 * byte fails either sum; a file cut short or grown is refused at its
 * header; a rewrite keeps the sealed bytes and moves to the new sum. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "sealfile.h"
#include "tap.h"

static int cfd;

static void put(const char *name, struct sealfile *h, char *pem, size_t len)
{
	memset(h, 0, sizeof(*h));
	snprintf(h->name, sizeof(h->name), "%s", name);
	h->stamp = 0x1234;
	h->logn = 0;
	h->sealed_at = 1000;
	h->len = len;
	randombytes_buf(pem, len);
	if (sealfile_write(cfd, name, h, pem))
		tap_ok(false, "writing cache file %s", name);
}

/* Reads name's header into h and checks its bytes: 0, or the error. */
static int read_check(const char *name, struct sealfile *h)
{
	int fd, ret;

	fd = openat(cfd, name, O_RDONLY);
	if (fd < 0)
		return -errno;
	ret = sealfile_read(fd, h);
	if (!ret)
		ret = sealfile_check(fd, h);
	close(fd);
	return ret;
}

/* Changes one byte of the sealed bytes in name, the size the same. */
static void flip(const char *name, const struct sealfile *h)
{
	char c;
	int fd = openat(cfd, name, O_RDWR);
	off_t at = (off_t)(h->off + h->len / 2);

	tap_ok(fd >= 0 && pread(fd, &c, 1, at) == 1, "reading a byte of %s", name);
	c ^= 1;
	tap_ok(pwrite(fd, &c, 1, at) == 1, "changing a byte of %s", name);
	close(fd);
}

/* Rewrites name with its header's sum replaced by BLAKE2b-128, as the
 * release before wrote it. */
static void to_blake2b(const char *name, const struct sealfile *h, const char *pem)
{
	uint8_t sum[SEALFILE_SUM_LEN];
	char hex[2 * SEALFILE_SUM_LEN + 1], hdr[512], *at;
	int fd, n;

	fd = openat(cfd, name, O_RDONLY);
	n = (int)pread(fd, hdr, h->off, 0);
	close(fd);
	hdr[n > 0 ? n - 1 : 0] = '\0';
	at = strrchr(hdr, ' ');
	crypto_generichash(sum, sizeof(sum), (const uint8_t *)pem, h->len, NULL, 0);
	sodium_bin2hex(hex, sizeof(hex), sum, sizeof(sum));
	snprintf(at + 1, sizeof(hdr) - (size_t)(at + 1 - hdr), "%s\n", hex);
	fd = openat(cfd, name, O_WRONLY | O_TRUNC);
	tap_ok(write(fd, hdr, strlen(hdr)) == (ssize_t)strlen(hdr) &&
	       write(fd, pem, h->len) == (ssize_t)h->len, "%s rewritten with a BLAKE2b sum", name);
	close(fd);
}

static void test_new_sum(void)
{
	char pem[3000];
	struct sealfile h, got;
	int fd;

	put("a", &h, pem, sizeof(pem));
	TAP_EQ_INT(strlen(h.sum), 2 * crypto_shorthash_BYTES, "a new file's sum is SipHash's");
	TAP_EQ_INT(read_check("a", &got), 0, "... reads back whole");
	tap_ok(!strcmp(got.name, "a") && got.stamp == 0x1234 && got.len == sizeof(pem) &&
	       !strcmp(got.sum, h.sum), "... with its header");
	flip("a", &got);
	TAP_EQ_INT(read_check("a", &got), -EINVAL, "one byte changed: refused");

	put("b", &h, pem, sizeof(pem));
	fd = openat(cfd, "b", O_WRONLY);
	tap_ok(!ftruncate(fd, (off_t)(h.off + h.len - 1)), "a file cut short");
	close(fd);
	TAP_EQ_INT(read_check("b", &got), -EINVAL, "... refused");
}

static void test_blake2b_sum(void)
{
	char pem[3000];
	struct sealfile h, got;
	int fd;

	put("c", &h, pem, sizeof(pem));
	to_blake2b("c", &h, pem);
	TAP_EQ_INT(read_check("c", &got), 0, "a file with a BLAKE2b sum checks whole");
	TAP_EQ_INT(strlen(got.sum), 2 * SEALFILE_SUM_LEN, "... read as such");

	fd = openat(cfd, "c", O_RDONLY);
	TAP_EQ_INT(sealfile_rewrite(cfd, "c", fd, &got), 0, "... rewritten");
	close(fd);
	TAP_EQ_INT(read_check("c", &got), 0, "... reads back whole");
	TAP_EQ_INT(strlen(got.sum), 2 * crypto_shorthash_BYTES, "... with the new sum");

	to_blake2b("c", &got, pem);
	TAP_EQ_INT(read_check("c", &got), 0, "again with a BLAKE2b sum");
	flip("c", &got);
	TAP_EQ_INT(read_check("c", &got), -EINVAL, "one byte changed: refused");
}

int main(void)
{
	char dir[] = "/tmp/keyfs-test-sealfile.XXXXXX";

	if (sodium_init() < 0 || !mkdtemp(dir) || (cfd = open(dir, O_RDONLY | O_DIRECTORY)) < 0) {
		tap_ok(false, "setup");
		return tap_done();
	}
	test_new_sum();
	test_blake2b_sum();
	close(cfd);
	tap_ok(!tap_rmtree(dir), "temp dir removed");
	return tap_done();
}
