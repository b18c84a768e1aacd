/* Kept seals (sealkept.h) on real files: a replaced cache file kept and
 * served again restamped with its very bytes; only under the same key and
 * for the same content; a torn kept seal dropped, never served; seals of
 * another key dropped; at most SEALKEPT_MAX per keyset, the oldest going
 * first; a file naming another keyset never served. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "sealfile.h"
#include "sealkept.h"
#include "tap.h"

static int cfd;
static const uint8_t key_a[VERIFIER_ID_LEN] = { 1, 2, 3 };
static const uint8_t key_b[VERIFIER_ID_LEN] = { 9, 9, 9 };

/* A content id: 64 hex digits from one byte. */
static const char *content(int n)
{
	static char hex[8][65];
	int i = n & 7;

	memset(hex[i], 'a' + i, 64);
	hex[i][64] = '\0';
	return hex[i];
}

/* Writes cache file name, a seal of content n under key at logn. */
static void put_cache(const char *name, const char *owner, int n, const uint8_t *key, int logn,
		      time_t at, char *pem, size_t len)
{
	struct sealfile h = { 0 };

	snprintf(h.name, sizeof(h.name), "%s", owner);
	h.stamp = 100 + (uint64_t)n;
	memcpy(h.pwid, key, VERIFIER_ID_LEN);
	h.logn = logn;
	snprintf(h.content, sizeof(h.content), "%s", content(n));
	h.sealed_at = at;
	h.len = len;
	randombytes_buf(pem, len);
	if (sealfile_write(cfd, name, &h, pem))
		tap_ok(false, "writing cache file %s", name);
}

static int read_cache(const char *name, struct sealfile *h, char *pem)
{
	int fd, ret;

	fd = openat(cfd, name, O_RDONLY);
	if (fd < 0)
		return -errno;
	ret = sealfile_read(fd, h);
	if (!ret && pread(fd, pem, h->len, (off_t)h->off) != (ssize_t)h->len)
		ret = -EIO;
	close(fd);
	return ret;
}

/* dir/file below the cache, as a path relative to it */
static const char *kept(const char *file)
{
	static char path[64];

	snprintf(path, sizeof(path), "%s/%s", SEALKEPT_DIR, file);
	return path;
}

static bool kept_exists(const char *file)
{
	return !faccessat(cfd, kept(file), F_OK, 0);
}

static void test_keep_and_take(void)
{
	char one[300], two[300], got[300];
	struct sealfile cur, h;
	time_t newest;
	int ret;

	put_cache("k", "k", 1, key_a, 10, 1000, one, sizeof(one));
	TAP_EQ_INT(read_cache("k", &cur, got), 0, "a cache file");
	TAP_EQ_INT(sealkept_take(cfd, "k", 555, content(1), key_a, 10, NULL, &h, &newest), -ENOENT,
		   "nothing kept yet: nothing served");
	TAP_EQ_INT(sealkept_put(cfd, "k", NULL, key_a, 10), 0, "a new seal keeping nothing");
	tap_ok(faccessat(cfd, SEALKEPT_DIR, F_OK, 0) && errno == ENOENT, "... makes no directory");
	TAP_EQ_INT(sealkept_put(cfd, "k", &cur, key_a, 10), 0, "kept before a new seal");
	tap_ok(kept_exists("k@1") && faccessat(cfd, "k", F_OK, 0), "... moved to k@1");
	put_cache("k", "k", 2, key_a, 10, 2000, two, sizeof(two));

	ret = sealkept_take(cfd, "k", 555, content(1), key_b, 10, NULL, &h, &newest);
	TAP_EQ_INT(ret, -ENOENT, "another key: not served");
	TAP_EQ_INT(sealkept_take(cfd, "k", 555, content(1), key_a, 11, NULL, &h, &newest),
		   -ENOENT, "another work factor: not served");
	TAP_EQ_INT(sealkept_take(cfd, "k", 555, content(3), key_a, 10, NULL, &h, &newest),
		   -ENOENT, "another content: not served");
	tap_ok(newest == 1000, "... the latest kept time told (%lld)", (long long)newest);

	TAP_EQ_INT(read_cache("k", &cur, got), 0, "the current seal");
	ret = sealkept_take(cfd, "k", 555, content(1), key_a, 10, &cur, &h, &newest);
	TAP_EQ_INT(ret, 0, "the same content under the same key: served again");
	TAP_EQ_INT(read_cache("k", &h, got), 0, "... the cache file");
	tap_ok(h.stamp == 555 && h.sealed_at == 1000 && !strcmp(h.content, content(1)) &&
	       h.len == sizeof(one) && !memcmp(got, one, sizeof(one)),
	       "... its very bytes and time, restamped");
	tap_ok(!kept_exists("k@1") && kept_exists("k@2"), "... the replaced seal kept, its own slot freed");
	TAP_EQ_INT(read_cache("k", &cur, got), 0, "the first seal current again");
	ret = sealkept_take(cfd, "k", 556, content(2), key_a, 10, &cur, &h, &newest);
	TAP_EQ_INT(ret, 0, "and back again");
	TAP_EQ_INT(read_cache("k", &h, got), 0, "... the cache file");
	tap_ok(!memcmp(got, two, sizeof(two)) && h.sealed_at == 2000, "... the second seal's bytes");

	/* a new seal under key b drops every seal of key a */
	TAP_EQ_INT(sealkept_put(cfd, "k", NULL, key_b, 10), 0, "a seal under another key");
	tap_ok(!kept_exists("k@1") && !kept_exists("k@2"), "... drops the kept seals of the old one");
	unlinkat(cfd, "k", 0);
}

