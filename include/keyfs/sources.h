/* Password sources besides .control: a password file or a systemd
 * credential (read at start and on SIGHUP), and keyfs-agent (asked from
 * the open of an export and the flush of an import or verify file, with
 * SOURCES_AGENT_TIMEOUT_MS per request, and every half minute from this
 * module's own thread; never from lookup, getattr or readdir).
 *
 * The file and the credential give passwords to keyfs (VAULT_GIVEN), as
 * .control does; the agent's are VAULT_AGENT and never replace those.
 * Only the agent's "backup:<keyset>" becomes a keyset's own password. A
 * password from the agent is forgotten as soon as the agent no longer
 * answers with it, or no longer answers at all: the agent is where it
 * lives. An agent running as neither keyfs' uid nor root is not asked. */
#ifndef KEYFS_SOURCES_H
#define KEYFS_SOURCES_H

#include "keyfs/config.h"
#include "keyfs/sealcache.h"
#include "keyfs/secret.h"

#define SOURCES_AGENT_TIMEOUT_MS 500

struct sources;

/* Checks the file or credential without keeping the password: for the
 * errors an administrator must see before the daemon goes to the
 * background. */
int sources_check(const struct config *c);

/* Reads the file or credential once; -EACCES / -EINVAL (logged) if it is
 * unsafe or refused, which stops the daemon from starting. */
int sources_new(struct sources **s, const struct config *c, struct vault *v, struct sealcache *sc);
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

/* Reads the password file or credential into the vault. */
int sources_reload(struct sources *s);

#endif
