/* Finding the key locations of the catalog (discover.h). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyfs/dirwalk.h"
/* The store's matcher of include and exclude, and its way of running
 * commands: the same as keyfs applies to the keysets found here. */
#include "keyfs/glob.h"
#include "keyfs/hook.h"

#include "discover.h"

#define DEPTH_MAX 32
#define DEVICES_TIMEOUT 30	/* seconds the devices command may take */
#define DEVICES_MAX (64 * 1024)	/* bytes of its output read */

/* Walking one live location. */
struct walk {
	const struct discovery *d;
	const char *include, *exclude, *keys;
	struct location *l;
	char (*kpath)[PATH_MAX];	/* the keysets' paths, links resolved; "" for none */
	char real[PATH_MAX];		/* the location's, links resolved */
	char rel[PATH_MAX];		/* the entry walked, below real */
	char bad[PATH_MAX];		/* the first entry that could not be read */
	int depth;
};

static void add_name(char *list, size_t size, const char *name)
{
	size_t len = strlen(list), n = strlen(name);
	const char *p;

	for (p = strstr(list, name); p; p = strstr(p + 1, name))
		if ((p == list || p[-1] == ' ') && (p[n] == ',' || !p[n]))
			return;
	snprintf(list + len, size - len, "%s%s", len ? ", " : "", name);
}

/* The configured live keyset having w's location's rel among its
 * members, or NULL. */
static const char *covering(const struct walk *w, const char *rel)
{
	char abs[2 * PATH_MAX];
	const char *sub;
	size_t i, n;

	snprintf(abs, sizeof(abs), "%s/%s", w->real, rel);
	for (i = 0; i < w->d->cfg.nkeysets; i++) {
		const struct config_keyset *ks = &w->d->cfg.keysets[i];

		n = strlen(w->kpath[i]);
		if (!*ks->path || strncmp(abs, w->kpath[i], n) || abs[n] != '/')
			continue;
		sub = abs + n + 1;
		if (glob_list_match(ks->include, sub, false) &&
		    !(*ks->exclude && glob_list_match(ks->exclude, sub, false)))
			return ks->name;
	}
	return NULL;
}

static int walk_entry(int dirfd, const char *name, const struct stat *st, void *arg)
{
	struct walk *w = arg;
	size_t len = strlen(w->rel);
	const char *rel = w->rel, *who;
	int ret = 0;

	if ((size_t)snprintf(w->rel + len, sizeof(w->rel) - len, "%s%s", len ? "/" : "", name) >=
	    sizeof(w->rel) - len)
		goto out;
	if (S_ISDIR(st->st_mode) && w->depth < DEPTH_MAX && glob_list_match(w->include, rel, true)) {
		w->depth++;
		ret = dirwalk_each(dirfd, name, walk_entry, w);
		w->depth--;
		if (ret == -ENOENT || ret == -ENOTDIR)
			ret = 0; /* gone meanwhile */
		else if (ret && !*w->bad && /* the deepest comes first */
			 snprintf(w->bad, sizeof(w->bad), "%s: %s", rel, strerror(-ret)) < 0)
			w->bad[0] = '\0';
	} else if (S_ISREG(st->st_mode) && glob_list_match(w->include, rel, false) &&
		   !(*w->exclude && glob_list_match(w->exclude, rel, false)) &&
		   glob_list_match(w->keys, rel, false)) {
		w->l->keys++;
		who = covering(w, rel);
		if (who)
			add_name(w->l->covered_by, sizeof(w->l->covered_by), who);
		else
			w->l->uncovered++;
	}
out:
	w->rel[len] = '\0';
	return ret;
}

static struct location *location_add(struct discovery *d)
{
	struct location *v = realloc(d->v, (d->n + 1) * sizeof(*v));

	if (!v)
		return NULL;
	d->v = v;
	memset(&v[d->n], 0, sizeof(v[0]));
	return &v[d->n++];
}

/* A configured command keyset naming target (a device or directory) in
 * its backup_command, or NULL. */
