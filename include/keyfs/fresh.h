/* Backup freshness: per keyset, when its current export appeared, when it
 * was sealed, and when an export was last read to the end (a backup),
 * by which process and uid. keyfs is the one place that knows both when
 * a keyset changed and when its export was read out, so this is what
 * status, `keyfsctl check` and the metrics answer from.
 *
 * The identity of an export is its keyset version (stamp) and its
 * sealing key (a hash of the password id and work factor, never the id
 * itself); a new one of either makes a new export, which no backup holds
 * yet. A backup holds the export whose seal time it read: the seal cache
 * never gives two seals of a keyset the same time, so "backed up" is
 * "the seal time read equals the current seal time".
 *
 * Records persist across restarts in one journal, <state>/fresh.log, a
 * line per change; the seal outcome and the seal duration histogram are
 * the running daemon's only. It is written by a thread of fresh's own,
 * at most once a second, never in the caller (a FUSE request would wait
 * on fdatasync): a crash loses up to about a second of recorded times;
 * fresh_free() writes the rest. */
#ifndef KEYFS_FRESH_H
#define KEYFS_FRESH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "keyfs/metrics.h"
#include "keyfs/state.h"

#define FRESH_COMM_MAX 16	/* TASK_COMM_LEN: /proc/<pid>/comm */

enum fresh_state {
	FRESH_NEVER,		/* no export of it was ever read to the end */
	FRESH_CHANGED,		/* one was, but the current export is another */
	FRESH_BACKED_UP,	/* the current export was read to the end */
};

struct fresh_info {
	time_t changed_at;	/* keyfs first saw the current version or key */
	time_t sealed_at;	/* the current export's seal; 0: not sealed yet */
	time_t backup_at;	/* last read to the end; 0: never */
	time_t backup_sealed;	/* the seal time of the export that read read */
	uid_t backup_uid;
	char backup_comm[FRESH_COMM_MAX];	/* printable; "?" if unknown */
	int seal_error;		/* the last seal's error (-errno), 0 if it worked */
	bool locked;		/* no key to seal it with */
};

struct fresh;

/* Starts the writer thread, which first reads the journal (a request
 * waits for it), or, without one, the records earlier releases kept
 * under <state>/fresh (a record asked for before that is read from its
 * file then). Call it after any fork (fuse_daemonize). */
int fresh_new(struct fresh **f, const struct state *s);
void fresh_free(struct fresh *f);

/* Told (without any lock held) after anything recorded changed. fn and
 * arg are read without a lock: set them before any thread that calls
 * into f starts, and never after. */
void fresh_set_listener(struct fresh *f, void (*fn)(void *arg), void *arg);

/* A keyset's record, kept until fresh_free(). */
struct fresh_rec;

/* The current export of name: its version stamp, its sealing key (0: no
 * key now, keep the last one), the seal time of its bytes (0: not sealed
 * yet) and whether it is locked. A new stamp or key sets changed_at to
 * now, unless the bytes stay the very ones sealed before (the same
 * content under a new stamp keeps its seal). The record as it is then
 * goes to *out, if given: 0, or -ENOMEM if none could be kept. With ref,
 * *ref is the record: found by name and set if NULL, else used as it is
 * (a status tells every keyset, and a lookup each is a cache miss each). */
int fresh_observe(struct fresh *f, struct fresh_rec **ref, const char *name, uint64_t stamp,
		  uint64_t key, time_t sealed_at, bool locked, struct fresh_info *out);

/* The seal cache kept its seal of name's version old as the seal of
 * version stamp: both hold the same content. A record still at old moves
 * to stamp with its times, so the new stamp is no change (the seal cache
 * tells this before the attributes that show the kept seal). */
void fresh_same_content(struct fresh *f, const char *name, uint64_t old, uint64_t stamp);

/* An export sealed at sealed_at was read to its last byte by pid as uid. */
void fresh_read_to_end(struct fresh *f, const char *name, time_t sealed_at, pid_t pid, uid_t uid);

/* A seal of name finished: err 0, or why it failed (-ENOKEY and -ENOENT
 * are no failure: locked, or gone); seconds it took. */
void fresh_seal_done(struct fresh *f, const char *name, int err, double seconds);

/* The record of name; -ENOENT if it was never observed. */
int fresh_get(struct fresh *f, const char *name, struct fresh_info *i);

enum fresh_state fresh_state_of(const struct fresh_info *i);
/* "never", "changed", "backed_up": as in the metrics' state label. */
const char *fresh_state_name(enum fresh_state s);

/* A copy of the seal duration histogram (seconds). */
void fresh_seal_durations(struct fresh *f, struct histogram *h);

#endif
