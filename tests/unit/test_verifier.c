/* Sealing key ids. The password verifier: a new password gets a new id,
 * the same one its old id (the seal cache's way to know its seals are
 * current without a scrypt per keyset), and a new work factor rehashes
 * under the same id. A recipient list's id: the same in any order, new
 * on any change. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "keyfs/verifier.h"

#include "sealkey.h"
#include "tap.h"

static int logn_of(int dfd)
{
	char buf[256];
	ssize_t n;
	int fd, logn = -1;

	fd = openat(dfd, "verifier", O_RDONLY);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	sscanf(buf, "keyfs-verifier 1 %d", &logn);
	return logn;
}

int main(void)
{
	struct age_pass a = { "Correct-Horse-7", 15 }, b = { "Other-Horse-8!", 14 };
	uint8_t id1[VERIFIER_ID_LEN], id2[VERIFIER_ID_LEN], id3[VERIFIER_ID_LEN];
	char dir[] = "/tmp/keyfs-test-verifier.XXXXXX", cmd[64];
	bool matched;
	int dfd;

	if (sodium_init() < 0 || !mkdtemp(dir) || (dfd = open(dir, O_RDONLY | O_DIRECTORY)) < 0) {
		tap_ok(false, "setup");
		return tap_done();
	}
	TAP_EQ_INT(verifier_id(dfd, "verifier", &a, 10, id1, &matched), 0, "a first password");
	tap_ok(!matched, "... is new");
	TAP_EQ_INT(verifier_id(dfd, "verifier", &a, 10, id2, &matched), 0, "the same again");
	tap_ok(matched && !memcmp(id1, id2, sizeof(id1)), "... matches, with the same id");
	TAP_EQ_INT(verifier_id(dfd, "verifier", &b, 10, id2, &matched), 0, "another password");
	tap_ok(!matched && memcmp(id1, id2, sizeof(id1)), "... is new, with a new id");
	TAP_EQ_INT(verifier_id(dfd, "verifier", &b, 11, id3, &matched), 0, "the same at work factor 11");
	tap_ok(matched && !memcmp(id2, id3, sizeof(id2)), "... keeps its id");
	TAP_EQ_INT(logn_of(dfd), 11, "... and the verifier is rehashed at 11");
	TAP_EQ_INT(verifier_id(dfd, "verifier", &b, 11, id3, &matched), 0, "and again at 11");
	tap_ok(matched && !memcmp(id2, id3, sizeof(id2)), "... matches");
	close(dfd);
	{
		const char *ab[] = { "age1aaa", "ssh-ed25519 AAAA b" }, *ba[] = { ab[1], ab[0] },
			   *abc[] = { ab[0], ab[1], "age1ccc" };

		sealkey_recipients_id(ab, 2, id1);
		sealkey_recipients_id(ba, 2, id2);
		sealkey_recipients_id(abc, 3, id3);
		tap_ok(!memcmp(id1, id2, sizeof(id1)), "a recipient list's id: the same in any order");
		tap_ok(memcmp(id1, id3, sizeof(id1)), "... another with one more recipient");
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	tap_ok(!system(cmd), "temp dir removed");
	return tap_done();
}
