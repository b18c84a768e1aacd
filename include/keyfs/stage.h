/* Staging of files written into import/ and verify/: held in memory,
 * bounded per file and in total, processed on the first flush after
 * writing so the outcome reaches the writer as close(2)'s errno.
 *
 * Flush is idempotent: with nothing new written it returns the outcome of
 * the last processing (0 if there was none) without redoing the work.
 * Once processed and closed, a file keeps its name, size and outcome but
 * drops its bytes, so finished imports cost no memory until unlinked.
 *
 * Processing runs without the stage's lock: listing, getattr, setattr,
 * reads, unlink, rename and every other file's writes never wait for it.
 * Only what would change the file being processed (its writes, truncate,
 * an O_TRUNC open) waits, and a second flush of it waits for the outcome
 * of the running processing and returns that. An unlink or a rename over
 * a file under processing takes its name away at once.
 *
 * A write past the per-file limit (-EFBIG) leaves the file incomplete:
 * later writes and the flush fail with -EFBIG too, until the file is
 * emptied (O_TRUNC, truncate to 0). */
#ifndef KEYFS_STAGE_H
#define KEYFS_STAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define STAGE_NAME_MAX 255
#define STAGE_IMPORT 0
#define STAGE_VERIFY 1

struct stage;

struct stage_attr {
	size_t size;
	mode_t mode;
	time_t mtime;
};

/* Processes a complete file: 0 or a negative errno for close(2). It runs
 * without the stage's lock, possibly for several files at once, so it
 * must be thread-safe. For a file that went past the per-file limit it is
 * called with data NULL and len that limit, only to report the refusal:
 * the flush fails with -EFBIG whatever it returns. */
typedef int (*stage_process_fn)(void *arg, bool verify_only, const uint8_t *data, size_t len);

int stage_new(struct stage **sp, size_t max_size, size_t max_total, stage_process_fn fn, void *arg);
void stage_free(struct stage *sp);

/* dir is STAGE_IMPORT or STAGE_VERIFY; names are single components.
 * stage_open() with create makes the file if absent (-EEXIST if excl and
 * present); trunc empties it. Each open is paired with stage_release(). */
int stage_open(struct stage *sp, int dir, const char *name, bool create, bool excl, bool trunc,
	       mode_t mode);
void stage_release(struct stage *sp, int dir, const char *name);
int stage_write(struct stage *sp, int dir, const char *name, const char *buf, size_t size, off_t off);
int stage_read(struct stage *sp, int dir, const char *name, char *buf, size_t size, off_t off);
int stage_truncate(struct stage *sp, int dir, const char *name, off_t size);
int stage_flush(struct stage *sp, int dir, const char *name);
int stage_getattr(struct stage *sp, int dir, const char *name, struct stage_attr *a);
int stage_setattr(struct stage *sp, int dir, const char *name, const mode_t *mode, const time_t *mtime);
int stage_unlink(struct stage *sp, int dir, const char *name);
int stage_rename(struct stage *sp, int dir, const char *from, const char *to);
/* Calls fn for each name in dir. */
int stage_list(struct stage *sp, int dir, void (*fn)(void *arg, const char *name), void *arg);

#endif
