/* Glob patterns over member paths ("a/b/c"), for live keysets'
 * include and exclude: '*', '?' and [...] within one component
 * (fnmatch(3)), "**" as a whole component for any number of them. */
#ifndef KEYFS_GLOB_H
#define KEYFS_GLOB_H

#include <stdbool.h>

/* Does path match pattern? With prefix, does path match the leading
 * components of pattern, so that something below path may match (a
 * directory worth entering)? */
bool glob_match(const char *pattern, const char *path, bool prefix);
/* glob_match() against any of a space-separated list of patterns. */
bool glob_list_match(const char *list, const char *path, bool prefix);

#endif
