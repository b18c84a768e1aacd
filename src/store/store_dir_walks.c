/* What a clean stop found in each keyset directory, so that the first
 * stamp of a keyset after a start stats its files without listing the
 * directory: an open, two getdents and a close saved per keyset, most of
 * what a listing right after the mount of a large store waits for.
 *
 * STATE/walks, written at a clean stop of a daemon whose store watcher
 * finished its first pass, holds per keyset whose directory holds
 * only regular files: the directory's inode and change time, and the
 * files' names. A record is used only while the directory still has that
 * inode and change time. The change time moves with every entry made,
 * removed or renamed in the directory and cannot be set back by its
 * owner (utimensat() sets only the other two times), so the directory
 * still holds exactly those files: each is stat'ed for the stamp, as a
 * walk would. Two changes within one clock tick can share a change
 * time, so a directory changed less than RACY_S before the file was
 * written gets no record; one still holding at the next stop is written
 * again as it was, without a walk. Anything else, a missing, torn or
 * foreign file included, means a walk, as without the file. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "keyfs/dirwalk.h"
#include "keyfs/htab.h"
#include "keyfs/keytree.h"
#include "keyfs/log.h"
#include "keyfs/replace.h"
#include "keyfs/store.h"
#include "keyfs/textbuf.h"

#include "store_dir.h"

#define WALKS "walks"
#define MAGIC "keyfs-walks 1"
#define RACY_S 2

struct walk_rec {
	uint64_t h;		/* htab_hash() of the keyset's name */
	uint64_t ino;
	int64_t ctime_s;
	uint32_t ctime_ns;
	uint32_t files;		/* offset in pool: names, each NUL-ended, then "" */
};

struct dir_walks {
	struct walk_rec *r;
	size_t n, nr;
	char *pool;
	size_t len, cap;
	struct {
		size_t off, len;
	} last[4];		/* the last file lists added: keysets mostly
				 * hold files of the same names */
	size_t nlast;
};

static void walks_free(struct dir_walks *dw)
{
	if (!dw)
		return;
	free(dw->r);
	free(dw->pool);
	free(dw);
}

static int cmp_rec(const void *a, const void *b)
{
	uint64_t x = ((const struct walk_rec *)a)->h, y = ((const struct walk_rec *)b)->h;

	return x < y ? -1 : x > y;
}

/* The offset of list (names each NUL-ended, then ""; len bytes) in the
 * pool, added unless one of the last lists is the same. */
static int pool_add(struct dir_walks *dw, const char *list, size_t len, uint32_t *off)
{
	size_t i;

	for (i = 0; i < dw->nlast; i++) {
		if (dw->last[i].len == len && !memcmp(dw->pool + dw->last[i].off, list, len)) {
			*off = (uint32_t)dw->last[i].off;
			return 0;
		}
	}
	if (dw->len + len > UINT32_MAX)
		return -E2BIG;
	*off = (uint32_t)dw->len;
	if (textbuf_append(&dw->pool, &dw->len, &dw->cap, list, len))
		return -ENOMEM;
	memmove(dw->last + 1, dw->last, sizeof(dw->last) - sizeof(dw->last[0]));
	dw->last[0].off = *off;
	dw->last[0].len = len;
	dw->nlast += dw->nlast < 4;
	return 0;
}

/* Room for a keyset's file names, as written (walk_line()). */
#define FILES_MAX 4096

