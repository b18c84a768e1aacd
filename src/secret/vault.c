/* Passwords: the vault in guarded memory, its locking and origins
 * (vault.h). */
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "keyfs/keyset.h"
#include "keyfs/vault.h"

/* Slots 0 .. VAULT_SLOTS-1: backup and unlock passwords; then
 * VAULT_KEYSET_SLOTS per-keyset passwords named in owner[]. */
#define ALL_SLOTS (VAULT_SLOTS + VAULT_KEYSET_SLOTS)
#define FIRST_KEYSET VAULT_SLOTS

struct vault {
	pthread_rwlock_t lock;
	char *pool;			/* ALL_SLOTS * SECRET_PW_MAX, sodium_malloc */
	size_t len[ALL_SLOTS];		/* 0: slot empty; protected by lock */
	uint8_t origin[ALL_SLOTS];	/* enum vault_origin; protected by lock */
	char owner[VAULT_KEYSET_SLOTS][KEYSET_NAME_MAX + 1]; /* protected by lock */
	/* Written under the write lock, read without any lock: the seal
	 * cache asks for it under its own mutex (see the lock rule). */
	_Atomic uint64_t gen;
};

/* What giving a password to a slot would do. */
enum plan {
	KEEP,	/* nothing changes */
	MARK,	/* the same password, now given rather than from the agent */
	STORE,	/* a new password */
};

int vault_new(struct vault **out)
{
	pthread_rwlockattr_t attr;
	struct vault *v;

	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->pool = sodium_malloc(ALL_SLOTS * SECRET_PW_MAX);
	if (!v->pool) {
		free(v);
		return -ENOMEM;
	}
	/* Sealers hold read locks for whole scrypt runs; without writer
	 * preference a busy pool could starve "forget". */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&v->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	atomic_init(&v->gen, 0);
	*out = v;
	return 0;
}

void vault_free(struct vault *v)
{
	if (!v)
		return;
	sodium_free(v->pool); /* wipes */
	pthread_rwlock_destroy(&v->lock);
	free(v);
}

static char *slot(struct vault *v, size_t i)
{
	return v->pool + i * SECRET_PW_MAX;
}

/* Caller holds the write lock. */
static void bump(struct vault *v)
{
	atomic_fetch_add(&v->gen, 1);
}

/* Caller holds a lock. */
static bool slot_is(struct vault *v, size_t i, const char *pw, size_t len)
{
	return v->len[i] && v->len[i] == len && !sodium_memcmp(slot(v, i), pw, len);
}

static void slot_wipe(struct vault *v, size_t i)
{
	sodium_memzero(slot(v, i), SECRET_PW_MAX);
	v->len[i] = 0;
	v->origin[i] = VAULT_GIVEN;
	if (i >= FIRST_KEYSET)
		memset(v->owner[i - FIRST_KEYSET], 0, sizeof(v->owner[0]));
}

/* Caller holds the write lock; len was checked. */
static void slot_put(struct vault *v, size_t i, enum vault_origin o, const char *pw, size_t len)
{
	sodium_memzero(slot(v, i), SECRET_PW_MAX);
	memcpy(slot(v, i), pw, len);
	v->len[i] = len;
	v->origin[i] = (uint8_t)o;
}

/* Caller holds a lock. i < 0: no slot holds a password for this yet. */
static enum plan plan(struct vault *v, int i, enum vault_origin o, const char *pw, size_t len)
{
	if (i < 0 || !v->len[i])
		return STORE;
	if (v->origin[i] == VAULT_GIVEN && o == VAULT_AGENT)
		return KEEP; /* the agent never overrides what was given to keyfs */
	if (!slot_is(v, (size_t)i, pw, len))
		return STORE;
	return v->origin[i] == o ? KEEP : MARK;
}

/* Applies p to slot i (taken if it was free); caller holds the write
 * lock. Returns 1 if the password changed. */
static int apply(struct vault *v, size_t i, enum plan p, enum vault_origin o, const char *pw,
		 size_t len)
{
	if (p == MARK)
		v->origin[i] = (uint8_t)o;
	if (p != STORE)
		return 0;
	slot_put(v, i, o, pw, len);
	return 1;
}

