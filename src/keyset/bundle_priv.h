/* What packing and unpacking a bundle share. */
#ifndef KEYFS_BUNDLE_PRIV_H
#define KEYFS_BUNDLE_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define TAR_BLOCK 512
/* Largest mtime a ustar header holds: 11 octal digits. Kept as the
 * bound in pax too, so that times stay in the plain header. */
#define USTAR_TIME_MAX ((time_t)077777777777)
/* KEYSET.ini is metadata, a few hundred bytes; bound what we read. */
#define INI_MAX 4096

/* Hints end up in KEYSET.ini lines, README.txt and logs: no control
 * characters, so a hint cannot add a line or a terminal escape. */
bool bundle_hint_valid(const char *h, size_t n);

#endif
