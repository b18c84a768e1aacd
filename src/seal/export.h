/* The export of a keyset: the keyset and a sealing key in, the armored
 * age file out; and the file's exact size, known before any sealing.
 * Pure: no locks, no files, no cache. */
#ifndef KEYFS_EXPORT_H
#define KEYFS_EXPORT_H

#include <stddef.h>

#include "keyfs/age.h"
#include "keyfs/age_recipient.h"
#include "keyfs/bundle.h"
#include "keyfs/keyset.h"

/* What seals an export: the age recipients it is sealed to. One scrypt
 * recipient (a passphrase, alone as age requires) or public keys; any
 * one of them opens it. */
struct export_key {
	const struct age_recipient *r;
	size_t n;
	const struct bundle_signer *signer;	/* KEYSET.sig's; NULL: unsigned */
};

/* The exact length export_seal() gives for ks under key. Stanza sizes
 * need no secret: a passphrase recipient made for sizing may hold any
 * passphrase. */
int export_size(const struct keyset *ks, const struct export_key *key, size_t *size);

/* Names what an export of ks seals, whoever seals it: the keyset's
 * fingerprint (bundle.h) and the hint that goes into KEYSET.ini. Hex. */
void export_content_id(const struct keyset *ks, char hex[static 65]);

/* ks as an armored age file of a tar (bundle.h); *pem is malloc()ed
 * (ciphertext), *len its length. */
int export_seal(const struct keyset *ks, const struct export_key *key, char **pem, size_t *len);

#endif
