/* keyfs-agent, asked from a thread of its own (sources.h): FUSE threads
 * post needs and wait a bounded time; only this thread does socket I/O. */
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "keyfs/agent_proto.h"
#include "keyfs/log.h"
#include "keyfs/sources.h"

#include "sources_priv.h"

#define AGENT_POLL_SECONDS 30
#define OWN_PREFIX "backup:"	/* the agent's name of a keyset's own passphrase */

/* ---- keyfs-agent: asked by the agent thread alone ---- */

/* One request to the agent; the reply buffer holds secrets. 0 with at
 * least one field, -ENOKEY if the agent holds nothing for the request,
 * -EPROTO if it does not know the request, -EACCES if it refuses keyfs,
 * else the error of agent_call(). */
static int agent_request(struct sources *s, uint8_t code, const struct agent_field *f, size_t n,
			 uint8_t *buf, struct agent_msg *m)
{
	int ret;

	ret = agent_call(s->cfg->agent, code, f, n, buf, m, SOURCES_AGENT_TIMEOUT_MS);
	if (ret == -EPERM)
		log_msg(s->agent_err == ret ? LOG_DEBUG : LOG_ERR,
			"agent %s: refused: it runs as uid %u, not as keyfs' uid %u or root",
			s->cfg->agent, (unsigned)m->uid, (unsigned)geteuid());
	if (ret)
		return ret;
	if (m->code == AGENT_ENOENT || (m->code == AGENT_OK && !m->nfields))
		return -ENOKEY;
	if (m->code == AGENT_EACCES)
		return -EACCES;
	return m->code == AGENT_OK ? 0 : -EPROTO;
}

static int agent_get(struct sources *s, const char *purpose, const char *keyset, uint8_t *buf,
		     struct agent_msg *m)
{
	struct agent_field f[2] = {
		{ (const uint8_t *)purpose, strlen(purpose) },
		{ (const uint8_t *)keyset, strlen(keyset) },
	};

	return agent_request(s, AGENT_GET, f, 2, buf, m);
}

/* Whether the error of the agent's first answer says that it is gone
 * (no socket: it exited; a socket nobody accepts on: it died), that what
 * listens there is not to be trusted (another uid), or that it refuses
 * keyfs. Anything else (a timeout, a reset, a garbled reply) says only
 * that this request failed: an agent that is stopped, swapped out or
 * busy still holds what it gave, and forgetting it would fail every
 * backup for one slow answer. The next need or poll asks again. */
static bool agent_absent(int err)
{
	switch (err) {
	case -ENOENT:
	case -ENOTDIR:
	case -ECONNREFUSED:
	case -EPERM:
	case -EACCES:
		return true;
	default:
		return false;
	}
}

/* The agent is gone, or refuses keyfs: what it gave is forgotten (it
 * lives there), what was given to keyfs itself stays. */
static void agent_gone(struct sources *s, int err)
{
	vault_forget_from(s->v, VAULT_AGENT);
	if (s->kr)
		keyring_forget_from(s->kr, KEYRING_AGENT);
	if (s->agent_err != err)
		log_msg(LOG_NOTICE, "agent: %s; the passwords it gave are forgotten, and its identities; "
			"those given to keyfs stay",
			strerror(-err));
}

/* The agent did not answer in time: nothing is forgotten. */
static void agent_silent(struct sources *s, int err)
{
	if (s->agent_err != err)
		log_msg(LOG_WARNING, "agent %s: no answer (%s); what it gave is kept until it "
			"answers or goes away", s->cfg->agent, strerror(-err));
}

/* The agent's backup passphrase, unless one was given to keyfs. */
static int agent_backup(struct sources *s, uint8_t *buf)
{
	struct agent_msg m;
	int ret;

	ret = agent_get(s, "seal", "", buf, &m);
	if (!ret)
		vault_set_from(s->v, VAULT_AGENT, (const char *)m.f[0].p, m.f[0].len);
	else if (ret == -ENOKEY)
		vault_drop_from(s->v, VAULT_AGENT, NULL);
	return ret;
}

/* Only a passphrase the agent holds as "backup:<keyset>" becomes the
 * keyset's own: "own" answers that one alone, where "seal" would fall
 * back to the backup passphrase. */
static void agent_keyset(struct sources *s, const char *keyset, uint8_t *buf)
{
	struct agent_msg m;
	int ret;

	ret = agent_get(s, "own", keyset, buf, &m);
	if (!ret)
		vault_set_keyset_from(s->v, VAULT_AGENT, keyset, (const char *)m.f[0].p, m.f[0].len);
	else if (ret == -ENOKEY)
		vault_drop_from(s->v, VAULT_AGENT, keyset);
	else if (ret == -EPROTO && !s->told_no_own)
		log_msg(LOG_WARNING, "agent: it does not give keyset passphrases (an older keyfs-agent?)");
	s->told_no_own |= ret == -EPROTO;
}

