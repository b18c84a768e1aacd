/* Identity files as keyfsctl reads them before giving them to keyfs
 * (.control "identity") or to keyfs-agent: an age identity file
 * ("AGE-SECRET-KEY-1..." lines, as age-keygen writes), the same encrypted
 * with a passphrase (age -p, binary or armored: the passphrase is asked
 * for and the file opened here), or an unencrypted OpenSSH Ed25519 key.
 * Every file is checked with age_keys_identities() before anything is
 * sent, so keyfs and the agent only ever receive a valid identity file. */
#ifndef KEYFS_IDFILE_H
#define KEYFS_IDFILE_H

#include <stdbool.h>
#include <stddef.h>

#define IDFILE_MAX 16384	/* an identity file is a few hundred bytes */
#define IDFILE_PASS_MAX 1024	/* passphrase of an encrypted identity file */

/* Reads path into *text (guarded memory: release with sodium_free()),
 * opening it with a passphrase asked as prompt_secret() does (from_stdin:
 * one line of standard input) when it is age-encrypted. What is wrong is
 * said on stderr, never quoting a key. Errors: -EINVAL (not an identity
 * file; a passphrase-protected OpenSSH key, with how to convert it),
 * -EKEYREJECTED (wrong passphrase), -EFBIG, -ENODATA (no passphrase
 * read), -ENOMEM, open(2)'s and read(2)'s. */
int idfile_load(const char *path, bool from_stdin, char **text, size_t *len);

/* The name keyfs-agent holds the identities of text under:
 * "identity:" and the first one's recipient, in the characters agent
 * names allow (agent_proto.h). 0 or -EINVAL / -ENOSPC, or -EFBIG when
 * text is longer than the agent holds (AGENT_FIELD_MAX). */
int idfile_agent_name(const char *text, size_t len, char *name, size_t size);

#endif