/* A decimal number of at most max, all of s. */
static bool number(const char *s, unsigned long long max, unsigned long long *v)
{
	char *end;

	if (!s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	*v = strtoull(s, &end, 10);
	return !*end && !errno && *v <= max;
}

/* "NAME INO CSEC CNSEC COUNT FILE..." into r, and the file names into
 * files, each NUL-ended, then "" (len bytes in all). Not sscanf(): a
 * hundred thousand lines are read while a listing waits. The name is
 * only hashed: a record is looked up by a keyset's name, and one found
 * for another name of the same hash is of another directory's inode. */
static bool parse_line(char *line, struct walk_rec *r, char files[static FILES_MAX + 1],
		       size_t *len)
{
	unsigned long long ino, s, ns, n;
	char *name, *f, *save = NULL;
	size_t i, at = 0;

	line[strcspn(line, "\n")] = '\0';
	name = strtok_r(line, " ", &save);
	if (!name || strlen(name) > KEYSET_NAME_MAX ||
	    !number(strtok_r(NULL, " ", &save), UINT64_MAX, &ino) ||
	    !number(strtok_r(NULL, " ", &save), INT64_MAX, &s) ||
	    !number(strtok_r(NULL, " ", &save), 999999999, &ns) ||
	    !number(strtok_r(NULL, " ", &save), KEYSET_MEMBERS_MAX, &n))
		return false;
	for (i = 0; (f = strtok_r(NULL, " ", &save)); i++) {
		if (i == n || strchr(f, '/') || !keyset_member_name_valid(f) ||
		    at + strlen(f) + 1 > FILES_MAX)
			return false;
		memcpy(files + at, f, strlen(f) + 1);
		at += strlen(f) + 1;
	}
	if (i != n)
		return false;
	files[at++] = '\0';
	*len = at;
	*r = (struct walk_rec){ htab_hash(name), ino, (int64_t)s, (uint32_t)ns, 0 };
	return true;
}

static int rec_add(struct dir_walks *dw, const struct walk_rec *r, const char *files, size_t len)
{
	struct walk_rec *p;
	size_t cap;

	if (dw->n == dw->nr) {
		cap = dw->nr ? dw->nr * 2 : 1024;
		p = reallocarray(dw->r, cap, sizeof(*p));
		if (!p)
			return -ENOMEM;
		dw->r = p;
		dw->nr = cap;
	}
	dw->r[dw->n] = *r;
	return pool_add(dw, files, len, &dw->r[dw->n++].files);
}

static struct dir_walks *walks_read(int sfd)
{
	char *line = NULL, files[FILES_MAX + 1];
	struct dir_walks *dw = NULL;
	size_t cap = 0, end, len;
	struct walk_rec r;
	bool whole = false;
	FILE *in;

	in = dirwalk_fopen(sfd, WALKS);
	if (!in)
		return NULL;
	if (getline(&line, &cap, in) <= 0 || strcmp(line, MAGIC "\n"))
		goto out;
	dw = calloc(1, sizeof(*dw));
	while (dw && getline(&line, &cap, in) > 0) {
		if (sscanf(line, "end %zu", &end) == 1) {
			whole = end == dw->n;
			break;
		}
		if (!parse_line(line, &r, files, &len) || rec_add(dw, &r, files, len))
			break;
	}
out:
	free(line);
	fclose(in);
	if (!whole) {
		walks_free(dw);
		return NULL;
	}
	if (dw->n)
		qsort(dw->r, dw->n, sizeof(*dw->r), cmp_rec);
	return dw;
}

void sdir_walks_init(struct dir_store *d)
{
	pthread_rwlock_init(&d->walks_lock, NULL);
}

/* Read at the first stamp, not at open: the mount waits for no line of
 * it, and a stamp asked for meanwhile walks rather than wait. */
static void walks_load(struct dir_store *d)
{
	if (pthread_rwlock_trywrlock(&d->walks_lock))
		return;
	if (!d->walks_loaded)
		d->walks = walks_read(d->sfd);
	__atomic_store_n(&d->walks_loaded, true, __ATOMIC_RELEASE);
	pthread_rwlock_unlock(&d->walks_lock);
}

/* dw's record of name if its directory raw is still the one it was made
 * of, else NULL. A name of the same hash finds another directory's
 * record, whose inode this one does not have. */
static const struct walk_rec *rec_holding(const struct dir_store *d, const struct dir_walks *dw,
					  const char *name, const char *raw)
{
	const struct walk_rec key = { .h = htab_hash(name) };
	const struct walk_rec *r;
	struct stat st;

	r = dw && dw->n ? bsearch(&key, dw->r, dw->n, sizeof(*dw->r), cmp_rec) : NULL;
	if (r && !fstatat(d->dfd, raw, &st, AT_SYMLINK_NOFOLLOW) && S_ISDIR(st.st_mode) &&
	    st.st_nlink == 2 && (uint64_t)st.st_ino == r->ino && st.st_ctim.tv_sec == r->ctime_s &&
	    (uint32_t)st.st_ctim.tv_nsec == r->ctime_ns)
		return r;
	return NULL;
}

/* name's stamp from its record, or -EAGAIN. */
static int recorded_stamp(struct dir_store *d, const char *name, const char *raw, uint64_t *stamp)
{
	const struct walk_rec *r;
	int ret = -EAGAIN;

	if (!__atomic_load_n(&d->walks_loaded, __ATOMIC_ACQUIRE))
		walks_load(d);
	if (pthread_rwlock_tryrdlock(&d->walks_lock))
		return ret; /* being read or dropped */
	r = rec_holding(d, d->walks, name, raw);
	if (r)
		ret = keytree_stamp_files(d->dfd, raw, d->walks->pool + r->files, stamp);
	pthread_rwlock_unlock(&d->walks_lock);
	return ret;
}

int sdir_walks_stamp(void *priv, const char *name, uint64_t *stamp)
{
	char raw[NAME_MAX + 1];

	if (!sdir_real_name(name, raw) && !recorded_stamp(priv, name, raw, stamp))
		return 0;
	return sdir_stamp(priv, name, stamp);
}

void sdir_walks_settled(void *priv)
{
	struct dir_store *d = priv;

	pthread_rwlock_wrlock(&d->walks_lock);
	walks_free(d->walks);
	d->walks = NULL;
	__atomic_store_n(&d->walks_loaded, true, __ATOMIC_RELEASE);
	d->settled = true;
	pthread_rwlock_unlock(&d->walks_lock);
}

/* ---- writing, at a clean stop ---- */

/* A walk's file names as a record holds them: each NUL-ended, then "". */
struct files {
	char buf[FILES_MAX + 1];
	size_t len;
	bool ok;
};

static int add_file(const struct keytree_entry *e, void *arg)
{
	struct files *f = arg;
	size_t n = strlen(e->path) + 1;

	/* a link or directory: walked each time */
	if (!S_ISREG(e->st->st_mode) || f->len + n > FILES_MAX) {
		f->ok = false;
		return 1;
	}
	memcpy(f->buf + f->len, e->path, n);
	f->len += n;
	return 0;
}

/* A record's line. */
static void rec_line(const struct walk_rec *r, const char *files, const char *name, FILE *out)
{
	const char *f;
	size_t n = 0;

	for (f = files; *f; f += strlen(f) + 1)
		n++;
	fprintf(out, "%s %llu %lld %u %zu", name, (unsigned long long)r->ino,
		(long long)r->ctime_s, r->ctime_ns, n);
	for (f = files; *f; f += strlen(f) + 1)
		fprintf(out, " %s", f);
	fputc('\n', out);
}

/* One keyset's line, if its directory holds only regular files and did
 * not change within RACY_S of now. */
static bool walk_line(struct dir_store *d, const char *name, const char *raw, time_t now,
		      FILE *out)
{
	struct keytree_walk w = { 0 };
	struct files f = { .ok = true };
	struct stat st;
	bool ok = false;
	int kfd;

	kfd = openat(d->dfd, raw, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (kfd < 0)
		return false;
	/* the times first: a change during the walk makes them old */
	if (fstat(kfd, &st) || st.st_nlink != 2 || st.st_ctim.tv_sec >= now - RACY_S)
		goto out;
	w.fn = add_file;
	w.arg = &f;
	if (keytree_walk(kfd, &w) || !f.ok)
		goto out;
	f.buf[f.len] = '\0';
	rec_line(&(struct walk_rec){ 0, st.st_ino, st.st_ctim.tv_sec, (uint32_t)st.st_ctim.tv_nsec, 0 },
		 f.buf, name, out);
	ok = true;
out:
	close(kfd);
	return ok;
}

static int walks_put(FILE *out, void *arg)
{
	struct dir_store *d = arg;
	const struct walk_rec *r;
	struct dir_walks *old;
	char raw[NAME_MAX + 1];
	time_t now = time(NULL);
	size_t n, i, count = 0;
	char **names;
	int ret;

	ret = sdir_list(d, &names, &n);
	if (ret)
		return ret;
	/* A directory the last stop recorded and unchanged since is not
	 * listed again: a stop of a large store walks only what changed. */
	old = walks_read(d->sfd);
	fprintf(out, MAGIC "\n");
	for (i = 0; i < n; i++) {
		if (sdir_real_name(names[i], raw))
			continue;
		r = rec_holding(d, old, names[i], raw);
		if (r)
			rec_line(r, old->pool + r->files, names[i], out);
		count += r || walk_line(d, names[i], raw, now, out);
	}
	walks_free(old);
	store_list_free(names);
	fprintf(out, "end %zu\n", count);
	return 0;
}

void sdir_walks_save(struct dir_store *d)
{
	int ret;

	if (!d->settled)
		return;
	ret = replace_stream(d->sfd, WALKS, walks_put, d);
	if (ret)
		log_msg(LOG_WARNING, "saving %s: %s", WALKS, strerror(-ret));
}

void sdir_walks_close(struct dir_store *d)
{
	walks_free(d->walks);
	d->walks = NULL;
	pthread_rwlock_destroy(&d->walks_lock);
}
