/* Password and identity sources besides .control: a password file or a
 * systemd credential, an identity file (identity.file) and an identity
 * credential (identity.credential), read at start and on SIGHUP or
 * "reload"; and keyfs-agent.
 *
 * The agent is asked by one thread of this module and by nothing else:
 * at start, on SIGHUP and "reload", every half minute, and whenever a
 * FUSE request posts a need (sources_need()). Needs posted while a round
 * of questions runs are answered together by the next round, so a burst
 * of opens costs the agent one round. A FUSE thread never does socket
 * I/O: it waits, SOURCES_WAIT_MS at most and beside the others, for the
 * answer to its need, and not at all when its keyset has a password.
 * Each request has SOURCES_AGENT_TIMEOUT_MS; a round stops at the first
 * timeout. lookup, getattr and readdir never post a need.
 *
 * The file and the credential give passwords to keyfs (VAULT_GIVEN), as
 * .control does; the agent's are VAULT_AGENT and never replace those.
 * Only the agent's "backup:<keyset>" becomes a keyset's own password
 * (the agent's LIST names them all). A password from the agent is
 * forgotten when the agent answers without it, and all of them when the
 * agent is gone (no socket, nobody accepting on it), refuses keyfs, or
 * runs as neither keyfs' uid nor root (it is not asked then either). An
 * agent that does not answer in time forgets nothing: it is slow or
 * stopped, not gone, and keeps what it holds.
 *
 * Identities follow the same rules in the keyring (keyring.h): the file's
 * and the credential's are given to keyfs, each replacing what it gave
 * before when read again; the agent's ("identities") are held while it
 * answers with them. Files of secrets (password or identities) are
 * refused unless only their owner, keyfs' uid or root, may read them; a
 * bad identity file is logged as "FILE:LINE: why". */
#ifndef KEYFS_SOURCES_H
#define KEYFS_SOURCES_H

#include "keyfs/config.h"
#include "keyfs/keyring.h"
#include "keyfs/sealcache.h"
#include "keyfs/vault.h"

#define SOURCES_AGENT_TIMEOUT_MS 500	/* per request to the agent */
#define SOURCES_WAIT_MS 500		/* longest wait of a FUSE thread for an answer */

struct sources;

/* Checks the file or credential without keeping the password: for the
 * errors an administrator must see before the daemon goes to the
 * background. */
int sources_check(const struct config *c);

/* Reads the files and credentials once; -EACCES / -EINVAL (logged) if one
 * is unsafe or refused, which stops the daemon from starting. kr NULL:
 * no identities are read or asked for. */
int sources_new(struct sources **s, const struct config *c, struct vault *v, struct keyring *kr,
		struct sealcache *sc);
/* Starts the thread that takes SIGHUP and, with an agent configured,
 * the one that asks it. SIGHUP must be blocked in every thread before
 * any is created (see main). */
int sources_start(struct sources *s);
void sources_free(struct sources *s);

/* What an open of export/<keyset>.pem (keyset) or an import (NULL)
 * needs from the agent: posts the need, then returns at once if the
 * keyset has a password and the agent was asked once since the start,
 * else after the answer or SOURCES_WAIT_MS, whichever comes first. The
 * vault then holds what the agent gave. No I/O; without an agent or
 * before sources_start(), returns at once. */
void sources_need(struct sources *s, const char *keyset);

/* Waits, SOURCES_WAIT_MS at most, for the answers to every need posted
 * so far: a status report then shows what they brought. */
void sources_settle(struct sources *s);

/* sources_need() as the password provider hook of the seal cache
 * (registered by sources_new()) and of the importer. */
void sources_provider(void *s, const char *keyset);

/* Reads the password file or credential into the vault, and the
 * identity file and credential into the keyring, and asks the agent
 * soon. The first error is returned; a source that fails keeps what it
 * gave before. */
int sources_reload(struct sources *s);

/* What SIGHUP runs, instead of sources_reload() (which fn may call among
 * other work). Call before sources_start(). */
void sources_set_hup(struct sources *s, int (*fn)(void *arg), void *arg);

#endif
