/* What the status, the keyset list (report.c) and README.txt
 * (report_readme.c) share. */
#ifndef KEYFS_REPORT_PRIV_H
#define KEYFS_REPORT_PRIV_H

#include <stdio.h>

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

#endif
