/* INI files as keyfs reads them (inih, one line per call so that errors
 * carry the line): the configuration (config.c) and the preset catalog
 * (presets.c) share the reader and the "name:line: section.key: why"
 * form of their errors. */
#ifndef KEYFS_INIFILE_H
#define KEYFS_INIFILE_H

#include <stddef.h>

#define INIFILE_MAX (64 * 1024)	/* bytes of one file */

/* Called for each key: 0, or -errno with *why saying what is wrong
 * (never quoting the value). line is the key's line. */
typedef int (*inifile_fn)(void *arg, const char *section, const char *key, const char *value,
			  int line, const char **why);

/* Parses text, calling fn for each key; on the first refusal or syntax
 * error writes "name:line: message" into err and returns -EINVAL. */
int inifile_parse(const char *name, const char *text, inifile_fn fn, void *arg, char *err,
		  size_t errlen);

/* The whole of the file at path (at most INIFILE_MAX bytes), NUL
 * terminated, in *text for free(); -errno with "path: why" in err. */
int inifile_read(const char *path, char **text, char *err, size_t errlen);

#endif
