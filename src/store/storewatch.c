/* The store watcher's store operations: the keyset list, stamps and
 * version lists from memory while nothing changed (see storewatch.h; the
 * thread that learns of changes is storewatch_thread.c). */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "keyfs/log.h"

#include "storewatch_priv.h"

/* ---- list ---- */

static int w_list(void *priv, char ***names, size_t *n)
{
	struct storewatch *w = priv;
	int ret = 1;

	pthread_mutex_lock(&w->lock);
	if (w->list_valid && sw_answer_now(w)) {
		ret = store_list_pack(w->names, w->n, names);
		*n = ret ? 0 : w->n;
	}
	pthread_mutex_unlock(&w->lock);
	/* not listed yet, or changed: the thread lists again; until then
	 * the store answers */
	return ret == 1 ? w->inner.ops->list(w->inner.priv, names, n) : ret;
}

/* ---- stamp ---- */

static int w_stamp(void *priv, const char *name, uint64_t *stamp)
{
	return sw_wnode_stamp(priv, name, NULL, stamp);
}

static int w_read_stamped(void *priv, const char *name, struct keyset *ks, uint64_t *stamp)
{
	return sw_wnode_stamp(priv, name, ks, stamp);
}

static void w_batch(void *priv, bool on)
{
	sw_wnode_batch(priv, on);
}

/* ---- versions, and the operations that change them ---- */

/* Keeps v in n; none kept for a keyset without versions, most of them. */
static void keep_versions(struct wnode *n, const unsigned *v, size_t nv)
{
	n->versions = nv ? malloc(nv * sizeof(*v)) : NULL;
	if (nv && !n->versions)
		return; /* asked of the store again next time */
	if (nv)
		memcpy(n->versions, v, nv * sizeof(*v));
	n->nversions = (unsigned)nv;
	n->vvalid = true;
}

static int w_versions(void *priv, const char *name, unsigned **v, size_t *nv)
{
	struct storewatch *w = priv;
	struct wnode *n;
	int ret = 1;

	pthread_mutex_lock(&w->lock);
	n = sw_wnode_find(w, name);
	if (n && n->vvalid) {
		/* most keysets have none: no allocation for them */
		*nv = n->nversions;
		*v = *nv ? malloc(*nv * sizeof(**v)) : NULL;
		ret = *v || !*nv ? 0 : -ENOMEM;
		if (*v)
			memcpy(*v, n->versions, *nv * sizeof(**v));
	}
	pthread_mutex_unlock(&w->lock);
	if (ret != 1)
		return ret;
	ret = store_versions(&w->inner, name, v, nv);
	pthread_mutex_lock(&w->lock);
	n = sw_wnode_find(w, name);
	/* versions change only through keyfs itself: put and activate */
	if (!ret && n && !n->vvalid)
		keep_versions(n, *v, *nv);
	pthread_mutex_unlock(&w->lock);
	return ret;
}

static void forget_versions(struct storewatch *w, const char *name)
{
	struct wnode *n;

	pthread_mutex_lock(&w->lock);
	n = sw_wnode_find(w, name);
	if (n) {
		free(n->versions);
		n->versions = NULL;
		n->vvalid = false;
	}
	pthread_mutex_unlock(&w->lock);
}

/* A keyset just put is listed at once, not when the thread has read its
 * event: a restore's close() returns before that, and the restorer lists
 * export/ next. The store answers the list until the thread relisted. */
static void note_put(struct storewatch *w, const char *name)
{
	pthread_mutex_lock(&w->lock);
	if (!sw_wnode_find(w, name)) {
		w->list_valid = false;
		w->puts++;
	}
	pthread_mutex_unlock(&w->lock);
}

static int w_put(void *priv, const struct keyset *ks, struct store_put *res)
{
	struct storewatch *w = priv;
	int ret;

	ret = store_put_on(&w->inner, ks, res);
	forget_versions(w, ks->name);
	if (!ret)
		note_put(w, ks->name);
	return ret;
}

static int w_activate(void *priv, const char *name, unsigned version, unsigned *kept)
{
	struct storewatch *w = priv;
	int ret;

	ret = store_activate(&w->inner, name, version, kept);
	forget_versions(w, name);
	return ret;
}

/* ---- what passes through ---- */

static int w_why(void *priv, const char *name, char *buf, size_t size)
{
	struct storewatch *w = priv;

	return w->inner.ops->why(w->inner.priv, name, buf, size);
}

static int w_read(void *priv, const char *name, struct keyset *ks)
{
	struct storewatch *w = priv;

	return w->inner.ops->read(w->inner.priv, name, ks);
}

static void w_destroy(void *priv)
{
	struct storewatch *w = priv;
	struct hnode *h, *next;
	size_t pos = 0;

	storewatch_stop(w);
	for (h = htab_next(&w->nodes, &pos, NULL); h; h = next) {
		next = htab_next(&w->nodes, &pos, h);
		sw_wnode_free((struct wnode *)h);
	}
	htab_free(&w->nodes);
	free(w->names);
	close(w->efd);
	pthread_mutex_destroy(&w->lock);
	store_close(&w->inner);
	free(w);
}

static const struct store_ops watch_ops = {
	.list = w_list,
	.stamp = w_stamp,
	.batch = w_batch,
	.why = w_why,
	.read = w_read,
	.read_stamped = w_read_stamped,
	.put = w_put,
	.versions = w_versions,
	.activate = w_activate,
	.destroy = w_destroy,
};

int storewatch_wrap(struct store *s, struct storewatch **out)
{
	struct storewatch *w;

	*out = NULL;
	if (!s->ops->tree_fd)
		return 0;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->efd < 0) {
		free(w);
		return -errno;
	}
	pthread_mutex_init(&w->lock, NULL);
	w->inner = *s;
	w->root = s->ops->tree_fd(s->priv);
	w->ifd = -1;
	w->qfd = -1;
	w->root_wd = -1;
	s->ops = &watch_ops;
	s->priv = w;
	*out = w;
	return 0;
}

void storewatch_set_listener(struct storewatch *w, void (*fn)(void *arg, const char *keyset),
			     void *arg)
{
	w->fn = fn;
	w->arg = arg;
}

void storewatch_set_ready(struct storewatch *w, void (*fn)(void *arg), void *arg)
{
	w->ready_fn = fn;
	w->ready_arg = arg;
}

int storewatch_start(struct storewatch *w)
{
	int ret;

	ret = -pthread_create(&w->thread, NULL, storewatch_main, w);
	w->running = !ret;
	return ret;
}

void storewatch_stop(struct storewatch *w)
{
	uint64_t one = 1;

	if (!w || !w->running)
		return;
	if (write(w->efd, &one, sizeof(one)) != sizeof(one))
		log_msg(LOG_WARNING, "store watcher: cannot stop its thread: %m");
	pthread_join(w->thread, NULL);
	w->running = false;
}
