/* Walking a key tree on disk and reading it into a keyset (keytree.h):
 * every check that decides whether a directory is a keyset at all. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "keyfs/dirwalk.h"
#include "keyfs/keytree.h"
#include "keyfs/log.h"
#include "keyfs/secmem.h"

static int refuse(struct keytree_walk *w, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int refuse(struct keytree_walk *w, int err, const char *fmt, ...)
{
	va_list ap;

	if (w->why && w->why[0] == '\0') {
		va_start(ap, fmt);
		vsnprintf(w->why, w->why_size, fmt, ap);
		va_end(ap);
	}
	return err;
}

/* What a walk says of a file that is not a key. */
static const char *not_a_key(mode_t mode)
{
	if (S_ISSOCK(mode))
		return "a socket";
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISCHR(mode) || S_ISBLK(mode))
		return "a device";
	return "not a file, directory or symlink";
}

static int check_link(struct keytree_walk *w, const struct keytree_entry *e, char *target)
{
	ssize_t n;

	if (e->st->st_size > KEYSET_LINK_MAX)
		return refuse(w, -EINVAL, "member \"%s\": a symlink target over %d bytes", e->path,
			      KEYSET_LINK_MAX);
	n = readlinkat(e->dirfd, e->name, target, KEYSET_LINK_MAX + 1);
	if (n < 0)
		return errno == EINVAL ? -EAGAIN : -errno; /* replaced since the stat */
	if (n > KEYSET_LINK_MAX || n != e->st->st_size)
		return -EAGAIN;
	target[n] = '\0';
	/* Stored as is and recreated as is: it must not point out. */
	if (!keyset_link_valid(e->path, target))
		return refuse(w, -EINVAL, "member \"%s\": a symlink leaving the keyset", e->path);
	return 0;
}

static int check_file(struct keytree_walk *w, const struct keytree_entry *e)
{
	uint64_t max = w->sel && w->sel->file_max ? w->sel->file_max : KEYSET_FILE_MAX;

	if (e->st->st_nlink != 1)
		return refuse(w, -EINVAL, "member \"%s\": hard-linked (a key file has one link)",
			      e->path);
	if ((uint64_t)e->st->st_size > max)
		return refuse(w, -EFBIG, "member \"%s\": larger than %llu bytes", e->path,
			      (unsigned long long)max);
	w->bytes += (uint64_t)e->st->st_size;
	if (w->bytes > KEYSET_TOTAL_MAX)
		return refuse(w, -EFBIG, "key files larger than %d MiB in all",
			      KEYSET_TOTAL_MAX >> 20);
	return 0;
}

/* Only well-named regular files, directories and symlinks inside the
 * keyset are keys, within bounds that keep sealing cheap: anything else
 * would be silently missing from a backup or exhaust the daemon, so it
 * fails the keyset, and says why. */
static int check_entry(struct keytree_walk *w, const struct keytree_entry *e, char *target)
{
	mode_t mode = e->st->st_mode;

	if (!keyset_member_name_valid(e->path))
		return refuse(w, -EINVAL, "member \"%s\": a name outside [A-Za-z0-9._-]{1,64}, "
			      "or deeper than %d directories", e->path, KEYSET_DEPTH_MAX);
	if (!S_ISREG(mode) && !S_ISDIR(mode) && !S_ISLNK(mode))
		return refuse(w, -EINVAL, "member \"%s\": %s, not a key", e->path, not_a_key(mode));
	if (++w->members > KEYSET_MEMBERS_MAX)
		return refuse(w, -E2BIG, "more than %d members", KEYSET_MEMBERS_MAX);
	if (S_ISLNK(mode))
		return check_link(w, e, target);
	return S_ISREG(mode) ? check_file(w, e) : 0;
}

static int walk_dir(int dfd, const char *sub, struct keytree_walk *w);

