/* A keyset as a directory tree on disk: walking it (for a stamp or a
 * reason), reading it into a keyset, writing a keyset into a fresh
 * directory, and removing a tree. Shared by the directory store and its
 * versions; any code that reads or restores key trees goes through here.
 *
 * Reading never follows a symlink: directories are opened one component
 * at a time with O_NOFOLLOW, files with dirwalk_open_regular() (no FIFO or
 * device can block it, a hard-linked file is refused), and links are
 * read as text. Names starting with '.' are skipped (temporaries). */
#ifndef KEYFS_KEYTREE_H
#define KEYFS_KEYTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "keyfs/keyset.h"


/* Which entries of a tree are members, for a tree that holds more than
 * keys (a live keyset's /etc/ssh): asked before an entry is checked, so
 * a socket beside the keys is no concern of the keyset's. */
struct keytree_select {
	/* Is path a member? For a directory: may it hold members (it is
	 * entered, and kept if it does). */
	bool (*want)(const char *path, bool dir, void *arg);
	void *arg;
	uint64_t file_max;	/* largest file; 0: KEYSET_FILE_MAX */
};

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
	const struct keytree_select *sel;	/* optional: every entry when NULL */
	char *why;		/* optional: what is wrong, in words */
	size_t why_size;
	/* the walk's own state */
	size_t entries, members;
	uint64_t bytes;
	unsigned depth;
	char path[KEYSET_PATH_MAX + 1];
};

/* Walks the tree in directory kfd (its members, not kfd itself), in no
 * particular order. kfd is read from its start (its offset moves), as
 * by the other calls here that take one: the caller's own, opened for
 * them. Fails the whole keyset on anything that is not a
 * key: -EINVAL for a socket, FIFO or device, a hard-linked file, a name
 * outside the member alphabet or too deep, a symlink leaving the
 * keyset; -EFBIG past KEYSET_FILE_MAX or KEYSET_TOTAL_MAX; -E2BIG
 * past KEYSET_ENTRIES_MAX entries or KEYSET_MEMBERS_MAX members; and
 * says why in w->why. Returns fn's first nonzero return. */
int keytree_walk(int kfd, struct keytree_walk *w);

/* Reads the tree in kfd into ks (named name, members sorted): data,
 * modes, mtimes, owners and their names, link targets, user.* and
 * security.* xattrs. -EAGAIN if it kept changing while read. why
 * (optional) as for keytree_walk(). */
int keytree_read(int kfd, const char *name, struct keyset *ks, char *why, size_t why_size);

/* The same for the members sel selects; directories that hold none are
 * left out. */
int keytree_read_sel(int kfd, const char *name, const struct keytree_select *sel,
		     struct keyset *ks, char *why, size_t why_size);

/* ks->top from the directory kfd itself: mode (& KEYSET_MODE_MASK),
 * owner and owner names. A live keyset's path, so that a restore onto a
 * host without it makes it as it was. */
int keytree_read_top(int kfd, struct keyset *ks);

/* A cheap version stamp of the tree (sel optional): changes whenever a
 * member is added, removed, replaced or changed (names, inodes, sizes,
 * modes, mtimes and ctimes; no contents read). why as for keytree_walk(). */
int keytree_stamp(int kfd, const struct keytree_select *sel, uint64_t *stamp, char *why,
		  size_t why_size);

/* keytree_read() and the keytree_stamp() of the tree as read, in one
 * walk: each member's stamp is of the stat its read checked the opened
 * file against, so a member changed while read has content newer than
 * the stamp says, and the next stamp differs, as when the stamp walk
 * comes first. */
int keytree_read_stamped(int kfd, const char *name, struct keyset *ks, uint64_t *stamp);

/* keytree_stamp() of the tree at dfd/dir (no selection), when its top
 * directory is known to hold exactly the regular files files (names
 * each ended by a NUL, the list by an empty name) and nothing else:
 * each is stat'ed by its path, the directory is not listed. -EAGAIN
 * when one is no longer a regular file or fails a check: the caller
 * walks the tree, which says why. */
