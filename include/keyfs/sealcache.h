/* Sealed exports: the armored age file of each keyset, sealed once per
 * (keyset version, password) and then served as the same bytes, across
 * daemon restarts too.
 *
 * The sealed bytes live under <state>/cache/<keyset>, each file a one-line
 * header (sealfile.h) followed by the armored age file, replaced atomically
 * by rename once there is one. An open export holds
 * a file descriptor of the file it opened, so it keeps its bytes while a
 * reseal replaces them. The password id comes from a verifier
 * (<state>/verifier: one scrypt with its own salt), so a restart with the
 * same password revalidates every cached seal with one scrypt.
 *
 * A seal that a backup read is kept when a new one replaces it, in
 * <state>/cache/.kept (a few per keyset, same key only): keys restored
 * from that backup are served with its very bytes again, so the backup
 * tools see no change and the status says backed up (sealkept.h).
 *
 * When a password is set, stale keysets are sealed in the background by a
 * pool of workers (one per core, bounded by seal.memory). sealcache_attr()
 * never waits for scrypt; sealcache_open() waits for its own keyset only. */
#ifndef KEYFS_SEALCACHE_H
#define KEYFS_SEALCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#include "keyfs/bundle.h"
#include "keyfs/config.h"
#include "keyfs/fresh.h"
#include "keyfs/recipients.h"
#include "keyfs/vault.h"
#include "keyfs/state.h"
#include "keyfs/store.h"

/* One open export: the bytes it opened, whatever happens later. */
struct seal {
	int fd;			/* the cache file as it was at open */
	off_t off;		/* where the armored file starts in it */
	size_t len;
	time_t sealed_at;
	/* Bytes read without a gap from the start of this open file; only
	 * reaching len this way is a read to the end (tail -c 1 is none).
	 * Reads of one open file may run at once: atomic builtins only. */
	size_t done;
};

struct export_attr {
	uint64_t ino;		/* stable per keyset name */
	size_t size;		/* exact bytes a read returns */
	time_t mtime;		/* when the bytes were (or are due to be) sealed */
	bool sealed;		/* mtime is a seal's (else the keyset's own time) */
};

struct sealcache;

int sealcache_new(struct sealcache **sc, struct store *st, const struct state *state,
		  struct vault *v, const struct config *c);

/* A password provider asked (with the keyset's name) when an export is
 * opened, before the vault is looked at: keyfs-agent's, registered by
 * sources.c. It may block briefly; it is never asked from attributes. */
void sealcache_set_provider(struct sealcache *sc, void (*ask)(void *arg, const char *keyset),
			    void *arg);

/* Told when the attributes of export/<keyset>.pem changed (a seal was
 * made or kept), or with NULL when every export's and README.txt's may
 * have (the key changed): the filesystem drops what the kernel caches. */
void sealcache_set_observer(struct sealcache *sc, void (*fn)(void *arg, const char *keyset),
			    void *arg);
/* Keep backup records in f (fresh.h): what each export is, how its
 * seals went, and which exports were read to the end. Before
 * sealcache_start(); f outlives the seal cache. */
void sealcache_set_fresh(struct sealcache *sc, struct fresh *f);
/* Sign every export made from now on with s (bundle.h: KEYSET.sig).
 * Seals made before keep their bytes until their keyset or key
 * changes. Before sealcache_start(); s outlives the seal cache. */
void sealcache_set_signer(struct sealcache *sc, const struct bundle_signer *s);

/* Seal to the recipients of r (recipients.h; NULL: none) from now on,
 * taking over the caller's reference: every keyset whose key changes is
 * queued for sealing, the others keep their seals. */
void sealcache_set_recipients(struct sealcache *sc, struct recipients *r);

/* Words saying what seals name: "the backup password", "its own
 * password", or "recipients in FILE", followed with keys by ": age1...,
 * ssh-ed25519 COMMENT" (each recipient; public). */
void sealcache_sealer(struct sealcache *sc, const char *name, bool keys, char *buf, size_t size);

/* Lists each recipients file sealing now with its recipients, for the
 * status report. */
void sealcache_recipients_report(struct sealcache *sc, FILE *f);

/* Starts the background workers (after any fork: threads do not
 * survive), and a thread that queues the stale keysets found. A cache
 * file's header is read when its keyset is first asked for, so neither
 * this nor sealcache_new() reads every cache file. */
int sealcache_start(struct sealcache *sc);
void sealcache_free(struct sealcache *sc);

