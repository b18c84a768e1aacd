/* An in-memory keystore backend, built only for tests: the contract test
 * runs the same checks over it and the directory backend, and the seal
 * cache's tests run on it without a disk store. */
#ifndef KEYFS_TEST_STORE_MEM_H
#define KEYFS_TEST_STORE_MEM_H

#include "keyfs/store.h"

store_open_fn store_mem_open;

/* Replaces (or with ks->n == 0 and remove, deletes) the active keyset,
 * as an administrator editing the keys would. */
int store_mem_set(struct store *s, const struct keyset *ks, bool remove);

#endif
