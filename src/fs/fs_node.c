/* The node ids the kernel names files by (fs_ll.c): a node is its
 * name and a lookup count, 64 bytes. The tree is two levels deep: the
 * root's children are fixed, and only files in export/, import/ and
 * verify/ get nodes, which the kernel's FORGET frees. A node's id is its
 * address. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "keyfs/htab.h"

#include "fs_priv.h"

struct fnode {
	struct hnode h;		/* in nodes, by parent and name; once
				 * unlinked, in gone by address */
	struct fnode *parent;	/* NULL: unlinked, or a fixed node */
	uint64_t nlookup;	/* the kernel's references */
	char *name;		/* inl, or its own after a rename */
	char inl[];
};

/* The root and its children never go: the kernel's lookups of them are
 * not counted. */
static struct fnode fixed[] = {
	{ .name = (char *)"" },	  { .name = (char *)".control" }, { .name = (char *)".keysets" },
	{ .name = (char *)".metrics" }, { .name = (char *)"export" }, { .name = (char *)"import" },
	{ .name = (char *)"verify" },
};
#define NFIXED (sizeof(fixed) / sizeof(fixed[0]))

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct htab nodes;	/* protected by lock */
/* Unlinked nodes the kernel still holds: freed by its FORGET, or at the
 * end if it sends none before the unmount. Protected by lock. */
static struct htab gone;

static bool is_fixed(const struct fnode *n)
{
	return n >= fixed && n < fixed + NFIXED;
}

static struct fnode *node_of(fuse_ino_t ino)
{
	return ino == FUSE_ROOT_ID ? &fixed[0] : (struct fnode *)(uintptr_t)ino;
}

static fuse_ino_t ino_of(struct fnode *n)
{
	return n == &fixed[0] ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)n;
}

static uint64_t key_hash(const struct fnode *parent, const char *name)
{
	return htab_hash(name) ^ ((uintptr_t)parent * 0x9e3779b97f4a7c15ULL);
}

struct key {
	const struct fnode *parent;
	const char *name;
};

static bool same_key(const struct hnode *h, const void *arg)
{
	const struct fnode *n = (const struct fnode *)h;
	const struct key *k = arg;

	return n->parent == k->parent && !strcmp(n->name, k->name);
}

/* Caller holds lock. */
static struct fnode *child(struct fnode *parent, const char *name)
{
	size_t i;

	if (parent == &fixed[0]) {
		for (i = 1; i < NFIXED; i++)
			if (!strcmp(fixed[i].name, name))
				return &fixed[i];
		return NULL;
	}
	return (struct fnode *)htab_find(&nodes, key_hash(parent, name), same_key,
					 &(struct key){ parent, name });
}

fuse_ino_t fs_node_ref(fuse_ino_t parent_ino, const char *name)
{
	struct fnode *parent = node_of(parent_ino), *n;

	_Static_assert(offsetof(struct fnode, h) == 0, "htab_add_named() returns the hnode");
	pthread_mutex_lock(&lock);
	n = child(parent, name);
	if (!n) {
		n = htab_add_named(&nodes, sizeof(*n), offsetof(struct fnode, inl), name,
				   key_hash(parent, name));
		if (n) {
			n->parent = parent;
			n->name = n->inl;
		}
	}
	if (n && !is_fixed(n))
		n->nlookup++;
	pthread_mutex_unlock(&lock);
	return n ? ino_of(n) : 0;
}

static void node_free(struct fnode *n)
{
	if (n->name != n->inl)
		free(n->name);
	free(n);
}

/* Takes it out of the tree: an unlinked node has no path. Caller holds
 * lock. */
static void detach(struct fnode *n)
{
	if (n && !is_fixed(n) && n->parent) {
		htab_del(&nodes, &n->h);
		n->parent = NULL;
		n->h.hash = (uintptr_t)n;
		htab_add(&gone, &n->h); /* if not, only the end does not free it */
	}
}

void fs_node_unref(fuse_ino_t ino, uint64_t count)
{
	struct fnode *n = node_of(ino);

	if (is_fixed(n))
		return;
	pthread_mutex_lock(&lock);
	n->nlookup -= count < n->nlookup ? count : n->nlookup;
	if (!n->nlookup) {
		htab_del(n->parent ? &nodes : &gone, &n->h);
		node_free(n);
	}
	pthread_mutex_unlock(&lock);
}

int fs_node_path(fuse_ino_t ino, const char *name, char path[static PATH_MAX])
{
	struct fnode *n = node_of(ino);
	int len;

	pthread_mutex_lock(&lock);
	if (n == &fixed[0])
		len = snprintf(path, PATH_MAX, "/%s", name ? name : "");
	else if (is_fixed(n))
		len = snprintf(path, PATH_MAX, "/%s%s%s", n->name, name ? "/" : "", name ? name : "");
	else if (n->parent)
		len = snprintf(path, PATH_MAX, "/%s/%s%s%s", n->parent->name, n->name,
			       name ? "/" : "", name ? name : "");
	else
		len = -ENOENT;
	pthread_mutex_unlock(&lock);
	if (len >= PATH_MAX)
		return -ENAMETOOLONG;
	return len < 0 ? len : 0;
}

/* Caller holds lock. */
static int move(struct fnode *n, struct fnode *to, const char *name)
{
	struct fnode *old = child(to, name);
	char *copy = NULL;

	if (strcmp(n->name, name)) {
		copy = strdup(name);
		if (!copy)
			return -ENOMEM;
	}
	if (old != n)
		detach(old); /* the file it replaces */
	htab_del(&nodes, &n->h);
	if (copy) {
		if (n->name != n->inl)
			free(n->name);
		n->name = copy;
	}
	n->parent = to;
	n->h.hash = key_hash(to, n->name);
	return htab_add(&nodes, &n->h);
}

void fs_node_unlink(fuse_ino_t parent, const char *name)
{
	pthread_mutex_lock(&lock);
	detach(child(node_of(parent), name));
	pthread_mutex_unlock(&lock);
}

void fs_node_rename(fuse_ino_t parent, const char *name, fuse_ino_t newparent, const char *newname)
{
	struct fnode *n;

	pthread_mutex_lock(&lock);
	n = child(node_of(parent), name);
	/* out of memory: unlinked, and the kernel looks it up again */
	if (n && !is_fixed(n) && move(n, node_of(newparent), newname))
		detach(n);
	pthread_mutex_unlock(&lock);
}

fuse_ino_t fs_node_find(const char *dir, const char *name)
{
	struct fnode *n;
	fuse_ino_t ino = 0;

	pthread_mutex_lock(&lock);
	n = child(&fixed[0], dir);
	n = n ? child(n, name) : NULL;
	if (n)
		ino = ino_of(n);
	pthread_mutex_unlock(&lock);
	return ino;
}

static void free_table(struct htab *t)
{
	struct hnode *h, *next;
	size_t pos = 0;

	for (h = htab_next(t, &pos, NULL); h; h = next) {
		next = htab_next(t, &pos, h);
		node_free((struct fnode *)h);
	}
	htab_free(t);
}

void fs_node_free_all(void)
{
	pthread_mutex_lock(&lock);
	free_table(&nodes);
	free_table(&gone);
	pthread_mutex_unlock(&lock);
}

void fs_invalidate(struct keyfs *k, const char *dir, const char *name)
{
	fuse_ino_t ino = fs_node_find(dir, name);

	/* A node forgotten meanwhile: the kernel no longer knows the id. */
	if (ino)
		fuse_lowlevel_notify_inval_inode(k->se, ino, 0, 0);
}
