/* keyfsctl check and keyfsctl metrics (see check.h). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "keyfs/escape.h"

#include "check.h"
#include "discover.h"

#define FUSE_SUPER_MAGIC 0x65735546
#define NAMES_SHOWN 5		/* keysets named in the output line, then "and N more" */
#define TIMEOUT_DEFAULT 10

static const char *const status_words[] = { "OK", "WARNING", "CRITICAL", "UNKNOWN" };

int check_parse_age(const char *text, long *secs)
{
	static const struct { char unit; long secs; } units[] = {
		{ 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 }, { 'w', 604800 },
	};
	char *end;
	long n;
	size_t i;

	errno = 0;
	n = strtol(text, &end, 10);
	if (errno || end == text || n < 0 || n > 100L * 365 * 86400)
		return -EINVAL;
	if (!*end) {
		*secs = n;
		return 0;
	}
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (end[0] == units[i].unit && !end[1]) {
			*secs = n * units[i].secs;
			return 0;
		}
	return -EINVAL;
}

/* ---- reading the metrics ---- */

/* A list of keyset names for the output line. */
struct names {
	char text[512];
	size_t n;
};

static void names_add(struct names *l, const char *name, long age)
{
	size_t len = strlen(l->text);

	if (l->n++ < NAMES_SHOWN && len < sizeof(l->text))
		snprintf(l->text + len, sizeof(l->text) - len, age >= 0 ? "%s%s (%lds)" : "%s%s",
			 len ? ", " : "", name, age);
}

static void names_end(struct names *l)
{
	size_t len = strlen(l->text);

	if (l->n > NAMES_SHOWN && len < sizeof(l->text))
		snprintf(l->text + len, sizeof(l->text) - len, " and %zu more", l->n - NAMES_SHOWN);
}

struct facts {
	double keysets[4];		/* never, changed, backed_up, unexportable */
	double oldest[2];		/* never, changed: 0 if none */
	double locked[2];
	double seal_failed, locked_all;
	bool per_keyset;		/* per-keyset series were there */
	bool totals;			/* keyfs_keysets was there */
	struct names warn, crit, failed, hooks;
	long oldest_age;		/* of any change not backed up that counts; -1: none */
};

static int state_index(const char *s)
{
	static const char *const states[] = { "never", "changed", "backed_up", "unexportable" };
	int i;

	for (i = 0; i < 4; i++)
		if (!strcmp(s, states[i]))
			return i;
	return -1;
}

/* The value of label key in labels (between braces), unescaped. */
static bool label(const char *labels, const char *key, char *out, size_t size)
{
	size_t klen = strlen(key), n = 0;
	const char *p = labels;

	while ((p = strstr(p, key))) {
		if ((p == labels || p[-1] == ',' || p[-1] == '{') && !strncmp(p + klen, "=\"", 2))
			break;
		p += klen;
	}
	if (!p)
		return false;
	for (p += klen + 2; *p && *p != '"' && n + 1 < size; p++) {
		if (*p == '\\' && p[1]) {
			p++;
			out[n++] = *p == 'n' ? '\n' : *p;
		} else {
			out[n++] = *p;
		}
	}
	out[n] = '\0';
	return *p == '"';
}

/* Per-keyset series: names for the output line. Changed times come
 * before states in the text, so they are kept until the state is read. */
struct keyset_times {
	char (*names)[256];
	double *changed;
	size_t n, cap;
	size_t next;		/* keysets come in the same order in each family */
};

static double changed_of(struct keyset_times *t, const char *name)
{
	size_t i;

	if (t->next < t->n && !strcmp(t->names[t->next], name))
		return t->changed[t->next++];
	for (i = 0; i < t->n; i++)
		if (!strcmp(t->names[i], name))
			return t->changed[i];
	return 0;
}

static void keep_changed(struct keyset_times *t, const char *name, double v)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 64;
		void *a = realloc(t->names, cap * sizeof(*t->names)), *b;

		if (!a)
			return;
		t->names = a;
		b = realloc(t->changed, cap * sizeof(*t->changed));
		if (!b)
			return;
		t->changed = b;
		t->cap = cap;
	}
	snprintf(t->names[t->n], sizeof(t->names[0]), "%s", name);
	t->changed[t->n++] = v;
}

