/* The newest line of "last imports" in a keyfs status: the outcome, in
 * words, of the import or activation keyfsctl just asked for, where
 * .control's errno alone would say too little ("No child processes"). */
#ifndef KEYFS_OUTCOME_H
#define KEYFS_OUTCOME_H

#include <stddef.h>

/* Reads MNT/.control's status into buf (size bytes) and leaves there the
 * newest outcome line, without its indent; -ENOENT if there is none. */
int outcome_last(const char *mount, char *buf, size_t size);

/* Copies file into MOUNT/DIR/ (import or verify): 0 or the -errno of
 * the copy, close(2)'s being keyfs' verdict. Says nothing. */
int outcome_copy(const char *mount, const char *dir, const char *file);
/* A copy's error, in words, on stderr. */
void outcome_say(const char *file, int err);

/* Copies file into MOUNT/DIR/ (import or verify) and says close(2)'s
 * verdict in words, then keyfs' own outcome line when it failed; 0 or
 * the -errno of the copy. */
int outcome_copy_in(const char *mount, const char *dir, const char *file);

#endif
