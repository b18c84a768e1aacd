#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "keyfs/keyset.h"
#include "keyfs/secret.h"

/* Slots 0 .. VAULT_SLOTS-1: backup and unlock passwords; then
 * VAULT_KEYSET_SLOTS per-keyset passwords named in owner[]. */
#define ALL_SLOTS (VAULT_SLOTS + VAULT_KEYSET_SLOTS)

struct vault {
	pthread_rwlock_t lock;
	char *pool;			/* ALL_SLOTS * SECRET_PW_MAX, sodium_malloc */
	size_t len[ALL_SLOTS];		/* 0: slot empty; protected by lock */
	char owner[VAULT_KEYSET_SLOTS][KEYSET_NAME_MAX + 1]; /* protected by lock */
	uint64_t gen;			/* protected by lock */
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

static int slot_put(struct vault *v, size_t i, const char *pw, size_t len)
{
	if (!len || len > SECRET_PW_MAX)
		return -EINVAL;
	sodium_memzero(slot(v, i), SECRET_PW_MAX);
	memcpy(slot(v, i), pw, len);
	v->len[i] = len;
	return 0;
}

int vault_set(struct vault *v, const char *pw, size_t len)
{
	int ret;

	pthread_rwlock_wrlock(&v->lock);
	ret = slot_put(v, 0, pw, len);
	if (!ret)
		v->gen++;
	pthread_rwlock_unlock(&v->lock);
	return ret;
}

int vault_add_unlock(struct vault *v, const char *pw, size_t len)
{
	int ret = -ENOSPC;
	size_t i;

	if (!len || len > SECRET_PW_MAX)
		return -EINVAL;
	pthread_rwlock_wrlock(&v->lock);
	for (i = 1; i < VAULT_SLOTS; i++) {
		if (v->len[i] == len && !sodium_memcmp(slot(v, i), pw, len)) {
			ret = 0; /* already known */
			break;
		}
		if (!v->len[i]) {
			ret = slot_put(v, i, pw, len);
			break;
		}
	}
	pthread_rwlock_unlock(&v->lock);
	return ret;
}

void vault_forget(struct vault *v)
{
	pthread_rwlock_wrlock(&v->lock);
	sodium_memzero(v->pool, ALL_SLOTS * SECRET_PW_MAX);
	memset(v->len, 0, sizeof(v->len));
	memset(v->owner, 0, sizeof(v->owner));
	v->gen++;
	pthread_rwlock_unlock(&v->lock);
}

/* Caller holds the lock. -1 if keyset has no password of its own. */
static int keyset_slot(struct vault *v, const char *keyset)
{
	size_t i;

	for (i = 0; keyset && i < VAULT_KEYSET_SLOTS; i++)
		if (v->len[VAULT_SLOTS + i] && !strcmp(v->owner[i], keyset))
			return (int)(VAULT_SLOTS + i);
	return -1;
}

int vault_set_keyset(struct vault *v, const char *keyset, const char *pw, size_t len)
{
	int ret = -ENOSPC, k;
	size_t i;

	if (strlen(keyset) > KEYSET_NAME_MAX)
		return -EINVAL;
	pthread_rwlock_wrlock(&v->lock);
	k = keyset_slot(v, keyset);
	for (i = 0; k < 0 && i < VAULT_KEYSET_SLOTS; i++)
		if (!v->len[VAULT_SLOTS + i])
			k = (int)(VAULT_SLOTS + i);
	if (k >= 0) {
		ret = slot_put(v, (size_t)k, pw, len);
		if (!ret) {
			strcpy(v->owner[k - VAULT_SLOTS], keyset);
			v->gen++;
		}
	}
	pthread_rwlock_unlock(&v->lock);
	return ret;
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
	*gen = v->gen;
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
		if (v->len[VAULT_SLOTS + i])
			strcpy(names[n++], v->owner[i]);
	pthread_rwlock_unlock(&v->lock);
	return n;
}


bool vault_is_backup(struct vault *v, const char *pw, size_t len)
{
	bool same;

	pthread_rwlock_rdlock(&v->lock);
	same = v->len[0] && v->len[0] == len && !sodium_memcmp(slot(v, 0), pw, len);
	pthread_rwlock_unlock(&v->lock);
	return same;
}

uint64_t vault_generation(struct vault *v)
{
	uint64_t gen;

	pthread_rwlock_rdlock(&v->lock);
	gen = v->gen;
	pthread_rwlock_unlock(&v->lock);
	return gen;
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
		*gen = v->gen;
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
	*gen = v->gen;
	return 0;
}

void vault_read_end(struct vault *v)
{
	pthread_rwlock_unlock(&v->lock);
}

/* Counts characters, not bytes: UTF-8 continuation bytes do not count. */
static size_t utf8_chars(const char *s, size_t len)
{
	size_t i, n = 0;

	for (i = 0; i < len; i++)
		n += ((unsigned char)s[i] & 0xc0) != 0x80;
	return n;
}

int policy_check(const struct config *c, const char *pw, size_t len, const char **why)
{
	bool upper = false, lower = false, digit = false, symbol = false;
	size_t i;

	if (!len) {
		*why = "the password is empty";
		return -EINVAL;
	}
	if (len > SECRET_PW_MAX) {
		*why = "the password is longer than 128 bytes";
		return -EINVAL;
	}
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)pw[i];

		if (ch < 0x20 || ch == 0x7f) {
			*why = "the password contains a control character";
			return -EINVAL;
		}
		upper |= ch >= 'A' && ch <= 'Z';
		lower |= ch >= 'a' && ch <= 'z';
		digit |= ch >= '0' && ch <= '9';
		symbol |= !(ch >= 'A' && ch <= 'Z') && !(ch >= 'a' && ch <= 'z') &&
			  !(ch >= '0' && ch <= '9');
	}
	if (utf8_chars(pw, len) < (size_t)c->min_length) {
		*why = c->min_length == 8 ? "the password is shorter than 8 characters"
					  : "the password is shorter than the configured minimum length";
		return -EINVAL;
	}
	if (c->policy != POLICY_COMPLEX)
		return 0;
	if (!upper)
		*why = "the password needs an upper-case letter";
	else if (!lower)
		*why = "the password needs a lower-case letter";
	else if (!digit)
		*why = "the password needs a digit";
	else if (!symbol)
		*why = "the password needs a symbol (neither letter nor digit)";
	else
		return 0;
	return -EINVAL;
}

void vault_forget_keyset(struct vault *v, const char *keyset)
{
	int k;

	pthread_rwlock_wrlock(&v->lock);
	k = keyset_slot(v, keyset);
	if (k >= 0) {
		sodium_memzero(slot(v, (size_t)k), SECRET_PW_MAX);
		v->len[k] = 0;
		v->owner[k - VAULT_SLOTS][0] = '\0';
		v->gen++;
	}
	pthread_rwlock_unlock(&v->lock);
}
