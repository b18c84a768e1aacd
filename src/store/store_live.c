/* Live keysets over the keystore's backend (store_live.h). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "keyfs/dirwalk.h"
#include "keyfs/glob.h"
#include "keyfs/hook.h"
#include "keyfs/keytree.h"
#include "keyfs/log.h"
#include "keyfs/replace.h"
#include "keyfs/store_live.h"

#include "install.h"
#include "layer.h"
#include "live_path.h"
#include "store_live_priv.h"
#include "store_policy.h"
#include "versions.h"

/* Below STATE_VERSIONS/<keyset>/: "N KEPT\n" while version N is being
 * installed (versions_list() skips names that are not numbers). */
#define JOURNAL "installing"

static bool want(const char *path, bool dir, void *arg)
{
	const struct config_keyset *c = arg;

	if (*c->exclude && glob_list_match(c->exclude, path, false))
		return false;
	return glob_list_match(c->include, path, dir);
}

static struct live *find_live(struct live_store *ls, const char *name)
{
	size_t i;

	for (i = 0; i < ls->n; i++) {
		if (!strcmp(ls->live[i].cfg.name, name))
			return &ls->live[i];
	}
	return NULL;
}

static int open_path(const struct live *l)
{
	int fd = dirwalk_openat(AT_FDCWD, l->cfg.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

static int live_read(struct live_store *ls, struct live *l, struct keyset *ks, char *why,
		     size_t size)
{
	char first[sizeof(l->left_out)];
	size_t n;
	int fd, ret;

	fd = open_path(l);
	if (fd < 0) {
		if (why)
			snprintf(why, size, "path %s: %s", l->cfg.path, strerror(-fd));
		return fd;
	}
	ret = keytree_read_sel(fd, l->cfg.name, &l->sel, ks, why, size);
	if (ret == 0)
		ret = keytree_read_top(fd, ks);
	close(fd);
	if (ret)
		return ret;
	n = store_policy_apply(ks, &l->pol, "backup", first, sizeof(first));
	pthread_mutex_lock(&ls->note_lock);
	memcpy(l->left_out, first, sizeof(first));
	l->nleft_out = n;
	pthread_mutex_unlock(&ls->note_lock);
	return 0;
}

/* Does cur hold any file or link? */
static bool has_files(const struct keyset *cur)
{
	size_t i;

	for (i = 0; i < cur->n; i++) {
		if (cur->m[i].type != KEYSET_DIR)
			return true;
	}
	return false;
}

/* What a backup of l holds: an include that matches no file (a typo) or
 * a missing path is an error of the keyset, never an empty backup. */
static int live_backup(struct live_store *ls, struct live *l, struct keyset *ks, char *why,
		       size_t size)
{
	int ret = live_read(ls, l, ks, why, size);

	if (ret == 0 && !has_files(ks)) {
		if (why)
			snprintf(why, size, "include matches no file below %s", l->cfg.path);
		keyset_clear(ks);
		ret = -ENODATA;
	}
	/* ENOENT would say the keyset is gone; a configured one never is */
	return ret == -ENOENT ? -ENODATA : ret;
}

/* The restore rules of a keyset of either kind. */
struct store_policy store_live_policy(const struct live_store *ls, const char *name)
{
	const struct config_keyset *c = config_keyset(ls->cfg, name);
	struct store_policy p = { name, "", "" };

	if (c) {
		p.executable = c->executable;
		p.xattrs = c->xattrs;
	}
	return p;
}

static struct layer_keysets live_keysets(const struct live_store *ls)
{
	return (struct layer_keysets){ ls->live, sizeof(*ls->live), ls->n };
}

static int ls_list(void *priv, char ***names, size_t *n)
{
	struct live_store *ls = priv;
	struct layer_keysets l = live_keysets(ls);

	return layer_list(&ls->inner, &l, names, n);
}

static int ls_stamp(void *priv, const char *name, uint64_t *stamp)
{
	struct live_store *ls = priv;
	struct live *l = find_live(ls, name);
	struct stat st;
	int fd, ret;

	if (!l)
		return ls->inner.ops->stamp(ls->inner.priv, name, stamp);
	*stamp = 0;
	fd = open_path(l);
	if (fd < 0)
		return fd == -ENOENT ? -ENODATA : fd; /* a missing path: see live_backup() */
	ret = keytree_stamp(fd, &l->sel, stamp, NULL, 0);
	/* the path's own mode and owner are in the backup too */
	if (ret == 0 && fstat(fd, &st) == 0)
		*stamp ^= ((uint64_t)st.st_mode << 48) ^ ((uint64_t)st.st_uid << 24) ^ st.st_gid;
	close(fd);
	return ret;
}

static int ls_why(void *priv, const char *name, char *why, size_t size)
{
	struct live_store *ls = priv;
	struct live *l = find_live(ls, name);
	struct keyset ks = { 0 };
	int ret;

	if (!l)
		return ls->inner.ops->why(ls->inner.priv, name, why, size);
	*why = '\0';
	ret = live_backup(ls, l, &ks, why, size);
	keyset_clear(&ks);
	return ret;
}

/* A keyset of the store's own, under its backup rules; stamped if
 * stamp (store_read_stamped()). */
static int inner_read(struct live_store *ls, const char *name, struct keyset *ks,
		      uint64_t *stamp)
{
	struct store_policy p;
	int ret;

	ret = stamp ? store_read_stamped(&ls->inner, name, ks, stamp) :
	      ls->inner.ops->read(ls->inner.priv, name, ks);
	if (ret == 0) {
		p = store_live_policy(ls, name);
		store_policy_apply(ks, &p, "backup", NULL, 0);
	}
	return ret;
}

static int ls_read(void *priv, const char *name, struct keyset *ks)
{
	struct live_store *ls = priv;
	struct live *l = find_live(ls, name);

	return l ? live_backup(ls, l, ks, NULL, 0) : inner_read(ls, name, ks, NULL);
}

static int ls_read_stamped(void *priv, const char *name, struct keyset *ks, uint64_t *stamp)
{
	struct live_store *ls = priv;

	return find_live(ls, name) ? -EOPNOTSUPP : inner_read(ls, name, ks, stamp);
}

/* Every member of an archive must be one the keyset's patterns select,
 * within its file limit (bundle_unpack() already refused absolute
 * paths, "..", devices and links leaving the keyset). */
static int check_archive(const struct live *l, const struct keyset *ks)
{
	uint64_t max = l->cfg.max_file_size ? l->cfg.max_file_size : KEYSET_FILE_MAX;
	size_t i;

	for (i = 0; i < ks->n; i++) {
		const struct keyset_member *m = &ks->m[i];

		if (!want(m->name, m->type == KEYSET_DIR, (void *)&l->cfg) ||
		    (m->type == KEYSET_LINK && !keyset_link_valid(m->name, m->link))) {
			log_msg(LOG_WARNING, "keyset %s: member \"%s\" is not one of the keyset's "
				"files (include/exclude): refused", l->cfg.name, m->name);
			return -EINVAL;
		}
		if (m->len > max)
			return -EFBIG;
	}
	return keytree_owner_check(ks);
}

static int journal_path(const char *name, char buf[static PATH_MAX])
{
	return snprintf(buf, PATH_MAX, STATE_VERSIONS "/%s/" JOURNAL, name) >= PATH_MAX ?
	       -ENAMETOOLONG : 0;
}

static int journal_write(struct live_store *ls, const char *name, unsigned n, unsigned kept)
{
	char path[PATH_MAX], text[32];
	struct iovec iov = { text, 0 };

	iov.iov_len = (size_t)snprintf(text, sizeof(text), "%u %u\n", n, kept);
	return journal_path(name, path) ? -ENAMETOOLONG : replace_file(ls->sfd, path, &iov, 1);
}

static void journal_remove(struct live_store *ls, const char *name)
{
	char path[PATH_MAX];

	if (journal_path(name, path))
		return;
	unlinkat(ls->sfd, path, 0);
	replace_dir_fsync(ls->sfd, STATE_VERSIONS);
}

/* install_keyset(), saying why in the log when it refuses. */
static int install(const struct live *l, int fd, const struct keyset *ks, const struct keyset *cur)
{
	char why[KEYSET_PATH_MAX * 2 + 256];
	int ret;

	ret = install_keyset(fd, l->cfg.path, ks, cur, why, sizeof(why));
	if (ret && *why)
		log_msg(LOG_ERR, "keyset %s: not restored into %s: %s", l->cfg.name, l->cfg.path, why);
	return ret;
}

/* Called without the store's lock held; hook_run()'s result. */
static int run_hook(struct live_store *ls, struct live *l)
{
	char desc[HOOK_OUTPUT_MAX * 2 + 128];
	struct hook_result res;
	int ret;

	if (!*l->cfg.on_activate)
		return 0;
	pthread_mutex_lock(&l->hook_lock);
	ret = hook_run(l->cfg.on_activate, HOOK_TIMEOUT, &res);
	hook_describe(&res, desc, sizeof(desc));
	log_msg(ret ? LOG_WARNING : LOG_NOTICE, "keyset %s: on_activate %s", l->cfg.name, desc);
	pthread_mutex_lock(&ls->lock);
	l->hook = res;
	pthread_mutex_unlock(&ls->lock);
	pthread_mutex_unlock(&l->hook_lock);
	return ret;
}

/* Installs version n (ks) over cur, journalled; then it is no version
 * any more. The path is made if missing (*made: how many directories).
 * The caller runs on_activate once it let go of the lock. */
static int install_version(struct live_store *ls, struct live *l, unsigned n,
			   const struct keyset *ks, const struct keyset *cur, unsigned kept,
			   unsigned *made)
{
	char why[KEYSET_PATH_MAX * 2 + 256];
	int fd, ret;

	fd = live_path_make(l->cfg.name, l->cfg.path, ks, made, why, sizeof(why));
	if (fd < 0 && *why)
		log_msg(LOG_ERR, "keyset %s: not restored into %s: %s", l->cfg.name, l->cfg.path, why);
	if (fd < 0)
		return fd;
	ret = journal_write(ls, l->cfg.name, n, kept);
	if (ret == 0)
		ret = install(l, fd, ks, cur);
	close(fd);
	journal_remove(ls, l->cfg.name);
	if (ret)
		return ret;
	versions_remove(ls->sfd, l->cfg.name, n);
	return 0;
}

static int put_locked(struct live_store *ls, struct live *l, const struct keyset *ks,
		      struct store_put *res)
{
	struct keyset cur = { 0 };
	int ret;

	ret = check_archive(l, ks);
	if (ret == 0) {
		ret = live_read(ls, l, &cur, NULL, 0);
		if (ret == -ENOENT)
			ret = 0; /* no path yet: a rebuilt host, made by the install */
	}
	if (ret)
		goto out;
	if (keyset_equal(&cur, ks)) {
		res->outcome = STORE_UNCHANGED;
		res->version = 0;
		goto out;
	}
	/* Through a version even when nothing is there, so that a crash in
	 * the middle is finished from it at the next start. */
	ret = versions_put(ls->sfd, ks, res);
	if (ret || has_files(&cur) || res->inactive)
		goto out;
	ret = install_version(ls, l, res->version, ks, &cur, 0, &res->made);
	res->outcome = STORE_CREATED;
	res->version = 0;
out:
	keyset_clear(&cur);
	return ret;
}

static int ls_put(void *priv, const struct keyset *ks, struct store_put *res)
{
	struct live_store *ls = priv;
	struct live *l = find_live(ls, ks->name);
	int ret;

	if (!l)
		return store_put_on(&ls->inner, ks, res);
	pthread_mutex_lock(&ls->lock);
	ret = put_locked(ls, l, ks, res);
	pthread_mutex_unlock(&ls->lock);
	if (ret == 0 && res->outcome == STORE_CREATED)
		run_hook(ls, l);
	return ret;
}

static int ls_versions(void *priv, const char *name, unsigned **v, size_t *n)
{
	struct live_store *ls = priv;

	if (!find_live(ls, name))
		return store_versions(&ls->inner, name, v, n);
	return versions_list(ls->sfd, name, v, n);
}

static int activate_locked(struct live_store *ls, struct live *l, unsigned version,
			   unsigned *kept)
{
	struct keyset ks = { 0 }, cur = { 0 };
	struct store_put kr = { STORE_UNCHANGED, 0, 0, false, NULL };
	char why[KEYSET_PATH_MAX + 256] = "";
	unsigned made;
	int ret;

	ret = versions_read(ls->sfd, l->cfg.name, version, &ks);
	if (ret == 0) {
		/* a version kept before these rules, or made by hand */
		store_policy_apply(&ks, &l->pol, "restore", NULL, 0);
		ret = check_archive(l, &ks);
	}
	if (ret == 0) {
		ret = live_read(ls, l, &cur, why, sizeof(why));
		if (ret == -ENOENT)
			ret = 0; /* no path yet: made by the install */
		/* what is there now cannot be read, nor so be kept: say why
		 * (a directory swapped for a link, a member that is no key) */
		if (ret && *why)
			log_msg(LOG_ERR, "keyset %s: version %u not installed: the files in %s: %s",
				l->cfg.name, version, l->cfg.path, why);
	}
	if (ret)
		goto out;
	if (keyset_equal(&cur, &ks)) {
		*kept = version; /* installed already: it stays a version */
		goto out;
	}
	/* The replaced files are kept before anything is replaced. */
	if (has_files(&cur))
		ret = versions_put(ls->sfd, &cur, &kr);
	if (ret == 0)
		ret = install_version(ls, l, version, &ks, &cur, kr.version, &made);
	if (ret == 0)
		*kept = kr.version;
out:
	keyset_clear(&ks);
	keyset_clear(&cur);
	return ret;
}

static int ls_activate(void *priv, const char *name, unsigned version, unsigned *kept)
{
	struct live_store *ls = priv;
	struct live *l = find_live(ls, name);
	int ret;

	if (!l)
		return store_activate(&ls->inner, name, version, kept);
	pthread_mutex_lock(&ls->lock);
	ret = activate_locked(ls, l, version, kept);
	pthread_mutex_unlock(&ls->lock);
	/* the keys are in either way; a failed hook fails the activation */
	if (ret == 0 && *kept != version)
		ret = run_hook(ls, l) ? -ECHILD : 0;
	return ret;
}

/* The store's batch: a listing or a status stamps every keyset, and the
 * store watcher below asks the kernel once for all of them. Live
 * keysets are walked where they live each time. */
static void ls_batch(void *priv, bool on)
{
	struct live_store *ls = priv;

	store_batch(&ls->inner, on);
}

static void ls_destroy(void *priv)
{
	struct live_store *ls = priv;
	size_t i;

	store_close(&ls->inner);
	for (i = 0; i < ls->n; i++)
		pthread_mutex_destroy(&ls->live[i].hook_lock);
	pthread_mutex_destroy(&ls->lock);
	pthread_mutex_destroy(&ls->note_lock);
	free(ls->live);
	free(ls);
}

static const struct store_ops live_ops = {
	.list = ls_list,
	.stamp = ls_stamp,
	.why = ls_why,
	.read = ls_read,
	.read_stamped = ls_read_stamped,
	.put = ls_put,
	.versions = ls_versions,
	.activate = ls_activate,
	.batch = ls_batch,
	.destroy = ls_destroy,
};

bool store_live_is_live(const struct store *s, const char *name)
{
	struct live_store *ls = store_live_of(s);

	return ls && find_live(ls, name);
}

struct live_store *store_live_of(const struct store *s)
{
	return s->ops == &live_ops ? s->priv : NULL;
}

/* The version an install in progress was installing (0: none). */
static unsigned journal_read(struct live_store *ls, const char *name)
{
	char path[PATH_MAX], text[32];
	unsigned n = 0, kept;
	ssize_t len;
	int fd;

	if (journal_path(name, path))
		return 0;
	fd = openat(ls->sfd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return 0;
	len = read(fd, text, sizeof(text) - 1);
	close(fd);
	text[len > 0 ? len : 0] = '\0';
	return sscanf(text, "%u %u", &n, &kept) == 2 ? n : 0;
}

/* Finishes an install a crash interrupted: from its version, again from
 * the start (every step may be repeated), over whatever is there now. */
static int finish_install(struct live_store *ls, struct live *l, int fd, unsigned n)
{
	struct keyset ks = { 0 }, cur = { 0 };
	int ret;

	ret = versions_read(ls->sfd, l->cfg.name, n, &ks);
	if (ret == 0) {
		bool have = live_read(ls, l, &cur, NULL, 0) == 0;

		ret = install(l, fd, &ks, have ? &cur : NULL);
	}
	keyset_clear(&ks);
	keyset_clear(&cur);
	if (ret) {
		log_msg(LOG_ERR, "keyset %s: could not finish installing version %u, interrupted "
			"earlier: %s", l->cfg.name, n, strerror(-ret));
		return ret;
	}
	log_msg(LOG_NOTICE, "keyset %s: finished installing version %u, interrupted earlier",
		l->cfg.name, n);
	journal_remove(ls, l->cfg.name);
	versions_remove(ls->sfd, l->cfg.name, n);
	run_hook(ls, l);
	return 0;
}

static void recover(struct live_store *ls, struct live *l)
{
	unsigned n = journal_read(ls, l->cfg.name);
	int fd;

	fd = open_path(l);
	if (fd < 0) {
		log_msg(LOG_WARNING, "keyset %s: path %s: %s", l->cfg.name, l->cfg.path,
			strerror(-fd));
		return;
	}
	if (!n || finish_install(ls, l, fd, n))
		install_clean(fd, &l->sel);
	close(fd);
}

static void live_init(struct live *l, const struct config_keyset *c)
{
	l->cfg = *c;
	l->sel.want = want;
	l->sel.arg = &l->cfg;
	l->sel.file_max = c->max_file_size;
	l->pol.name = l->cfg.name;
	l->pol.executable = l->cfg.executable;
	l->pol.xattrs = l->cfg.xattrs;
	pthread_mutex_init(&l->hook_lock, NULL);
}

int store_live_open(struct store *s, const struct config *cfg, const struct state *state)
{
	struct live_store *ls;
	size_t i;
	int ret;

	ls = calloc(1, sizeof(*ls));
	if (!ls || !(ls->live = calloc(cfg->nkeysets + 1, sizeof(*ls->live)))) {
		free(ls);
		return -ENOMEM;
	}
	for (i = 0; i < cfg->nkeysets; i++) {
		if (*cfg->keysets[i].path)
			live_init(&ls->live[ls->n++], &cfg->keysets[i]);
	}
	ls->inner = *s;
	ls->sfd = state->fd;
	ls->cfg = cfg;
	ret = 0;
	if (ls->n) {
		struct layer_keysets l = live_keysets(ls);

		ret = layer_check_clash(&ls->inner, &l, "a path");
	}
	if (ret) {
		free(ls->live);
		free(ls);
		return ret;
	}
	pthread_mutex_init(&ls->lock, NULL);
	pthread_mutex_init(&ls->note_lock, NULL);
	for (i = 0; i < ls->n; i++)
		recover(ls, &ls->live[i]);
	s->ops = &live_ops;
	s->priv = ls;
	return 0;
}
