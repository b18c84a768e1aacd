/* The password verifier: one scrypt with its own salt, kept beside the
 * seal cache, that tells whether a password is the one the cached seals
 * were made under, without one scrypt per keyset.
 *
 * File (one line): "keyfs-verifier 1 <logN> <salt hex> <hash hex> <id hex>".
 * hash = scrypt(password, "keyfs-verifier-v1" || salt, 2^logN, 8, 1). The id
 * is random, made with the verifier, and names the password in cache
 * headers; it reveals nothing about the password. An offline guess against
 * the verifier costs what a guess against any export costs. */
#ifndef KEYFS_VERIFIER_H
#define KEYFS_VERIFIER_H

#include <stdbool.h>
#include <stdint.h>

#include "keyfs/age.h"

#define VERIFIER_ID_LEN 16

/* The id of pass: the stored one if the verifier at dfd/path matches,
 * else a new verifier (new salt, new id, work factor logn) replaces it
 * atomically. *matched says which. */
int verifier_id(int dfd, const char *path, const struct age_pass *pass, int logn,
		uint8_t id[static VERIFIER_ID_LEN], bool *matched);

#endif
