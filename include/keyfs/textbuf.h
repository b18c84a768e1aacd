/* A text built in memory through stdio, as open_memstream() builds it,
 * without its copies: open_memstream() allocates a new buffer and copies
 * the text at every doubling, which for a status of a hundred thousand
 * keysets (17 MiB) cost a fifth of reading it. Here the buffer grows by
 * realloc(), which moves a large (mmapped) block with mremap(). */
#ifndef KEYFS_TEXTBUF_H
#define KEYFS_TEXTBUF_H

#include <stdio.h>

/* Like open_memstream(): after fclose(), *buf holds the text, NUL
 * terminated, and *len its length; the caller frees *buf, also when
 * fclose() failed. NULL if out of memory. */
FILE *textbuf_open(char **buf, size_t *len);

/* Appends n bytes of p to *buf, which has *len bytes in use of *cap,
 * doubling it as needed (from 4 KiB): a buffer kept and added to, where
 * a new one each time would be new pages. -ENOMEM leaves it as it was. */
int textbuf_append(char **buf, size_t *len, size_t *cap, const void *p, size_t n);

#endif
