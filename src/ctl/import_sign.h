/* Who made a backup: its KEYSET.sig checked against its KEYSET.ini and
 * members, and its signer against this keyfs' key and import.signers. */
#ifndef KEYFS_IMPORT_SIGN_H
#define KEYFS_IMPORT_SIGN_H

#include <stdbool.h>
#include <stddef.h>

#include "keyfs/bundle.h"
#include "keyfs/signkey.h"

/* 0 and who in words (*trusted: signed by sign, this keyfs' key, or by a
 * key of the allowed_signers file signers, "" or NULL for none), or
 * -EBADMSG (why in words) when KEYSET.sig does not verify or KEYSET.ini
 * does not list ks' members exactly. ks as unpacked, before any owner
 * or restore rule changed it. */
int import_signature(const struct signkey *sign, const char *signers, const struct keyset *ks,
		     const struct bundle_proof *proof, char *who, size_t size, bool *trusted);

#endif
