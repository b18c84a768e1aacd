/* A keyset as a directory tree on disk: walking it (for a stamp or a
 * reason), reading it into a keyset, writing a keyset into a fresh
 * directory, and removing a tree. Shared by the directory store and its
 * versions; any code that reads or restores key trees goes through here.
 *
 * Reading never follows a symlink: directories are opened one component
 * at a time with O_NOFOLLOW, files with file_open_regular() (no FIFO or
 * device can block it, a hard-linked file is refused), and links are
 * read as text. Names starting with '.' are skipped (temporaries). */
#ifndef KEYFS_KEYTREE_H
#define KEYFS_KEYTREE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "keyfs/keyset.h"

/* Bounds of one keyset on disk, so that a writer of a keyset directory
 * cannot make sealing or a stat exhaust the daemon. A file may be as
 * big as a LUKS2 header backup (16 MiB) and then some. */
#define KEYTREE_FILE_MAX (20 << 20)
#define KEYTREE_TOTAL_MAX (64 << 20)
#define KEYTREE_ENTRIES_MAX 4096

/* One member the walk found and checked. */
struct keytree_entry {
	int dirfd;		/* its directory, valid during the call */
	const char *name;	/* its name there */
	const char *path;	/* its path in the keyset */
	const struct stat *st;	/* lstat */
	const char *link;	/* symlink target (checked), else NULL */
};

struct keytree_walk {
	/* Called once per member, a directory before what it holds. */
	int (*fn)(const struct keytree_entry *e, void *arg);
	void *arg;
	char *why;		/* optional: what is wrong, in words */
	size_t why_size;
	/* the walk's own state */
	size_t entries, members;
	uint64_t bytes;
	unsigned depth;
	char path[KEYSET_PATH_MAX + 1];
};

/* Walks the tree in directory kfd (its members, not kfd itself), in no
 * particular order. Fails the whole keyset on anything that is not a
 * key: -EINVAL for a socket, FIFO or device, a hard-linked file, a name
 * outside the member alphabet or too deep, a symlink leaving the
 * keyset; -EFBIG past KEYTREE_FILE_MAX or KEYTREE_TOTAL_MAX; -E2BIG
 * past KEYTREE_ENTRIES_MAX entries or KEYSET_MEMBERS_MAX members; and
 * says why in w->why. Returns fn's first nonzero return. */
int keytree_walk(int kfd, struct keytree_walk *w);

/* Reads the tree in kfd into ks (named name, members sorted): data,
 * modes, mtimes, owners and their names, link targets, user.* and
 * security.* xattrs. -EAGAIN if it kept changing while read. why
 * (optional) as for keytree_walk(). */
int keytree_read(int kfd, const char *name, struct keyset *ks, char *why, size_t why_size);

/* Writes ks into the empty directory dfd: directories with their modes
 * (set once their contents are written), files through a temporary name
 * (write, owner, mode, xattrs, times, fsync, rename), symlinks through
 * a temporary name too; every directory fsynced. Owners are set when
 * recorded; a daemon that is not root refuses (-EPERM) an owner it
 * cannot give, before writing anything. A security.* xattr the kernel
 * refuses (no such LSM, not permitted) is left out; any other failure
 * fails the write, leaving the caller to remove dfd's contents. */
int keytree_write(int dfd, const struct keyset *ks);

/* Can this process give every recorded owner of ks? 0 or -EPERM. */
int keytree_owner_check(const struct keyset *ks);

/* Removes dfd/path and everything below it, without following links. */
void keytree_remove(int dfd, const char *path);

#endif