/* Whether the store has the keyset: an agent may serve several keyfs,
 * and another store's passphrase is worth no vault slot here. */
static bool ours(struct sources *s, const char *keyset)
{
	time_t sealed_at;
	bool current;

	return !s->sc || sealcache_state(s->sc, keyset, &current, &sealed_at) != -ENOENT;
}

/* This store's keysets the agent holds a passphrase of their own for,
 * from the names it lists ("backup:<keyset>"; names only, never values).
 * Every keyset's own passphrase is so taken in one round, and an open
 * whose keyset has a password never waits to learn whether the agent
 * holds a better one. */
static int agent_own_names(struct sources *s, uint8_t *buf, char names[][KEYSET_NAME_MAX + 1],
			   size_t *n)
{
	const size_t plen = strlen(OWN_PREFIX);
	struct agent_msg m;
	size_t i, len;
	int ret;

	*n = 0;
	ret = agent_request(s, AGENT_LIST, NULL, 0, buf, &m);
	if (ret)
		return ret == -ENOKEY ? 0 : ret;	/* ENOKEY: it holds nothing */
	for (i = 0; i < m.nfields; i++) {
		len = m.f[i].len;
		if (len <= plen || len - plen > KEYSET_NAME_MAX || memcmp(m.f[i].p, OWN_PREFIX, plen))
			continue;
		memcpy(names[*n], m.f[i].p + plen, len - plen);
		names[*n][len - plen] = '\0';
		*n += ours(s, names[*n]);
	}
	return 0;
}

/* Takes every keyset passphrase the agent holds, and drops those it
 * gave and no longer holds; without a list, keeps what is held. */
static void agent_keysets(struct sources *s, uint8_t *buf)
{
	char held[AGENT_FIELDS_MAX][KEYSET_NAME_MAX + 1], had[VAULT_KEYSET_SLOTS][KEYSET_NAME_MAX + 1];
	size_t n, nhad, i, j;

	if (agent_own_names(s, buf, held, &n))
		return;
	for (i = 0; i < n; i++)
		agent_keyset(s, held[i], buf);
	nhad = vault_keysets(s->v, had, VAULT_KEYSET_SLOTS);
	for (i = 0; i < nhad; i++) {
		for (j = 0; j < n && strcmp(had[i], held[j]); j++)
			;
		if (j == n)
			vault_drop_from(s->v, VAULT_AGENT, had[i]); /* only if the agent gave it */
	}
}

/* Every passphrase the agent holds may open an import; one it no longer
 * holds no longer does. */
static void agent_unseal(struct sources *s, uint8_t *buf)
{
	struct age_pass keep[AGENT_FIELDS_MAX];
	struct agent_msg m;
	size_t i, n = 0;
	int ret;

	ret = agent_get(s, "unseal", "", buf, &m);
	if (ret && ret != -ENOKEY)
		return;
	for (i = 0; !ret && i < m.nfields; i++)
		keep[n++] = (struct age_pass){ (const char *)m.f[i].p, m.f[i].len };
	vault_keep_unlock_from(s->v, VAULT_AGENT, keep, n);
	for (i = 0; i < n; i++)
		vault_add_unlock_from(s->v, VAULT_AGENT, keep[i].p, keep[i].len);
}

/* The identities the agent holds open imports while it answers with
 * them; keyfsctl checked each before the agent took it. */
static void agent_identities(struct sources *s, uint8_t *buf)
{
	struct age_identity_list l[AGENT_FIELDS_MAX];
	struct agent_msg m;
	char why[160];
	size_t i, n = 0;
	int ret;

	ret = agent_get(s, "identities", "", buf, &m);
	if (ret == -EPROTO && !s->told_no_ids)
		log_msg(LOG_WARNING, "agent: it does not give identities (an older keyfs-agent?)");
	s->told_no_ids |= ret == -EPROTO;
	if (ret && ret != -ENOKEY)
		return;
	for (i = 0; !ret && i < m.nfields; i++) {
		if (!age_keys_identities(&l[n], (const char *)m.f[i].p, m.f[i].len, why, sizeof(why)))
			n++;
		else
			log_msg(LOG_WARNING, "agent: identity %zu refused: %s", i + 1, why);
	}
	if (keyring_replace(s->kr, KEYRING_AGENT, l, n) > 0)
		log_msg(LOG_INFO, "agent: its identities changed (%zu held in all)",
			keyring_count(s->kr));
}

/* One round of questions: the backup passphrase first, whose answer
 * says whether the agent is there at all (and a silent agent costs one
 * timeout, not one per question), then the keysets' own passphrases,
 * the unseal passphrases and the identities. Returns whether a password
 * that seals changed. */