static int walk_one(int dirfd, const char *name, const struct stat *st, void *arg)
{
	struct keytree_walk *w = arg;
	struct keytree_entry e = { dirfd, name, w->path, st, NULL };
	char target[KEYSET_LINK_MAX + 2];
	size_t len = strlen(w->path);
	int ret;

	if (++w->entries > KEYSET_ENTRIES_MAX)
		return refuse(w, -E2BIG, "more than %d directory entries (dot files included)",
			      KEYSET_ENTRIES_MAX);
	if (name[0] == '.')
		return 0; /* editors' and keyfs' temporary files are not keys */
	if (snprintf(w->path + len, sizeof(w->path) - len, "%s%s", len ? "/" : "", name) >=
	    (int)(sizeof(w->path) - len))
		return refuse(w, -EINVAL, "member \"%.64s/%.64s\": a path over %d bytes", w->path,
			      name, KEYSET_PATH_MAX);
	if (w->sel && !w->sel->want(w->path, S_ISDIR(st->st_mode), w->sel->arg)) {
		w->path[len] = '\0';
		return 0; /* not a member: none of the keyset's business */
	}
	ret = check_entry(w, &e, target);
	if (ret == 0 && S_ISLNK(st->st_mode))
		e.link = target;
	if (ret == 0)
		ret = w->fn(&e, w->arg);
	if (ret == 0 && S_ISDIR(st->st_mode))
		ret = walk_dir(dirfd, name, w);
	w->path[len] = '\0';
	return ret;
}

/* dfd/sub, or dfd itself if sub is NULL. */
static int walk_dir(int dfd, const char *sub, struct keytree_walk *w)
{
	int ret;

	/* keyset_member_name_valid() bounds the depth before we get here. */
	w->depth++;
	ret = sub ? dirwalk_each(dfd, sub, walk_one, w) : dirwalk_each_fd(dfd, walk_one, w);
	w->depth--;
	/* A directory swapped for a link or file since its stat. */
	return ret == -ELOOP || ret == -ENOTDIR ? -EAGAIN : ret;
}

int keytree_walk(int kfd, struct keytree_walk *w)
{
	w->entries = w->members = 0;
	w->bytes = 0;
	w->depth = 0;
	w->path[0] = '\0';
	if (w->why && w->why_size)
		w->why[0] = '\0';
	return walk_dir(kfd, NULL, w);
}

/* ---- stamps ---- */

static int stamp_member(const struct keytree_entry *e, void *arg)
{
	const struct stat *st = e->st;
	uint64_t *acc = arg;
	uint8_t h[8];
	crypto_generichash_state s;

	/* Order-independent: XOR of per-member hashes. The ctime moves on
	 * chown, chmod and xattr changes too. */
	crypto_generichash_init(&s, NULL, 0, sizeof(h));
	crypto_generichash_update(&s, (const uint8_t *)e->path, strlen(e->path) + 1);
	crypto_generichash_update(&s, (const uint8_t *)&st->st_ino, sizeof(st->st_ino));
	crypto_generichash_update(&s, (const uint8_t *)&st->st_size, sizeof(st->st_size));
	crypto_generichash_update(&s, (const uint8_t *)&st->st_mode, sizeof(st->st_mode));
	crypto_generichash_update(&s, (const uint8_t *)&st->st_mtim, sizeof(st->st_mtim));
	crypto_generichash_update(&s, (const uint8_t *)&st->st_ctim, sizeof(st->st_ctim));
	crypto_generichash_final(&s, h, sizeof(h));
	for (size_t i = 0; i < sizeof(h); i++)
		acc[0] ^= (uint64_t)h[i] << (8 * i);
	acc[1]++;
	return 0;
}

/* The stamp of what stamp_member() summed up. */
static uint64_t stamp_of(const uint64_t acc[2])
{
	return acc[0] ^ (acc[1] * 0x9e3779b97f4a7c15ULL);
}

/* Reading: state of one keytree_read() pass. */
struct reader {
	struct keyset *ks;
	struct keytree_walk *w;
	uint64_t *acc;		/* optional: stamp_member()'s sums */
	uint8_t *xbuf;		/* one xattr value at a time */
	/* The last names looked up: members mostly share one owner. */
	uid_t uid;
	gid_t gid;
	char user[KEYSET_OWNER_MAX + 1];
	char group[KEYSET_OWNER_MAX + 1];
	bool have_user, have_group;
};

