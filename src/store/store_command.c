/* Command keysets over the keystore's backend (store_command.h).
 *
 * The last good members live in STATE/commands/NAME/, written by keyfs
 * (0600, its own), so reading and stamping a command keyset is reading
 * a small tree. STATE/commands/NAME.failed holds the words of a run that
 * failed, so that a restart does not serve the members from before as
 * if the failure had not happened. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "keyfs/log.h"
#include "keyfs/store_command.h"

#include "command_run.h"
#include "layer.h"
#include "store_command_priv.h"
#include "store_live_priv.h"
#include "versions.h"

static struct cmd_keyset *find_cmd(struct command_store *cs, const char *name)
{
	size_t i;

	for (i = 0; i < cs->n; i++) {
		if (!strcmp(cs->k[i].cfg.name, name))
			return &cs->k[i];
	}
	return NULL;
}

/* ------------------------------------------------------------ store operations */

static struct layer_keysets command_keysets(const struct command_store *cs)
{
	return (struct layer_keysets){ cs->k, sizeof(*cs->k), cs->n };
}

static int cs_list(void *priv, char ***names, size_t *n)
{
	struct command_store *cs = priv;
	struct layer_keysets l = command_keysets(cs);

	return layer_list(&cs->inner, &l, names, n);
}

static int cs_stamp(void *priv, const char *name, uint64_t *stamp)
{
	struct command_store *cs = priv;
	struct cmd_keyset *k = find_cmd(cs, name);
	int fd, ret;

	if (!k)
		return cs->inner.ops->stamp(cs->inner.priv, name, stamp);
	*stamp = 0;
	fd = cmd_open_served(cs, k);
	if (fd < 0)
		return fd;
	ret = keytree_stamp(fd, NULL, stamp, NULL, 0);
	close(fd);
	return ret;
}

static int cs_why(void *priv, const char *name, char *why, size_t size)
{
	struct command_store *cs = priv;
	struct cmd_keyset *k = find_cmd(cs, name);
	int ret;

	if (!k)
		return cs->inner.ops->why(cs->inner.priv, name, why, size);
	pthread_mutex_lock(&cs->lock);
	ret = k->error;
	snprintf(why, size, "%s", ret ? k->why : "");
	pthread_mutex_unlock(&cs->lock);
	return ret;
}

static int cs_read(void *priv, const char *name, struct keyset *ks)
{
	struct command_store *cs = priv;
	struct cmd_keyset *k = find_cmd(cs, name);

	if (!k)
		return cs->inner.ops->read(cs->inner.priv, name, ks);
	return cmd_members_read(cs, k, ks);
}

static int cs_read_stamped(void *priv, const char *name, struct keyset *ks, uint64_t *stamp)
{
	struct command_store *cs = priv;

	if (find_cmd(cs, name))
		return -EOPNOTSUPP;
	return store_read_stamped(&cs->inner, name, ks, stamp);
}

/* Files at the top, within the keyset's limits: what a program left and
 * a restore gives it back. */
static int check_archive(const struct cmd_keyset *k, const struct keyset *ks)
{
	uint64_t max = k->cfg.max_file_size ? k->cfg.max_file_size : KEYSET_FILE_MAX;
	size_t i;

	for (i = 0; i < ks->n; i++) {
		const struct keyset_member *m = &ks->m[i];

		if (m->type != KEYSET_FILE || strchr(m->name, '/')) {
			log_msg(LOG_WARNING, "keyset %s: member \"%s\" is not a file at the top, "
				"which is all a command keyset holds: refused", k->cfg.name,
				m->name);
			return -EINVAL;
		}
		if (m->len > max)
			return -EFBIG;
	}
	return 0;
}

/* Runs no restore_command: equal to what the program gives now, nothing
 * to do; else an inactive version, for activate. "Now": the last run
 * may be up to refresh old, and the keys lost since (the reason for the
 * restore), so backup_command runs first. */
static int cs_put(void *priv, const struct keyset *ks, struct store_put *res)
{
	struct command_store *cs = priv;
	struct cmd_keyset *k = find_cmd(cs, ks->name);
	struct keyset cur = { 0 };
	int ret;

	if (!k)
		return store_put_on(&cs->inner, ks, res);
	ret = check_archive(k, ks);
	if (ret)
		return ret;
	cmd_refresh(cs, k);
	pthread_mutex_lock(&k->run_lock);
	if (cmd_members_read(cs, k, &cur) == 0 && keyset_equal(&cur, ks)) {
		res->outcome = STORE_UNCHANGED;
		res->version = 0;
	} else {
		ret = versions_put(cs->sfd, ks, res);
	}
	pthread_mutex_unlock(&k->run_lock);
	keyset_clear(&cur);
	return ret;
}

