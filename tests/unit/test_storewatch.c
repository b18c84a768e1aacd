/* Unit tests for the store watcher over a directory store in a private
 * temp directory: what stamp() and list() answer while the events of a
 * change wait in the kernel's queue. The watcher's thread is held inside
 * the listener, so that those events are read only when the test says:
 * no sleeps, and the same order on every run.
 *   - a change made before a call is seen by it (read after write), for
 *     a member written and for a keyset made;
 *   - the events of a change a walk saw already, read after it, leave
 *     the stamp as that walk found it, which is also what a store without
 *     the watcher (a restart) finds;
 *   - a keyset read and stamped in one walk gets that same stamp;
 *   - a keyset's directory swapped for a link to one outside the store is
 *     not watched through the link;
 *   - a store listed while the first pass runs gets the stamps of a
 *     store without the watcher, and is all watched after it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "keyfs/state.h"
#include "keyfs/store.h"
#include "keyfs/storewatch.h"

#include "tap.h"

#define WAIT_SECONDS 10

static char root[64];
static struct state state;

/* What the listener was told, and the switch that holds the thread in
 * it. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned told_a, told_b;
	bool hold;	/* the next call waits until hold is cleared */
	bool held;	/* a call is waiting */
} lis = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, false, false };

static void listener(void *arg, const char *keyset)
{
	(void)arg;
	pthread_mutex_lock(&lis.lock);
	if (!strcmp(keyset, "a"))
		lis.told_a++;
	else if (!strcmp(keyset, "b"))
		lis.told_b++;
	while (lis.hold) {
		lis.held = true;
		pthread_cond_broadcast(&lis.cond);
		pthread_cond_wait(&lis.cond, &lis.lock);
	}
	lis.held = false;
	pthread_cond_broadcast(&lis.cond);
	pthread_mutex_unlock(&lis.lock);
}

static struct timespec deadline(long ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += ms % 1000 * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return ts;
}

/* Waits until *count passes since; false after ms. */
static bool wait_told_ms(const unsigned *count, unsigned since, long ms)
{
	struct timespec until = deadline(ms);
	bool ok = true;

	pthread_mutex_lock(&lis.lock);
	while (*count <= since && ok)
		ok = pthread_cond_timedwait(&lis.cond, &lis.lock, &until) == 0;
	ok = *count > since;
	pthread_mutex_unlock(&lis.lock);
	return ok;
}

static bool wait_told(const unsigned *count, unsigned since)
{
	return wait_told_ms(count, since, WAIT_SECONDS * 1000);
}

/* Waits until *flag (under lis.lock) is set; false after WAIT_SECONDS. */
static bool wait_set(const bool *flag)
{
	struct timespec until = deadline(WAIT_SECONDS * 1000);
	bool ok = true;

	pthread_mutex_lock(&lis.lock);
	while (!*flag && ok)
		ok = pthread_cond_timedwait(&lis.cond, &lis.lock, &until) == 0;
	ok = *flag;
	pthread_mutex_unlock(&lis.lock);
	return ok;
}

static bool wait_held(void)
{
	return wait_set(&lis.held);
}

static void set_hold(bool on)
{
	pthread_mutex_lock(&lis.lock);
	lis.hold = on;
	pthread_cond_broadcast(&lis.cond);
	pthread_mutex_unlock(&lis.lock);
}

static unsigned count_of(const unsigned *count)
{
	unsigned n;

	pthread_mutex_lock(&lis.lock);
	n = *count;
	pthread_mutex_unlock(&lis.lock);
	return n;
}

static void write_file(const char *path, const char *data)
{
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, data, strlen(data)) != (ssize_t)strlen(data))
		tap_ok(false, "write %s: %m", path);
	if (fd >= 0)
		close(fd);
}

static void write_rel(const char *rel, const char *data)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	write_file(p, data);
}