static const char *target_keyset(const struct discovery *d, const char *target);

/* The key files of preset p under the root, below its path (a live
 * preset) or its target (a command preset); a location if any. */
static int look_in(struct discovery *d, const struct preset *p, char (*kpath)[PATH_MAX],
		   char *err, size_t errlen)
{
	struct walk *w = calloc(1, sizeof(*w));
	struct location *l;
	const char *who;
	int fd, ret = 0;

	l = w ? location_add(d) : NULL;
	if (!l) {
		free(w);
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		return -ENOMEM;
	}
	*w = (struct walk){ .d = d, .l = l, .kpath = kpath, .include = p->ks.include,
			    .exclude = p->ks.exclude, .keys = *p->keys ? p->keys : p->ks.include };
	if (!*p->ks.path)
		w->include = w->keys;
	l->preset = p;
	l->target = !*p->ks.path;
	fd = -1;
	errno = ENAMETOOLONG;
	if ((size_t)snprintf(l->path, sizeof(l->path), "%s%s", d->root,
			     l->target ? p->ks.target : p->ks.path) < sizeof(l->path))
		fd = open(l->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 && errno != ENOENT && errno != ENOTDIR) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", l->path, strerror(errno));
	} else if (fd >= 0 && !realpath(l->path, w->real)) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", l->path, strerror(errno));
	} else if (fd >= 0) {
		ret = dirwalk_each(fd, ".", walk_entry, w);
		if (ret)
			snprintf(err, errlen, "%s%s%s", l->path, *w->bad ? "/" : ": ",
				 *w->bad ? w->bad : strerror(-ret));
	}
	if (fd >= 0)
		close(fd);
	who = l->target && l->keys ? target_keyset(d, l->path) : NULL;
	if (who) {
		l->uncovered = 0;
		snprintf(l->covered_by, sizeof(l->covered_by), "%s", who);
	}
	if (!l->keys)
		d->n--;
	free(w);
	return ret;
}

/* Are a and b the same file (device node or image), links followed? */
static bool same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	return !stat(a, &sa) && !stat(b, &sb) && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static const char *target_keyset(const struct discovery *d, const char *target)
{
	char buf[HOOK_CMD_MAX + 1], *argv[HOOK_ARGS_MAX + 1];
	size_t i, j;

	for (i = 0; i < d->cfg.nkeysets; i++) {
		const struct config_keyset *ks = &d->cfg.keysets[i];

		if (!*ks->backup_command || hook_split(ks->backup_command, buf, sizeof(buf), argv))
			continue;
		for (j = 0; argv[j]; j++)
			if (argv[j][0] == '/' && same_file(argv[j], target))
				return ks->name;
	}
	return NULL;
}

/* The output of p's devices command, or of the file the test hook
 * names, into buf (size bytes, NUL terminated). */
static int device_list(const struct preset *p, char *buf, size_t size, char *err, size_t errlen)
{
	struct hook_spec spec = HOOK_SPEC_INIT;
	struct hook_result res;
	char var[KEYSET_NAME_MAX + 32], *c;
	const char *hook;
	ssize_t n;
	int fd, ret = 0;

	snprintf(var, sizeof(var), "KEYFS_DISCOVER_%s_DEVICES", p->ks.name);
	for (c = var; *c; c++)
		*c = isalnum((unsigned char)*c) ? (char)toupper((unsigned char)*c) : '_';
	hook = getenv(var);
	fd = hook ? open(hook, O_RDONLY | O_CLOEXEC) : memfd_create("devices", MFD_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", hook ? hook : "memfd", strerror(errno));
		return -errno;
	}
	if (!hook) {
		spec.out_fd = fd;
		ret = hook_run_in(p->devices, DEVICES_TIMEOUT, &spec, &res);
		if (ret && res.start_error) {
			snprintf(err, errlen, "preset %s: cannot run its devices command: %s",
				 p->ks.name, strerror(res.start_error));
			close(fd);
			return -res.start_error;
		}
	}
	/* blkid says "none" by its exit status (2) */
	n = hook || !ret ? pread(fd, buf, size - 1, 0) : 0;
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return 0;
}

