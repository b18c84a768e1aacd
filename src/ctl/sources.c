/* Password sources besides .control: a password file, a systemd
 * credential and keyfs-agent (see sources.h). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyfs/agent_proto.h"
#include "keyfs/log.h"
#include "keyfs/policy.h"
#include "keyfs/sources.h"

#define AGENT_POLL_SECONDS 30
#define IDENTITY_FILE_MAX 65536	/* an Ed25519 key file is about 400 bytes */
#define OWN_PREFIX "backup:"	/* the agent's name of a keyset's own passphrase */

/* Lock rule: s->lock is never held while waiting for a vault lock, nor
 * across agent I/O; so a FUSE thread waits for it only while another
 * posts a need or reads the counters. */
struct sources {
	const struct config *cfg;
	struct vault *v;
	struct sealcache *sc;
	struct keyring *kr;	/* NULL: identities are not read */
	int (*hup)(void *arg);	/* SIGHUP's work; set before the thread starts */
	void *hup_arg;
	pthread_mutex_t lock;
	pthread_cond_t need_cv;	/* a need was posted, or stop: the agent thread */
	pthread_cond_t answer_cv;	/* a round of questions ended: the waiters */
	uint64_t posted;	/* needs posted so far; protected by lock */
	uint64_t answered;	/* needs 1..answered are answered; protected by lock */
	bool asked_once;	/* a round ended since the start; protected by lock */
	bool stop;		/* protected by lock */
	/* The agent thread's own, unlocked (sources_new() before it). */
	int agent_err;		/* the agent's last error, logged once */
	bool told_no_own;	/* the agent knows no "own": logged */
	bool told_no_ids;	/* nor "identities" */
	/* Set by sources_start(), before the FUSE threads exist. */
	bool started;		/* thread */
	bool agent_running;	/* agent */
	pthread_t thread;	/* SIGHUP */
	pthread_t agent;	/* the only thread that talks to the agent */
};

static void password_changed(struct sources *s)
{
	if (s->sc)
		sealcache_password_changed(s->sc);
}

/* $CREDENTIALS_DIRECTORY/name into buf; "" (logged) without the
 * directory. */
static const char *credential_path(const char *what, const char *name, char *buf, size_t size)
{
	const char *dir = getenv("CREDENTIALS_DIRECTORY");

	if (!dir || !*dir) {
		log_msg(LOG_ERR, "%s credential \"%s\": $CREDENTIALS_DIRECTORY is not set", what, name);
		return "";
	}
	snprintf(buf, size, "%s/%s", dir, name);
	return buf;
}

/* The file or credential path, or NULL if neither is configured. */
static const char *secret_path(const struct config *c, char *buf, size_t size)
{
	if (*c->password_file)
		return c->password_file;
	if (!*c->password_credential)
		return NULL;
	return credential_path("password", c->password_credential, buf, size);
}

/* Opens a file of secrets, what in the log ("password file"): refused
 * unless a regular file that only its owner may read, and that owner
 * keyfs' uid or root. Returns the descriptor or -errno. */
static int open_private(const char *path, const char *what)
{
	struct stat st;
	int fd, ret;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		log_msg(LOG_ERR, "%s %s: %m", what, path);
		return ret;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || (st.st_mode & 077)) {
		log_msg(LOG_ERR, "%s %s: refused: group or others may read it (chmod 600)", what, path);
		close(fd);
		return -EACCES;
	}
	/* Its owner can change it, and so choose the password that seals
	 * every backup, or the keys that open imports: only keyfs' own user
	 * or root may. */
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		log_msg(LOG_ERR, "%s %s: refused: owned by uid %u, not by keyfs' uid %u or root (chown)",
			what, path, (unsigned)st.st_uid, (unsigned)geteuid());
		close(fd);
		return -EACCES;
	}
	return fd;
}

