/* The backup password policy: at least policy.min_length characters,
 * and with the default policy an upper-case and a lower-case letter, a
 * digit and a symbol; never a control character, never more than
 * SECRET_PW_MAX bytes. */
#ifndef KEYFS_POLICY_H
#define KEYFS_POLICY_H

#include <stddef.h>

#include "keyfs/config.h"
#include "keyfs/vault.h"

/* Check a candidate backup password; *why says what is missing. */
int policy_check(const struct config *c, const char *pw, size_t len, const char **why);

#endif