static bool len_ok(size_t len)
{
	return len && len <= SECRET_PW_MAX;
}

int vault_set_from(struct vault *v, enum vault_origin o, const char *pw, size_t len)
{
	enum plan p;
	int ret;

	if (!len_ok(len))
		return -EINVAL;
	pthread_rwlock_rdlock(&v->lock);
	p = plan(v, 0, o, pw, len);
	pthread_rwlock_unlock(&v->lock);
	if (p == KEEP)
		return 0;
	/* Decide again: the slot may have changed between the two locks. */
	pthread_rwlock_wrlock(&v->lock);
	ret = apply(v, 0, plan(v, 0, o, pw, len), o, pw, len);
	if (ret)
		bump(v);
	pthread_rwlock_unlock(&v->lock);
	return ret;
}

int vault_set(struct vault *v, const char *pw, size_t len)
{
	int ret = vault_set_from(v, VAULT_GIVEN, pw, len);

	return ret < 0 ? ret : 0;
}

/* The unlock slot holding pw, else a free one (*found false), else -1;
 * caller holds a lock. */
static int unlock_slot(struct vault *v, const char *pw, size_t len, bool *found)
{
	int free_slot = -1;
	size_t i;

	*found = false;
	for (i = 1; i < VAULT_SLOTS; i++) {
		if (slot_is(v, i, pw, len)) {
			*found = true;
			return (int)i;
		}
		if (!v->len[i] && free_slot < 0)
			free_slot = (int)i;
	}
	return free_slot;
}

/* What adding pw as an unlock password would do; -ENOSPC if it needs a
 * slot and none is free. Caller holds a lock. */
static int unlock_plan(struct vault *v, enum vault_origin o, const char *pw, size_t len,
		       int *i)
{
	bool found;

	*i = unlock_slot(v, pw, len, &found);
	if (found)
		return v->origin[*i] == VAULT_AGENT && o == VAULT_GIVEN ? MARK : KEEP;
	return *i < 0 ? -ENOSPC : STORE;
}

int vault_add_unlock_from(struct vault *v, enum vault_origin o, const char *pw, size_t len)
{
	int ret, i;

	if (!len_ok(len))
		return -EINVAL;
	pthread_rwlock_rdlock(&v->lock);
	ret = unlock_plan(v, o, pw, len, &i);
	pthread_rwlock_unlock(&v->lock);
	if (ret == KEEP || ret < 0)
		return ret < 0 ? ret : 0;
	pthread_rwlock_wrlock(&v->lock);
	ret = unlock_plan(v, o, pw, len, &i);
	if (ret >= 0)
		ret = apply(v, (size_t)i, (enum plan)ret, o, pw, len);
	pthread_rwlock_unlock(&v->lock);
	return ret;
}

int vault_add_unlock(struct vault *v, const char *pw, size_t len)
{
	int ret = vault_add_unlock_from(v, VAULT_GIVEN, pw, len);

	return ret < 0 ? ret : 0;
}

/* Caller holds a lock. -1 if keyset has no password of its own. */
static int keyset_slot(struct vault *v, const char *keyset)
{
	size_t i;

	for (i = 0; keyset && i < VAULT_KEYSET_SLOTS; i++)
		if (v->len[FIRST_KEYSET + i] && !strcmp(v->owner[i], keyset))
			return (int)(FIRST_KEYSET + i);
	return -1;
}

/* Like unlock_plan(), for the keyset's own slot. */
static int keyset_plan(struct vault *v, enum vault_origin o, const char *keyset, const char *pw,
		       size_t len, int *k)
{
	size_t i;

	*k = keyset_slot(v, keyset);
	if (*k >= 0)
		return plan(v, *k, o, pw, len);
	for (i = 0; i < VAULT_KEYSET_SLOTS; i++)
		if (!v->len[FIRST_KEYSET + i]) {
			*k = (int)(FIRST_KEYSET + i);
			return STORE;
		}
	return -ENOSPC;
}

