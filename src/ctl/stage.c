/* Staging of files written into import/ and verify/.
 *
 * One lock guards the list and every staged file, but it is never held
 * while a file is processed: processing unseals (seconds of scrypt) and
 * writes the keystore (which can block), and listing, getattr and the
 * other files must not wait for that. A flush pins the file (busy), drops
 * the lock, runs the callback on the pinned bytes and retakes the lock to
 * record the outcome. While a file is busy its bytes stay as they are:
 * its own writers wait, flushes of it wait for the outcome, and an unlink
 * or a rename over it only takes it off the list; its last user frees it. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "keyfs/stage.h"

struct staged {
	struct staged *next;
	int dir;
	char name[STAGE_NAME_MAX + 1];
	char *data;		/* NULL once processed and closed */
	size_t len, cap;
	mode_t mode;
	time_t mtime;
	int opens;
	bool dirty;		/* written since last processed */
	bool too_big;		/* a write went past max_size: the bytes are incomplete */
	int outcome;		/* of the last processing */
	bool busy;		/* being processed: data pinned, not to change */
	bool detached;		/* off the list while in use: freed by the last user */
	int users;		/* the processing plus the flushes waiting for it */
};

struct stage {
	pthread_mutex_t lock;
	pthread_cond_t done;	/* some processing finished; with lock */
	struct staged *files;	/* protected by lock */
	size_t total;		/* bytes held; protected by lock */
	size_t max_size, max_total;
	stage_process_fn fn;
	void *arg;
};

int stage_new(struct stage **out, size_t max_size, size_t max_total, stage_process_fn fn, void *arg)
{
	struct stage *sp;

	sp = calloc(1, sizeof(*sp));
	if (!sp)
		return -ENOMEM;
	pthread_mutex_init(&sp->lock, NULL);
	pthread_cond_init(&sp->done, NULL);
	sp->max_size = max_size;
	sp->max_total = max_total;
	sp->fn = fn;
	sp->arg = arg;
	*out = sp;
	return 0;
}

static void staged_free(struct stage *sp, struct staged *f)
{
	sp->total -= f->cap;
	free(f->data);
	free(f);
}

/* No flush runs any more when this is called (the FUSE loop has ended),
 * so nothing is busy or detached. */
void stage_free(struct stage *sp)
{
	struct staged *f, *next;

	if (!sp)
		return;
	for (f = sp->files; f; f = next) {
		next = f->next;
		staged_free(sp, f);
	}
	pthread_cond_destroy(&sp->done);
	pthread_mutex_destroy(&sp->lock);
	free(sp);
}

static struct staged **find(struct stage *sp, int dir, const char *name)
{
	struct staged **p;

	for (p = &sp->files; *p; p = &(*p)->next)
		if ((*p)->dir == dir && !strcmp((*p)->name, name))
			return p;
	return p;
}

/* The file named, once no processing holds its bytes; NULL if there is
 * none. Only those about to change that very file wait here. */
static struct staged *find_idle(struct stage *sp, int dir, const char *name)
{
	struct staged *f;

	while ((f = *find(sp, dir, name)) && f->busy)
		pthread_cond_wait(&sp->done, &sp->lock);
	return f;
}

/* Takes *p off the list: freed now, or by its last user. */
static void detach(struct stage *sp, struct staged **p)
{
	struct staged *f = *p;

	*p = f->next;
	if (f->users > 0)
		f->detached = true;
	else
		staged_free(sp, f);
}

static void put_user(struct stage *sp, struct staged *f)
{
	if (--f->users == 0 && f->detached)
		staged_free(sp, f);
}

/* Processed and closed: keep name, size and outcome, not the bytes. */
static void maybe_drop(struct stage *sp, struct staged *f)
{
	if (f->busy || f->opens > 0 || f->dirty || !f->len || !f->data)
		return;
	sp->total -= f->cap;
	free(f->data);
	f->data = NULL;
	f->cap = 0;
}

/* Grows f's buffer to hold len bytes, within the limits. */
static int reserve(struct stage *sp, struct staged *f, size_t len)
{
	size_t cap;
	char *p;

	if (len > sp->max_size)
		return -EFBIG;
	if (len <= f->cap && f->data)
		return 0;
	cap = f->cap ? f->cap : 4096;
	while (cap < len)
		cap *= 2;
	if (cap > sp->max_size)
		cap = sp->max_size;
	if (sp->total - f->cap + cap > sp->max_total)
		return -ENOSPC;
	p = realloc(f->data, cap);
	if (!p)
		return -ENOMEM;
	if (!f->data)
		memset(p, 0, cap);
	else
		memset(p + f->cap, 0, cap - f->cap);
	sp->total = sp->total - f->cap + cap;
	f->data = p;
	f->cap = cap;
	return 0;
}

