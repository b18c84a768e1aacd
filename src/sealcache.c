#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyfs/age.h"
#include "keyfs/armor.h"
#include "keyfs/bundle.h"
#include "keyfs/log.h"
#include "keyfs/sealcache.h"

#define BUCKETS 1024

struct entry {
	struct entry *next;
	char name[KEYSET_NAME_MAX + 1];
	struct seal *seal;	/* newest seal, or NULL */
	uint64_t size_stamp;	/* version the predicted attributes are for */
	size_t size;		/* predicted size before the first seal */
	time_t mtime;
};

struct sealcache {
	struct store *st;
	struct vault *v;
	const struct config *cfg;
	pthread_mutex_t lock;
	struct entry *buckets[BUCKETS];	/* protected by lock */
};

static uint64_t hash_name(const char *name)
{
	uint64_t h;

	crypto_generichash((uint8_t *)&h, sizeof(h), (const uint8_t *)name, strlen(name), NULL, 0);
	return h;
}

uint64_t sealcache_ino(const char *name)
{
	/* High bit set: never collides with the fixed nodes 1..6. */
	return hash_name(name) | (1ULL << 63);
}

int sealcache_new(struct sealcache **out, struct store *st, struct vault *v, const struct config *c)
{
	struct sealcache *sc;

	sc = calloc(1, sizeof(*sc));
	if (!sc)
		return -ENOMEM;
	sc->st = st;
	sc->v = v;
	sc->cfg = c;
	pthread_mutex_init(&sc->lock, NULL);
	*out = sc;
	return 0;
}

void seal_put(struct seal *s)
{
	if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL))
		return;
	free(s->bytes);
	free(s);
}

void sealcache_free(struct sealcache *sc)
{
	struct entry *e, *next;
	size_t i;

	if (!sc)
		return;
	for (i = 0; i < BUCKETS; i++) {
		for (e = sc->buckets[i]; e; e = next) {
			next = e->next;
			seal_put(e->seal);
			free(e);
		}
	}
	pthread_mutex_destroy(&sc->lock);
	free(sc);
}

/* Caller holds sc->lock. */
static struct entry *entry_get(struct sealcache *sc, const char *name)
{
	struct entry **b = &sc->buckets[hash_name(name) % BUCKETS], *e;

	for (e = *b; e; e = e->next)
		if (!strcmp(e->name, name))
			return e;
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	strcpy(e->name, name);
	e->next = *b;
	*b = e;
	return e;
}

void sealcache_hint(struct sealcache *sc, const char *name, char *buf, size_t size)
{
	char key[KEYSET_NAME_MAX + 8];

	snprintf(key, sizeof(key), "hint.%s", name);
	if (!sc->st->ops->meta_get(sc->st->priv, key, buf, size))
		return;
	if (!sc->st->ops->meta_get(sc->st->priv, "hint", buf, size))
		return;
	buf[0] = '\0';
}

/* The version of an export: the keyset's files plus the hint sealed with
 * them, since the hint is part of the plaintext. */
static int export_stamp(struct sealcache *sc, const char *name, uint64_t *stamp)
{
	char hint[KEYSET_HINT_MAX + 1];
	uint64_t files;
	int ret;

	ret = sc->st->ops->stamp(sc->st->priv, name, &files);
	if (ret)
		return ret;
	sealcache_hint(sc, name, hint, sizeof(hint));
	*stamp = files ^ hash_name(hint);
	return 0;
}

static int read_keyset(struct sealcache *sc, const char *name, struct keyset *ks)
{
	int ret;

	ret = sc->st->ops->read(sc->st->priv, name, ks);
	if (ret)
		return ret;
	sealcache_hint(sc, name, ks->hint, sizeof(ks->hint));
	return 0;
}

static size_t export_size(size_t tar_len, int logn)
{
	return armor_size(age_sealed_size(tar_len, logn));
}

