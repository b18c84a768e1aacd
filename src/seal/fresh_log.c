/* Backup records: the journal, STATE/fresh.log.
 *
 * One file instead of one per keyset: a first seal of a hundred
 * thousand keysets changes a hundred thousand records, and a file each
 * cost an inode, a rename and a directory entry per seal. The journal
 * starts with every record once (a dump, sorted by name), and the
 * writer appends a line per changed record after it; a line read later
 * replaces what an earlier one said of its keyset. It is made durable
 * with one fdatasync() per round of appends. A crash may tear the last
 * line: the journal is read up to it, and rewritten whole before the
 * next append.
 *
 * The writer rewrites it (a fresh dump, renamed over it) at start when
 * it must, once the appended lines outnumber the records, and at a clean
 * stop, so the next start reads one line per keyset.
 *
 * The first line holds the times of fresh/, where earlier releases kept
 * a file per record: a journal read only while fresh/ has not changed
 * since, so records an earlier release wrote after it are not lost to
 * an older journal (they are read instead, and the journal rewritten). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keyfs/dirwalk.h"
#include "keyfs/keyset.h"
#include "keyfs/log.h"
#include "keyfs/replace.h"

#include "fresh_priv.h"

#define LOG_NAME "fresh.log"
#define LOG_MAGIC "keyfs-fresh-log 1"
/* Appended lines beyond one per record that make the writer rewrite it. */
#define LOG_SLACK 4096
/* A journal line: the name, a space, a record's line. */
#define JOURNAL_LINE_MAX (KEYSET_NAME_MAX + 1 + RECORD_MAX)
/* Records formatted per hold of f->lock while dumping. */
#define DUMP_ROUND 1024

static void open_for_append(struct fresh *f)
{
	if (f->lfd >= 0)
		close(f->lfd);
	f->lfd = openat(f->sfd, LOG_NAME, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
	if (f->lfd < 0)
		log_msg(LOG_WARNING, "opening %s: %m", LOG_NAME);
}

bool fr_log_read(struct fresh *f)
{
	size_t cap = 0, count = 0, lines = 0;
	char *line = NULL;
	ssize_t len;
	FILE *in;

	in = dirwalk_cache_open(f->sfd, LOG_NAME, LOG_MAGIC, f->dfd, &count);
	if (!in)
		return false;
	pthread_mutex_lock(&f->lock);
	while ((len = getline(&line, &cap, in)) > 0) {
		/* a line read later replaces what an earlier one said */
		if (line[len - 1] != '\n' || fr_parse_line(f, line, true)) {
			f->torn = true;
			break;
		}
		lines++;
	}
	pthread_mutex_unlock(&f->lock);
	free(line);
	fclose(in);
	if (f->torn || lines < count)
		log_msg(LOG_WARNING, "%s ends early after %zu records (a crash while writing it?): "
			"it is written again", LOG_NAME, lines);
	f->torn |= lines < count;
	f->logged = lines > count ? lines - count : 0;
	open_for_append(f);
	return true;
}

static int cmp_recs(const void *a, const void *b)
{
	return strcmp((*(struct fresh_rec *const *)a)->name, (*(struct fresh_rec *const *)b)->name);
}

/* Caller holds f->lock. */
static void put_rec(FILE *out, const struct fresh *f, const struct fresh_rec *r)
{
	char text[RECORD_MAX];
	struct rec_copy c = { .name = r->name, .stamp = r->stamp, .key = r->key };

	fr_rec_info(f, r, &c.i);
	fr_format(&c, text);
	fprintf(out, "%s %s", r->name, text);
}

/* Every record seen, in name order (see load_all() in fresh.c), f->lock
 * taken per round: a record that changes after its line is dirty, and
 * appended once the dump is in place. Records are never freed while
 * the writer runs, and names never change, so the sort needs no lock. */
static int dump(FILE *out, void *arg)
{
	struct fresh_rec **all, *r;
	struct fresh *f = arg;
	size_t n = 0, i, pos = 0;

	pthread_mutex_lock(&f->lock);
	if (!f->loaded) {
		pthread_mutex_unlock(&f->lock);
		return -EAGAIN; /* stopped before every record was read: keep the old */
	}
	all = malloc((f->recs.n ? f->recs.n : 1) * sizeof(*all));
	for (r = (struct fresh_rec *)htab_next(&f->recs, &pos, NULL); all && r;
	     r = (struct fresh_rec *)htab_next(&f->recs, &pos, &r->h))
		if (r->seen)
			all[n++] = r;
	pthread_mutex_unlock(&f->lock);
	if (!all)
		return -ENOMEM;
	qsort(all, n, sizeof(*all), cmp_recs);
	dirwalk_cache_head(out, LOG_MAGIC, f->dfd, n);
	for (i = 0; i < n; i++) {
		if (i % DUMP_ROUND == 0)
			pthread_mutex_lock(&f->lock);
		put_rec(out, f, all[i]);
		if (i % DUMP_ROUND == DUMP_ROUND - 1 || i == n - 1)
			pthread_mutex_unlock(&f->lock);
	}
	free(all);
	return 0;
}

void fr_log_compact(struct fresh *f)
{
	int ret;

	ret = replace_stream(f->sfd, LOG_NAME, dump, f);
	/* appends go to the new file: its name must last before they do */
	if (!ret)
		ret = replace_dir_fsync(f->sfd, ".");
	if (ret) {
		if (ret != -EAGAIN)
			log_msg(LOG_WARNING, "saving backup records in %s: %s", LOG_NAME,
				strerror(-ret));
		return;
	}
	f->torn = false;
	f->logged = 0;
	open_for_append(f);
}

int fr_log_append(struct fresh *f, const struct rec_copy *c, size_t n)
{
	char text[RECORD_MAX], *buf;
	size_t i, used = 0, size = 64 * 1024;
	int ret = 0;

	buf = malloc(size);
	if (!buf)
		return -ENOMEM;
	for (i = 0; !ret && i < n; i++) {
		fr_format(&c[i], text);
		used += (size_t)snprintf(buf + used, size - used, "%s %s", c[i].name, text);
		if (size - used < JOURNAL_LINE_MAX + 1 || i == n - 1) {
			ret = replace_write_all(f->lfd, buf, used);
			used = 0;
		}
	}
	free(buf);
	f->logged += i;
	/* a line may be torn: the next round rewrites the journal whole,
	 * with every record as it is then */
	if (ret)
		f->torn = true;
	return ret;
}

bool fr_log_due(const struct fresh *f, size_t records)
{
	return f->lfd < 0 || f->torn || f->logged > records + LOG_SLACK;
}