static void empty(struct stage *sp, struct staged *f)
{
	sp->total -= f->cap;
	free(f->data);
	f->data = NULL;
	f->cap = 0;
	f->len = 0;
	f->dirty = false;
	f->too_big = false;
	f->outcome = 0;
}

static int new_file(struct staged **p, int dir, const char *name, mode_t mode)
{
	struct staged *f;

	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->dir = dir;
	strcpy(f->name, name);
	f->mode = mode & 0777;
	f->mtime = time(NULL);
	*p = f;
	return 0;
}

int stage_open(struct stage *sp, int dir, const char *name, bool create, bool excl, bool trunc,
	       mode_t mode)
{
	struct staged **p, *f;
	int ret = 0;

	if (strlen(name) > STAGE_NAME_MAX)
		return -ENAMETOOLONG;
	pthread_mutex_lock(&sp->lock);
	/* Emptying a file under processing would pull its bytes away. */
	if (trunc)
		find_idle(sp, dir, name);
	p = find(sp, dir, name);
	f = *p;
	if (f && create && excl)
		ret = -EEXIST;
	else if (!f && !create)
		ret = -ENOENT;
	else if (!f)
		ret = new_file(p, dir, name, mode);
	else if (trunc)
		empty(sp, f);
	else if (!f->data && f->len)
		ret = -EPERM; /* processed, closed and dropped: its bytes are gone */
	if (!ret)
		(*p)->opens++;
	pthread_mutex_unlock(&sp->lock);
	return ret;
}

void stage_release(struct stage *sp, int dir, const char *name)
{
	struct staged *f;

	pthread_mutex_lock(&sp->lock);
	f = *find(sp, dir, name);
	if (f && --f->opens <= 0) {
		f->opens = 0;
		maybe_drop(sp, f);
	}
	pthread_mutex_unlock(&sp->lock);
}

/* A write past the per-file limit leaves the file incomplete for good
 * (until emptied): its flush reports that, not what the cut bytes look
 * like (EBADMSG, EINVAL). */
static void refuse(struct staged *f, int err)
{
	if (err == -EFBIG) {
		f->too_big = true;
		f->dirty = true;
	}
}

int stage_write(struct stage *sp, int dir, const char *name, const char *buf, size_t size, off_t off)
{
	struct staged *f;
	int ret = 0;

	if (off < 0 || (size_t)off > SIZE_MAX - size)
		return -EFBIG;
	pthread_mutex_lock(&sp->lock);
	f = find_idle(sp, dir, name);
	if (!f)
		ret = -ENOENT;
	else if (!f->data && f->len)
		ret = -EPERM;
	else if (f->too_big)
		ret = -EFBIG;
	if (!ret) {
		ret = reserve(sp, f, (size_t)off + size);
		refuse(f, ret);
	}
	if (!ret) {
		memcpy(f->data + off, buf, size);
		if ((size_t)off + size > f->len)
			f->len = (size_t)off + size;
		f->dirty = true;
		f->mtime = time(NULL);
	}
	pthread_mutex_unlock(&sp->lock);
	return ret ? ret : (int)size;
}

int stage_read(struct stage *sp, int dir, const char *name, char *buf, size_t size, off_t off)
{
	struct staged *f;
	int ret = 0;

	/* No wait: a busy file's bytes are pinned, not changing. */
	pthread_mutex_lock(&sp->lock);
	f = *find(sp, dir, name);
	if (!f)
		ret = -ENOENT;
	else if (!f->data && f->len)
		ret = -ENODATA;
	else if (off >= 0 && (size_t)off < f->len) {
		if (size > f->len - (size_t)off)
			size = f->len - (size_t)off;
		memcpy(buf, f->data + off, size);
		ret = (int)size;
	}
	pthread_mutex_unlock(&sp->lock);
	return ret;
}

int stage_truncate(struct stage *sp, int dir, const char *name, off_t size)
{
	struct staged *f;
	int ret = 0;

	if (size < 0)
		return -EINVAL;
	pthread_mutex_lock(&sp->lock);
	f = find_idle(sp, dir, name);
	if (!f)
		ret = -ENOENT;
	else if ((size_t)size == f->len)
		;	/* nothing to do */
	else if (size == 0)
		empty(sp, f);
	else if (!f->data && f->len)
		ret = -EPERM;
	else if (!(ret = reserve(sp, f, (size_t)size))) {
		if ((size_t)size < f->len)
			memset(f->data + size, 0, f->len - (size_t)size);
		f->len = (size_t)size;
		f->dirty = true;
	}
	pthread_mutex_unlock(&sp->lock);
	return ret;
}