/* Owner names, looked up again after NAME_TTL seconds: getpwuid_r()
 * opens and parses /etc/passwd (or asks NSS) on every call, which cost
 * a store of small keysets more than sealing them. A renamed user shows
 * in the next seal after that. */
#define NAME_SLOTS 8
#define NAME_TTL 10

struct name_slot {
	bool used;
	unsigned id;
	time_t at;
	char name[KEYSET_OWNER_MAX + 1];
};

static struct name_slot user_slots[NAME_SLOTS], group_slots[NAME_SLOTS];
static pthread_mutex_t names_lock = PTHREAD_MUTEX_INITIALIZER;

static time_t now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec;
}

static bool cached_name(struct name_slot *slots, unsigned id, time_t now, char *name)
{
	bool hit = false;
	int i;

	pthread_mutex_lock(&names_lock);
	for (i = 0; i < NAME_SLOTS && !hit; i++)
		if (slots[i].used && slots[i].id == id && now - slots[i].at < NAME_TTL) {
			strcpy(name, slots[i].name);
			hit = true;
		}
	pthread_mutex_unlock(&names_lock);
	return hit;
}

/* Into the slot of id if there is one, else the oldest. */
static void keep_name(struct name_slot *slots, unsigned id, time_t now, const char *name)
{
	struct name_slot *s = &slots[0];
	int i;

	pthread_mutex_lock(&names_lock);
	for (i = 0; i < NAME_SLOTS; i++) {
		if (slots[i].used && slots[i].id == id) {
			s = &slots[i];
			break;
		}
		if (!slots[i].used || slots[i].at < s->at)
			s = &slots[i];
	}
	*s = (struct name_slot){ true, id, now, "" };
	strcpy(s->name, name);
	pthread_mutex_unlock(&names_lock);
}

/* The name of user (or group) id, "" if it has none or a longer one. */
static void owner_name(bool group, unsigned id, char name[KEYSET_OWNER_MAX + 1])
{
	struct name_slot *slots = group ? group_slots : user_slots;
	time_t now = now_s();
	char buf[4096];
	struct passwd pw, *pwp = NULL;
	struct group gr, *grp = NULL;
	const char *found = NULL;

	if (cached_name(slots, id, now, name))
		return;
	if (group && !getgrgid_r(id, &gr, buf, sizeof(buf), &grp) && grp)
		found = grp->gr_name;
	else if (!group && !getpwuid_r(id, &pw, buf, sizeof(buf), &pwp) && pwp)
		found = pwp->pw_name;
	snprintf(name, KEYSET_OWNER_MAX + 1, "%s",
		 found && strlen(found) <= KEYSET_OWNER_MAX ? found : "");
	keep_name(slots, id, now, name);
}

static void owner_names(struct reader *r, const struct stat *st)
{
	if (!r->have_user || r->uid != st->st_uid) {
		r->uid = st->st_uid;
		r->have_user = true;
		owner_name(false, st->st_uid, r->user);
	}
	if (!r->have_group || r->gid != st->st_gid) {
		r->gid = st->st_gid;
		r->have_group = true;
		owner_name(true, st->st_gid, r->group);
	}
}

static int read_xattr(struct reader *r, int fd, const char *path, const char *name,
		      struct keyset_member *m)
{
	ssize_t n;
	int ret;

	n = fgetxattr(fd, name, r->xbuf, KEYSET_XATTR_SIZE_MAX);
	if (n < 0)
		return errno == ENODATA ? -EAGAIN : -errno;
	ret = keyset_add_xattr(m, name, r->xbuf, (size_t)n);
	if (ret == -E2BIG)
		return refuse(r->w, ret, "member \"%s\": more than %d extended attributes", path,
			      KEYSET_XATTRS_MAX);
	return ret;
}

