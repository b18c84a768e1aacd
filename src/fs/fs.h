/* The FUSE layer: maps the tree of DESIGN.md section 1 onto the core
 * modules and returns their errors unchanged. It knows no crypto. */
#ifndef KEYFS_FS_H
#define KEYFS_FS_H

#include <fuse.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <sys/types.h>
#include <time.h>

#include "keyfs/config.h"
#include "keyfs/control.h"
#include "keyfs/import.h"
#include "keyfs/keyring.h"
#include "keyfs/sealcache.h"
#include "keyfs/signkey.h"
#include "keyfs/sources.h"
#include "keyfs/stage.h"
#include "keyfs/store.h"
#include "keyfs/storewatch.h"
#include "keyfs/vault.h"

struct keyfs {
	struct config cfg;
	struct state state;	/* keyfs' own: cache, verifiers, metadata */
	struct store st;
	struct storewatch *watch; /* over st; NULL: the backend has none */
	struct command_store *cmds; /* over watch; NULL: no command keysets */
	struct vault *v;
	struct keyring *kr;	/* identities for import and verify */
	struct sealcache *sc;
	struct fresh *fresh;	/* backup records */
	struct metricsfile *mf;	/* metrics.file's writer; NULL: none */
	struct importer *im;
	struct sources *src;	/* password file, credential, agent */
	struct stage *stage;	/* files written into import/ and verify/ */
	struct recipients *rcp;	/* read before the mount, until the seal cache takes it */
	struct signkey *sign;	/* the store's signing key (signkey.h) */
	struct bundle_signer signer;	/* its use by the seal cache */
	struct ctl ctl;
	uid_t uid;		/* the mounting user: owns the tree */
	gid_t gid;
	time_t started;		/* times of the fixed directories */
	pthread_mutex_t fuse_lock;
	struct fuse_session *se; /* for telling the kernel what changed, until
				  * the unmount; protected by fuse_lock */
};

/* The tree's operations by path (fs.c), as libfuse's high-level
 * layer would call them; fs_ll.c serves them. */
extern const struct fuse_operations fs_ops;

/* A session serving fs_ops for k (fs_ll.c). */
struct fuse_session *fs_session_new(struct fuse_args *args, struct keyfs *k);

/* The seal cache's observer: drops what the kernel caches of an export
 * (keyset NULL: of every export and README.txt) whose size, times or
 * bytes changed, so a stat after the change sees the new size. */
void fs_changed(void *keyfs, const char *keyset);

#endif
