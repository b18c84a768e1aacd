/* Password sources besides .control: a password file, a systemd
 * credential (see sources.h); keyfs-agent's thread is sources_agent.c. */
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

#include "keyfs/log.h"
#include "keyfs/policy.h"
#include "keyfs/sources.h"

#include "sources_priv.h"

#define IDENTITY_FILE_MAX 65536	/* an Ed25519 key file is about 400 bytes */

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

/* ---- life cycle ---- */

int sources_reload(struct sources *s)
{
	int ret = reload_password(s), ret2 = reload_identities(s);

	sources_agent_ask_soon(s); /* at start, on SIGHUP and "reload": the agent too */
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
	if (pthread_create(&s->agent, NULL, sources_agent_thread, s))
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
