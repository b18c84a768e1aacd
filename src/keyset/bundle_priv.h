/* What packing and unpacking a bundle share. */
#ifndef KEYFS_BUNDLE_PRIV_H
#define KEYFS_BUNDLE_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "keyfs/keyset.h"

#define TAR_BLOCK 512
/* Largest mtime a ustar header holds: 11 octal digits. Kept as the
 * bound in pax too, so that times stay in the plain header. */
#define USTAR_TIME_MAX ((time_t)077777777777)
/* KEYSET.ini: metadata, a line or two per member; bound what we read. */
#define INI_MAX (4 << 20)

/* KEYSET.ini of ks (format: what keyset_format() says; fpr: its
 * bundle_fingerprint()) into *ini,
 * malloc()ed, *len bytes: the keyset's facts, then every member's type,
 * mode, owner, link and xattr names, then each file's sha256 as
 * sha256sum writes it. No key material. */
int bundle_ini(const struct keyset *ks, int format, const char *fpr, char **ini, size_t *len);

/* Hints end up in KEYSET.ini lines, README.txt and logs: no control
 * characters, so a hint cannot add a line or a terminal escape. */
bool bundle_hint_valid(const char *h, size_t n);

#endif
