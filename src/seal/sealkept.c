/* Kept seals: earlier cache files of a keyset that a backup read (see
 * sealkept.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyfs/dirwalk.h"
#include "keyfs/keyset.h"
#include "keyfs/log.h"

#include "sealkept.h"

/* "@" never appears in a keyset name (it is escaped as %40). */
#define SLOT_NAME_MAX (KEYSET_NAME_MAX + 8)

struct slot {
	char file[SLOT_NAME_MAX];	/* <keyset>@<n> */
	int fd;				/* -1: empty (or dropped) */
	struct sealfile h;
};

/* Opens <cache>/.kept; made first if make. Made only once a seal is
 * kept, so most caches hold keyset files alone. */
static int open_dir(int cfd, bool make)
{
	int fd;

	if (make && mkdirat(cfd, SEALKEPT_DIR, 0700) && errno != EEXIST)
		return -errno;
	fd = openat(cfd, SEALKEPT_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static void drop(int kfd, struct slot *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	unlinkat(kfd, s->file, 0);
}

static void close_slots(struct slot s[static SEALKEPT_MAX])
{
	size_t i;

	for (i = 0; i < SEALKEPT_MAX; i++)
		if (s[i].fd >= 0)
			close(s[i].fd);
}

/* Opens name's kept seals; one whose header is torn, or names another
 * keyset or no content, can never be served: it is removed. */
static void read_slots(int kfd, const char *name, struct slot s[static SEALKEPT_MAX])
{
	size_t i;

	for (i = 0; i < SEALKEPT_MAX; i++) {
		snprintf(s[i].file, sizeof(s[i].file), "%s@%zu", name, i + 1);
		s[i].fd = dirwalk_open_regular(kfd, s[i].file, NULL, NULL);
		if (s[i].fd == -ENOENT) {
			s[i].fd = -1;
		} else if (s[i].fd < 0 || sealfile_read(s[i].fd, &s[i].h) ||
			   strcmp(s[i].h.name, name) || !s[i].h.content[0]) {
			log_msg(LOG_WARNING, "kept seal \"%s\" is damaged: removed", s[i].file);
			drop(kfd, &s[i]);
		}
	}
}

static bool same_key(const struct sealfile *h, const uint8_t pwid[static VERIFIER_ID_LEN],
		     int logn)
{
	return h->logn == logn && !memcmp(h->pwid, pwid, VERIFIER_ID_LEN);
}

/* Drops the kept seals of another key than (pwid, logn), and those cur
 * replaces (its content), then moves cfd/name into a slot: a free one,
 * else the oldest; never slot avoid (one being taken). */
static int keep(int kfd, int cfd, const char *name, struct slot s[static SEALKEPT_MAX],
		const struct sealfile *cur, const uint8_t pwid[static VERIFIER_ID_LEN], int logn,
		int avoid)
{
	int i, to = -1;

	for (i = 0; i < SEALKEPT_MAX; i++)
		if (i != avoid && s[i].fd >= 0 &&
		    (!same_key(&s[i].h, pwid, logn) || (cur && !strcmp(s[i].h.content, cur->content))))
			drop(kfd, &s[i]);
	if (!cur)
		return 0;
	for (i = 0; i < SEALKEPT_MAX; i++) {
		if (i == avoid)
			continue;
		if (s[i].fd < 0) {
			to = i;
			break;
		}
		if (to < 0 || s[i].h.sealed_at < s[to].h.sealed_at)
			to = i;
	}
	if (to < 0)
		return -ENOSPC; /* SEALKEPT_MAX 1 and that one being taken */
	/* A move: open files of the export keep reading it, and the
	 * cache file never has a second link (dirwalk_open_regular()). */
	if (renameat(cfd, name, kfd, s[to].file))
		return -errno;
	if (s[to].fd >= 0)
		close(s[to].fd);
	s[to].fd = -1;
	return 0;
}

int sealkept_put(int cfd, const char *name, const struct sealfile *cur,
		 const uint8_t pwid[static VERIFIER_ID_LEN], int logn)
{
	struct slot s[SEALKEPT_MAX];
	int kfd, ret;

	kfd = open_dir(cfd, cur != NULL);
	if (kfd < 0)
		return kfd == -ENOENT ? 0 : kfd; /* none kept, none to keep */
	read_slots(kfd, name, s);
	ret = keep(kfd, cfd, name, s, cur, pwid, logn, -1);
	close_slots(s);
	close(kfd);
	return ret;
}

int sealkept_take(int cfd, const char *name, uint64_t stamp, const char *content,
		  const uint8_t pwid[static VERIFIER_ID_LEN], int logn, const struct sealfile *cur,
		  struct sealfile *h, time_t *newest)
{
	struct slot s[SEALKEPT_MAX];
	int kfd, i, found = -1, ret;

	*newest = 0;
	kfd = open_dir(cfd, false);
	if (kfd < 0)
		return kfd;
	read_slots(kfd, name, s);
	for (i = 0; i < SEALKEPT_MAX; i++) {
		if (s[i].fd < 0)
			continue;
		if (s[i].h.sealed_at > *newest)
			*newest = s[i].h.sealed_at;
		if (found >= 0 || strcmp(s[i].h.content, content) || !same_key(&s[i].h, pwid, logn))
			continue;
		/* the whole bytes, as sealed: a file torn by a crash is
		 * never served, the keyset is sealed anew */
		if (sealfile_check(s[i].fd, &s[i].h)) {
			log_msg(LOG_WARNING, "kept seal \"%s\" is damaged: removed", s[i].file);
			drop(kfd, &s[i]);
			continue;
		}
		found = i;
	}
	if (found < 0) {
		ret = -ENOENT;
		goto out;
	}
	/* The seal served now goes first, then the kept one takes its
	 * place, and its slot is freed last: a crash in between leaves a
	 * seal in two places, or none served (sealed anew), never a loss of
	 * both. */
	ret = keep(kfd, cfd, name, s, cur, pwid, logn, found);
	if (ret)
		log_msg(LOG_WARNING, "seal cache of \"%s\": keeping the seal it replaces: %s", name,
			strerror(-ret));
	*h = s[found].h;
	h->stamp = stamp;
	ret = sealfile_rewrite(cfd, name, s[found].fd, h);
	if (!ret)
		unlinkat(kfd, s[found].file, 0);
out:
	close_slots(s);
	close(kfd);
	return ret;
}