static void test_damaged(void)
{
	char pem[400], got[400];
	struct sealfile cur, h;
	time_t newest;
	char buf[1024];
	ssize_t n;
	int fd;

	put_cache("t", "t", 1, key_a, 10, 1000, pem, sizeof(pem));
	read_cache("t", &cur, got);
	sealkept_put(cfd, "t", &cur, key_a, 10);
	/* one byte of the sealed bytes changed, the size the same */
	fd = openat(cfd, kept("t@1"), O_RDWR);
	n = pread(fd, buf, sizeof(buf), 0);
	buf[n - 10] ^= 1;
	tap_ok(pwrite(fd, buf, (size_t)n, 0) == n, "a kept seal torn");
	close(fd);
	TAP_EQ_INT(sealkept_take(cfd, "t", 7, content(1), key_a, 10, NULL, &h, &newest), -ENOENT,
		   "... never served");
	tap_ok(!kept_exists("t@1"), "... and removed");

	put_cache("t", "t", 1, key_a, 10, 1000, pem, sizeof(pem));
	read_cache("t", &cur, got);
	sealkept_put(cfd, "t", &cur, key_a, 10);
	fd = openat(cfd, kept("t@1"), O_RDWR);
	tap_ok(!ftruncate(fd, 200), "a kept seal cut short");
	close(fd);
	TAP_EQ_INT(sealkept_take(cfd, "t", 7, content(1), key_a, 10, NULL, &h, &newest), -ENOENT,
		   "... never served");
	tap_ok(!kept_exists("t@1"), "... and removed");

	/* a whole file of keyset "u" under t's slot name */
	put_cache("x", "u", 1, key_a, 10, 1000, pem, sizeof(pem));
	tap_ok(!renameat(cfd, "x", cfd, kept("t@1")), "another keyset's seal in t's place");
	TAP_EQ_INT(sealkept_take(cfd, "t", 7, content(1), key_a, 10, NULL, &h, &newest), -ENOENT,
		   "... never served");
	tap_ok(!kept_exists("t@1"), "... and removed");
}

static void test_bounded(void)
{
	char pem[64], got[64];
	struct sealfile cur, h;
	time_t newest;
	int i, n = 0;
	char file[32];

	for (i = 0; i < SEALKEPT_MAX + 2; i++) {
		put_cache("b", "b", i, key_a, 10, 1000 + i, pem, sizeof(pem));
		read_cache("b", &cur, got);
		sealkept_put(cfd, "b", &cur, key_a, 10);
	}
	for (i = 1; i <= SEALKEPT_MAX + 2; i++) {
		snprintf(file, sizeof(file), "b@%d", i);
		n += kept_exists(file);
	}
	TAP_EQ_INT(n, SEALKEPT_MAX, "at most SEALKEPT_MAX kept seals per keyset");
	TAP_EQ_INT(sealkept_take(cfd, "b", 9, content(0), key_a, 10, NULL, &h, &newest), -ENOENT,
		   "... the oldest went first");
	TAP_EQ_INT(sealkept_take(cfd, "b", 9, content(SEALKEPT_MAX + 1), key_a, 10, NULL, &h,
				 &newest), 0, "... the newest is there");
	tap_ok(newest == 1000 + SEALKEPT_MAX + 1, "... and its time the latest");
}

int main(void)
{
	char dir[] = "/tmp/keyfs-test-sealkept.XXXXXX", cmd[80];

	if (sodium_init() < 0 || !mkdtemp(dir) || (cfd = open(dir, O_RDONLY | O_DIRECTORY)) < 0) {
		tap_ok(false, "setup");
		return tap_done();
	}
	test_keep_and_take();
	test_damaged();
	test_bounded();
	close(cfd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	tap_ok(!system(cmd), "temp dir removed");
	return tap_done();
}
