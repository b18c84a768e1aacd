/* Password sources: a password file and a systemd credential are read
 * into the vault (and the seal cache of the in-memory store is told),
 * and refused when others may read them, when another user owns them, or
 * when the password fails the policy. And keyfs-agent, played here by a
 * fake that can stop answering: asked from the sources' own thread, a
 * need of a FUSE thread answered within a bound, side by side with
 * others and together with them, a timeout forgetting nothing, a gone
 * agent or its "no" forgetting what it gave. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "keyfs/agent_proto.h"
#include "keyfs/config.h"
#include "keyfs/sealcache.h"
#include "keyfs/sources.h"
#include "keyfs/state.h"

#include "store_mem.h"
#include "tap.h"

static char dir[] = "/tmp/keyfs-test-sources.XXXXXX";

static void write_file(const char *path, const char *text, mode_t mode, uid_t owner)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) || fchmod(fd, mode) ||
	    fchown(fd, owner, (gid_t)-1))
		tap_ok(false, "writing %s", path);
	if (fd >= 0)
		close(fd);
}

static bool backup_is(struct vault *v, const char *pw)
{
	return vault_is_backup(v, pw, strlen(pw));
}

/* ---- a fake keyfs-agent ---- */

#define AGENT_PW "Agent-Horse-5!"
#define OWN_PW "Own-Horse-6!"

struct fake {
	char path[108];
	int fd;			/* listening; -1 once closed */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cv;
	bool paused;		/* accepts nobody: a stopped agent; protected by lock */
	bool stop;		/* protected by lock */
	bool holds;		/* holds backup, backup:k, backup:other; protected by lock */
	int seals;		/* GET seal requests read; protected by lock */
};

/* A reply of the fields given (up to three), NULL ending them. */
static int reply(int fd, uint8_t code, const char *a, const char *b, const char *c)
{
	const char *v[3] = { a, b, c };
	struct agent_field f[3];
	uint8_t frame[AGENT_FRAME_MAX + 4];
	size_t n;
	int len;

	for (n = 0; n < 3 && v[n]; n++)
		f[n] = (struct agent_field){ (const uint8_t *)v[n], strlen(v[n]) };
	len = agent_encode(frame, code, f, n);
	return len < 0 ? len : agent_send(fd, frame, (size_t)len, 1000);
}

static bool is(const struct agent_field *f, const char *s)
{
	return f->len == strlen(s) && !memcmp(f->p, s, f->len);
}

/* One request, as keyfs-agent answers it (agent_proto.h). */
static void serve_one(struct fake *fk, int fd)
{
	uint8_t buf[AGENT_FRAME_MAX];
	struct agent_msg m;
	bool holds;

	if (agent_recv(fd, buf, &m, 1000))
		return;
	pthread_mutex_lock(&fk->lock);
	holds = fk->holds;
	fk->seals += m.code == AGENT_GET && m.nfields == 2 && is(&m.f[0], "seal");
	pthread_mutex_unlock(&fk->lock);
	/* "other": a keyset of another store this agent serves too */
	if (m.code == AGENT_LIST && holds)
		reply(fd, AGENT_OK, "backup", "backup:k", "backup:other");
	else if (m.code != AGENT_GET || m.nfields != 2 || !holds || is(&m.f[0], "identities"))
		reply(fd, AGENT_ENOENT, "nothing held", NULL, NULL);
	else if (is(&m.f[0], "own"))
		reply(fd, AGENT_OK, OWN_PW, NULL, NULL);
	else
		reply(fd, AGENT_OK, AGENT_PW, NULL, NULL);
}

static void *fake_thread(void *arg)
{
	struct fake *fk = arg;
	struct pollfd p = { .fd = fk->fd, .events = POLLIN };
	bool stop;
	int fd;

	for (;;) {
		pthread_mutex_lock(&fk->lock);
		while (fk->paused && !fk->stop)
			pthread_cond_wait(&fk->cv, &fk->lock);
		stop = fk->stop;
		pthread_mutex_unlock(&fk->lock);
		if (stop)
			break;
		if (poll(&p, 1, 20) != 1)
			continue;
		/* paused during the poll: once fake_set() returned, nobody
		 * more is accepted */
		pthread_mutex_lock(&fk->lock);
		fd = fk->paused ? -1 : accept4(fk->fd, NULL, NULL, SOCK_CLOEXEC);
		pthread_mutex_unlock(&fk->lock);
		if (fd >= 0) {
			serve_one(fk, fd);
			close(fd);
		}
	}
	return NULL;
}

