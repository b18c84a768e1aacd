/* Password and identity sources besides .control: a password file or a
 * systemd credential, an identity file (identity.file) and an identity
 * credential (identity.credential), read at start and on SIGHUP or
 * "reload"; and keyfs-agent (asked from
 * the open of an export and the flush of an import or verify file, with
 * SOURCES_AGENT_TIMEOUT_MS per request, and every half minute from this
 * module's own thread; never from lookup, getattr or readdir).
 *
 * The file and the credential give passwords to keyfs (VAULT_GIVEN), as
 * .control does; the agent's are VAULT_AGENT and never replace those.
 * Only the agent's "backup:<keyset>" becomes a keyset's own password. A
 * password from the agent is forgotten as soon as the agent no longer
 * answers with it, or no longer answers at all: the agent is where it
 * lives. An agent running as neither keyfs' uid nor root is not asked.
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
#include "keyfs/secret.h"

#define SOURCES_AGENT_TIMEOUT_MS 500

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
/* Starts the thread that takes SIGHUP and polls the agent. SIGHUP must
 * be blocked in every thread before any is created (see main). */
int sources_start(struct sources *s);
void sources_free(struct sources *s);

/* Brings the vault in line with the agent, if one is configured; with a
 * keyset, also takes the agent's passphrase of that keyset's own. */
void sources_ask_agent(struct sources *s, const char *keyset);

/* sources_ask_agent() as the password provider hook of the seal cache
 * (registered by sources_new()) and of the importer. */
void sources_provider(void *s, const char *keyset);

/* Reads the password file or credential into the vault, and the
 * identity file and credential into the keyring. The first error is
 * returned; a source that fails keeps what it gave before. */
int sources_reload(struct sources *s);

/* What SIGHUP runs, instead of sources_reload() (which fn may call among
 * other work). Call before sources_start(). */
void sources_set_hup(struct sources *s, int (*fn)(void *arg), void *arg);

#endif