/* Reads the first line of path into guarded memory. */
static int read_secret(const char *path, char *pw, size_t *len)
{
	ssize_t n;
	int fd, ret = 0;

	fd = open_private(path, "password file");
	if (fd < 0)
		return fd;
	n = read(fd, pw, SECRET_PW_MAX + 2);
	if (n < 0) {
		ret = -errno;
		goto out;
	}
	*len = (size_t)n;
	if (memchr(pw, '\n', *len))
		*len = (size_t)((char *)memchr(pw, '\n', *len) - pw);
	if (*len && pw[*len - 1] == '\r')
		(*len)--;
out:
	close(fd);
	return ret;
}

static int reload_password(struct sources *s)
{
	char buf[4096], *pw;
	const char *path, *why;
	size_t len = 0;
	int ret;

	path = secret_path(s->cfg, buf, sizeof(buf));
	if (!path)
		return 0;
	if (!*path)
		return -EINVAL;
	pw = sodium_malloc(SECRET_PW_MAX + 2);
	if (!pw)
		return -ENOMEM;
	ret = read_secret(path, pw, &len);
	if (!ret && policy_check(s->cfg, pw, len, &why)) {
		log_msg(LOG_ERR, "password file %s: password refused: %s", path, why);
		ret = -EINVAL;
	}
	if (!ret)
		ret = vault_set(s->v, pw, len); /* the vault orders concurrent setters */
	sodium_free(pw);
	if (ret)
		return ret;
	log_msg(LOG_NOTICE, "backup password read from %s", path);
	password_changed(s);
	return 0;
}

/* Parses an identity file held in guarded memory; a refusal is logged
 * as "FILE:LINE: why". */
static int parse_identities(const char *path, const char *text, size_t len,
			    struct age_identity_list *l)
{
	static const char line[] = "line ";
	char why[160];
	int ret;

	ret = age_keys_identities(l, text, len, why, sizeof(why));
	if (ret == -ENOMEM)
		return ret;
	if (ret) {
		log_msg(LOG_ERR, "%s:%s", path,
			strncmp(why, line, sizeof(line) - 1) ? why : why + sizeof(line) - 1);
		return -EINVAL;
	}
	return 0;
}

/* Reads and parses the identity file at path. */
static int read_identities(const char *path, struct age_identity_list *l)
{
	size_t len = 0;
	ssize_t n = 1;
	char *text;
	int fd, ret = 0;

	fd = open_private(path, "identity file");
	if (fd < 0)
		return fd;
	text = sodium_malloc(IDENTITY_FILE_MAX + 1);
	if (!text) {
		ret = -ENOMEM;
		goto out;
	}
	while (n > 0 && len <= IDENTITY_FILE_MAX) {
		n = read(fd, text + len, IDENTITY_FILE_MAX + 1 - len);
		len += n > 0 ? (size_t)n : 0;
	}
	if (n < 0)
		ret = -errno;
	else if (len > IDENTITY_FILE_MAX)
		log_msg(LOG_ERR, "identity file %s: refused: larger than %d bytes", path,
			IDENTITY_FILE_MAX);
	ret = ret ? ret : len > IDENTITY_FILE_MAX ? -EFBIG : parse_identities(path, text, len, l);
	sodium_free(text);
out:
	close(fd);
	return ret;
}

/* One identity source, the file (o KEYRING_FILE) or the credential: what
 * it holds replaces what it held. A source that fails keeps its old
 * identities, as a password file that fails keeps its password. */
static int reload_identity_source(struct sources *s, enum keyring_origin o, const char *path)
{
	struct age_identity_list l;
	int ret;

	if (!*path)
		return -EINVAL;
	ret = read_identities(path, &l);
	if (ret)
		return ret;
	ret = keyring_replace(s->kr, o, &l, 1);
	if (ret > 0)
		log_msg(LOG_NOTICE, "identities read from %s (%zu held)", path, keyring_count(s->kr));
	return ret < 0 ? ret : 0;
}

