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
	int outcome;		/* of the last processing */
};

/* One lock for everything: processing runs under it, which also
 * serializes imports into the keystore. */
struct stage {
	pthread_mutex_t lock;
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

void stage_free(struct stage *sp)
{
	struct staged *f, *next;

	if (!sp)
		return;
	for (f = sp->files; f; f = next) {
		next = f->next;
		staged_free(sp, f);
	}
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
	f->outcome = 0;
}

int stage_open(struct stage *sp, int dir, const char *name, bool create, bool excl, bool trunc,
	       mode_t mode)
{
	struct staged **p, *f;
	int ret = 0;

	if (strlen(name) > STAGE_NAME_MAX)
		return -ENAMETOOLONG;
	pthread_mutex_lock(&sp->lock);
	p = find(sp, dir, name);
	f = *p;
	if (f && create && excl) {
		ret = -EEXIST;
		goto out;
	}
	if (!f && !create) {
		ret = -ENOENT;
		goto out;
	}
	if (!f) {
		f = calloc(1, sizeof(*f));
		if (!f) {
			ret = -ENOMEM;
			goto out;
		}
		f->dir = dir;
		strcpy(f->name, name);
		f->mode = mode & 0777;
		f->mtime = time(NULL);
		*p = f;
	} else if (trunc) {
		empty(sp, f);
	} else if (!f->data && f->len) {
		/* Processed, closed and dropped: its bytes are gone. */
		ret = -EPERM;
		goto out;
	}
	f->opens++;
out:
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
		if (!f->dirty && f->len && f->data) {
			/* processed: keep name, size and outcome only */
			sp->total -= f->cap;
			free(f->data);
			f->data = NULL;
			f->cap = 0;
		}
	}
	pthread_mutex_unlock(&sp->lock);
}

static int with_file(struct stage *sp, int dir, const char *name, struct staged **out)
{
	*out = *find(sp, dir, name);
	return *out ? 0 : -ENOENT;
}

int stage_write(struct stage *sp, int dir, const char *name, const char *buf, size_t size, off_t off)
{
	struct staged *f;
	int ret;

	if (off < 0 || (size_t)off > SIZE_MAX - size)
		return -EFBIG;
	pthread_mutex_lock(&sp->lock);
	ret = with_file(sp, dir, name, &f);
	if (!ret && !f->data && f->len)
		ret = -EPERM;
	if (!ret)
		ret = reserve(sp, f, (size_t)off + size);
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
	int ret;

	pthread_mutex_lock(&sp->lock);
	ret = with_file(sp, dir, name, &f);
	if (!ret && !f->data && f->len)
		ret = -ENODATA;
	if (!ret && off >= 0 && (size_t)off < f->len) {
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
	int ret;

	if (size < 0)
		return -EINVAL;
	pthread_mutex_lock(&sp->lock);
	ret = with_file(sp, dir, name, &f);
	if (!ret && (size_t)size == f->len)
		goto out;
	if (!ret && size == 0) {
		empty(sp, f);
		goto out;
	}
	if (!ret && !f->data && f->len)
		ret = -EPERM;
	if (!ret)
		ret = reserve(sp, f, (size_t)size);
	if (!ret) {
		if ((size_t)size < f->len)
			memset(f->data + size, 0, f->len - (size_t)size);
		f->len = (size_t)size;
		f->dirty = true;
	}
out:
	pthread_mutex_unlock(&sp->lock);
	return ret;
}

int stage_flush(struct stage *sp, int dir, const char *name)
{
	struct staged *f;
	int ret;

	pthread_mutex_lock(&sp->lock);
	ret = with_file(sp, dir, name, &f);
	if (ret || !f->dirty) {
		ret = ret ? ret : f->outcome;
		goto out;
	}
	f->outcome = f->len ? sp->fn(sp->arg, dir == 1, (const uint8_t *)f->data, f->len) : 0;
	f->dirty = false;
	ret = f->outcome;
out:
	pthread_mutex_unlock(&sp->lock);
	return ret;
}

int stage_getattr(struct stage *sp, int dir, const char *name, struct stage_attr *a)
{
	struct staged *f;
	int ret;

	pthread_mutex_lock(&sp->lock);
	ret = with_file(sp, dir, name, &f);
	if (!ret) {
		a->size = f->len;
		a->mode = f->mode;
		a->mtime = f->mtime;
	}
	pthread_mutex_unlock(&sp->lock);
	return ret;
}

int stage_setattr(struct stage *sp, int dir, const char *name, const mode_t *mode, const time_t *mtime)
{
	struct staged *f;
	int ret;

	pthread_mutex_lock(&sp->lock);
	ret = with_file(sp, dir, name, &f);
	if (!ret && mode)
		f->mode = *mode & 0777;
	if (!ret && mtime)
		f->mtime = *mtime;
	pthread_mutex_unlock(&sp->lock);
	return ret;
}

int stage_unlink(struct stage *sp, int dir, const char *name)
{
	struct staged **p, *f;
	int ret = -ENOENT;

	pthread_mutex_lock(&sp->lock);
	p = find(sp, dir, name);
	if ((f = *p)) {
		*p = f->next;
		staged_free(sp, f);
		ret = 0;
	}
	pthread_mutex_unlock(&sp->lock);
	return ret;
}

int stage_rename(struct stage *sp, int dir, const char *from, const char *to)
{
	struct staged **p, **q, *f, *old;
	int ret = -ENOENT;

	if (strlen(to) > STAGE_NAME_MAX)
		return -ENAMETOOLONG;
	pthread_mutex_lock(&sp->lock);
	p = find(sp, dir, from);
	if ((f = *p)) {
		q = find(sp, dir, to);
		if ((old = *q) && old != f) {
			*q = old->next; /* rename replaces, as rsync expects */
			staged_free(sp, old);
		}
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