/* The user.* and security.* xattrs of an open file or directory. */
static int read_xattrs(struct reader *r, int fd, const char *path, struct keyset_member *m)
{
	char names[4096];
	ssize_t n;
	size_t off;
	int ret = 0;

	n = flistxattr(fd, names, sizeof(names));
	if (n < 0 && (errno == ENOTSUP || errno == ENODATA))
		return 0; /* a filesystem without xattrs */
	if (n < 0)
		return errno == ERANGE ?
		       refuse(r->w, -E2BIG, "member \"%s\": too many extended attributes", path) :
		       -errno;
	for (off = 0; ret == 0 && off < (size_t)n; off += strlen(names + off) + 1) {
		if (keyset_xattr_kept(names + off))
			ret = read_xattr(r, fd, path, names + off, m);
	}
	return ret;
}

/* Reads a file's bytes into guarded memory: exactly st_size, or -EAGAIN
 * if it changed while read. */
static int read_data(int fd, const struct stat *st, uint8_t **data)
{
	size_t len = 0, size = (size_t)st->st_size;
	uint8_t *buf;
	ssize_t n = 0;

	*data = NULL;
	if (size == 0)
		return 0;
	buf = secmem_alloc(size + 1);
	if (!buf)
		return -ENOMEM;
	/* Read one byte more than stat said, to notice a file that grew;
	 * once st_size bytes are in, a read that got no more was at the end
	 * (a change after that shows in the next stamp). */
	while (len < size && (n = read(fd, buf + len, size + 1 - len)) > 0)
		len += (size_t)n;
	if (n < 0 || len != size) {
		secmem_free(buf);
		return n < 0 ? -errno : -EAGAIN;
	}
	*data = buf;
	return 0;
}

