/* The seal cache on the in-memory keystore: attributes before and after
 * sealing, the same bytes on every open and across a restart (the
 * verifier), a changed keyset resealed, the same content kept, a raised
 * work factor resealed with a new time, and a keyset too large to import
 * again left out with its reason. With backup records: the same content
 * under a new stamp after a restart keeps the changed time, whether the
 * record saw the seal before the stop or not, and while a worker is
 * keeping the seal as the attributes are asked for. What a listing of
 * names tells right after a start. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "keyfs/config.h"
#include "keyfs/fresh.h"
#include "keyfs/sealcache.h"
#include "keyfs/state.h"

#include "store_mem.h"
#include "tap.h"

#define PW "Correct-Horse-7"

static struct config cfg;
static struct state state;
static struct store st;
static struct vault *v;

static void set_keys(const char *name, const char *content)
{
	struct keyset ks = { 0 };

	snprintf(ks.name, sizeof(ks.name), "%s", name);
	keyset_add(&ks, "key", 0600, 1700000000, (const uint8_t *)content, strlen(content));
	store_mem_set(&st, &ks, false);
	keyset_clear(&ks);
}

/* Keysets <prefix>00 to <prefix><n - 1>, each holding its name; or gone. */
static void many_keysets(char prefix, int n, bool gone)
{
	struct keyset ks = { 0 };
	char name[16];
	int i;

	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "%c%02d", prefix, i);
		if (!gone) {
			set_keys(name, name);
			continue;
		}
		snprintf(ks.name, sizeof(ks.name), "%s", name);
		store_mem_set(&st, &ks, true);
	}
}

/* The bytes an open of name serves, malloc()ed; NULL on error (*err). */
static char *open_all(struct sealcache *sc, const char *name, size_t *len, time_t *at, int *err)
{
	struct seal *s;
	char *buf;

	*err = sealcache_open(sc, name, &s);
	if (*err)
		return NULL;
	buf = malloc(s->len);
	*len = s->len;
	*at = s->sealed_at;
	if (buf && sealcache_read(s, buf, s->len, 0) != (ssize_t)s->len) {
		free(buf);
		buf = NULL;
	}
	sealcache_put(s);
	return buf;
}

static struct sealcache *start(void)
{
	struct sealcache *sc = NULL;

	if (sealcache_new(&sc, &st, &state, v, &cfg) || sealcache_start(sc))
		return NULL;
	return sc;
}

static void test_cycle(void)
{
	char *one, *two, *three, why[256];
	struct export_attr a, b;
	struct sealcache *sc;
	size_t l1, l2, l3;
	time_t t1, t2, t3;
	int err;

	sc = start();
	if (!tap_ok(sc != NULL, "a seal cache over the in-memory store"))
		return;
	TAP_EQ_INT(sealcache_attr(sc, "a", &a), 0, "attributes before any password");
	tap_ok(!a.sealed && a.size > 0, "... a predicted size (%zu), not sealed", a.size);
	tap_ok(open_all(sc, "a", &l1, &t1, &err) == NULL && err == -ENOKEY, "open without one: ENOKEY");
	vault_set(v, PW, strlen(PW));
	TAP_EQ_INT(sealcache_password_changed(sc), 0, "a password");
	one = open_all(sc, "a", &l1, &t1, &err);
	tap_ok(one && l1 == a.size, "open seals it, at the predicted size (%zu)", l1);
	TAP_EQ_INT(sealcache_attr(sc, "a", &b), 0, "attributes after");
	tap_ok(b.sealed && b.size == l1 && b.mtime == t1 && b.ino == a.ino, "... are the seal's");
	two = open_all(sc, "a", &l2, &t2, &err);
	tap_ok(two && l2 == l1 && !memcmp(one, two, l1) && t2 == t1, "a second open: the same bytes");
	free(two);
	sealcache_free(sc);

	sc = start();
	vault_set(v, PW, strlen(PW));
	sealcache_password_changed(sc);
	two = open_all(sc, "a", &l2, &t2, &err);
	tap_ok(two && l2 == l1 && !memcmp(one, two, l1) && t2 == t1, "after a restart: the same bytes");
	free(two);

	set_keys("a", "the same key");
	two = open_all(sc, "a", &l2, &t2, &err);
	tap_ok(two && l2 == l1 && !memcmp(one, two, l1), "the same content written again: kept");
	free(two);
	set_keys("a", "another key!");
	two = open_all(sc, "a", &l2, &t2, &err);
	tap_ok(two && memcmp(one, two, l1) && t2 > t1, "changed keys: sealed again, a later time");
	sealcache_free(sc);

	cfg.work_factor = 11;
	sc = start();
	sealcache_password_changed(sc);
	three = open_all(sc, "a", &l3, &t3, &err);
	tap_ok(three && strstr(three, "-----BEGIN") && t3 > t2, "a raised work factor: resealed, later");
	free(three);
	cfg.import_max_size = 512;
	TAP_EQ_INT(sealcache_attr(sc, "a", &a), -ENOENT, "an export over import.max_size is left out");
	tap_ok(sealcache_problem(sc, "a", why, sizeof(why)) == -EFBIG && strstr(why, "import.max_size"),
	       "... with its reason: %s", why);
	cfg.import_max_size = 1 << 20;
	TAP_EQ_INT(sealcache_attr(sc, "a", &a), 0, "... and back once it fits");
	TAP_EQ_INT(sealcache_problem(sc, "a", why, sizeof(why)), 0, "... no problem left");
	sealcache_free(sc);
	free(two);
	free(one);
}

