/* Internals shared by the seal cache's files:
 *   sealentry.c  the entry table: one entry per keyset, what is known of
 *                its cached seal, its next seal and its problems
 *   seal.c       sealing one keyset into the cache (export.h does the
 *                crypto; this file the plan, the vault and the file)
 *   sealversion.c what a keyset version is, learnt without sealing
 *   sealinfo.c   what the reports ask: sealers, problems, export states
 *   sealattr.c   attributes and problems of an export, without opening it
 *   sealkept.c   earlier seals a backup read, served again when their
 *                content comes back (sealkept.h)
 *   sealknown.c  what a listing tells of a keyset not examined yet
 *   sealcache.c  the other public calls: life cycle, opens, password
 *                changes, the queue of stale keysets for the worker pool
 * sealcache.c and sealattr.c call the others; those call neither of
 * them, and each other only for the entry table (sealentry.c), which
 * calls sealknown.c for the marks and the index of a clean stop.
 *
 * Locking: sc->lock protects every entry field, the sealing key ids and
 * the pool's use; it is never held across crypto, and never while calling
 * the vault: sealing holds a vault read lock for a whole scrypt, and the
 * vault's writers wait for it, so a vault call under sc->lock would close
 * a cycle (vault -> sc -> vault). Order: vault first, then sc->mark_lock,
 * then sc->lock, then the pool's own lock; never the reverse. */
#ifndef KEYFS_SEALCACHE_PRIV_H
#define KEYFS_SEALCACHE_PRIV_H

#include <pthread.h>

#include "keyfs/bundle.h"
#include "keyfs/fresh.h"
#include "keyfs/htab.h"
#include "keyfs/pool.h"
#include "keyfs/recipients.h"
#include "keyfs/sealcache.h"
#include "keyfs/verifier.h"

#include "sealkey.h"

#define OPEN_WAIT_SECONDS 60
/* A batch of seals: cache files written between two syncfs() at most,
 * and its longest time, so that a slow batch (scrypt) is durable and
 * said in the log before long too. */
#define SYNC_BATCH 1024
#define SYNC_BATCH_SECONDS 10
/* export_content_id() and bundle_fingerprint() in binary */
#define CONTENT_ID_LEN 32
_Static_assert(BUNDLE_FPR_LEN == CONTENT_ID_LEN, "fingerprints are kept as digests");

/* What is known of a keyset version not sealed yet: its attributes,
 * learnt without sealing, and when its seal became due. Most keysets
 * have none (a mount over a full cache seals nothing), so it is kept
 * apart from the entry, made when first needed, and dropped when a
 * seal of that version lands: a cold seal of a large store would keep
 * one for every keyset. The status shows the fingerprint from it while
 * it is there. */
struct ahead {
	uint64_t pred_stamp;		/* version the attributes are for */
	uint8_t pred_key[VERIFIER_ID_LEN];	/* recipients it is for; zero: a password */
	time_t pred_mtime;		/* the keyset's own time */
	uint8_t fpr[BUNDLE_FPR_LEN];	/* its fingerprint, if has_fpr */
	uint64_t due_stamp;		/* version and key the next seal is for */
	uint8_t due_pwid[VERIFIER_ID_LEN];
	time_t due_at;			/* when that became due: the next seal's time */
	uint32_t pred_size;		/* as an entry's len */
	int8_t due_logn;
	bool has_fpr;
};
_Static_assert(sizeof(struct ahead) <= 104, "one per keyset not sealed yet: a 112-byte chunk");

/* What an entry keeps of its cache file's header. */
struct cached {
	uint64_t stamp, ctag;
	time_t sealed_at;
	size_t len;
	uint8_t pwid[VERIFIER_ID_LEN];
	int logn;
	bool has_ctag;
};

/* The index of a clean stop: a keyset's header by its name's
 * known_hash() (sealknown.c). */
struct index_rec {
	uint64_t h;
	struct cached c;
};

/* An entry is kept for every keyset seen, a hundred thousand of them on
 * a large store: digests in binary, small numbers in small fields, flags
 * as bits (sc->lock guards them all), the name sized to fit. With a name
 * of up to 14 bytes, it takes a 128-byte chunk of malloc's, not 144. */