int sealcache_attr(struct sealcache *sc, const char *name, struct export_attr *a)
{
	struct keyset ks = { 0 };
	struct entry *e;
	uint64_t stamp;
	size_t tar_len;
	int ret;

	ret = export_stamp(sc, name, &stamp);
	if (ret)
		return ret;
	a->ino = sealcache_ino(name);
	pthread_mutex_lock(&sc->lock);
	e = entry_get(sc, name);
	if (e && e->seal && e->seal->stamp == stamp) {
		a->size = e->seal->len;
		a->mtime = e->seal->sealed_at;
		goto out;
	}
	if (e && e->size_stamp == stamp && e->size) {
		a->size = e->size;
		a->mtime = e->mtime;
		goto out;
	}
	pthread_mutex_unlock(&sc->lock);

	/* Predicting the size reads the keys but does no crypto work. */
	ret = read_keyset(sc, name, &ks);
	if (!ret)
		ret = bundle_size(&ks, &tar_len);
	if (ret) {
		keyset_clear(&ks);
		return ret;
	}
	a->size = export_size(tar_len, sc->cfg->work_factor);
	a->mtime = keyset_mtime(&ks);
	keyset_clear(&ks);

	pthread_mutex_lock(&sc->lock);
	e = entry_get(sc, name);
	if (e) {
		e->size_stamp = stamp;
		e->size = a->size;
		e->mtime = a->mtime;
	}
out:
	pthread_mutex_unlock(&sc->lock);
	return e ? 0 : -ENOMEM;
}

static int seal_new(struct sealcache *sc, const char *name, uint64_t stamp, struct seal **out)
{
	struct keyset ks = { 0 };
	struct age_pass pass;
	struct seal *s = NULL;
	uint8_t *tar = NULL, *bin = NULL;
	size_t tar_len = 0, bin_len;
	uint64_t gen;
	int ret;

	ret = read_keyset(sc, name, &ks);
	if (ret)
		goto out;
	ret = bundle_pack(&ks, &tar, &tar_len);
	if (ret)
		goto out;
	s = calloc(1, sizeof(*s));
	if (!s) {
		ret = -ENOMEM;
		goto out;
	}
	ret = vault_read_backup(sc->v, &pass, &gen);
	if (ret)
		goto out;
	ret = age_seal(tar, tar_len, &pass, sc->cfg->work_factor, &bin, &bin_len);
	vault_read_end(sc->v);
	if (ret)
		goto out;
	ret = armor_encode(bin, bin_len, &s->bytes, &s->len);
	if (ret)
		goto out;
	s->refs = 1;
	s->stamp = stamp;
	s->pwgen = gen;
	s->sealed_at = time(NULL);
	*out = s;
	s = NULL;
	log_msg(LOG_INFO, "sealed keyset \"%s\" (%zu bytes)", name, (*out)->len);
out:
	if (s) {
		free(s->bytes);
		free(s);
	}
	free(bin);
	if (tar)
		sodium_free(tar);
	keyset_clear(&ks);
	return ret;
}

int sealcache_open(struct sealcache *sc, const char *name, struct seal **out)
{
	struct seal *s = NULL;
	struct entry *e;
	uint64_t stamp, gen;
	int ret;

	if (!vault_has_password(sc->v))
		return -ENOKEY;
	ret = export_stamp(sc, name, &stamp);
	if (ret)
		return ret;
	gen = vault_generation(sc->v);
	pthread_mutex_lock(&sc->lock);
	e = entry_get(sc, name);
	if (e && e->seal && e->seal->stamp == stamp && e->seal->pwgen == gen) {
		s = e->seal;
		__atomic_add_fetch(&s->refs, 1, __ATOMIC_ACQ_REL);
	}
	pthread_mutex_unlock(&sc->lock);
	if (s)
		goto done;

	ret = seal_new(sc, name, stamp, &s);
	if (ret) {
		log_msg(LOG_ERR, "sealing keyset \"%s\" failed: %s", name, strerror(-ret));
		return ret;
	}
	pthread_mutex_lock(&sc->lock);
	e = entry_get(sc, name);
	if (e) {
		seal_put(e->seal);
		e->seal = s;
		__atomic_add_fetch(&s->refs, 1, __ATOMIC_ACQ_REL);
	}
	pthread_mutex_unlock(&sc->lock);
done:
	*out = s;
	return 0;
}

int sealcache_state(struct sealcache *sc, const char *name, bool *current, time_t *sealed_at)
{
	struct entry *e;
	uint64_t stamp, gen;
	int ret;

	ret = export_stamp(sc, name, &stamp);
	if (ret)
		return ret;
	gen = vault_generation(sc->v);
	*current = false;
	*sealed_at = 0;
	pthread_mutex_lock(&sc->lock);
	e = entry_get(sc, name);
	if (e && e->seal) {
		*current = e->seal->stamp == stamp && e->seal->pwgen == gen;
		*sealed_at = e->seal->sealed_at;
	}
	pthread_mutex_unlock(&sc->lock);
	return 0;
}