/* A listing of names right after a start tells a keyset sealed before
 * without examining it, unless it was found unexportable: then it is
 * examined, and its mark goes once it can be exported again. */
static void test_listed(void)
{
	struct sealcache *sc;
	int i;
	struct export_attr a;
	size_t len;
	time_t at;
	char *buf;
	int err;

	set_keys("b", "a key of b");
	sc = start();
	sealcache_password_changed(sc);
	buf = open_all(sc, "b", &len, &at, &err);
	tap_ok(buf != NULL, "b sealed");
	free(buf);
	sealcache_free(sc);

	cfg.import_max_size = 512; /* b cannot be exported any more */
	if (!tap_ok(!sealcache_new(&sc, &st, &state, v, &cfg), "a seal cache, no first scan"))
		return;
	tap_ok(sealcache_listed(sc, "b"), "sealed before: listed without examining it");
	TAP_EQ_INT(sealcache_attr(sc, "b", &a), -ENOENT, "examined: over import.max_size");
	tap_ok(!sealcache_listed(sc, "b"), "... and no longer listed");
	tap_ok(!faccessat(state.fd, STATE_PROBLEMS "/b", F_OK, 0), "... marked");
	sealcache_free(sc);

	sealcache_new(&sc, &st, &state, v, &cfg);
	tap_ok(!sealcache_listed(sc, "b"), "marked: examined before it is listed after a restart");
	sealcache_free(sc);

	cfg.import_max_size = 1 << 20;
	sc = start();
	tap_ok(sealcache_listed(sc, "b"), "exportable again: listed");
	sealcache_free(sc);
	tap_ok(faccessat(state.fd, STATE_PROBLEMS "/b", F_OK, 0) && errno == ENOENT,
	       "... its mark removed");

	/* marked, then gone while keyfs was stopped */
	cfg.import_max_size = 512;
	sc = start();
	sealcache_attr(sc, "b", &a);
	sealcache_free(sc);
	cfg.import_max_size = 1 << 20;
	tap_ok(!faccessat(state.fd, STATE_PROBLEMS "/b", F_OK, 0), "b marked again");
	set_keys("b", "");
	store_mem_set(&st, &(struct keyset){ .name = "b" }, true);
	sc = start();
	for (i = 0; i < 500 && !faccessat(state.fd, STATE_PROBLEMS "/b", F_OK, 0); i++)
		usleep(10000); /* the first scan runs in the background */
	tap_ok(faccessat(state.fd, STATE_PROBLEMS "/b", F_OK, 0) && errno == ENOENT,
	       "gone: its mark removed by the first scan");
	sealcache_free(sc);

	/* a state directory of an earlier keyfs: no marks to trust */
	set_keys("b", "a key of b");
	tap_ok(!unlinkat(state.fd, STATE_PROBLEMS, AT_REMOVEDIR), "problems/ removed");
	cfg.import_max_size = 512;
	sealcache_new(&sc, &st, &state, v, &cfg);
	tap_ok(!sealcache_listed(sc, "b"), "without problems/: examined before it is listed");
	sealcache_free(sc);
	cfg.import_max_size = 1 << 20;
}