/* One location per device preset p lists. */
static int look_for_devices(struct discovery *d, const struct preset *p, char *err, size_t errlen)
{
	char *buf = malloc(DEVICES_MAX), *line, *save = NULL;
	const char *who;
	struct location *l;
	int ret;

	if (!buf)
		return -ENOMEM;
	ret = device_list(p, buf, DEVICES_MAX, err, errlen);
	for (line = strtok_r(buf, "\n", &save); !ret && line; line = strtok_r(NULL, "\n", &save)) {
		line[strcspn(line, "\r")] = '\0';
		if (*line != '/')
			continue;
		l = location_add(d);
		if (!l) {
			ret = -ENOMEM;
			break;
		}
		l->preset = p;
		l->target = true;
		l->keys = 1;
		snprintf(l->path, sizeof(l->path), "%s", line);
		who = target_keyset(d, line);
		if (who)
			snprintf(l->covered_by, sizeof(l->covered_by), "%s", who);
		l->uncovered = !who;
	}
	free(buf);
	return ret;
}

static int load_config(struct discovery *d, const char *config, char *err, size_t errlen)
{
	const char *path = config ? config : DISCOVER_CONFIG_DEFAULT, *why;
	int ret;

	config_defaults(&d->cfg);
	/* no configuration at all: nothing is covered yet */
	if (!config && access(path, F_OK) && errno == ENOENT)
		return 0;
	ret = config_load(&d->cfg, path, err, errlen);
	if (!ret)
		ret = config_presets(&d->cfg, path, err, errlen);
	if (!ret && config_check(&d->cfg, &why)) {
		snprintf(err, errlen, "%s: %s", path, why);
		ret = -EINVAL;
	}
	return ret;
}

int discover_run(struct discovery *d, const char *root, const char *config, char *err,
		 size_t errlen)
{
	char (*kpath)[PATH_MAX] = NULL;
	size_t i;
	int ret;

	memset(d, 0, sizeof(*d));
	if (root && *root && !realpath(root, d->root)) {
		snprintf(err, errlen, "%s: %s", root, strerror(errno));
		return -errno;
	}
	if (!strcmp(d->root, "/"))
		d->root[0] = '\0';
	ret = load_config(d, config, err, errlen);
	if (!ret)
		ret = presets_load(&d->cat, presets_dir(&d->cfg), err, errlen);
	kpath = ret ? NULL : calloc(d->cfg.nkeysets + 1, sizeof(*kpath));
	if (!ret && !kpath)
		ret = -ENOMEM;
	for (i = 0; !ret && i < d->cfg.nkeysets; i++) {
		const char *p = d->cfg.keysets[i].path;

		/* a path not there yet covers what will be there */
		if (*p && !realpath(p, kpath[i]))
			snprintf(kpath[i], sizeof(kpath[i]), "%s", p);
		kpath[i][strlen(kpath[i]) - (!strcmp(kpath[i], "/") ? 1 : 0)] = '\0';
	}
	for (i = 0; !ret && i < d->cat.n; i++) {
		const struct preset *p = &d->cat.v[i];

		if (*p->devices)
			ret = look_for_devices(d, p, err, errlen);
		else if (*p->ks.path || *p->ks.target)
			ret = look_in(d, p, kpath, err, errlen);
	}
	for (i = 0; !ret && i < d->n; i++)
		d->uncovered += d->v[i].uncovered > 0;
	free(kpath);
	if (ret == -ENOMEM)
		snprintf(err, errlen, "%s", strerror(ENOMEM));
	return ret;
}

void discover_free(struct discovery *d)
{
	free(d->v);
	presets_free(&d->cat);
	config_free(&d->cfg);
	memset(d, 0, sizeof(*d));
}

const char *discover_shown(const struct discovery *d, const struct location *l)
{
	size_t n = strlen(d->root);

	return n && !strncmp(l->path, d->root, n) && l->path[n] == '/' ? l->path + n : l->path;
}
