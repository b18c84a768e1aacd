/* Backup records: the snapshot of a clean stop.
 *
 * Written at a clean stop, after the last record file, with the times of
 * fresh/ then: the next start reads it in one go instead of a file per
 * keyset, but only if fresh/ has not changed since. Writing a record
 * renames a file into fresh/, which makes its times later, whoever
 * writes it (a keyfs that knows no snapshot too); a crash leaves records
 * written after the snapshot, and so a snapshot that is not read. */
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

static int cmp_recs(const void *a, const void *b)
{
	return strcmp((*(struct fresh_rec *const *)a)->name, (*(struct fresh_rec *const *)b)->name);
}

/* In name order (see load_all() in fresh.c). At the stop, nobody else asks for
 * records any more. */
static int snapshot_put(FILE *out, void *arg)
{
	char text[RECORD_MAX];
	struct fresh_rec **all, *r;
	struct fresh *f = arg;
	size_t n = 0, i, pos = 0;
	struct rec_copy c;
	int ret = 0;

	pthread_mutex_lock(&f->lock);
	all = malloc((f->recs.n ? f->recs.n : 1) * sizeof(*all));
	if (!f->loaded || !all) {
		ret = f->loaded ? -ENOMEM : -EAGAIN; /* stopped before every record was read */
		goto out;
	}
	for (r = (struct fresh_rec *)htab_next(&f->recs, &pos, NULL); r;
	     r = (struct fresh_rec *)htab_next(&f->recs, &pos, &r->h))
		if (r->seen)
			all[n++] = r;
	qsort(all, n, sizeof(*all), cmp_recs);
	dirwalk_cache_head(out, "keyfs-fresh-all 1", f->dfd, n);
	for (i = 0; i < n; i++) {
		c = (struct rec_copy){ .name = all[i]->name, .stamp = all[i]->stamp, .key = all[i]->key };
		fr_rec_info(f, all[i], &c.i);
		fr_format(&c, text);
		fprintf(out, "%s %s", all[i]->name, text);
	}
	fprintf(out, "end %zu\n", n);
out:
	pthread_mutex_unlock(&f->lock);
	free(all);
	return ret;
}

void fr_snapshot_write(struct fresh *f)
{
	int ret;

	ret = replace_stream(f->sfd, SNAPSHOT, snapshot_put, f);
	if (ret && ret != -EAGAIN)
		log_msg(LOG_WARNING, "saving backup records in %s: %s", SNAPSHOT, strerror(-ret));
}

/* One line of the snapshot: the name, then the record file's line. */
static int snapshot_line(struct fresh *f, char *line)
{
	char *sp = strchr(line, ' ');
	struct fresh_rec *r;
	uint64_t h;

	if (!sp)
		return -EINVAL;
	*sp = '\0';
	if (!keyset_name_valid(line))
		return -EINVAL;
	h = htab_hash(line);
	pthread_mutex_lock(&f->lock);
	/* one read from its file meanwhile, for a request, is as new */
	r = (struct fresh_rec *)htab_find(&f->recs, h, fr_same_name, line);
	if (!r) {
		r = fr_rec_add(f, line, h);
		if (r && fr_parse(f, r, sp + 1)) {
			htab_del(&f->recs, &r->h);
			free(r);
			r = NULL;
		}
	}
	pthread_mutex_unlock(&f->lock);
	return r ? 0 : -EINVAL;
}

bool fr_snapshot_read(struct fresh *f)
{
	size_t cap = 0, n = 0, count = 0, end = 0;
	bool whole = false;
	char *line = NULL;
	FILE *in;

	in = dirwalk_cache_open(f->sfd, SNAPSHOT, "keyfs-fresh-all 1", f->dfd, &count);
	if (!in)
		return false;
	while (getline(&line, &cap, in) > 0) {
		if (sscanf(line, "end %zu", &end) == 1) {
			whole = end == count && n == count;
			break;
		}
		if (snapshot_line(f, line))
			break;
		n++;
	}
	free(line);
	fclose(in);
	return whole;
}