/* A clean stop writes cache.all, every entry's header: the next start
 * takes a header from it instead of the cache file, unless cache/
 * changed since. The index is doctored here to tell which was read: each
 * size one more, for a and for enough keysets more that its buckets hold
 * none, one and several records. */
#define INDEXED 40
static void test_index(void)
{
	char *text, *at, line[512], name[8];
	size_t len, ilen[INDEXED];
	struct sealcache *sc;
	struct export_attr a;
	int fd, i, err, found = 0;
	time_t t;
	FILE *f;

	many_keysets('i', INDEXED, false);
	sc = start();
	sealcache_password_changed(sc);
	TAP_EQ_INT(sealcache_attr(sc, "a", &a), 0, "a, sealed");
	len = a.size;
	for (i = 0; i < INDEXED; i++) {
		snprintf(name, sizeof(name), "i%02d", i);
		free(open_all(sc, name, &ilen[i], &t, &err));
	}
	sealcache_free(sc);
	fd = openat(state.fd, "cache.all", O_RDONLY);
	f = fd < 0 ? NULL : fdopen(fd, "r");
	if (!tap_ok(f != NULL, "a clean stop wrote cache.all"))
		return;
	text = calloc(1, 1 << 16);
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "a ", 2) || (line[0] == 'i' && line[3] == ' ')) {
			/* the size, one more: the fields are name, stamp, tag, time, size */
			at = line;
			for (int k = 0; k < 4; k++)
				at = strchr(at, ' ') + 1;
			snprintf(at, sizeof(line) - (size_t)(at - line), "%llu %s",
				 strtoull(at, NULL, 10) + 1, strchr(at, ' ') + 1);
		}
		strcat(text, line);
	}
	fclose(f);
	fd = openat(state.fd, "cache.all", O_WRONLY | O_TRUNC);
	tap_ok(fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text), "index doctored");
	close(fd);
	sc = start();
	sealcache_password_changed(sc);
	tap_ok(!sealcache_attr(sc, "a", &a) && a.size == len + 1, "the start took a's header from it");
	for (i = 0; i < INDEXED; i++) {
		snprintf(name, sizeof(name), "i%02d", i);
		found += !sealcache_attr(sc, name, &a) && a.size == ilen[i] + 1;
	}
	TAP_EQ_INT(found, INDEXED, "... and every other keyset's");
	sealcache_free(sc); /* writes it anew, from the entries: size len + 1 */

	/* a file made and removed in cache/, as by a crashed run */
	fd = openat(state.fd, STATE_CACHE "/x", O_WRONLY | O_CREAT, 0600);
	close(fd);
	unlinkat(state.fd, STATE_CACHE "/x", 0);
	sc = start();
	sealcache_password_changed(sc);
	tap_ok(!sealcache_attr(sc, "a", &a) && a.size == len, "cache/ changed since: the files are read");
	sealcache_free(sc);
	free(text);
	many_keysets('i', INDEXED, true);
}

/* cache.all, whole; NULL if unreadable. */
static char *index_text(void)
{
	char *text = calloc(1, 1 << 16);
	ssize_t got = -1;
	int fd;

	fd = openat(state.fd, "cache.all", O_RDONLY);
	if (text && fd >= 0)
		got = read(fd, text, (1 << 16) - 1);
	if (fd >= 0)
		close(fd);
	if (got <= 0) {
		free(text);
		return NULL;
	}
	return text;
}

/* A start the first scan of which is held (it waits for a store watcher
 * that never tells it the store is ready). */
static struct sealcache *start_unscanned(void)
{
	struct sealcache *sc = NULL;

	if (sealcache_new(&sc, &st, &state, v, &cfg))
		return NULL;
	sealcache_await_store(sc);
	if (sealcache_start(sc)) {
		sealcache_free(sc);
		return NULL;
	}
	return sc;
}

/* A stop before the first scan looked at a keyset carries its line of
 * the index over: a mount stopped at once leaves the next start every
 * header, not an index of the keysets that mount happened to look at. */
