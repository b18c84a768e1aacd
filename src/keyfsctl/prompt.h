/* Asking for a secret: one line read with read(2), byte by byte, into
 * the caller's guarded memory, from the terminal without echo (or from
 * standard input), never through stdio's buffers. */
#ifndef KEYFS_PROMPT_H
#define KEYFS_PROMPT_H

#include <stdbool.h>
#include <stddef.h>

/* Reads one line into buf (size bytes, guarded memory) after showing
 * prompt on the terminal, or from stdin with from_stdin; *len is its
 * length, a trailing CR dropped. -ENODATA at the end of input before
 * anything, -EMSGSIZE for a line that does not fit, else open(2)'s or
 * read(2)'s error. */
int prompt_secret(const char *prompt, bool from_stdin, char *buf, size_t size, size_t *len);

#endif