struct entry {
	struct hnode h;			/* in sc->entries */
	struct pool_item item;		/* in the sealing queue */
	/* the cached seal on disk */
	uint64_t stamp;
	uint8_t pwid[VERIFIER_ID_LEN];
	/* The content it seals, if has_ctag: the first 8 bytes of its id,
	 * which tell a changed content from the same. The file's header
	 * holds the whole id and has the last word (seal_adopt()). */
	uint64_t ctag;
	time_t sealed_at;
	/* The latest seal time served or kept (a kept seal served again is
	 * older than the one it replaces): a new seal's time is later, so
	 * that no two seals of a keyset share one (fresh.h). */
	time_t newest;
	char *why;
	struct ahead *ahead;		/* the next version; NULL: none known */
	struct fresh_rec *frec;		/* its backup record; NULL: not looked up yet */
	uint32_t len;			/* an export is far below 4 GiB (KEYSET_TOTAL_MAX) */
	/* why the keyset cannot be exported (0: it can); logged once */
	int bad;
	int8_t logn;			/* work factor it was sealed at */
	bool why_stale : 1;		/* the store said it changed: ask why again */
	bool cached : 1;
	bool has_ctag : 1;
	bool sealing : 1;
	bool anew : 1;			/* the seal under way makes new bytes (no seal
					 * to keep or serve again): no attribute waits
					 * for it */
	bool own_pw : 1;		/* keyset has a password of its own */
	bool examined : 1;		/* whether bad is known: attributes were worked
					 * out, or the first scan found the seal current */
	char name[];
};

/* Over an array sorted by the hash each element begins with: elements
 * starts[b] to starts[b + 1] are those whose hash's top bits (h >> shift)
 * are b, about one a bucket, so a lookup reads starts and an element, two
 * cache misses, where searching the array took four or more. NULL:
 * search it. */
struct buckets {
	uint32_t *starts;
	unsigned shift;
};

/* Names, as known_hash()es (sealknown.c), sorted. */
struct hashset {
	uint64_t *h;
	size_t n, cap;
	struct buckets b;
};

struct sealcache {
	struct store *st;
	const struct state *state;
	struct vault *v;
	const struct config *cfg;
	int cfd;			/* <state>/cache */
	int pfd;			/* <state>/problems */
	/* Until the first scan is done (sealknown.c), under lock: the
	 * keysets with a seal in the cache at start. */
	struct hashset sealed;
	struct index_rec *index;	/* sorted by h */
	size_t nindex;
	struct buckets index_b;
	/* The index file read at start, if it was used (-1: none): the
	 * stop carries over its lines of keysets with no entry. */
	int index_fd;
	bool known;
	/* sealed holds the names of cache/'s files at start (known also
	 * needs marks of a run before to trust); under lock */
	bool listed;
	/* <cache>/.kept exists, or may: some seal was ever kept (sealkept.h);
	 * under lock */
	bool kept;
	/* The keysets marked not exportable, sorted; under mark_lock,
	 * which is taken before lock, never while holding it. */
	pthread_mutex_t mark_lock;
	char **marks;
	size_t nmarks;
	pthread_mutex_t lock;
	pthread_cond_t changed;		/* a seal finished or the key ids moved */
	pthread_mutex_t pw_lock;	/* serializes sealcache_password_changed() */
	struct htab entries;		/* struct entry by name */
	struct sealkey_ids ids;		/* ids.gen: vault generation they are for */
	struct recipients *rcp;		/* public keys sealing; NULL: none */
	struct pool *pool;
	void (*ask)(void *arg, const char *keyset);	/* password provider */
	void *ask_arg;
	void (*changed_fn)(void *arg, const char *keyset); /* attribute observer */
	void *changed_arg;
	struct fresh *fresh;		/* backup records; NULL: none kept */
	const struct bundle_signer *signer; /* signs KEYSET.ini; NULL: exports unsigned */
	/* The batch under way, protected by lock (seal.c) */
	size_t unsynced;		/* cache files written since the last syncfs() */
	size_t batch_sealed;		/* keysets sealed anew among them */
	char batch_first[KEYSET_NAME_MAX + 1]; /* the first of those */
	time_t batch_began;		/* CLOCK_MONOTONIC seconds */
	/* The first look for stale keysets runs beside the mount, not before */
	pthread_t scan;
	bool scan_running;
	bool stopping;			/* protected by lock: the scan ends early */
	bool await_store;		/* the scan compares once store_ready */
	bool store_ready;		/* protected by lock */
	uint8_t kh_in[VERIFIER_ID_LEN + sizeof(int)]; /* the last key hashed ... */
	uint64_t kh;			/* ... and its hash; 0: none yet */
};

