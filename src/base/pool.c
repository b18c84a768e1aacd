/* Worker threads over a queue of items (see pool.h). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "keyfs/pool.h"

#define POOL_MAX 16

struct pool {
	pthread_mutex_t lock;
	pthread_cond_t work;		/* the queue has items, or stop */
	struct pool_item *head, *tail;	/* protected by lock */
	size_t queued, running;		/* protected by lock */
	bool stop;			/* protected by lock */
	pool_work_fn *fn;
	void *arg;
	size_t n;
	pthread_t threads[POOL_MAX];
};

/* The last queued item's next: an item is queued while its next is not
 * NULL, so it needs no flag of its own. */
static struct pool_item end;

static struct pool_item *pop(struct pool *p)
{
	struct pool_item *it = p->head;

	p->head = it->next != &end ? it->next : NULL;
	if (!p->head)
		p->tail = NULL;
	it->next = NULL;
	p->queued--;
	return it;
}

static void *worker(void *arg)
{
	struct pool *p = arg;
	struct pool_item *it;

	thread_name("keyfs-seal");
	thread_background();
	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		if (!p->head) {
			pthread_cond_wait(&p->work, &p->lock);
			continue;
		}
		it = pop(p);
		p->running++;
		pthread_mutex_unlock(&p->lock);
		p->fn(p->arg, it);
		pthread_mutex_lock(&p->lock);
		p->running--;
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int pool_new(struct pool **out, size_t n, pool_work_fn *work, void *arg)
{
	struct pool *p;

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	p->fn = work;
	p->arg = arg;
	if (n > POOL_MAX)
		n = POOL_MAX;
	for (p->n = 0; p->n < n; p->n++)
		if (pthread_create(&p->threads[p->n], NULL, worker, p))
			break;
	if (!p->n) {
		pool_free(p);
		return -EAGAIN;
	}
	*out = p;
	return 0;
}

void pool_free(struct pool *p)
{
	size_t i;

	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	for (i = 0; i < p->n; i++)
		pthread_join(p->threads[i], NULL);
	pthread_cond_destroy(&p->work);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

size_t pool_workers(const struct pool *p)
{
	return p ? p->n : 0;
}

void pool_push(struct pool *p, struct pool_item *it)
{
	pthread_mutex_lock(&p->lock);
	if (!it->next) {
		it->next = &end;
		if (p->tail)
			p->tail->next = it;
		else
			p->head = it;
		p->tail = it;
		p->queued++;
		pthread_cond_signal(&p->work);
	}
	pthread_mutex_unlock(&p->lock);
}

bool pool_take(struct pool *p, struct pool_item *it)
{
	struct pool_item **q, *prev = NULL;
	bool was;

	pthread_mutex_lock(&p->lock);
	was = it->next != NULL;
	if (was) {
		for (q = &p->head; *q != it; q = &(*q)->next)
			prev = *q;
		*q = it->next != &end ? it->next : NULL;
		if (p->tail == it) {
			p->tail = prev;
			if (prev)
				prev->next = &end;
		}
		it->next = NULL;
		p->queued--;
	}
	pthread_mutex_unlock(&p->lock);
	return was;
}

void pool_counts(struct pool *p, size_t *queued, size_t *running)
{
	pthread_mutex_lock(&p->lock);
	*queued = p->queued;
	*running = p->running;
	pthread_mutex_unlock(&p->lock);
}

void thread_name(const char *name)
{
	(void)pthread_setname_np(pthread_self(), name);
}

void thread_background(void)
{
	/* Linux keeps a nice value per thread; failing, the thread only
	 * keeps its priority. */
	(void)setpriority(PRIO_PROCESS, (id_t)gettid(), 10);
}