#define CARRIED 8
static void test_index_carried(void)
{
	char *before, *after = NULL, *line, name[8];
	struct export_attr a;
	struct sealcache *sc;
	int i, err, lines = 0, kept = 0;
	size_t len;
	time_t t;

	many_keysets('c', CARRIED, false);
	sc = start();
	sealcache_password_changed(sc);
	for (i = 0; i < CARRIED; i++) {
		snprintf(name, sizeof(name), "c%02d", i);
		free(open_all(sc, name, &len, &t, &err));
	}
	sealcache_free(sc);
	before = index_text();
	if (!tap_ok(before && strstr(before, "\nc07 "), "a clean stop indexed every keyset"))
		goto out;
	sc = start_unscanned();
	tap_ok(sc != NULL, "a start whose first scan waits");
	sealcache_free(sc);
	after = index_text();
	tap_ok(after && !strcmp(before, after), "its stop, before any keyset was looked at: the same index");
	free(after);

	sc = start_unscanned();
	tap_ok(sc && !sealcache_attr(sc, "c03", &a), "c03 looked at, the rest not");
	sealcache_free(sc);
	after = index_text();
	/* each line of before, from its newline to the next */
	for (line = strchr(before, '\n'); line && line[1]; line = strchr(line + 1, '\n')) {
		len = strcspn(line + 1, "\n") + 2;
		lines++;
		kept += after && memmem(after, strlen(after), line, len) != NULL;
	}
	tap_ok(lines > CARRIED && kept == lines, "... every line is there again (%d of %d)", kept,
	       lines);
out:
	free(before);
	free(after);
	many_keysets('c', CARRIED, true);
}

/* Reads of one keyset by any thread but the main one wait while the
 * gate is closed: a sealing worker is held between taking the sealing
 * mark and planning its seal, as a loaded machine may hold it. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	const struct store_ops *inner;
	struct store_ops ops;
	pthread_t main;
	const char *name;	/* the keyset gated; NULL: none */
	bool closed;
	bool waiting;		/* a read waits at the gate */
} gate = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static int gated_read(void *priv, const char *name, struct keyset *ks)
{
	pthread_mutex_lock(&gate.lock);
	if (gate.name && !strcmp(name, gate.name) && !pthread_equal(pthread_self(), gate.main)) {
		while (gate.closed) {
			gate.waiting = true;
			pthread_cond_broadcast(&gate.cond);
			pthread_cond_wait(&gate.cond, &gate.lock);
		}
	}
	pthread_mutex_unlock(&gate.lock);
	return gate.inner->read(priv, name, ks);
}

static void gate_install(void)
{
	gate.inner = st.ops;
	gate.ops = *st.ops;
	gate.ops.read = gated_read;
	gate.main = pthread_self();
	st.ops = &gate.ops;
}

static void gate_set(const char *name, bool closed)
{
	pthread_mutex_lock(&gate.lock);
	gate.name = name;
	gate.closed = closed;
	gate.waiting = false;
	pthread_cond_broadcast(&gate.cond);
	pthread_mutex_unlock(&gate.lock);
}

static bool gate_wait_held(void)
{
	struct timespec until;
	bool ok = true;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 30;
	pthread_mutex_lock(&gate.lock);
	while (!gate.waiting && ok)
		ok = pthread_cond_timedwait(&gate.cond, &gate.lock, &until) == 0;
	ok = gate.waiting;
	pthread_mutex_unlock(&gate.lock);
	return ok;
}

/* Opens the gate a little later, from another thread: the main thread
 * is meanwhile inside the call under test, which may wait for the held
 * worker. Its result does not depend on when: a call that waits sees the
 * same either way. */
static void *gate_opener(void *arg)
{
	(void)arg;
	usleep(300 * 1000);
	gate_set(NULL, false);
	return NULL;
}

/* Until time() is past t: a changed time taken anew then differs. */
static void tick_past(time_t t)
{
	while (time(NULL) <= t)
		usleep(20 * 1000);
}

static struct sealcache *start_fresh(struct fresh **f)
{
	struct sealcache *sc;

	if (fresh_new(f, &state))
		return NULL;
	sc = start();
	if (sc)
		sealcache_set_fresh(sc, *f);
	return sc;
}