int keytree_stamp_files(int dfd, const char *dir, const char *files, uint64_t *stamp);

/* Writes ks into the empty directory dfd: directories with their modes
 * (set once their contents are written), files through a temporary name
 * (write, owner, mode, xattrs, times, fsync, rename), symlinks through
 * a temporary name too; every directory fsynced. A security.capability
 * xattr is never written. Owners are set when
 * recorded; a daemon that is not root refuses (-EPERM) an owner it
 * cannot give, before writing anything. A security.* xattr the kernel
 * refuses (no such LSM, not permitted) is left out; any other failure
 * fails the write, leaving the caller to remove dfd's contents. */
int keytree_write(int dfd, const struct keyset *ks);

/* dfd takes ks->top's owner and mode, when recorded; fsynced. */
int keytree_top_finish(int dfd, const struct keyset *ks);

/* The directories of ks an install has opened: the first open of each
 * checks that only root, this process or the directory's recorded owner
 * can change it (no group or world write bit without the sticky bit)
 * and keeps its device and inode; every later open through it must meet
 * the same directory, or fails with -ESTALE. So a directory swapped for
 * a link or another directory during an install is never written
 * through. -EACCES with why set for an unsafe directory. */
struct keytree_pin {
	dev_t dev;
	ino_t ino;	/* 0: not opened yet */
	uid_t uid;
};

struct keytree_pins {
	const struct keyset *ks;
	struct keytree_pin *pin;	/* one per member of ks */
	char why[KEYSET_PATH_MAX * 2 + 160];
};

int keytree_pins_init(struct keytree_pins *p, const struct keyset *ks);
void keytree_pins_free(struct keytree_pins *p);
/* Every pinned directory on the way to m must be one only root, this
 * process or m's recorded owner can change: else -EACCES, why set. */
int keytree_pins_check_way(struct keytree_pins *p, const struct keyset_member *m);

/* Is the directory dfd, and every directory above it up to /, one only
 * root, this process (or, when every member of ks has the same recorded
 * owner, that owner) can change? -EACCES with why naming where (the
 * path dfd was opened by) otherwise. */
int keytree_check_above(int dfd, const struct keyset *ks, const char *where, char *why,
			size_t size);

/* Installing in place, a member at a time (install.h); pins may be
 * NULL (keyfs' own fresh directories). A file or link is written under
 * a temporary name in its directory (".NAME.keyfs-new", which walks
 * skip) with owner, mode, xattrs and time, fsynced; commit renames it
 * over NAME; drop removes it. keytree_dir_make() makes a missing
 * directory 0700 with owner and xattrs (*made), or opens the one there
 * (-ENOTDIR if it is not a directory), pinning it either way;
 * keytree_dir_finish() gives it its mode and time and fsyncs it, once
 * its members are in. */
int keytree_member_write_tmp(int dfd, struct keytree_pins *pins, const struct keyset_member *m);
int keytree_member_commit(int dfd, struct keytree_pins *pins, const struct keyset_member *m);
void keytree_member_drop_tmp(int dfd, struct keytree_pins *pins, const struct keyset_member *m);
int keytree_dir_make(int dfd, struct keytree_pins *pins, const struct keyset_member *m,
		     bool *made);
int keytree_dir_finish(int dfd, struct keytree_pins *pins, const struct keyset_member *m);
/* Is name such a temporary? */
bool keytree_is_tmp(const char *name);
/* Opens the directory a member path lives in, one component at a time,
 * each with O_NOFOLLOW and checked against pins (optional); *base is
 * the member's own name in it. */
int keytree_open_parent(int dfd, struct keytree_pins *pins, const char *path, const char **base);

/* Can this process give every recorded owner of ks? 0 or -EPERM. */
int keytree_owner_check(const struct keyset *ks);

/* Removes dfd/path and everything below it, without following links. */
void keytree_remove(int dfd, const char *path);

#endif