static int reload_identities(struct sources *s)
{
	const struct config *c = s->cfg;
	char buf[4096];
	int ret = 0, ret2 = 0;

	if (!s->kr)
		return 0;
	if (*c->identity_file)
		ret = reload_identity_source(s, KEYRING_FILE, c->identity_file);
	if (*c->identity_credential)
		ret2 = reload_identity_source(s, KEYRING_CREDENTIAL,
					      credential_path("identity", c->identity_credential,
							      buf, sizeof(buf)));
	return ret ? ret : ret2;
}

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

/* Asks soon, waiting for nothing. */
static void ask_soon(struct sources *s)
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
static void *agent_thread(void *arg)
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

/* ---- life cycle ---- */

int sources_reload(struct sources *s)
{
	int ret = reload_password(s), ret2 = reload_identities(s);

	ask_soon(s); /* at start, on SIGHUP and "reload": the agent too */
	return ret ? ret : ret2;
}

int sources_new(struct sources **out, const struct config *c, struct vault *v, struct keyring *kr,
		struct sealcache *sc)
{
	pthread_condattr_t ca;
	struct sources *s;
	int ret;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->cfg = c;
	s->v = v;
	s->kr = kr;
	s->sc = sc;
	if (sc)
		sealcache_set_provider(sc, sources_provider, s);
	pthread_mutex_init(&s->lock, NULL);
	/* waits are bounded in monotonic time: a clock step must not
	 * stretch an open's wait */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->need_cv, &ca);
	pthread_cond_init(&s->answer_cv, &ca);
	pthread_condattr_destroy(&ca);
	ret = sources_reload(s);
	if (ret) {
		sources_free(s);
		return ret;
	}
	*out = s;
	return 0;
}

int sources_check(const struct config *c)
{
	struct keyring *kr = NULL;
	struct sources *s;
	struct vault *v;
	int ret;

	ret = vault_new(&v);
	if (!ret)
		ret = keyring_new(&kr);
	if (!ret)
		ret = sources_new(&s, c, v, kr, NULL);
	if (!ret)
		sources_free(s);
	keyring_free(kr); /* wipes what was read */
	vault_free(v);
	return ret;
}

void sources_set_hup(struct sources *s, int (*fn)(void *arg), void *arg)
{
	s->hup = fn;
	s->hup_arg = arg;
}

static bool stopping(struct sources *s)
{
	bool stop;

	pthread_mutex_lock(&s->lock);
	stop = s->stop;
	pthread_mutex_unlock(&s->lock);
	return stop;
}

/* Takes SIGHUP (blocked in every thread: see main). */
static void *hup_thread(void *arg)
{
	struct timespec second = { 1, 0 };
	struct sources *s = arg;
	sigset_t hup;

	sigemptyset(&hup);
	sigaddset(&hup, SIGHUP);
	while (!stopping(s)) {
		if (sigtimedwait(&hup, NULL, &second) != SIGHUP)
			continue;
		log_msg(LOG_NOTICE, "SIGHUP: reading the password and identity sources again");
		if (s->hup)
			s->hup(s->hup_arg);
		else
			sources_reload(s);
	}
	return NULL;
}

int sources_start(struct sources *s)
{
	if (pthread_create(&s->thread, NULL, hup_thread, s))
		return -EAGAIN;
	s->started = true;
	if (!*s->cfg->agent)
		return 0;
	if (pthread_create(&s->agent, NULL, agent_thread, s))
		return -EAGAIN;
	s->agent_running = true;
	return 0;
}

void sources_free(struct sources *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->stop = true;
	pthread_cond_broadcast(&s->need_cv);
	pthread_cond_broadcast(&s->answer_cv);
	pthread_mutex_unlock(&s->lock);
	if (s->started)
		pthread_join(s->thread, NULL);
	if (s->agent_running)
		pthread_join(s->agent, NULL);
	pthread_cond_destroy(&s->answer_cv);
	pthread_cond_destroy(&s->need_cv);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