static void keyset_state(struct facts *fa, const struct check_opts *o, const char *name,
			 int state, double changed, time_t now)
{
	long age = changed > 0 ? (long)(now - (time_t)changed) : 0;

	fa->per_keyset = true;
	if (state > 1)
		return; /* backed up, or unexportable (counted from the totals) */
	if (state == 0 && o->never == CHECK_CRITICAL)
		names_add(&fa->crit, name, -1);
	else if (state == 0 && o->never == CHECK_WARNING)
		names_add(&fa->warn, name, -1);
	else if (state == 1 && o->crit >= 0 && age >= o->crit)
		names_add(&fa->crit, name, age);
	else if (state == 1 && o->warn >= 0 && age >= o->warn)
		names_add(&fa->warn, name, age);
}

static void read_line(struct facts *fa, struct keyset_times *kt, const struct check_opts *o,
		      char *line, time_t now)
{
	char name[128], labels[1024] = "", st[32], ks[256];
	char *sp, *brace;
	double v;
	int s;

	if (*line == '#' || !*line || !(sp = strrchr(line, ' ')))
		return;
	*sp = '\0';
	v = strtod(sp + 1, NULL);
	brace = strchr(line, '{');
	if (brace) {
		snprintf(labels, sizeof(labels), "%s", brace);
		*brace = '\0';
	}
	snprintf(name, sizeof(name), "%s", line);
	s = label(labels, "state", st, sizeof(st)) ? state_index(st) : -1;
	if (!strcmp(name, "keyfs_keysets") && s >= 0) {
		fa->keysets[s] = v;
		fa->totals = true;
	} else
	if (!strcmp(name, "keyfs_keysets_oldest_change_timestamp_seconds") && s >= 0 && s < 2)
		fa->oldest[s] = v;
	else if (!strcmp(name, "keyfs_keysets_locked") && s >= 0 && s < 2)
		fa->locked[s] = v;
	else if (!strcmp(name, "keyfs_keysets_seal_failed"))
		fa->seal_failed = v;
	else if (!strcmp(name, "keyfs_locked"))
		fa->locked_all = v;
	else if (!label(labels, "keyset", ks, sizeof(ks)))
		return;
	else if (!strcmp(name, "keyfs_keyset_changed_timestamp_seconds"))
		keep_changed(kt, ks, v);
	else if (!strcmp(name, "keyfs_keyset_backup_state") && s >= 0 && v == 1)
		keyset_state(fa, o, ks, s, changed_of(kt, ks), now);
	else if (!strcmp(name, "keyfs_keyset_seal_failed"))
		names_add(&fa->failed, ks, -1);
	else if (!strcmp(name, "keyfs_keyset_activation_failed") && v == 1)
		names_add(&fa->hooks, ks, -1);
}

/* ---- deciding ---- */

struct verdict {
	enum check_status status;
	char text[1536];
};

