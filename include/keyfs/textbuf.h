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

#endif