static int cs_versions(void *priv, const char *name, unsigned **v, size_t *n)
{
	struct command_store *cs = priv;

	if (!find_cmd(cs, name))
		return store_versions(&cs->inner, name, v, n);
	return versions_list(cs->sfd, name, v, n);
}

/* restore_command over version's members; the last run's members are
 * kept as a version first (unless they are the same keys), since the
 * program may now destroy what they came from. */
static int activate_locked(struct command_store *cs, struct cmd_keyset *k, unsigned version,
			   unsigned *kept)
{
	struct keyset ks = { 0 }, cur = { 0 };
	struct store_put kr = { STORE_UNCHANGED, 0, 0, false, NULL };
	char why[COMMAND_WHY_MAX];
	struct hook_result res;
	int ret;

	ret = versions_read(cs->sfd, k->cfg.name, version, &ks);
	if (ret == 0)
		ret = check_archive(k, &ks);
	if (ret)
		goto out;
	if (cmd_members_read_any(cs, k, &cur) == 0 && cur.n && !keyset_equal(&cur, &ks))
		ret = versions_put(cs->sfd, &cur, &kr);
	if (ret)
		goto out;
	ret = command_restore(&k->cfg, &ks, &res, why, sizeof(why));
	pthread_mutex_lock(&cs->lock);
	k->restore = res;
	snprintf(k->restore_why, sizeof(k->restore_why), "%s", ret ? why : "");
	pthread_mutex_unlock(&cs->lock);
	if (ret) {
		log_msg(LOG_ERR, "keyset %s: version %u not restored: %s", k->cfg.name, version,
			why);
		ret = -ECHILD;
		goto out;
	}
	log_msg(LOG_NOTICE, "keyset %s: restore_command restored version %u", k->cfg.name,
		version);
	versions_remove(cs->sfd, k->cfg.name, version);
	*kept = kr.version;
out:
	keyset_clear(&ks);
	keyset_clear(&cur);
	return ret;
}

static int cs_activate(void *priv, const char *name, unsigned version, unsigned *kept)
{
	struct command_store *cs = priv;
	struct cmd_keyset *k = find_cmd(cs, name);
	int ret;

	if (!k)
		return store_activate(&cs->inner, name, version, kept);
	pthread_mutex_lock(&k->run_lock);
	ret = activate_locked(cs, k, version, kept);
	pthread_mutex_unlock(&k->run_lock);
	/* export/ shows what the program holds now, not what went in */
	if (ret == 0)
		cmd_refresh(cs, k);
	return ret;
}

static int cs_tree_fd(void *priv)
{
	struct command_store *cs = priv;

	return cs->inner.ops->tree_fd ? cs->inner.ops->tree_fd(cs->inner.priv) : -1;
}

static void cs_batch(void *priv, bool on)
{
	struct command_store *cs = priv;

	store_batch(&cs->inner, on);
}

void store_command_stop(struct command_store *cs)
{
	if (!cs || !cs->running)
		return;
	pthread_mutex_lock(&cs->lock);
	cs->stop = true;
	pthread_cond_signal(&cs->wake);
	pthread_mutex_unlock(&cs->lock);
	pthread_join(cs->thread, NULL);
	cs->running = false;
}

static void cs_destroy(void *priv)
{
	struct command_store *cs = priv;
	size_t i;

	store_command_stop(cs);
	store_close(&cs->inner);
	for (i = 0; i < cs->n; i++)
		pthread_mutex_destroy(&cs->k[i].run_lock);
	pthread_mutex_destroy(&cs->lock);
	pthread_cond_destroy(&cs->wake);
	if (cs->tmpfd >= 0)
		close(cs->tmpfd);
	free(cs->k);
	free(cs);
}

static const struct store_ops command_ops = {
	.list = cs_list,
	.stamp = cs_stamp,
	.why = cs_why,
	.read = cs_read,
	.read_stamped = cs_read_stamped,
	.put = cs_put,
	.versions = cs_versions,
	.activate = cs_activate,
	.tree_fd = cs_tree_fd,
	.batch = cs_batch,
	.destroy = cs_destroy,
};

