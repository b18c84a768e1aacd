/* The newest line of "last imports" in a keyfs status: the outcome, in
 * words, of the import or activation keyfsctl just asked for, where
 * .control's errno alone would say too little ("No child processes"). */
#ifndef KEYFS_OUTCOME_H
#define KEYFS_OUTCOME_H

#include <stddef.h>

/* Reads MNT/.control's status into buf (size bytes) and leaves there the
 * newest outcome line, without its indent; -ENOENT if there is none. */
int outcome_last(const char *mount, char *buf, size_t size);

#endif
