/* Backup records: the snapshot of a clean stop, as earlier releases
 * wrote it, read once when there is no journal (fresh_log.c).
 *
 * They wrote it at a clean stop, after the last record file, with the
 * times of fresh/ then: it is read in one go instead of a file per
 * keyset, but only if fresh/ has not changed since. Writing a record
 * renamed a file into fresh/, which made its times later; a crash left
 * records written after the snapshot, and so a snapshot not read. */
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