/* Opens a file or directory the walk saw, checking it is still the same. */
static int open_seen(const struct keytree_entry *e, struct stat *got)
{
	int fd;

	if (S_ISREG(e->st->st_mode)) {
		fd = dirwalk_open_regular(e->dirfd, e->name, e->st, got);
		return fd == -EINVAL ? -EAGAIN : fd; /* it changed since the walk */
	}
	fd = dirwalk_openat(e->dirfd, e->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ELOOP || errno == ENOTDIR || errno == ENOENT ? -EAGAIN : -errno;
	if (fstat(fd, got) || got->st_ino != e->st->st_ino || got->st_dev != e->st->st_dev) {
		close(fd);
		return -EAGAIN;
	}
	return fd;
}

static void entry_meta(struct reader *r, const struct keytree_entry *e, const struct stat *st,
		       struct keyset_meta *meta)
{
	owner_names(r, st);
	meta->type = S_ISDIR(st->st_mode) ? KEYSET_DIR : S_ISLNK(st->st_mode) ? KEYSET_LINK :
		     KEYSET_FILE;
	meta->mode = st->st_mode & 07777;
	meta->mtime = st->st_mtime;
	meta->owned = true;
	meta->uid = st->st_uid;
	meta->gid = st->st_gid;
	meta->user = r->user;
	meta->group = r->group;
	meta->link = e->link;
}

static int read_entry(const struct keytree_entry *e, void *arg)
{
	struct reader *r = arg;
	struct keyset_meta meta;
	struct keyset_member *m;
	uint8_t *data = NULL;
	struct stat got = *e->st;
	int fd = -1, ret = 0;

	/* A link is its target text; files and directories are opened. */
	if (!S_ISLNK(e->st->st_mode)) {
		fd = ret = open_seen(e, &got);
		if (ret < 0)
			goto out;
		ret = S_ISREG(got.st_mode) ? read_data(fd, &got, &data) : 0;
		if (ret < 0)
			goto out;
	}
	entry_meta(r, e, &got, &meta);
	/* never part of a keyset (KEYSET_MODE_MASK): said, not silently lost */
	if (meta.type == KEYSET_FILE && (meta.mode & 07000))
		log_msg(LOG_WARNING, "keyset %s: member \"%s\": setuid, setgid or sticky bit left "
			"out of the backup", r->ks->name, e->path);
	ret = keyset_add_member(r->ks, e->path, &meta, data,
				S_ISREG(got.st_mode) ? (size_t)got.st_size : 0, &m);
	if (ret == 0 && fd >= 0)
		ret = read_xattrs(r, fd, e->path, m);
	if (ret == 0 && r->acc)
		ret = stamp_member(e, r->acc);
out:
	secmem_free(data);
	if (fd >= 0)
		close(fd);
	return ret;
}

/* keytree_read_sel(), and the stamp of the walk that read if acc. */
static int read_tree(int kfd, const char *name, const struct keytree_select *sel,
		     struct keyset *ks, char *why, size_t why_size, uint64_t acc[2])
{
	struct keytree_walk w = { .fn = read_entry, .sel = sel, .why = why, .why_size = why_size };
	struct reader r = { .ks = ks, .w = &w, .acc = acc };
	int ret, tries = 0;

	r.xbuf = malloc(KEYSET_XATTR_SIZE_MAX);
	if (!r.xbuf)
		return -ENOMEM;
	w.arg = &r;
	do {
		keyset_clear(ks);
		snprintf(ks->name, sizeof(ks->name), "%s", name);
		if (acc)
			acc[0] = acc[1] = 0;
		ret = keytree_walk(kfd, &w);
	} while (ret == -EAGAIN && ++tries < 5);
	free(r.xbuf);
	if (ret == 0) {
		keyset_sort(ks);
		if (sel)
			keyset_prune_dirs(ks);
		ret = keyset_check_tree_why(ks, why, why_size);
	}
	if (ret)
		keyset_clear(ks);
	return ret;
}

int keytree_read(int kfd, const char *name, struct keyset *ks, char *why, size_t why_size)
{
	return read_tree(kfd, name, NULL, ks, why, why_size, NULL);
}

int keytree_read_sel(int kfd, const char *name, const struct keytree_select *sel,
		     struct keyset *ks, char *why, size_t why_size)
{
	return read_tree(kfd, name, sel, ks, why, why_size, NULL);
}

int keytree_read_stamped(int kfd, const char *name, struct keyset *ks, uint64_t *stamp)
{
	uint64_t acc[2];
	int ret;

	ret = read_tree(kfd, name, NULL, ks, NULL, 0, acc);
	if (ret == 0)
		*stamp = stamp_of(acc);
	return ret;
}

int keytree_read_top(int kfd, struct keyset *ks)
{
	struct keyset_member *t = &ks->top;
	struct stat st;

	if (fstat(kfd, &st))
		return -errno;
	memset(t, 0, sizeof(*t));
	t->type = KEYSET_DIR;
	t->mode = st.st_mode & KEYSET_MODE_MASK;
	t->owned = true;
	t->uid = st.st_uid;
	t->gid = st.st_gid;
	owner_name(false, st.st_uid, t->user);
	owner_name(true, st.st_gid, t->group);
	return 0;
}

int keytree_stamp(int kfd, const struct keytree_select *sel, uint64_t *stamp, char *why,
		  size_t why_size)
{
	uint64_t acc[2] = { 0, 0 };
	struct keytree_walk w = { .fn = stamp_member, .arg = acc, .sel = sel, .why = why,
				  .why_size = why_size };
	int ret;

	ret = keytree_walk(kfd, &w);
	*stamp = stamp_of(acc);
	return ret;
}

int keytree_stamp_files(int dfd, const char *dir, const char *files, uint64_t *stamp)
{
	uint64_t acc[2] = { 0, 0 };
	struct keytree_walk w = { 0 };
	char path[PATH_MAX];
	const char *f;
	struct stat st;

	for (f = files; *f; f += strlen(f) + 1) {
		struct keytree_entry e = { -1, f, f, &st, NULL };

		if (snprintf(path, sizeof(path), "%s/%s", dir, f) >= (int)sizeof(path) ||
		    fstatat(dfd, path, &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode))
			return -EAGAIN;
		w.entries++;
		if (check_entry(&w, &e, NULL) || stamp_member(&e, acc))
			return -EAGAIN;
	}
	*stamp = stamp_of(acc);
	return 0;
}