/* ---- sealentry.c; caller holds sc->lock unless said otherwise ---- */
struct entry *sc_entry_get(struct sealcache *sc, const char *name);
/* The entry of name if there is one; none is made. */
struct entry *sc_entry_find(struct sealcache *sc, const char *name);
/* Keeps a 64-digit hex digest in binary: false (and nothing kept) if hex
 * is no such digest ("" for an unknown content). */
bool sc_digest_set(uint8_t bin[static CONTENT_ID_LEN], const char *hex);
/* Keeps the tag of content id hex in e; none if hex is no such id (""
 * for an unknown content). */
void sc_ctag_set(struct entry *e, const char *hex);
/* Whether e's cached seal may hold content id hex: its tag is hex's. */
bool sc_ctag_is(const struct entry *e, const char *hex);
/* Whether e's cached seal holds content cid, the content of version
 * stamp, under another stamp: to be kept as this version's seal, its
 * header restamped (seal_adopt() checks the whole id). */
bool sc_keeps_seal(const struct entry *e, uint64_t stamp, const char *cid);
/* Iterates over every entry: start with *pos = 0 and e NULL. */
struct entry *sc_entry_next(struct sealcache *sc, size_t *pos, struct entry *e);
/* Stamps name (without the lock), then returns its entry with sc->lock
 * held; NULL (and no lock) with *err set on failure. */
struct entry *sc_entry_lock(struct sealcache *sc, const char *name, uint64_t *stamp, int *err);
/* What seals e: its recipients (NULL if a password does), the id of
 * that key (NULL if it is a password not given yet), and its work factor
 * (0 for recipients). A keyset's own setting comes before the global
 * one, and at one level recipients before a password. */
const struct recipset *sc_rset_for(const struct sealcache *sc, const struct entry *e);
const uint8_t *sc_pwid_for(const struct sealcache *sc, const struct entry *e);
int sc_logn_for(const struct sealcache *sc, const struct entry *e);
bool sc_entry_current(const struct sealcache *sc, const struct entry *e, uint64_t stamp);
/* Queues e for the workers, unless it is being sealed right now. */
void sc_entry_enqueue(struct sealcache *sc, struct entry *e);
/* Whether an export of size bytes could be imported again here
 * (import.max_size): none larger is ever exported. */
bool sc_importable(const struct sealcache *sc, size_t size);
/* e's record of its next version, made when first needed; NULL if out
 * of memory. */
struct ahead *sc_entry_ahead(struct entry *e);
/* The time a seal of (stamp, current key) counts as made, noted in e's
 * ahead when first told (attributes) or taken (a seal planned): an
 * attribute asked for while that seal runs tells the time it will land
 * with. The ahead goes when it lands (sc_ahead_landed()). */
time_t sc_due_time(struct sealcache *sc, struct entry *e, uint64_t stamp);
/* A seal of e's version landed: its ahead goes unless about a later one.
 * Caller holds sc->lock. */
void sc_ahead_landed(struct entry *e);
/* Records that name cannot be exported (err) or can again (0): logged
 * once per change, kept for the status report. Returns err. Without the
 * lock. */
int sc_note_problem(struct sealcache *sc, const char *name, int err, const char *why);
/* Makes name's mark say what is known of it now. Caller holds neither
 * lock. */
