/* A pool of worker threads working through a queue of items. An item is
 * in the queue at most once. The pool knows nothing of what an item is:
 * it calls work(arg, item) with no lock of its own held, so work may take
 * the caller's locks; the caller may push and take under its own lock
 * (the pool's lock is always taken last). The workers run in the
 * background (thread_background()): their work is ahead of demand, and a
 * reader's request must not wait behind it for the CPU. */
#ifndef KEYFS_POOL_H
#define KEYFS_POOL_H

#include <stdbool.h>
#include <stddef.h>

/* NULL while not queued; protected by the pool's lock. One pointer:
 * every keyset's seal-cache entry holds an item. */
struct pool_item {
	struct pool_item *next;
};

typedef void pool_work_fn(void *arg, struct pool_item *item);

struct pool;

/* Starts up to n workers (at least one, or -EAGAIN). */
int pool_new(struct pool **p, size_t n, pool_work_fn *work, void *arg);
/* Stops the workers after the item each is working on, and frees. */
void pool_free(struct pool *p);
size_t pool_workers(const struct pool *p);

/* Queues item unless it is queued already. */
void pool_push(struct pool *p, struct pool_item *item);
/* Takes item out of the queue; true if it was queued. */
bool pool_take(struct pool *p, struct pool_item *item);
/* Items queued (not taken by a worker yet), and being worked on. */
void pool_counts(struct pool *p, size_t *queued, size_t *running);

/* Lowers the calling thread's priority (nice 10): for work in the
 * background, such as the first look at every keyset after a mount,
 * which a request from a reader must not wait behind for the CPU. */
void thread_background(void);
/* Names the calling thread as ps -L and top -H show it (15 bytes). */
void thread_name(const char *name);

#endif
