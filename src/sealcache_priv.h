/* Internals shared by the seal cache (sealcache.c: entries, attributes,
 * opens, password ids) and its sealing work (sealwork.c: the queue, the
 * workers, sealing one keyset).
 *
 * Locking: sc->lock protects every entry field, the queue, the password
 * ids and the worker state; it is never held across crypto, and never
 * while calling the vault: sealing holds a vault read lock for a whole
 * scrypt, and the vault's writers wait for it, so a vault call under
 * sc->lock would close a cycle (vault -> sc -> vault). Order: vault
 * first, then sc->lock, never the reverse. */
#ifndef KEYFS_SEALCACHE_PRIV_H
#define KEYFS_SEALCACHE_PRIV_H

#include <pthread.h>

#include "keyfs/bundle.h"
#include "keyfs/sealcache.h"
#include "keyfs/verifier.h"

#define BUCKETS 4096
#define MAX_WORKERS 16
#define OPEN_WAIT_SECONDS 60

struct entry {
	struct entry *next;		/* hash chain */
	struct entry *qnext;		/* queue link */
	char name[KEYSET_NAME_MAX + 1];
	/* the cached seal on disk */
	bool cached;
	uint64_t stamp;
	uint8_t pwid[VERIFIER_ID_LEN];
	int logn;			/* work factor it was sealed at */
	time_t sealed_at;
	size_t len;
	/* why the keyset cannot be exported (0: it can); logged once */
	int bad;
	char *why;
	/* attributes of a version not sealed yet */
	uint64_t pred_stamp;
	size_t pred_size;
	time_t pred_mtime;		/* the keyset's own time */
	char fpr[2 * BUNDLE_FPR_LEN + 1];	/* its fingerprint */
	uint64_t due_stamp;		/* version and password the next seal is for */
	uint8_t due_pwid[VERIFIER_ID_LEN];
	int due_logn;
	time_t due_at;			/* when that became due: the next seal's time */
	bool queued, sealing;
	bool own_pw;			/* keyset has a password of its own */
	/* the seal the last open served */
	uint64_t served_stamp;
	time_t served_at;
	uint8_t served_pwid[VERIFIER_ID_LEN];
};

struct sealcache {
	struct store *st;
	struct vault *v;
	const struct config *cfg;
	int cfd;			/* <state>/cache */
	int sfd;			/* <state> */
	pthread_mutex_t lock;
	pthread_cond_t changed;		/* a seal finished or the password id moved */
	pthread_cond_t work;		/* the queue has work, or stop */
	pthread_mutex_t pw_lock;	/* serializes sealcache_password_changed() */
	struct entry *buckets[BUCKETS];
	struct entry *qhead, *qtail;
	bool have_pwid;			/* a backup password is set and its id known */
	uint8_t pwid[VERIFIER_ID_LEN];
	struct {			/* ids of the per-keyset passwords */
		char name[KEYSET_NAME_MAX + 1];
		uint8_t id[VERIFIER_ID_LEN];
	} kpw[VAULT_KEYSET_SLOTS];
	size_t nkpw;
	uint64_t pwid_gen;		/* vault generation the id is for */
	bool stop;
	size_t nworkers;
	pthread_t workers[MAX_WORKERS];
};

/* Caller holds sc->lock for all of these. */
struct entry *entry_get(struct sealcache *sc, const char *name);
const uint8_t *pwid_for(const struct sealcache *sc, const struct entry *e);
bool entry_current(const struct sealcache *sc, const struct entry *e, uint64_t stamp);
time_t due_time(struct sealcache *sc, struct entry *e, uint64_t stamp);
void enqueue(struct sealcache *sc, struct entry *e);
void dequeue(struct sealcache *sc, struct entry *e);

/* Records that name cannot be exported (err) or can again (0): logged
 * once per change, kept for the status report. Returns err. Without the
 * lock. */
int note_problem(struct sealcache *sc, const char *name, int err, const char *why);

/* Without the lock. */
int export_stamp(struct sealcache *sc, const char *name, uint64_t *stamp);
/* The keyset with the hint to seal into it; say: log a stored hint
 * that cannot be used. */
int read_keyset(struct sealcache *sc, const char *name, struct keyset *ks, bool say);
/* Seals e, which the caller marked sealing; clears the mark after. */
int seal_entry(struct sealcache *sc, struct entry *e);

#endif
