/* What the seal cache tells the reports: what seals a keyset, why one
 * cannot be exported, and the state of each export, from memory (see
 * sealcache.h). */
#include <errno.h>
#include <stdio.h>
#include <sodium.h>
#include <string.h>

#include "keyfs/escape.h"

#include "sealcache_priv.h"

/* Appends s to the n bytes in buf, cut to fit; the new length. A status
 * describes the sealer of every keyset: no printf for that. */
static size_t append(char *buf, size_t size, size_t n, const char *s)
{
	size_t len = strlen(s);

	if (n + 1 >= size)
		return n;
	if (len > size - n - 1)
		len = size - n - 1;
	memcpy(buf + n, s, len);
	buf[n + len] = '\0';
	return n + len;
}

/* "FILE: age1..., ssh-ed25519 COMMENT" (keys) or "FILE". */
static void describe_set(const struct recipset *rs, bool keys, char *buf, size_t size)
{
	size_t n, i;

	n = append(buf, size, 0, rs->file);
	if (keys)
		n = append(buf, size, n, ":");
	for (i = 0; keys && i < rs->l.n && n < size; i++)
		n += (size_t)snprintf(buf + n, size - n, "%s %s%s", i ? "," : "",
				      strncmp(rs->l.key[i], "ssh-", 4) ? "" : "ssh-ed25519 ",
				      rs->l.display[i]);
}

/* Words for what seals: rs, else a password (the keyset's own if own). */
static void describe(const struct recipset *rs, bool own, bool keys, char *buf, size_t size)
{
	size_t n;

	if (!rs) {
		append(buf, size, 0, own ? "its own password" : "the backup password");
		return;
	}
	n = append(buf, size, 0, "recipients in ");
	if (n + 1 < size)
		describe_set(rs, keys, buf + n, size - n);
}

void sealcache_recipients_report(struct sealcache *sc, FILE *f)
{
	struct recipients *r;
	char line[2048];
	size_t i, n;

	pthread_mutex_lock(&sc->lock);
	r = recipients_ref(sc->rcp);
	pthread_mutex_unlock(&sc->lock);
	n = recipients_count(r);
	fprintf(f, "recipients files: %zu\n", n);
	for (i = 0; i < n; i++) {
		describe_set(recipients_at(r, i), true, line, sizeof(line));
		fputs("  ", f);
		escape_put(f, line); /* the file's path is the configuration's */
		fputc('\n', f);
	}
	recipients_put(r);
}

void sealcache_default_sealer(struct sealcache *sc, bool keys, char *buf, size_t size)
{
	pthread_mutex_lock(&sc->lock);
	describe(recipients_for(sc->rcp, "", NULL), false, keys, buf, size);
	pthread_mutex_unlock(&sc->lock);
}

void sealcache_sealer(struct sealcache *sc, const char *name, bool keys, char *buf, size_t size)
{
	struct entry *e;

	pthread_mutex_lock(&sc->lock);
	e = sc_entry_get(sc, name);
	if (e)
		describe(sc_rset_for(sc, e), e->own_pw, keys, buf, size);
	else
		snprintf(buf, size, "unknown (out of memory)");
	pthread_mutex_unlock(&sc->lock);
}

void sealcache_each_problem(struct sealcache *sc,
			    void (*fn)(void *arg, const char *name, const char *why), void *arg)
{
	struct entry *e;
	size_t pos = 0;

	pthread_mutex_lock(&sc->lock);
	for (e = sc_entry_next(sc, &pos, NULL); e; e = sc_entry_next(sc, &pos, e))
		if (e->bad)
			fn(arg, e->name, e->why ? e->why : strerror(-e->bad));
	pthread_mutex_unlock(&sc->lock);
}

void sc_entry_report(const struct sealcache *sc, const struct entry *e, uint64_t stamp,
		  struct export_report *r)
{
	r->current = e->cached && sc_entry_current(sc, e, stamp);
	r->sealed_at = e->cached ? e->sealed_at : 0;
	if (e->ahead && e->ahead->has_fpr && e->ahead->pred_stamp == stamp)
		sodium_bin2hex(r->fpr, sizeof(r->fpr), e->ahead->fpr, BUNDLE_FPR_LEN);
	describe(sc_rset_for(sc, e), e->own_pw, false, r->sealer, sizeof(r->sealer));
}

int sealcache_state(struct sealcache *sc, const char *name, bool *current, time_t *sealed_at)
{
	struct entry *e;
	uint64_t stamp;
	int ret;

	*current = false;
	*sealed_at = 0;
	e = sc_entry_lock(sc, name, &stamp, &ret);
	if (!e)
		return ret;
	if (e->cached) {
		*current = sc_entry_current(sc, e, stamp);
		*sealed_at = e->sealed_at;
	}
	pthread_mutex_unlock(&sc->lock);
	return 0;
}