/* The callback gets the bytes, or for a file cut by the per-file limit
 * NULL and that limit, so the refusal is reported like any outcome. */
static int call(struct stage *sp, bool verify, const char *data, size_t len, bool too_big)
{
	if (too_big) {
		sp->fn(sp->arg, verify, NULL, sp->max_size);
		return -EFBIG;
	}
	return sp->fn(sp->arg, verify, (const uint8_t *)data, len);
}

/* Runs the callback on f's pinned bytes without the lock, which is held
 * on entry and on return. */
static int process(struct stage *sp, struct staged *f)
{
	const char *data = f->data;
	size_t len = f->len;
	bool verify = f->dir == STAGE_VERIFY, too_big = f->too_big;
	int ret;

	f->busy = true;
	f->users++;
	pthread_mutex_unlock(&sp->lock);
	ret = call(sp, verify, data, len, too_big);
	pthread_mutex_lock(&sp->lock);
	f->busy = false;
	f->dirty = false;
	f->outcome = ret;
	pthread_cond_broadcast(&sp->done);
	maybe_drop(sp, f);
	put_user(sp, f);
	return ret;
}

/* A flush of a file under processing: that processing's outcome. */
static int wait_outcome(struct stage *sp, struct staged *f)
{
	int ret;

	f->users++;
	while (f->busy)
		pthread_cond_wait(&sp->done, &sp->lock);
	ret = f->outcome;
	put_user(sp, f);
	return ret;
}

int stage_flush(struct stage *sp, int dir, const char *name)
{
	struct staged *f;
	int ret;

	pthread_mutex_lock(&sp->lock);
	f = *find(sp, dir, name);
	if (!f)
		ret = -ENOENT;
	else if (f->busy)
		ret = wait_outcome(sp, f);
	else if (!f->dirty)
		ret = f->outcome;
	else if (f->len || f->too_big)
		ret = process(sp, f);
	else {
		/* bash's "echo x > f" flushes before writing: nothing yet */
		f->dirty = false;
		ret = f->outcome = 0;
	}
	pthread_mutex_unlock(&sp->lock);
	return ret;
}

int stage_getattr(struct stage *sp, int dir, const char *name, struct stage_attr *a)
{
	struct staged *f;

	pthread_mutex_lock(&sp->lock);
	f = *find(sp, dir, name);
	if (f) {
		a->size = f->len;
		a->mode = f->mode;
		a->mtime = f->mtime;
	}
	pthread_mutex_unlock(&sp->lock);
	return f ? 0 : -ENOENT;
}

int stage_setattr(struct stage *sp, int dir, const char *name, const mode_t *mode, const time_t *mtime)
{
	struct staged *f;

	pthread_mutex_lock(&sp->lock);
	f = *find(sp, dir, name);
	if (f && mode)
		f->mode = *mode & 0777;
	if (f && mtime)
		f->mtime = *mtime;
	pthread_mutex_unlock(&sp->lock);
	return f ? 0 : -ENOENT;
}

int stage_unlink(struct stage *sp, int dir, const char *name)
{
	struct staged **p;
	int ret = -ENOENT;

	pthread_mutex_lock(&sp->lock);
	p = find(sp, dir, name);
	if (*p) {
		detach(sp, p);
		ret = 0;
	}
	pthread_mutex_unlock(&sp->lock);
	return ret;
}

int stage_rename(struct stage *sp, int dir, const char *from, const char *to)
{
	struct staged **q, *f;
	int ret = -ENOENT;

	if (strlen(to) > STAGE_NAME_MAX)
		return -ENAMETOOLONG;
	pthread_mutex_lock(&sp->lock);
	f = *find(sp, dir, from);
	if (f) {
		q = find(sp, dir, to);
		if (*q && *q != f)
			detach(sp, q); /* rename replaces, as rsync expects */
		strcpy(f->name, to);
		ret = 0;
	}
	pthread_mutex_unlock(&sp->lock);
	return ret;
}

int stage_list(struct stage *sp, int dir, void (*fn)(void *arg, const char *name), void *arg)
{
	struct staged *f;

	pthread_mutex_lock(&sp->lock);
	for (f = sp->files; f; f = f->next)
		if (f->dir == dir)
			fn(arg, f->name);
	pthread_mutex_unlock(&sp->lock);
	return 0;
}