void sc_mark_sync(struct sealcache *sc, const char *name);
/* Without the lock: why name cannot be exported, as last found (0: it
 * can), or 1 if it was never examined. */
int sc_entry_problem(struct sealcache *sc, const char *name, char *why, size_t size);
/* Without the lock: the version stamp of the export (keyset and hint). */
int sc_export_stamp(struct sealcache *sc, const char *name, uint64_t *stamp);
/* Without the lock: the keyset with the hint to seal into it; say: log a
 * stored hint that cannot be used. */
int sc_read_keyset(struct sealcache *sc, const char *name, struct keyset *ks, bool say);
/* Both, the stamp never newer than the keyset read (store_read_stamped()),
 * said as sc_read_keyset() says. */
int sc_read_stamped(struct sealcache *sc, const char *name, struct keyset *ks, uint64_t *stamp);

/* ---- sealknown.c ---- */
/* 64 bits of BLAKE2b of a name, the same from run to run: stamps hold
 * it, and sealcache_ino() is it with the top bit set. */
uint64_t sc_name_hash(const char *name);
/* Opens STATE/problems/ (made if missing), reads its marks and the names
 * of the cache's files, and sweeps the temporary files a crash left in
 * the cache. At start, before any other thread. */
int sc_known_load(struct sealcache *sc);
/* Whether name had a seal at start, while that is known. Caller holds
 * sc->lock. */
bool sc_known(const struct sealcache *sc, const char *name);
/* Whether name surely has no cache file: none at start, while that is
 * known (a seal since has an entry). Caller holds sc->lock. */
bool sc_known_absent(const struct sealcache *sc, const char *name);
/* Whether name is marked not exportable. Caller holds neither lock. */
bool sc_marked(struct sealcache *sc, const char *name);
/* Makes or removes name's mark, and its name in sc->marks. Caller holds
 * sc->mark_lock, not sc->lock. */
void sc_mark_set(struct sealcache *sc, const char *name, bool bad);
/* The header of name's cache file as the index of a clean stop has it:
 * false if it has none. Caller holds sc->lock. */
bool sc_index_get(const struct sealcache *sc, const char *name, struct cached *c);
/* Writes the index: every entry's header, at a clean stop. */
void sc_index_write(struct sealcache *sc);
/* Closes the index file read at start. */
void sc_index_close(struct sealcache *sc);
/* Frees what sc_known_load() kept; at the end, or when it failed. */
void sc_known_drop(struct sealcache *sc);
void sc_marks_free(struct sealcache *sc);

/* ---- sealversion.c ---- */
/* Reads the keyset once for version stamp (without the lock): the
 * export's exact size, its time and fingerprint; keeps a cached seal of
 * the same content as this version's. */
int sc_learn_version(struct sealcache *sc, const char *name, uint64_t stamp);
/* Whether e's predicted attributes are for stamp and the current key.
 * Caller holds sc->lock. */
bool sc_pred_current(const struct sealcache *sc, const struct entry *e, uint64_t stamp);

/* ---- sealinfo.c ---- */
/* Fills r from e for version stamp (all but why). Caller holds sc->lock. */
void sc_entry_report(const struct sealcache *sc, const struct entry *e, uint64_t stamp,
		  struct export_report *r);

/* ---- seal.c; without the lock ---- */
/* Keeps the cached seal of name, which holds content, as the seal of
 * version stamp (its header restamped). -ESTALE if it holds another. */
int seal_adopt(struct sealcache *sc, const char *name, uint64_t stamp, const char *content);
/* Serves the kept seal (sealkept.h) of content under (pwid, logn) as
 * the seal of version stamp, keeping the one it replaces if a backup
 * read that. -ENOENT if none is kept. The caller holds e's sealing mark. */
int seal_kept(struct sealcache *sc, const char *name, uint64_t stamp, const char *content,
	      const uint8_t pwid[static VERIFIER_ID_LEN], int logn);
/* Seals e, which the caller marked sealing; clears the mark after. */
int seal_entry(struct sealcache *sc, struct entry *e);
/* Makes the cache files written so far durable (one syncfs()), if any. */
void seal_sync(struct sealcache *sc);

#endif