/* Holds the watcher's thread in the listener, woken by a write of text
 * to file: what changes from then on waits in the kernel's queue. */
static bool held_after(const char *file, const char *text)
{
	set_hold(true);
	write_rel(file, text);
	if (tap_ok(wait_held(), "the watcher's thread is held"))
		return true;
	set_hold(false);
	return false;
}

/* Puts a new member in with one event (a rename), so a held thread has
 * read every event once it holds. */
static void move_in_rel(const char *rel, const char *data)
{
	char from[PATH_MAX], to[PATH_MAX];

	write_rel(".incoming", data); /* no keyset's name: not watched for */
	snprintf(from, sizeof(from), "%s/.incoming", root);
	snprintf(to, sizeof(to), "%s/%s", root, rel);
	if (rename(from, to))
		tap_ok(false, "rename to %s: %m", rel);
}

static void mkdir_rel(const char *rel)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	if (mkdir(p, 0700))
		tap_ok(false, "mkdir %s: %m", rel);
}

/* Writes rel until its keyset's change is told: the thread watches the
 * keysets in the background after it starts, and a change made before
 * the watch is never told. Once one is, the keyset is watched. */
static bool poke_until_told(const char *rel, const unsigned *count)
{
	char data[32];
	unsigned since;
	int i;

	for (i = 0; i < WAIT_SECONDS * 10; i++) {
		since = count_of(count);
		snprintf(data, sizeof(data), "%d\n", i);
		write_rel(rel, data);
		if (wait_told_ms(count, since, 100))
			return true;
	}
	return false;
}

static int stamp(struct store *s, const char *name, uint64_t *out)
{
	return s->ops->stamp(s->priv, name, out);
}

static bool listed(struct store *s, const char *name)
{
	char **names;
	size_t n, i;
	bool found = false;

	if (s->ops->list(s->priv, &names, &n))
		return false;
	for (i = 0; i < n; i++)
		found |= !strcmp(names[i], name);
	store_list_free(names);
	return found;
}

static void test_pending_events(struct store *s, struct store *plain)
{
	uint64_t b0, b1, b2, b3, again, c;
	unsigned since;

	/* Each keyset's directory is watched once a change of it is told:
	 * from then on its stamp is answered from memory. */
	tap_ok(poke_until_told("a/one", &lis.told_a), "a change of a is told");
	tap_ok(poke_until_told("b/one", &lis.told_b), "a change of b is told");
	TAP_EQ_INT(stamp(s, "b", &b0), 0, "stamp of b");
	TAP_EQ_INT(stamp(s, "b", &again), 0, "stamp of b again");
	tap_ok(again == b0, "... the same");

	/* The thread is held in the listener: what changes now waits in
	 * the kernel's queue until it is let go. */
	if (!held_after("a/two", "2\n"))
		return;
	write_rel("b/two", "2\n");
	TAP_EQ_INT(stamp(s, "b", &b1), 0, "stamp of b, its event not read yet");
	tap_ok(b1 != b0, "... a member written before the call is seen");
	TAP_EQ_INT(stamp(plain, "b", &again), 0, "the store's own stamp of b");
	tap_ok(again == b1, "... the same as the watcher's");
	mkdir_rel("c");
	write_rel("c/k", "k\n");
	tap_ok(listed(s, "c"), "a keyset made before the call is listed");
	TAP_EQ_INT(stamp(s, "c", &c), 0, "... and has a stamp");

	since = count_of(&lis.told_b);
	set_hold(false);
	tap_ok(wait_told(&lis.told_b, since), "the change of b is told once its events are read");
	TAP_EQ_INT(stamp(s, "b", &b2), 0, "stamp of b after its events");
	tap_ok(b2 == b1, "... unchanged: the events were of a change seen before (%016llx, %016llx)",
	       (unsigned long long)b1, (unsigned long long)b2);
	TAP_EQ_INT(stamp(plain, "b", &again), 0, "the store's own stamp of b");
	tap_ok(again == b2, "... what a restart finds");
	TAP_EQ_INT(stamp(s, "b", &b3), 0, "stamp of b again");
	tap_ok(b3 == b2, "... the same");
}