static bool agent_ask(struct sources *s)
{
	uint64_t gen = vault_generation(s->v);
	uint8_t *buf;
	int ret;

	buf = sodium_malloc(AGENT_FRAME_MAX);
	if (!buf)
		return false;
	ret = agent_backup(s, buf);
	/* ENOKEY: the agent answered but holds no backup passphrase */
	if (ret && ret != -ENOKEY && agent_absent(ret)) {
		agent_gone(s, ret);
	} else if (ret && ret != -ENOKEY) {
		agent_silent(s, ret);
	} else {
		if (s->agent_err && s->agent_err != -ENOKEY)
			log_msg(LOG_NOTICE, "agent %s: answering", s->cfg->agent);
		agent_keysets(s, buf);
		agent_unseal(s, buf);
		if (s->kr)
			agent_identities(s, buf);
	}
	s->agent_err = ret;
	sodium_free(buf);
	return vault_generation(s->v) != gen;
}

/* ---- needs: what the FUSE threads post, the agent thread answers ---- */

static void deadline_after(struct timespec *ts, long ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += ms % 1000 * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Posts a need and returns its number; the agent thread's next round
 * answers it with every other need posted before the round began.
 * Caller holds s->lock. */
static uint64_t post_need(struct sources *s)
{
	pthread_cond_signal(&s->need_cv);
	return ++s->posted;
}

void sources_agent_ask_soon(struct sources *s)
{
	pthread_mutex_lock(&s->lock);
	post_need(s);
	pthread_mutex_unlock(&s->lock);
}

/* Waits until need n is answered, SOURCES_WAIT_MS at most. Caller holds
 * s->lock, which the wait releases: waiters wait side by side, and
 * none does I/O. */
static void wait_answer(struct sources *s, uint64_t n)
{
	struct timespec until;

	deadline_after(&until, SOURCES_WAIT_MS);
	while (s->answered < n && !s->stop)
		if (pthread_cond_timedwait(&s->answer_cv, &s->lock, &until) == ETIMEDOUT)
			break;
}

/* Whether the agent's socket is gone: an agent that exits removes it.
 * The one sign of an agent gone that costs no I/O with it to see; one
 * killed leaves its socket, and the next round finds that out. */
static bool socket_gone(struct sources *s)
{
	struct stat st;

	return lstat(s->cfg->agent, &st) && (errno == ENOENT || errno == ENOTDIR);
}

void sources_need(struct sources *s, const char *keyset)
{
	uint64_t n;
	bool known;

	if (!s->agent_running)
		return;
	/* Before s->lock, which is never held waiting for a vault lock. A
	 * password the agent gave is not known once it is gone: the open
	 * waits for the round that forgets it. */
	known = keyset && vault_has_for(s->v, keyset) && !socket_gone(s);
	pthread_mutex_lock(&s->lock);
	n = post_need(s);
	/* Once the agent was asked, its keyset passphrases are all known
	 * (agent_keysets()): a keyset with a password opens with it now,
	 * and the answer to this need only keeps the vault current. */
	if (!known || !s->asked_once)
		wait_answer(s, n);
	pthread_mutex_unlock(&s->lock);
}

void sources_settle(struct sources *s)
{
	if (!s->agent_running)
		return;
	pthread_mutex_lock(&s->lock);
	wait_answer(s, s->posted);
	pthread_mutex_unlock(&s->lock);
}

void sources_provider(void *arg, const char *keyset)
{
	sources_need(arg, keyset);
}

/* Answers needs, a round for every batch of them, and polls when none
 * comes: the only thread that talks to the agent. */
void *sources_agent_thread(void *arg)
{
	struct sources *s = arg;
	struct timespec poll_at;
	bool changed;
	uint64_t n;

	deadline_after(&poll_at, AGENT_POLL_SECONDS * 1000L);
	pthread_mutex_lock(&s->lock);
	while (!s->stop) {
		if (s->answered == s->posted) {
			/* an agent that gained or lost a passphrase is noticed
			 * even when nobody opens anything */
			if (pthread_cond_timedwait(&s->need_cv, &s->lock, &poll_at) == ETIMEDOUT)
				post_need(s);
			continue;
		}
		n = s->posted;
		pthread_mutex_unlock(&s->lock);
		changed = agent_ask(s);
		pthread_mutex_lock(&s->lock);
		s->answered = n;
		s->asked_once = true;
		pthread_cond_broadcast(&s->answer_cv);
		deadline_after(&poll_at, AGENT_POLL_SECONDS * 1000L);
		if (changed) {
			/* Waiters are told first: the verifier's scrypt is the seal
			 * cache's to wait for (sealcache_open()), not theirs. */
			pthread_mutex_unlock(&s->lock);
			password_changed(s);
			pthread_mutex_lock(&s->lock);
		}
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}
