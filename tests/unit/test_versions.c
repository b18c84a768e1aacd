/* Unit tests for inactive versions (versions.c): a version restored from
 * a backup nothing vouched for is marked when it is listed, a number used
 * again does not inherit a mark a kill left, and removing a version takes
 * it out of the list before its files go, so that a removal stopped
 * halfway leaves no part of it to activate. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "keyfs/keyset.h"
#include "keyfs/state.h"
#include "keyfs/store.h"

#include "tap.h"
#include "versions.h"

#define T0 1700000000

static int sfd = -1;

static void make_keyset(struct keyset *ks, const char *content)
{
	memset(ks, 0, sizeof(*ks));
	snprintf(ks->name, sizeof(ks->name), "web");
	keyset_add(ks, "a.key", 0600, T0, (const uint8_t *)content, strlen(content));
	keyset_add(ks, "b.key", 0600, T0, (const uint8_t *)"b\n", 2);
	keyset_sort(ks);
}

static size_t listed(unsigned *first)
{
	unsigned *v;
	size_t n;

	if (versions_list(sfd, "web", &v, &n))
		return (size_t)-1;
	if (n && first)
		*first = v[0];
	free(v);
	return n;
}

static void test_marked_when_listed(void)
{
	struct store_put res = { .unauthenticated = "f00d" };
	struct keyset ks;
	char fpr[80];

	make_keyset(&ks, "one\n");
	tap_ok(versions_put(sfd, &ks, &res) == 0 && res.outcome == STORE_VERSIONED &&
	       res.version == 1, "an unvouched keyset is version 1");
	tap_ok(versions_marked(sfd, "web", 1, fpr, sizeof(fpr)) && !strcmp(fpr, "f00d"),
	       "marked with its fingerprint by the put itself");
	keyset_clear(&ks);
}

static void test_number_reused_unmarked(void)
{
	struct store_put res = { 0 };
	struct keyset ks;
	char fpr[80];

	/* what a kill between removing version 2 and its mark leaves */
	versions_mark(sfd, "web", 2, "dead");
	make_keyset(&ks, "two\n");
	tap_ok(versions_put(sfd, &ks, &res) == 0 && res.version == 2, "a vouched keyset is version 2");
	tap_ok(!versions_marked(sfd, "web", 2, fpr, sizeof(fpr)),
	       "it does not inherit the mark left for the number");
	keyset_clear(&ks);
}

static void test_removal_leaves_no_part(void)
{
	char path[PATH_MAX];
	unsigned first = 0;
	int i;

	/* A directory deeper than any keyset, which removing a tree leaves
	 * for a human: the removal stops halfway, as a kill would stop it. */
	snprintf(path, sizeof(path), STATE_VERSIONS "/web/2");
	for (i = 0; i < KEYSET_DEPTH_MAX + 4; i++) {
		strcat(path, "/d");
		mkdirat(sfd, path, 0700);
	}
	tap_ok(listed(NULL) == 2, "two versions listed");
	versions_remove(sfd, "web", 2);
	tap_ok(listed(&first) == 1 && first == 1, "the half-removed version is no longer listed");
	tap_ok(faccessat(sfd, STATE_VERSIONS "/web/2", F_OK, AT_SYMLINK_NOFOLLOW) && errno == ENOENT,
	       "nothing of it is left where versions are listed");
	versions_clean_tmp(sfd);
	versions_remove(sfd, "web", 1);
	tap_ok(listed(NULL) == 0, "a whole version is removed too");
	tap_ok(faccessat(sfd, STATE_VERSIONS "/web/1" VERSIONS_UNAUTH, F_OK, AT_SYMLINK_NOFOLLOW),
	       "with its mark");
}

int main(void)
{
	char root[] = "/tmp/keyfs-versions.XXXXXX";

	if (sodium_init() < 0 || !mkdtemp(root))
		return 1;
	sfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sfd < 0 || mkdirat(sfd, STATE_VERSIONS, 0700) || mkdirat(sfd, STATE_TMP, 0700))
		return 1;
	test_marked_when_listed();
	test_number_reused_unmarked();
	test_removal_leaves_no_part();
	close(sfd);
	tap_ok(tap_rmtree(root) == 0, "temporary tree removed");
	return tap_done();
}