static void stop_fresh(struct sealcache *sc, struct fresh *f)
{
	sealcache_free(sc);
	fresh_free(f); /* writes the records */
}


/* f's record still says it changed when it did and was sealed at at. */
static void record_kept(struct fresh *f, const struct fresh_info *i0, time_t at)
{
	struct fresh_info i;

	TAP_EQ_INT(fresh_get(f, "f", &i), 0, "... its record");
	tap_ok(i.changed_at == i0->changed_at && i.sealed_at == at,
	       "... changed when it was, sealed when it was (%lld, %lld; %lld, %lld)",
	       (long long)i0->changed_at, (long long)i.changed_at, (long long)at,
	       (long long)i.sealed_at);
}

static void test_fresh_restart(void)
{
	struct fresh_info i0;
	struct export_attr a;
	struct sealcache *sc;
	struct fresh *f;
	pthread_t opener;
	size_t len;
	time_t at;
	char *one;
	int err;

	vault_forget(v);
	set_keys("f", "the f key");
	sc = start_fresh(&f);
	if (!tap_ok(sc != NULL, "a seal cache with backup records"))
		return;
	TAP_EQ_INT(sealcache_attr(sc, "f", &a), 0, "attributes of f, locked");
	TAP_EQ_INT(fresh_get(f, "f", &i0), 0, "... a record of f");
	tap_ok(i0.changed_at > 0 && !i0.sealed_at, "... changed, not sealed");
	vault_set(v, PW, strlen(PW));
	TAP_EQ_INT(sealcache_password_changed(sc), 0, "a password");
	/* sealed without any attributes asked for after: the record is
	 * still "not sealed" when the daemon stops */
	one = open_all(sc, "f", &len, &at, &err);
	tap_ok(one != NULL, "f sealed");
	free(one);
	stop_fresh(sc, f);

	/* The same content under a new stamp: files rewritten while keyfs
	 * was stopped. Its seal is kept and the change is none. */
	tick_past(i0.changed_at);
	set_keys("f", "the f key");
	vault_forget(v);
	sc = start_fresh(&f);
	if (!tap_ok(sc != NULL, "restarted"))
		return;
	TAP_EQ_INT(sealcache_attr(sc, "f", &a), 0, "attributes of f, locked, a new stamp");
	tap_ok(a.mtime == at, "... the kept seal's time");
	record_kept(f, &i0, at);
	stop_fresh(sc, f);

	/* Again, now with the password at the start: a worker keeps the seal
	 * under the new stamp while the attributes are asked for. */
	set_keys("f", "the f key");
	gate_set("f", true);
	vault_set(v, PW, strlen(PW));
	sc = start_fresh(&f);
	if (!tap_ok(sc != NULL, "restarted with the password"))
		return;
	TAP_EQ_INT(sealcache_password_changed(sc), 0, "... known");
	if (!tap_ok(gate_wait_held(), "a worker is held before it planned the seal of f")) {
		gate_set(NULL, false);
		stop_fresh(sc, f);
		return;
	}
	if (pthread_create(&opener, NULL, gate_opener, NULL)) {
		tap_ok(false, "pthread_create");
		gate_set(NULL, false);
		stop_fresh(sc, f);
		return;
	}
	TAP_EQ_INT(sealcache_attr(sc, "f", &a), 0, "attributes of f meanwhile");
	pthread_join(opener, NULL);
	tap_ok(a.sealed && a.mtime == at, "... the kept seal's");
	record_kept(f, &i0, at);
	stop_fresh(sc, f);
}

int main(void)
{
	char dir[] = "/tmp/keyfs-test-sealcache.XXXXXX", cmd[64];

	if (sodium_init() < 0 || !mkdtemp(dir) || state_open(&state, dir) ||
	    store_mem_open(NULL, &state, &st) || vault_new(&v)) {
		tap_ok(false, "setup");
		return tap_done();
	}
	config_defaults(&cfg);
	cfg.work_factor = 10;
	set_keys("a", "the same key");
	test_cycle();
	test_listed();
	test_index();
	test_index_carried();
	gate_install();
	test_fresh_restart();
	vault_free(v);
	store_close(&st);
	state_close(&state);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	tap_ok(!system(cmd), "temp dir removed");
	return tap_done();
}
