/* Backup records: the snapshot of a clean stop, as earlier releases
 * wrote it, read once when there is no journal (fresh_log.c).
 *
 * They wrote it at a clean stop, after the last record file, with the
 * times of fresh/ then: it is read in one go instead of a file per
 * keyset, but only if fresh/ has not changed since. Writing a record
 * renamed a file into fresh/, which made its times later; a crash left
 * records written after the snapshot, and so a snapshot not read. */
#include <stdio.h>
#include <stdlib.h>

#include "keyfs/dirwalk.h"

#include "fresh_priv.h"

bool fr_snapshot_read(struct fresh *f)
{
	size_t cap = 0, n = 0, count = 0, end = 0;
	bool whole = false;
	char *line = NULL;
	FILE *in;
	int ret;

	in = dirwalk_cache_open(f->sfd, SNAPSHOT, "keyfs-fresh-all 1", f->dfd, &count);
	if (!in)
		return false;
	while (getline(&line, &cap, in) > 0) {
		if (sscanf(line, "end %zu", &end) == 1) {
			whole = end == count && n == count;
			break;
		}
		/* one read from its file meanwhile, for a request, is as new */
		pthread_mutex_lock(&f->lock);
		ret = fr_parse_line(f, line, false);
		pthread_mutex_unlock(&f->lock);
		if (ret)
			break;
		n++;
	}
	free(line);
	fclose(in);
	return whole;
}