/* A listing or a status asks the kernel once, when its batch begins: a
 * change made before is seen, one made during the batch may not be
 * until it ends. */
static void test_batch(struct store *s, struct store *plain)
{
	uint64_t b0, b1, b2, b3, own;
	unsigned since;

	if (!held_after("a/three", "3\n"))
		return;
	TAP_EQ_INT(stamp(plain, "b", &b0), 0, "the store's own stamp of b");
	write_rel("b/three", "3\n");
	store_batch(s, true);
	TAP_EQ_INT(stamp(s, "b", &b1), 0, "in a batch begun after a change of b, its stamp");
	tap_ok(b1 != b0, "... shows the change");
	store_batch(s, false);

	since = count_of(&lis.told_b);
	set_hold(false);
	tap_ok(wait_told(&lis.told_b, since), "the change of b is told");
	TAP_EQ_INT(stamp(s, "b", &b1), 0, "stamp of b once its events are read");
	set_hold(true);
	move_in_rel("a/four", "4\n");
	if (!tap_ok(wait_held(), "the watcher's thread is held again")) {
		set_hold(false);
		return;
	}
	store_batch(s, true);
	write_rel("b/four", "4\n");
	TAP_EQ_INT(stamp(s, "b", &b2), 0, "in a batch, a change made after it began");
	tap_ok(b2 == b1, "... is not asked for: memory answers");
	store_batch(s, false);
	TAP_EQ_INT(stamp(s, "b", &b3), 0, "after the batch");
	TAP_EQ_INT(stamp(plain, "b", &own), 0, "the store's own stamp of b");
	tap_ok(b3 != b1 && b3 == own, "... the change is seen");
	set_hold(false);
}

static bool holds(const struct keyset *ks, const char *member)
{
	size_t i;

	for (i = 0; i < ks->n; i++)
		if (!strcmp(ks->m[i].name, member))
			return true;
	return false;
}

/* A seal reads a keyset and its stamp in one walk: the stamp is the one
 * stamp() gives, whether walked while events wait or from memory. */
static void test_read_stamped(struct store *s, struct store *plain)
{
	struct keyset ks = { 0 };
	uint64_t rs, own, after;
	unsigned since;

	if (!held_after("a/six", "6\n"))
		return;
	write_rel("b/six", "6\n");
	TAP_EQ_INT(store_read_stamped(s, "b", &ks, &rs), 0,
		   "b read and stamped in one walk, its event not read yet");
	tap_ok(holds(&ks, "six"), "... the member written before the call is read");
	TAP_EQ_INT(stamp(plain, "b", &own), 0, "the store's own stamp of b");
	tap_ok(rs == own, "... the same stamp");
	keyset_clear(&ks);

	since = count_of(&lis.told_b);
	set_hold(false);
	tap_ok(wait_told(&lis.told_b, since), "the change of b is told");
	TAP_EQ_INT(stamp(s, "b", &after), 0, "stamp of b after its events");
	tap_ok(after == rs, "... the one the read found");
	TAP_EQ_INT(store_read_stamped(s, "b", &ks, &rs), 0, "b read again, the stamp from memory");
	tap_ok(rs == after && holds(&ks, "six") && holds(&ks, "k"), "... the same stamp and keyset");
	keyset_clear(&ks);
	tap_ok(store_read_stamped(s, "none", &ks, &rs) == -ENOENT, "no such keyset: -ENOENT");
}