int vault_set_keyset_from(struct vault *v, enum vault_origin o, const char *keyset,
			  const char *pw, size_t len)
{
	int ret, k;

	if (strlen(keyset) > KEYSET_NAME_MAX || !len_ok(len))
		return -EINVAL;
	pthread_rwlock_rdlock(&v->lock);
	ret = keyset_plan(v, o, keyset, pw, len, &k);
	pthread_rwlock_unlock(&v->lock);
	if (ret == KEEP || ret < 0)
		return ret < 0 ? ret : 0;
	pthread_rwlock_wrlock(&v->lock);
	ret = keyset_plan(v, o, keyset, pw, len, &k);
	if (ret >= 0)
		ret = apply(v, (size_t)k, (enum plan)ret, o, pw, len);
	if (ret > 0) {
		strcpy(v->owner[k - FIRST_KEYSET], keyset);
		bump(v);
	}
	pthread_rwlock_unlock(&v->lock);
	return ret;
}

int vault_set_keyset(struct vault *v, const char *keyset, const char *pw, size_t len)
{
	int ret = vault_set_keyset_from(v, VAULT_GIVEN, keyset, pw, len);

	return ret < 0 ? ret : 0;
}

/* Whether slot i would be wiped: every slot (all) or those from o. */
static bool doomed(struct vault *v, size_t i, bool all, enum vault_origin o)
{
	return v->len[i] && (all || v->origin[i] == o);
}

/* Counts the slots forget would wipe; caller holds a lock. */
static size_t count_doomed(struct vault *v, bool all, enum vault_origin o)
{
	size_t i, n = 0;

	for (i = 0; i < ALL_SLOTS; i++)
		n += doomed(v, i, all, o);
	return n;
}

static void forget(struct vault *v, bool all, enum vault_origin o)
{
	bool sealing = false;
	size_t i, n;

	pthread_rwlock_rdlock(&v->lock);
	n = count_doomed(v, all, o);
	pthread_rwlock_unlock(&v->lock);
	if (!n)
		return;
	pthread_rwlock_wrlock(&v->lock);
	for (i = 0; i < ALL_SLOTS; i++) {
		if (!doomed(v, i, all, o))
			continue;
		/* unlock passwords seal nothing: the generation stays */
		sealing |= i == 0 || i >= FIRST_KEYSET;
		slot_wipe(v, i);
	}
	if (sealing)
		bump(v);
	pthread_rwlock_unlock(&v->lock);
}

void vault_forget(struct vault *v)
{
	forget(v, true, VAULT_GIVEN);
}

void vault_forget_from(struct vault *v, enum vault_origin o)
{
	forget(v, false, o);
}

/* The slot vault_drop_from() would wipe, or -1; caller holds a lock. */
static int drop_slot(struct vault *v, enum vault_origin o, const char *keyset)
{
	int i = keyset ? keyset_slot(v, keyset) : 0;

	return i >= 0 && doomed(v, (size_t)i, false, o) ? i : -1;
}

void vault_drop_from(struct vault *v, enum vault_origin o, const char *keyset)
{
	int i;

	pthread_rwlock_rdlock(&v->lock);
	i = drop_slot(v, o, keyset);
	pthread_rwlock_unlock(&v->lock);
	if (i < 0)
		return;
	pthread_rwlock_wrlock(&v->lock);
	i = drop_slot(v, o, keyset);
	if (i >= 0) {
		slot_wipe(v, (size_t)i);
		bump(v);
	}
	pthread_rwlock_unlock(&v->lock);
}

/* Whether unlock slot i came from o and holds none of keep[0..n);
 * caller holds a lock. */
static bool unkept(struct vault *v, size_t i, enum vault_origin o, const struct age_pass *keep,
		   size_t n)
{
	size_t j;

	if (!doomed(v, i, false, o))
		return false;
	for (j = 0; j < n; j++)
		if (slot_is(v, i, keep[j].p, keep[j].len))
			return false;
	return true;
}

void vault_keep_unlock_from(struct vault *v, enum vault_origin o, const struct age_pass *keep,
			    size_t n)
{
	size_t i, wipe = 0;

	pthread_rwlock_rdlock(&v->lock);
	for (i = 1; i < VAULT_SLOTS; i++)
		wipe += unkept(v, i, o, keep, n);
	pthread_rwlock_unlock(&v->lock);
	if (!wipe)
		return;
	/* unlock passwords seal nothing: the generation stays */
	pthread_rwlock_wrlock(&v->lock);
	for (i = 1; i < VAULT_SLOTS; i++)
		if (unkept(v, i, o, keep, n))
			slot_wipe(v, i);
	pthread_rwlock_unlock(&v->lock);
}

