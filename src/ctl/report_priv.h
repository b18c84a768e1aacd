/* What the status, the keyset list (report.c) and README.txt
 * (report_readme.c) share. */
#ifndef KEYFS_REPORT_PRIV_H
#define KEYFS_REPORT_PRIV_H

#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#include "keyfs/control.h"
#include "keyfs/sealcache.h"

/* A piece of a report, written without printf's parsing: a status or a
 * list may have a line per keyset. */
static inline void put(FILE *f, const char *s)
{
	fputs_unlocked(s, f);
}

/* Closes a report opened with textbuf_open(): 0 with *text and its
 * length final, or ret (-ENOMEM if the text could not be made), *text
 * freed. */
int report_finish(FILE *f, char **text, int ret);

/* "%Y-%m-%dT%H:%M:%SZ" of t, or "never". */
void report_iso_time(time_t t, char buf[static 32]);

/* What the reports show of one keyset. */
struct ks_info {
	struct export_report r;
	char sealed[32];
	unsigned *versions;	/* inactive version numbers; the caller frees them */
	size_t nversions;
};

/* Fills i from memory, the inactive versions too if asked: 0, -EPERM
 * (i->r.why says why it cannot be exported) or another error. */
int report_ks_info(struct ctl *c, const char *name, struct ks_info *i, bool versions);

#endif