static void say(struct verdict *v, enum check_status s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void say(struct verdict *v, enum check_status s, const char *fmt, ...)
{
	size_t len = strlen(v->text);
	va_list ap;

	if (s > v->status || v->status == CHECK_OK)
		v->status = s > v->status ? s : v->status;
	if (len && len + 2 < sizeof(v->text)) {
		strcpy(v->text + len, "; ");
		len += 2;
	}
	va_start(ap, fmt);
	vsnprintf(v->text + len, sizeof(v->text) - len, fmt, ap);
	va_end(ap);
}

/* Without per-keyset series: the oldest change decides, nameless. */
static void judge_totals(struct verdict *v, const struct facts *fa, const struct check_opts *o,
			 time_t now)
{
	long age = fa->oldest[1] > 0 ? (long)(now - (time_t)fa->oldest[1]) : -1;

	if (age >= 0 && o->crit >= 0 && age >= o->crit)
		say(v, CHECK_CRITICAL, "%.0f keyset(s) changed since last backup, the oldest %lds ago",
		    fa->keysets[1], age);
	else if (age >= 0 && o->warn >= 0 && age >= o->warn)
		say(v, CHECK_WARNING, "%.0f keyset(s) changed since last backup, the oldest %lds ago",
		    fa->keysets[1], age);
	if (fa->keysets[0] > 0 && o->never != CHECK_OK)
		say(v, o->never, "%.0f keyset(s) never backed up", fa->keysets[0]);
}

enum check_status check_eval(const char *metrics, const struct check_opts *o, time_t now,
			     char *out, size_t size)
{
	struct keyset_times kt = { 0 };
	struct facts fa = { 0 };
	struct verdict v = { CHECK_OK, "" };
	char shown[4 * sizeof(v.text)], *copy, *line, *save = NULL, warn[24] = "", crit[24] = "";
	double total;
	long age;

	copy = strdup(metrics);
	if (!copy) {
		snprintf(out, size, "KEYFS UNKNOWN - out of memory\n");
		return CHECK_UNKNOWN;
	}
	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		read_line(&fa, &kt, o, line, now);
	free(copy);
	free(kt.names);
	free(kt.changed);
	/* empty or someone else's text: no keyfs metrics to call OK */
	if (!fa.totals) {
		snprintf(out, size, "KEYFS UNKNOWN - no keyfs_keysets series in the metrics\n");
		return CHECK_UNKNOWN;
	}
	names_end(&fa.crit);
	names_end(&fa.warn);
	names_end(&fa.failed);
	names_end(&fa.hooks);
	if (fa.seal_failed > 0)
		say(&v, CHECK_CRITICAL, "sealing failed for %.0f keyset(s)%s%s", fa.seal_failed,
		    fa.failed.n ? ": " : "", fa.failed.text);
	/* the keys are in, the service may still use the old ones */
	if (fa.hooks.n)
		say(&v, CHECK_WARNING, "on_activate failed (see keyfsctl status): %s", fa.hooks.text);
	if (fa.keysets[3] > 0)
		say(&v, CHECK_CRITICAL, "%.0f keyset(s) cannot be exported (see keyfsctl status)",
		    fa.keysets[3]);
	if (fa.locked[1] > 0 || (fa.locked[0] > 0 && o->never != CHECK_OK))
		say(&v, CHECK_CRITICAL, "exports locked (no password) with changes pending for %.0f "
		    "keyset(s)", fa.locked[1] + (o->never != CHECK_OK ? fa.locked[0] : 0));
	if (fa.per_keyset) {
		if (fa.crit.n)
			say(&v, CHECK_CRITICAL, "not backed up: %s", fa.crit.text);
		if (fa.warn.n)
			say(&v, CHECK_WARNING, "not backed up: %s", fa.warn.text);
	} else {
		judge_totals(&v, &fa, o, now);
	}
	total = fa.keysets[0] + fa.keysets[1] + fa.keysets[2] + fa.keysets[3];
	if (v.status == CHECK_OK)
		say(&v, CHECK_OK, "%.0f keyset(s): %.0f backed up, %.0f changed since last backup, "
		    "%.0f never backed up", total, fa.keysets[2], fa.keysets[1], fa.keysets[0]);
	age = fa.oldest[1] > 0 ? (long)(now - (time_t)fa.oldest[1]) : 0;
	if (o->warn >= 0)
		snprintf(warn, sizeof(warn), "%ld", o->warn);
	if (o->crit >= 0)
		snprintf(crit, sizeof(crit), "%ld", o->crit);
	/* keyset names come from the metrics: whatever made them, they add
	 * no line for the monitoring system and no terminal escape */
	escape_str(shown, sizeof(shown), v.text, 0);
	snprintf(out, size, "KEYFS %s - %s | keysets=%.0f backed_up=%.0f changed=%.0f never=%.0f "
		 "unexportable=%.0f seal_failed=%.0f locked=%.0f oldest_change=%lds;%s;%s;0\n",
		 status_words[v.status], shown, total, fa.keysets[2], fa.keysets[1], fa.keysets[0],
		 fa.keysets[3], fa.seal_failed, fa.locked_all, age, warn, crit);
	return v.status;
}

/* ---- the commands ---- */

/* The whole of MNT/.metrics, or why there is none: UNKNOWN for a path
 * that is no keyfs mount, CRITICAL for a keyfs that is not there (a
 * directory nothing is mounted on, a daemon that died). */
static enum check_status read_metrics(const char *mount, char **text, char *why, size_t size)
{
	char path[4096], buf[65536];
	struct stat st, up;
	struct statfs sf;
	size_t len = 0;
	ssize_t n;
	FILE *f;
	int fd;

	*text = NULL;
	*why = '\0';
	if (statfs(mount, &sf)) {
		snprintf(why, size, "%s: %s", mount, strerror(errno));
		return errno == ENOTCONN || errno == ECONNABORTED || errno == EIO ? CHECK_CRITICAL
										  : CHECK_UNKNOWN;
	}
	if (stat(mount, &st) || !S_ISDIR(st.st_mode)) {
		snprintf(why, size, "%s is not a directory", mount);
		return CHECK_UNKNOWN;
	}
	snprintf(path, sizeof(path), "%s/..", mount);
	if ((unsigned long)sf.f_type != FUSE_SUPER_MAGIC) {
		/* a directory of its parent's filesystem: keyfs is not mounted */
		if (!stat(path, &up) && up.st_dev == st.st_dev && up.st_ino != st.st_ino) {
			snprintf(why, size, "keyfs is not mounted on %s", mount);
			return CHECK_CRITICAL;
		}
		snprintf(why, size, "%s is not a keyfs mount", mount);
		return CHECK_UNKNOWN;
	}
	snprintf(path, sizeof(path), "%s/.metrics", mount);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, size, "%s: %s%s", path, strerror(errno),
			 errno == ENOENT ? " (not a keyfs mount)" : "");
		return errno == ENOENT || errno == EACCES ? CHECK_UNKNOWN : CHECK_CRITICAL;
	}
	f = open_memstream(text, &len);
	while (f && (n = read(fd, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, (size_t)n, f);
	if (f && n < 0)
		snprintf(why, size, "reading %s: %s", path, strerror(errno));
	close(fd);
	if (!f)
		snprintf(why, size, "out of memory");
	else if (fclose(f) && n >= 0)
		snprintf(why, size, "reading %s: %s", path, strerror(errno));
	if (!f || n < 0 || *why) {
		free(*text);
		*text = NULL;
		return CHECK_CRITICAL;
	}
	return CHECK_OK;
}

/* read_metrics in a thread of its own. A keyfs that does not answer
 * leaves the reader waiting in a FUSE request, which only a fatal signal
 * ends (SIGALRM with a handler would not): the main thread waits for it
 * only so long, then answers for it and exits, which ends the reader. */
struct reader {
	const char *mount;
	char *text;
	char why[4200];
	enum check_status status;
	pthread_mutex_t lock;
	pthread_cond_t done_cond;
	bool done;			/* protected by lock */
};

static void *reader_run(void *arg)
{
	struct reader *r = arg;

	r->status = read_metrics(r->mount, &r->text, r->why, sizeof(r->why));
	pthread_mutex_lock(&r->lock);
	r->done = true;
	pthread_cond_signal(&r->done_cond);
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

static enum check_status read_metrics_within(const char *mount, int secs, char **text,
					     char *why, size_t size)
{
	static struct reader r; /* outlives us if the reader hangs */
	pthread_condattr_t ca;
	struct timespec until;
	pthread_t t;
	bool done;

	r.mount = mount;
	pthread_mutex_init(&r.lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r.done_cond, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&t, NULL, reader_run, &r)) {
		snprintf(why, size, "cannot start a thread");
		return CHECK_UNKNOWN;
	}
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += secs;
	pthread_mutex_lock(&r.lock);
	while (!r.done)
		if (pthread_cond_timedwait(&r.done_cond, &r.lock, &until) == ETIMEDOUT)
			break;
	done = r.done;
	pthread_mutex_unlock(&r.lock);
	if (!done) {
		printf("KEYFS CRITICAL - keyfs did not answer within %d s\n", secs);
		fflush(stdout);
		_exit(CHECK_CRITICAL);
	}
	pthread_join(t, NULL);
	*text = r.text;
	snprintf(why, size, "%s", r.why);
	return r.status;
}

static void check_usage(FILE *f)
{
	fprintf(f, "usage: keyfsctl [-m MOUNTPOINT] check [--warn AGE] [--crit AGE] "
		   "[--never crit|warn|ok] [--timeout SECONDS]\n"
		   "       [--discover [--root DIR] [--config CONFIG]]\n"
		   "AGE: a number with s, m, h, d or w (default seconds); defaults --warn 1d "
		   "--crit 7d --never warn --timeout %d\n"
		   "exit status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN\n", TIMEOUT_DEFAULT);
}

static int parse_never(const char *s, enum check_status *out)
{
	if (!strcmp(s, "crit") || !strcmp(s, "critical"))
		*out = CHECK_CRITICAL;
	else if (!strcmp(s, "warn") || !strcmp(s, "warning"))
		*out = CHECK_WARNING;
	else if (!strcmp(s, "ok"))
		*out = CHECK_OK;
	else
		return -EINVAL;
	return 0;
}

static int usage_error(const char *what)
{
	printf("KEYFS UNKNOWN - %s\n", what);
	check_usage(stderr);
	return CHECK_UNKNOWN;
}

int check_main(const char *mount, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "warn", required_argument, NULL, 'w' },
		{ "crit", required_argument, NULL, 'c' },
		{ "never", required_argument, NULL, 'n' },
		{ "timeout", required_argument, NULL, 't' },
		{ "mount", required_argument, NULL, 'm' },
		{ "discover", no_argument, NULL, 'D' },
		{ "root", required_argument, NULL, 'r' },
		{ "config", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct check_opts o = { 86400, 7 * 86400, CHECK_WARNING };
	const char *root = NULL, *config = NULL;
	enum check_status s;
	char why[4200], out[8192], *text;
	int timeout_secs = TIMEOUT_DEFAULT, n;
	bool discover = false;
	long t;
	int c;

	optind = 0;
	while ((c = getopt_long(argc, argv, "w:c:n:t:m:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'w':
			if (check_parse_age(optarg, &o.warn))
				return usage_error("--warn: an age such as 30m, 2h or 1d");
			break;
		case 'c':
			if (check_parse_age(optarg, &o.crit))
				return usage_error("--crit: an age such as 30m, 2h or 1d");
			break;
		case 'n':
			if (parse_never(optarg, &o.never))
				return usage_error("--never: crit, warn or ok");
			break;
		case 't':
			if (check_parse_age(optarg, &t) || t < 1 || t > 3600)
				return usage_error("--timeout: 1 to 3600 seconds");
			timeout_secs = (int)t;
			break;
		case 'm':
			mount = optarg;
			break;
		case 'D':
			discover = true;
			break;
		case 'r':
			root = optarg;
			break;
		case 'C':
			config = optarg;
			break;
		case 'h':
			check_usage(stdout);
			return CHECK_OK;
		default:
			return usage_error("bad option");
		}
	}
	if (optind < argc)
		return usage_error("unexpected operand");
	s = read_metrics_within(mount, timeout_secs, &text, why, sizeof(why));
	if (s != CHECK_OK) {
		/* why holds the mount's path, and errors read from it */
		n = snprintf(out, sizeof(out), "KEYFS %s - ", status_words[s]);
		escape_str(out + n, sizeof(out) - (size_t)n - 1, why, 0);
		strcat(out, "\n");
	} else {
		s = check_eval(text, &o, time(NULL), out, sizeof(out));
		free(text);
	}
	if (discover)
		s = discover_check(root, config, s, out, sizeof(out));
	fputs(out, stdout);
	return s;
}

int check_metrics_main(const char *mount, int argc, char **argv)
{
	char why[4200], *text;

	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "usage: keyfsctl [-m MOUNTPOINT] metrics\n");
		return 2;
	}
	if (read_metrics(mount, &text, why, sizeof(why)) != CHECK_OK) {
		fputs("keyfsctl: ", stderr);
		escape_put(stderr, why);
		fputc('\n', stderr);
		return 1;
	}
	fputs(text, stdout);
	free(text);
	return 0;
}
