/* keyfsctl restore (restore.h). keyfs does the work: each file goes
 * through MNT/verify/ for the plan and MNT/import/ for the restore, and
 * keyfs' own outcome line says what happened; this only gathers the
 * files and puts the answers side by side. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyfs/keyset.h"

#include "outcome.h"
#include "restore.h"

#define LINE_MAX_ 8192
#define FILES_MAX 100000

enum plan { PLAN_REFUSED, PLAN_NEW, PLAN_SAME, PLAN_DIFFERS };

struct item {
	char *file;
	enum plan plan;
	char name[KEYSET_NAME_MAX + 1];
	unsigned version;	/* stored as this inactive version by the import */
};

struct restore {
	const char *mount;
	struct item *item;
	size_t n, cap;
};

static int add_file(struct restore *r, const char *path)
{
	struct item *grown;

	if (r->n == FILES_MAX)
		return -E2BIG;
	if (r->n == r->cap) {
		r->cap = r->cap ? 2 * r->cap : 16;
		grown = realloc(r->item, r->cap * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		r->item = grown;
	}
	memset(&r->item[r->n], 0, sizeof(r->item[0]));
	r->item[r->n].file = strdup(path);
	return r->item[r->n++].file ? 0 : -ENOMEM;
}

static int is_pem(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return d->d_name[0] != '.' && n > 4 && !strcmp(d->d_name + n - 4, ".pem");
}

/* A backup directory: its *.pem files, in name order (README.txt and
 * anything else a backup tool brought along is not a sealed keyset). */
static int add_dir(struct restore *r, const char *dir)
{
	struct dirent **ent = NULL;
	char path[4096];
	struct stat st;
	int n, i, ret = 0, found = 0;

	n = scandir(dir, &ent, is_pem, alphasort);
	if (n < 0)
		return -errno;
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, ent[i]->d_name);
		if (!ret && !stat(path, &st) && S_ISREG(st.st_mode)) {
			ret = add_file(r, path);
			found++;
		}
		free(ent[i]);
	}
	free(ent);
	if (!ret && !found) {
		fprintf(stderr, "keyfsctl: %s holds no sealed backup (*.pem)\n", dir);
		return -ENOENT;
	}
	return ret;
}

static int gather(struct restore *r, int argc, char **argv)
{
	struct stat st;
	int i, ret = 0;

	for (i = 0; !ret && i < argc; i++) {
		if (stat(argv[i], &st)) {
			ret = -errno;
			fprintf(stderr, "keyfsctl: %s: %s\n", argv[i], strerror(errno));
		} else {
			ret = S_ISDIR(st.st_mode) ? add_dir(r, argv[i]) : add_file(r, argv[i]);
		}
	}
	return ret;
}

/* The text after key in line, up to (not with) one of stop; "" if none. */
static void field(const char *line, const char *key, const char *stop, char *out, size_t size)
{
	const char *at = strstr(line, key);
	size_t n;

	*out = '\0';
	if (!at)
		return;
	at += strlen(key);
	n = strcspn(at, stop);
	snprintf(out, size, "%.*s", (int)n, at);
}

/* keyfs' newest outcome line without its time stamp; false if none. */
static bool last_words(const char *mount, char *buf, size_t size)
{
	char *sp;

	if (outcome_last(mount, buf, size))
		return false;
	sp = strchr(buf, ' ');
	if (sp && sp - buf == (ptrdiff_t)strlen("YYYY-MM-DDTHH:MM:SSZ"))
		memmove(buf, sp + 1, strlen(sp + 1) + 1);
	return true;
}

