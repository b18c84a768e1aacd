/* Keeping a metrics file up to date (metrics.file): a background thread
 * renders the text when told something changed, at most once a second,
 * and replaces the file atomically (a temporary file beside it, fsync,
 * rename), so node_exporter's textfile collector never reads part of
 * it. The text is written only when it differs from what the file
 * holds. It also renders every METRICSFILE_RESCAN seconds unasked: a
 * keyset changed in the store is noticed only when someone looks.
 *
 * The file ends with one gauge more than the rendered text,
 * METRICSFILE_RENDERED, the time it was written; it is written again at
 * each rescan even if nothing else changed, so a file older than about
 * METRICSFILE_RESCAN seconds is one of a daemon that stopped. */
#ifndef KEYFS_METRICSFILE_H
#define KEYFS_METRICSFILE_H

#include <stddef.h>

#define METRICSFILE_RESCAN 60
#define METRICSFILE_RENDERED "keyfs_metrics_rendered_timestamp_seconds"

struct metricsfile;

/* path: absolute; its directory must exist. render returns malloc()ed
 * text or -errno. Opens the directory (errors are the caller's to log). */
int metricsfile_new(struct metricsfile **mf, const char *path,
		    int (*render)(void *arg, char **text, size_t *len), void *arg);
/* Starts the thread, which writes the file once right away. */
int metricsfile_start(struct metricsfile *mf);
/* Something the metrics show changed. Never blocks; mf may be NULL. */
void metricsfile_poke(struct metricsfile *mf);
/* Stops the thread (after the write in progress) and joins it. mf stays
 * valid: pokes after this are harmless no-ops, so threads that may still
 * poke (seal workers, sources) can be stopped afterwards. mf may be NULL. */
void metricsfile_stop(struct metricsfile *mf);
/* Stops the thread if it still runs and frees mf; call it once nothing
 * can poke any more. mf may be NULL. */
void metricsfile_free(struct metricsfile *mf);

#endif