/* Before sealcache_start(): that thread compares the keysets sealed
 * before with the store only once sealcache_store_ready() is called, as
 * a store watcher does when its first pass has their stamps in memory,
 * instead of walking each a second time beside it and beside a first
 * listing. Keysets without a seal need no comparing: they are queued at
 * once either way. */
void sealcache_await_store(struct sealcache *sc);
void sealcache_store_ready(struct sealcache *sc);

/* The backup password changed (set or forgotten): find its id with the
 * verifier, and queue every stale keyset for sealing. Runs one scrypt. */
int sealcache_password_changed(struct sealcache *sc);

/* Queues every keyset whose seal is stale (after a hint changed). */
void sealcache_queue_stale(struct sealcache *sc);

/* The inode number of export/<name>.pem: the same on every mount. */
uint64_t sealcache_ino(const char *name);

/* Attributes of export/<name>.pem; -ENOENT if no such keyset, or if it
 * cannot be exported (a member that is not a key file, too many or too
 * large members, an export larger than import.max_size): such a keyset
 * is logged once and kept for sealcache_problem(), and never appears as
 * an entry that fails. Never waits for scrypt or a password: at most for
 * a seal under way to learn whether it makes new bytes (a keyset read and
 * a few small files), since one that keeps or serves again bytes made
 * before leaves other attributes. */
int sealcache_attr(struct sealcache *sc, const char *name, struct export_attr *a);

/* The keyset changed in the store, appeared or went away: learns its new
 * version (queueing its seal) and tells the observer. */
void sealcache_keyset_changed(struct sealcache *sc, const char *name);

/* Why the keyset cannot be exported, as last found by sealcache_attr()
 * (run first for a keyset not examined yet, as right after a mount): the
 * error (0 if it can) and words for the status report. */
int sealcache_problem(struct sealcache *sc, const char *name, char *why, size_t size);

/* Whether export/ lists the keyset's name: it can be exported, as far as
 * is known. Right after a mount, a keyset not examined yet is listed
 * without examining it if a run before left a seal of it and did not
 * find it unexportable (sealknown.c). */
bool sealcache_listed(struct sealcache *sc, const char *name);

/* Opens the current seal, sealing first if needed (moving ahead of the
 * queue). -ENOKEY without a backup password. Release with sealcache_put(). */
int sealcache_open(struct sealcache *sc, const char *name, struct seal **out);
ssize_t sealcache_read(const struct seal *s, char *buf, size_t size, off_t off);
/* A read of s, open as export/<name>.pem, returned its last byte to pid
 * running as uid: a backup of those bytes (a partial read is none). */
void sealcache_read_to_end(struct sealcache *sc, const char *name, const struct seal *s,
			   pid_t pid, uid_t uid);
void sealcache_put(struct seal *s);

/* The fingerprint of the keyset (bundle_fingerprint()), read once per
 * keyset version. */
int sealcache_fingerprint(struct sealcache *sc, const char *name,
			  char hex[static 2 * BUNDLE_FPR_LEN + 1]);

/* What the status report says of one export, from memory where the
 * keyset's version is known (no keystore read). */
struct export_report {
	bool current;		/* the cached seal is of this version and key */
	time_t sealed_at;	/* the cached seal's time; 0: none */
	char fpr[2 * BUNDLE_FPR_LEN + 1];	/* "" if this version was not read */
	char sealer[1024];	/* sealcache_sealer() without keys */
	char why[1024];		/* -EPERM: why it cannot be exported */
	bool fresh;		/* backup below is known */
	struct fresh_info backup;
};
/* 0, -EPERM if the keyset cannot be exported (why says why), or the
 * error that reading it gave. */
int sealcache_report(struct sealcache *sc, const char *name, struct export_report *r);

/* fn(arg, name, why) for each keyset known not to be exportable, in no
 * order, under the seal cache's lock: fn must not call it. */
void sealcache_each_problem(struct sealcache *sc,
			    void (*fn)(void *arg, const char *name, const char *why), void *arg);

/* What seals a keyset without a key of its own (sealcache_sealer()). */
void sealcache_default_sealer(struct sealcache *sc, bool keys, char *buf, size_t size);

/* Whether the cached seal is current (keyset and password unchanged) and
 * when it was made; sealed_at is 0 if there is none. */
int sealcache_state(struct sealcache *sc, const char *name, bool *current, time_t *sealed_at);

/* Background workers running; the number of keysets queued or sealing. */
void sealcache_progress(struct sealcache *sc, size_t *workers, size_t *pending);

/* The hint sealed into KEYSET.ini of a keyset ("" if none). */
void sealcache_hint(struct sealcache *sc, const char *name, char *buf, size_t size);

#endif