/* Verifies one file; prints its plan line. */
static void plan_one(struct restore *r, struct item *it)
{
	char line[LINE_MAX_], fpr[80], by[160], what[80];
	int err;

	err = outcome_copy(r->mount, "verify", it->file);
	if (!last_words(r->mount, line, sizeof(line)))
		line[0] = '\0';
	if (err || strncmp(line, "verify \"", 8)) {
		it->plan = PLAN_REFUSED;
		printf("%s: refused: %s\n", it->file, line[0] ? line : strerror(-err));
		return;
	}
	field(line, "verify \"", "\"", it->name, sizeof(it->name));
	field(line, "fingerprint ", ",", fpr, sizeof(fpr));
	field(line, "sealed by ", ";", by, sizeof(by));
	field(line, "on import: ", ";", what, sizeof(what));
	it->plan = strstr(what, "inactive version") ? PLAN_DIFFERS : !strncmp(what, "new", 3) ?
		   PLAN_NEW : !strncmp(what, "identical", 9) ? PLAN_SAME : PLAN_DIFFERS;
	printf("%s: keyset %s, sealed by %s, fingerprint %s: %s\n", it->file, it->name, by, fpr,
	       it->plan == PLAN_NEW ? "new" : it->plan == PLAN_SAME ? "identical" :
	       !strncmp(what, "new", 3) ? "new, unauthenticated (becomes an inactive version)" :
	       "differs (becomes an inactive version)");
}

/* Imports one planned file; prints keyfs' outcome. 0 or -errno. */
static int import_one(struct restore *r, struct item *it)
{
	char line[LINE_MAX_];
	const char *at;
	int err;

	err = outcome_copy(r->mount, "import", it->file);
	if (!last_words(r->mount, line, sizeof(line)))
		snprintf(line, sizeof(line), "%s", err ? strerror(-err) : "restored");
	printf("%s: %s\n", it->file, line);
	/* stored now, or by an earlier run: either is what --activate installs */
	at = strstr(line, "inactive version ");
	if (!err && at)
		sscanf(at + strlen("inactive version "), "%u", &it->version);
	return err;
}

static int usage(void)
{
	fprintf(stderr, "usage: keyfsctl [-m MOUNTPOINT] restore [--dry-run|--activate [--unauthenticated]] "
		"FILE|DIR...\n");
	return 2;
}

int restore_main(const char *mount, int argc, char **argv, restore_activate_fn *activate,
		 void *arg)
{
	static const struct option longopts[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "activate", no_argument, NULL, 'a' },
		{ "unauthenticated", no_argument, NULL, 'u' },
		{ NULL, 0, NULL, 0 },
	};
	struct restore r = { .mount = mount };
	bool dry = false, act = false, unauth = false;
	char path[4096], line[LINE_MAX_];
	size_t i, refused = 0;
	int c, status = 2;

	optind = 0;
	while ((c = getopt_long(argc, argv, "m:", longopts, NULL)) != -1) {
		if (c == 'n')
			dry = true;
		else if (c == 'a')
			act = true;
		else if (c == 'u')
			unauth = true;
		else if (c == 'm')
			r.mount = mount = optarg;
		else
			return usage();
	}
	if (optind >= argc || (dry && act))
		return usage();
	snprintf(path, sizeof(path), "%s/.control", mount);
	if (access(path, R_OK)) {
		fprintf(stderr, "keyfsctl: %s is not a mounted keyfs: %s\n", mount, strerror(errno));
		return 2;
	}
	if (gather(&r, argc - optind, argv + optind))
		goto out;
	printf("plan:\n");
	for (i = 0; i < r.n; i++)
		plan_one(&r, &r.item[i]);
	for (i = 0; i < r.n; i++)
		refused += r.item[i].plan == PLAN_REFUSED;
	if (!dry) {
		printf("restore:\n");
		for (i = 0; i < r.n; i++) {
			if (r.item[i].plan != PLAN_REFUSED && import_one(&r, &r.item[i]))
				refused++;
		}
	}
	for (i = 0; act && i < r.n; i++) {
		if (!r.item[i].version)
			continue;
		if (activate(arg, r.item[i].name, r.item[i].version, unauth)) {
			refused++;
			continue;
		}
		if (last_words(mount, line, sizeof(line)))
			printf("%s: %s\n", r.item[i].file, line);
	}
	status = refused ? 1 : 0;
	printf("%zu file(s): %zu refused%s\n", r.n, refused, dry ? " (dry run: nothing changed)" : "");
out:
	for (i = 0; i < r.n; i++)
		free(r.item[i].file);
	free(r.item);
	return status;
}
