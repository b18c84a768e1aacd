/* Internals shared by the backup records' files: fresh.c (the table,
 * the writer thread), fresh_rec.c (one record's line), fresh_log.c (the
 * journal they are kept in) and fresh_snapshot.c (reading what earlier
 * releases kept: a file per record, and all of them at a clean stop). */
#ifndef KEYFS_FRESH_PRIV_H
#define KEYFS_FRESH_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "keyfs/fresh.h"
#include "keyfs/htab.h"
#include "keyfs/metrics.h"

#define RECORD_MAX 256
/* Every record, as earlier releases wrote it at a clean stop. */
#define SNAPSHOT "fresh.all"
/* Distinct program names kept for the reports; later ones show as "?". */
#define COMMS_MAX 256

/* One per keyset, a hundred thousand on a large store: the fields of
 * struct fresh_info, but the program name by its number in f->comms (a
 * few tools read every export), the flags together and the name sized to
 * fit. */
struct fresh_rec {
	struct hnode h;		/* in f->recs */
	uint64_t stamp, key;
	time_t changed_at, sealed_at, backup_at, backup_sealed;
	uid_t backup_uid;
	int seal_error;
	uint8_t comm;		/* f->comms[comm]; 0 is "?" */
	bool locked;
	bool seen;		/* stamp and key above are known */
	bool dirty;		/* the journal is behind; protected by f->lock */
	char name[];
};

/* What the writer writes of a record, copied under f->lock. */
struct rec_copy {
	const char *name;
	uint64_t stamp, key;
	struct fresh_info i;
};

struct fresh {
	int dfd;			/* <state>/fresh: earlier releases' records */
	int sfd;			/* <state>, for the journal; not owned */
	/* The journal, the writer thread's alone once started: appended
	 * to; lines appended since it was last written whole; whether its
	 * last line may be torn. */
	int lfd;
	size_t logged;
	bool torn;
	pthread_mutex_t lock;		/* the table and the histogram */
	struct htab recs;		/* struct fresh_rec by name */
	struct histogram seals;
	char comms[COMMS_MAX][FRESH_COMM_MAX];	/* [0] is "?" */
	unsigned ncomms;
	void (*fn)(void *arg);		/* set before threads start: read unlocked */
	void *arg;
	/* The writer thread: the journal is written (and synced) by it,
	 * never in a FUSE request, which would wait on the disk. */
	pthread_t writer;
	bool running;
	pthread_cond_t wake;		/* CLOCK_MONOTONIC */
	bool pending, stop;		/* protected by lock */
	/* Every record is in recs. The writer thread reads the journal
	 * first (a tenth of a second for a hundred thousand keysets, beside
	 * the mount, not before it), and requests wait until it has
	 * (reading). Without a journal, until the thread has read earlier
	 * releases' files, a record is read from its file when first asked
	 * for, so no request waits for a hundred thousand files. */
	bool loaded, reading;		/* protected by lock */
	pthread_cond_t read;		/* reading ended */
};

/* ---- fresh_rec.c; caller holds f->lock ---- */
/* A process name as status and metrics may show it: printable ASCII. */
void fr_clean_comm(char *s);
/* comm's number in f->comms, added if new; 0 ("?") when full. */
uint8_t fr_comm_id(struct fresh *f, const char *comm);
void fr_rec_info(const struct fresh *f, const struct fresh_rec *r, struct fresh_info *i);
/* Reads a record file's line into r. */
int fr_parse(struct fresh *f, struct fresh_rec *r, const char *text);
/* A line of the journal or the snapshot, "NAME RECORD-LINE" (line is
 * changed): its record goes into the table, in place of one there only
 * if replace. */
int fr_parse_line(struct fresh *f, char *line, bool replace);
struct fresh_rec *fr_rec_add(struct fresh *f, const char *name, uint64_t h);
bool fr_same_name(const struct hnode *h, const void *name);

/* A record file's line, which fr_parse() reads. */
int fr_format(const struct rec_copy *r, char text[static RECORD_MAX]);

/* ---- fresh_log.c ---- */
/* Reads the journal into the table, if there is one and fresh/ has not
 * changed since it was written whole; by the writer thread, first,
 * while requests wait (f->reading). Whether it did. */
bool fr_log_read(struct fresh *f);
/* Writes it whole (by the writer thread); kept as it was on failure. */
void fr_log_compact(struct fresh *f);
/* Appends n records (by the writer thread): 0 or -errno. */
int fr_log_append(struct fresh *f, const struct rec_copy *c, size_t n);
/* Whether it must be written whole before the next append, or may be
 * now: none yet, torn, or more appended lines than records. */
bool fr_log_due(const struct fresh *f, size_t records);

/* ---- fresh_snapshot.c; by the writer thread ---- */
/* Whether every record was read from a snapshot that is current. */
bool fr_snapshot_read(struct fresh *f);

#endif