/* The inodes this process watches with inotify (its fdinfo), up to max. */
static size_t watched_inodes(unsigned long *ino, size_t max)
{
	char fd[PATH_MAX], link[64], line[512];
	unsigned long i;
	struct dirent *de;
	size_t n = 0;
	ssize_t len;
	DIR *d;
	FILE *f;

	d = opendir("/proc/self/fd");
	while (d && (de = readdir(d))) {
		snprintf(fd, sizeof(fd), "/proc/self/fd/%s", de->d_name);
		len = readlink(fd, link, sizeof(link) - 1);
		if (len < 0 || (link[len] = 0, strcmp(link, "anon_inode:inotify")))
			continue;
		snprintf(fd, sizeof(fd), "/proc/self/fdinfo/%s", de->d_name);
		f = fopen(fd, "r");
		while (f && fgets(line, sizeof(line), f))
			if (sscanf(line, "inotify wd:%*x ino:%lx", &i) == 1 && n < max)
				ino[n++] = i;
		if (f)
			fclose(f);
	}
	if (d)
		closedir(d);
	return n;
}

static bool watched(ino_t ino)
{
	unsigned long w[64];
	size_t i, n = watched_inodes(w, 64);

	for (i = 0; i < n; i++)
		if (w[i] == ino)
			return true;
	return false;
}

/* A keyset's directory swapped for a link to a directory outside the
 * store: the watcher renews the keyset's watch by its name, and does not
 * follow the link to watch what it points at. */
static void test_link_swapped_in(void)
{
	char out[sizeof(root) + 16], p[sizeof(root) + 16], old[sizeof(root) + 16],
		key[sizeof(out) + 8];
	struct stat st;
	unsigned since;

	snprintf(out, sizeof(out), "%s.outside", root);
	snprintf(key, sizeof(key), "%s/k", out);
	snprintf(p, sizeof(p), "%s/b", root);
	snprintf(old, sizeof(old), "%s/.b-before", root);
	if (!tap_ok(mkdir(out, 0700) == 0 && close(open(key, O_WRONLY | O_CREAT, 0600)) == 0,
		    "a directory outside the store"))
		return;
	tap_ok(stat(p, &st) == 0 && watched(st.st_ino), "b's directory is watched");
	set_hold(true);
	write_rel("a/five", "5\n");
	if (tap_ok(wait_held(), "the watcher's thread is held")) {
		tap_ok(rename(p, old) == 0 && symlink(out, p) == 0, "b is a link outside now");
		since = count_of(&lis.told_b);
		set_hold(false);
		tap_ok(wait_told(&lis.told_b, since), "the change of b is told");
		tap_ok(stat(out, &st) == 0 && !watched(st.st_ino),
		       "the directory the link points at is not watched");
	}
	set_hold(false);
	unlink(p);
	rename(old, p);
	unlink(key);
	rmdir(out);
}

/* Keysets in the store of test_first_pass(): more than its first pass
 * watches ahead of its stamps. */
#define MANY 1500

static void on_ready(void *arg)
{
	pthread_mutex_lock(&lis.lock);
	*(bool *)arg = true;
	pthread_cond_broadcast(&lis.cond);
	pthread_mutex_unlock(&lis.lock);
}

static void make_many(const char *dir)
{
	char p[PATH_MAX];
	int i;

	mkdir(dir, 0700);
	for (i = 0; i < MANY; i++) {
		snprintf(p, sizeof(p), "%s/k%04d", dir, i);
		mkdir(p, 0700);
		snprintf(p, sizeof(p), "%s/k%04d/key", dir, i);
		write_file(p, p);
	}
}

/* How many of the keysets of dir are watched. */
static size_t many_watched(const char *dir)
{
	unsigned long *w = calloc(2 * MANY, sizeof(*w));
	size_t n = w ? watched_inodes(w, 2 * MANY) : 0, j, found = 0;
	char p[PATH_MAX];
	struct stat st;
	int i;

	for (i = 0; i < MANY; i++) {
		snprintf(p, sizeof(p), "%s/k%04d", dir, i);
		if (stat(p, &st))
			continue;
		for (j = 0; j < n; j++)
			if (w[j] == st.st_ino) {
				found++;
				break;
			}
	}
	free(w);
	return found;
}