static int fake_start(struct fake *fk, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	memset(fk, 0, sizeof(*fk));
	snprintf(fk->path, sizeof(fk->path), "%s", path);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	pthread_mutex_init(&fk->lock, NULL);
	pthread_cond_init(&fk->cv, NULL);
	fk->holds = true;
	fk->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fk->fd < 0 || bind(fk->fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fk->fd, 16))
		return -1;
	return pthread_create(&fk->thread, NULL, fake_thread, fk) ? -1 : 0;
}

static void fake_set(struct fake *fk, bool *field, bool value)
{
	pthread_mutex_lock(&fk->lock);
	*field = value;
	pthread_cond_broadcast(&fk->cv);
	pthread_mutex_unlock(&fk->lock);
}

static int fake_seals(struct fake *fk)
{
	int n;

	pthread_mutex_lock(&fk->lock);
	n = fk->seals;
	pthread_mutex_unlock(&fk->lock);
	return n;
}

/* Stops serving; unlink: as an agent that exits (else as one killed,
 * its socket left behind, refusing connections). */
static void fake_stop(struct fake *fk, bool unlink_it)
{
	fake_set(fk, &fk->stop, true);
	pthread_join(fk->thread, NULL);
	close(fk->fd);
	if (unlink_it)
		unlink(fk->path);
	pthread_cond_destroy(&fk->cv);
	pthread_mutex_destroy(&fk->lock);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* sources_need(s, keyset), timed. */
static double need(struct sources *s, const char *keyset)
{
	double t0 = now();

	sources_need(s, keyset);
	return now() - t0;
}

struct opener {
	struct sources *s;
	double took;
	pthread_t thread;
};

static void *open_thread(void *arg)
{
	struct opener *o = arg;

	o->took = need(o->s, "k");
	return NULL;
}

/* Eight opens at once with nothing known and the agent stopped: each
 * returns within the bound, none after another's wait, and the agent is
 * asked a few times, not once per open. */
static void parallel_needs(struct sources *s, struct fake *fk, struct vault *v)
{
	struct opener o[8];
	double t0, worst = 0;
	int seals = fake_seals(fk);
	size_t i;

	vault_forget(v);
	fake_set(fk, &fk->paused, true);
	t0 = now();
	for (i = 0; i < 8; i++) {
		o[i].s = s;
		pthread_create(&o[i].thread, NULL, open_thread, &o[i]);
	}
	for (i = 0; i < 8; i++) {
		pthread_join(o[i].thread, NULL);
		worst = o[i].took > worst ? o[i].took : worst;
	}
	tap_ok(worst < (SOURCES_WAIT_MS + 300) / 1000.0, "8 needs, agent stopped: each within the bound "
	       "(%.3f s at most)", worst);
	tap_ok(now() - t0 < (SOURCES_WAIT_MS + 500) / 1000.0, "... side by side (%.3f s in all)",
	       now() - t0);
	tap_ok(!vault_has_for(v, "k"), "... and no password came");
	fake_set(fk, &fk->paused, false);
	sources_need(s, "k");
	tap_ok(vault_has_for(v, "k"), "the agent answers again: the next need gets its password");
	tap_ok(fake_seals(fk) - seals <= 3, "... the agent was asked %d time(s) for 9 needs",
	       fake_seals(fk) - seals);
}

static void test_agent(struct config *c, struct vault *v, struct sealcache *sc)
{
	char names[VAULT_KEYSET_SLOTS][KEYSET_NAME_MAX + 1];
	struct sources *s;
	struct fake fk;
	double took;

	c->password_credential[0] = '\0';
	snprintf(c->agent, sizeof(c->agent), "%s/agent.sock", dir);
	if (!tap_ok(!fake_start(&fk, c->agent), "a fake agent") ||
	    !tap_ok(!sources_new(&s, c, v, NULL, sc) && !sources_start(s), "sources with an agent"))
		return;
	took = need(s, "k");
	tap_ok(vault_is_backup(v, AGENT_PW, strlen(AGENT_PW)), "the first need waits for the answer "
	       "(%.3f s): the agent's backup password", took);
	tap_ok(vault_keysets(v, names, VAULT_KEYSET_SLOTS) == 1 && !strcmp(names[0], "k"),
	       "... and the passphrase it lists for this store's keyset, not another's");

	fake_set(&fk, &fk.paused, true);	/* SIGSTOP */
	took = need(s, "k");
	tap_ok(took < 0.05, "agent stopped, password known: no wait (%.3f s)", took);
	took = need(s, NULL);
	tap_ok(took < (SOURCES_WAIT_MS + 300) / 1000.0, "an import's need waits the bound at most "
	       "(%.3f s)", took);
	sources_settle(s);
	tap_ok(vault_is_backup(v, AGENT_PW, strlen(AGENT_PW)) && vault_has_for(v, "k"),
	       "a timeout forgets nothing");
	fake_set(&fk, &fk.paused, false);
	sources_need(s, NULL);	/* the requests the stop left are read first */
	parallel_needs(s, &fk, v);

	fake_set(&fk, &fk.holds, false);	/* "agent remove" */
	sources_need(s, NULL);
	tap_ok(!vault_has_password(v) && !vault_keysets(v, names, VAULT_KEYSET_SLOTS),
	       "the agent's \"no\": its passwords are forgotten");

	fake_set(&fk, &fk.holds, true);
	sources_need(s, NULL);
	vault_set(v, "Given-Horse-7!", 14);
	fake_stop(&fk, false);			/* SIGKILL: the socket stays */
	sources_need(s, NULL);
	tap_ok(vault_is_backup(v, "Given-Horse-7!", 14) && !vault_keysets(v, names, 1),
	       "agent killed (connection refused): its passwords forgotten, a given one kept");

	vault_forget(v);
	unlink(c->agent);
	tap_ok(!fake_start(&fk, c->agent), "a new agent on the same socket");
	sources_need(s, NULL);
	tap_ok(vault_has_for(v, "k"), "... is asked");
	fake_stop(&fk, true);			/* exits: the socket goes */
	took = need(s, "k");
	tap_ok(!vault_has_for(v, "k"), "agent gone (no socket): even a known password's open "
	       "learns it (%.3f s)", took);
	sources_free(s);
	c->agent[0] = '\0';
}

static int load(struct config *c, struct vault *v, struct sealcache *sc)
{
	struct sources *s;
	int ret;

	ret = sources_new(&s, c, v, NULL, sc);
	if (!ret)
		sources_free(s);
	return ret;
}

int main(void)
{
	struct sealcache *sc = NULL;
	struct state state;
	struct store st;
	struct config c;
	struct vault *v;
	char pw[600];
	sigset_t hup;
	struct export_attr a;
	struct keyset ks = { 0 };

	/* the sources' SIGHUP thread takes it: blocked in every thread */
	sigemptyset(&hup);
	sigaddset(&hup, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &hup, NULL);
	if (sodium_init() < 0 || !mkdtemp(dir) || state_open(&state, dir) ||
	    store_mem_open(NULL, &state, &st) || vault_new(&v)) {
		tap_ok(false, "setup");
		return tap_done();
	}
	config_defaults(&c);
	c.work_factor = 10;
	snprintf(ks.name, sizeof(ks.name), "k");
	keyset_add(&ks, "key", 0600, 1, (const uint8_t *)"x", 1);
	store_mem_set(&st, &ks, false);
	keyset_clear(&ks);
	TAP_EQ_INT(sealcache_new(&sc, &st, &state, v, &c), 0, "a seal cache to tell");

	snprintf(pw, sizeof(pw), "%s/pw", dir);
	snprintf(c.password_file, sizeof(c.password_file), "%s", pw);
	write_file(pw, "Correct-Horse-7\n", 0600, 0);
	TAP_EQ_INT(load(&c, v, sc), 0, "a password file");
	tap_ok(backup_is(v, "Correct-Horse-7"), "... is the backup password, its line end dropped");
	tap_ok(!sealcache_attr(sc, "k", &a) && a.sealed, "... and the seal cache knows it");
	vault_forget(v);

	write_file(pw, "Correct-Horse-7\n", 0640, 0);
	TAP_EQ_INT(load(&c, v, NULL), -EACCES, "group may read it: refused");
	write_file(pw, "Correct-Horse-7\n", 0600, 65534);
	TAP_EQ_INT(sources_check(&c), -EACCES, "another user owns it: refused before the mount");
	write_file(pw, "weak\n", 0600, 0);
	TAP_EQ_INT(load(&c, v, NULL), -EINVAL, "a password the policy refuses");
	tap_ok(!vault_has_password(v), "nothing was taken");

	c.password_file[0] = '\0';
	snprintf(c.password_credential, sizeof(c.password_credential), "keyfs-pw");
	snprintf(pw, sizeof(pw), "%s/keyfs-pw", dir);
	write_file(pw, "Other-Horse-8!", 0600, 0);
	setenv("CREDENTIALS_DIRECTORY", dir, 1);
	TAP_EQ_INT(load(&c, v, NULL), 0, "a systemd credential");
	tap_ok(backup_is(v, "Other-Horse-8!"), "... is the backup password");
	unsetenv("CREDENTIALS_DIRECTORY");
	TAP_EQ_INT(load(&c, v, NULL), -EINVAL, "a credential without $CREDENTIALS_DIRECTORY");

	vault_forget(v);
	test_agent(&c, v, sc);

	sealcache_free(sc);
	vault_free(v);
	store_close(&st);
	state_close(&state);
	tap_ok(!tap_rmtree(dir), "temp dir removed");
	return tap_done();
}