int vault_read_for(struct vault *v, const char *keyset, struct age_pass *pass, uint64_t *gen)
{
	int k;

	pthread_rwlock_rdlock(&v->lock);
	k = keyset_slot(v, keyset);
	if (k < 0)
		k = v->len[0] ? 0 : -1;
	if (k < 0) {
		pthread_rwlock_unlock(&v->lock);
		return -ENOKEY;
	}
	pass->p = slot(v, (size_t)k);
	pass->len = v->len[k];
	*gen = atomic_load(&v->gen);
	return 0;
}

bool vault_has_for(struct vault *v, const char *keyset)
{
	bool has;

	pthread_rwlock_rdlock(&v->lock);
	has = v->len[0] || keyset_slot(v, keyset) >= 0;
	pthread_rwlock_unlock(&v->lock);
	return has;
}

size_t vault_keysets(struct vault *v, char names[][KEYSET_NAME_MAX + 1], size_t max)
{
	size_t i, n = 0;

	pthread_rwlock_rdlock(&v->lock);
	for (i = 0; i < VAULT_KEYSET_SLOTS && n < max; i++)
		if (v->len[FIRST_KEYSET + i])
			strcpy(names[n++], v->owner[i]);
	pthread_rwlock_unlock(&v->lock);
	return n;
}

bool vault_is_backup(struct vault *v, const char *pw, size_t len)
{
	bool same;

	pthread_rwlock_rdlock(&v->lock);
	same = slot_is(v, 0, pw, len);
	pthread_rwlock_unlock(&v->lock);
	return same;
}

uint64_t vault_generation(struct vault *v)
{
	return atomic_load(&v->gen);
}

bool vault_has_password(struct vault *v)
{
	bool has;

	pthread_rwlock_rdlock(&v->lock);
	has = v->len[0] != 0;
	pthread_rwlock_unlock(&v->lock);
	return has;
}

size_t vault_unlock_count(struct vault *v)
{
	size_t i, n = 0;

	pthread_rwlock_rdlock(&v->lock);
	for (i = 1; i < VAULT_SLOTS; i++)
		n += v->len[i] != 0;
	pthread_rwlock_unlock(&v->lock);
	return n;
}

/* Fills pass[] from the first nslots slots and keeps the read lock. */
static size_t read_slots(struct vault *v, size_t nslots, struct age_pass *pass, size_t max,
			 uint64_t *gen)
{
	size_t i, n = 0;

	pthread_rwlock_rdlock(&v->lock);
	for (i = 0; i < nslots && n < max; i++) {
		if (!v->len[i])
			continue;
		pass[n].p = slot(v, i);
		pass[n].len = v->len[i];
		n++;
	}
	if (gen)
		*gen = atomic_load(&v->gen);
	return n;
}

size_t vault_read(struct vault *v, struct age_pass pass[static VAULT_SLOTS], uint64_t *gen)
{
	return read_slots(v, VAULT_SLOTS, pass, VAULT_SLOTS, gen);
}

size_t vault_read_all(struct vault *v, struct age_pass *pass, size_t max, uint64_t *gen)
{
	return read_slots(v, ALL_SLOTS, pass, max, gen);
}

int vault_read_backup(struct vault *v, struct age_pass *pass, uint64_t *gen)
{
	pthread_rwlock_rdlock(&v->lock);
	if (!v->len[0]) {
		pthread_rwlock_unlock(&v->lock);
		return -ENOKEY;
	}
	pass->p = slot(v, 0);
	pass->len = v->len[0];
	*gen = atomic_load(&v->gen);
	return 0;
}

void vault_read_end(struct vault *v)
{
	pthread_rwlock_unlock(&v->lock);
}

void vault_forget_keyset(struct vault *v, const char *keyset)
{
	int k;

	pthread_rwlock_wrlock(&v->lock);
	k = keyset_slot(v, keyset);
	if (k >= 0) {
		slot_wipe(v, (size_t)k);
		bump(v);
	}
	pthread_rwlock_unlock(&v->lock);
}