struct command_store *store_command_of(const struct store *s)
{
	struct live_store *ls = store_live_of(s);

	if (ls)
		s = &ls->inner;
	return s->ops == &command_ops ? s->priv : NULL;
}

/* ------------------------------------------------------------ the refresh thread */

static void *refresher(void *arg)
{
	struct command_store *cs = arg;
	struct cmd_keyset *due;
	long long now, first;
	struct timespec at;
	size_t i;

	pthread_mutex_lock(&cs->lock);
	while (!cs->stop) {
		now = cmd_now();
		due = NULL;
		first = now + 3600;
		for (i = 0; i < cs->n && !due; i++) {
			if (cs->k[i].next <= now)
				due = &cs->k[i];
			else if (cs->k[i].next < first)
				first = cs->k[i].next;
		}
		if (due) {
			/* not run again before it finished, whoever runs it */
			due->next = now + CONFIG_TIMEOUT_DEFAULT;
			pthread_mutex_unlock(&cs->lock);
			cmd_refresh(cs, due);
			pthread_mutex_lock(&cs->lock);
			continue;
		}
		clock_gettime(CLOCK_MONOTONIC, &at);
		at.tv_sec += first - now;
		pthread_cond_timedwait(&cs->wake, &cs->lock, &at);
	}
	pthread_mutex_unlock(&cs->lock);
	return NULL;
}

int store_command_start(struct command_store *cs, void (*changed)(void *arg, const char *name),
			void *arg)
{
	int ret;

	if (!cs)
		return 0;
	cs->changed = changed;
	cs->changed_arg = arg;
	ret = -pthread_create(&cs->thread, NULL, refresher, cs);
	cs->running = ret == 0;
	return ret;
}

int store_command_refresh(const struct store *s, const char *name)
{
	struct command_store *cs = store_command_of(s);
	struct cmd_keyset *k = cs ? find_cmd(cs, name) : NULL;

	return k ? cmd_refresh(cs, k) : -ENOENT;
}

bool store_command_is(const struct store *s, const char *name)
{
	struct command_store *cs = store_command_of(s);

	return cs && find_cmd(cs, name);
}

/* ------------------------------------------------------------ opening */

static int init(struct command_store *cs, const struct config *cfg)
{
	const char *why;
	size_t i;

	for (i = 0; i < cfg->nkeysets; i++) {
		const struct config_keyset *c = &cfg->keysets[i];
		struct cmd_keyset *k;

		if (!*c->backup_command)
			continue;
		if (command_check(c, &why)) {
			log_msg(LOG_ERR, "[keyset %s] %s", c->name, why);
			return -EINVAL;
		}
		k = &cs->k[cs->n++];
		k->cfg = *c;
		pthread_mutex_init(&k->run_lock, NULL);
		cmd_failure_load(cs, k);
	}
	return 0;
}

int store_command_wrap(struct store *s, const struct config *cfg, const struct state *state,
		       struct command_store **out)
{
	struct command_store *cs;
	pthread_condattr_t ca;
	size_t i;
	int ret;

	*out = NULL;
	for (i = 0; i < cfg->nkeysets && !*cfg->keysets[i].backup_command; i++)
		;
	if (i == cfg->nkeysets)
		return 0;
	cs = calloc(1, sizeof(*cs));
	if (!cs || !(cs->k = calloc(cfg->nkeysets, sizeof(*cs->k)))) {
		free(cs);
		return -ENOMEM;
	}
	cs->inner = *s;
	cs->sfd = state->fd;
	pthread_mutex_init(&cs->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&cs->wake, &ca);
	pthread_condattr_destroy(&ca);
	cs->tmpfd = openat(cs->sfd, STATE_TMP, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (cs->tmpfd < 0 || (mkdirat(cs->sfd, DIR_COMMANDS, 0700) && errno != EEXIST))
		ret = -errno;
	else
		ret = init(cs, cfg);
	if (ret == 0) {
		struct layer_keysets l = command_keysets(cs);

		ret = layer_check_clash(&cs->inner, &l, "a backup_command");
	}
	if (ret) {
		cs->inner.ops = NULL; /* the caller's still */
		cs_destroy(cs);
		return ret;
	}
	s->ops = &command_ops;
	s->priv = cs;
	*out = cs;
	return 0;
}