/* A store listed in order while the watcher's first pass runs, as by a
 * listing right after a mount: each stamp is the one a store without
 * the watcher gives, and once the pass is done every keyset is watched,
 * those the pass watched ahead of its stamps and those the listing
 * walked first alike. */
static void test_first_pass(void)
{
	char dir[sizeof(root) + 8], sp[sizeof(dir) + 8], name[16];
	struct store s = { 0 }, plain = { 0 };
	struct state st = { 0 };
	struct storewatch *w = NULL;
	uint64_t a, b;
	bool up = false;
	int i, same = 0, ret;

	snprintf(dir, sizeof(dir), "%s.many", root);
	snprintf(sp, sizeof(sp), "%s/.keyfs", dir);
	make_many(dir);
	ret = state_open(&st, sp);
	if (!ret)
		ret = store_open("dir", dir, &st, &s);
	if (!ret)
		ret = store_open("dir", dir, &st, &plain);
	if (!ret)
		ret = storewatch_wrap(&s, &w);
	if (!TAP_EQ_INT(ret, 0, "a store of %d keysets, watched", MANY) || !w)
		goto out;
	storewatch_set_ready(w, on_ready, &up);
	ret = storewatch_start(w);
	for (i = 0; !ret && i < MANY; i++) {
		snprintf(name, sizeof(name), "k%04d", i);
		same += !stamp(&s, name, &a) && !stamp(&plain, name, &b) && a == b;
	}
	TAP_EQ_INT(same, MANY, "listed at the start, each stamp is the one without the watcher");
	tap_ok(!ret && wait_set(&up), "the first pass is done");
	TAP_EQ_INT(many_watched(dir), MANY, "every keyset is watched after it");
out:
	if (s.ops)
		store_close(&s);
	if (plain.ops)
		store_close(&plain);
	state_close(&st);
	tap_ok(tap_rmtree(dir) == 0, "its temp dir removed");
}

int main(void)
{
	struct store s = { 0 }, plain = { 0 };
	struct storewatch *w = NULL;
	char sp[PATH_MAX];
	int ret;

	if (sodium_init() < 0) {
		tap_ok(false, "sodium_init");
		return tap_done();
	}
	snprintf(root, sizeof(root), "/tmp/keyfs-test-storewatch.XXXXXX");
	if (!tap_ok(mkdtemp(root) != NULL, "mkdtemp"))
		return tap_done();
	mkdir_rel("a");
	write_rel("a/k", "a\n");
	mkdir_rel("b");
	write_rel("b/k", "b\n");
	snprintf(sp, sizeof(sp), "%s/.keyfs", root);
	ret = state_open(&state, sp);
	TAP_EQ_INT(ret, 0, "state_open");
	if (!ret)
		ret = store_open("dir", root, &state, &s);
	if (!ret)
		ret = store_open("dir", root, &state, &plain);
	TAP_EQ_INT(ret, 0, "store_open dir, twice");
	if (!ret)
		ret = storewatch_wrap(&s, &w);
	TAP_EQ_INT(ret, 0, "storewatch_wrap");
	if (!ret && tap_ok(w != NULL, "the directory store is watched")) {
		storewatch_set_listener(w, listener, NULL);
		ret = storewatch_start(w);
		TAP_EQ_INT(ret, 0, "storewatch_start");
		if (!ret) {
			test_pending_events(&s, &plain);
			test_batch(&s, &plain);
			test_read_stamped(&s, &plain);
			test_link_swapped_in();
		}
		set_hold(false);
	}
	if (s.ops)
		store_close(&s); /* the watcher with it */
	if (plain.ops)
		store_close(&plain);
	test_first_pass();
	state_close(&state);
	tap_ok(tap_rmtree(root) == 0, "temp dir removed");
	return tap_done();
}
