/* Unit tests for stage.c: the flush semantics (idempotent, outcome kept
 * after release, limits) and that processing runs without the stage's
 * lock: while a file is processed, listing, getattr, other files' writes,
 * unlink and rename go on; a second flush of it waits for its outcome. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keyfs/stage.h"

#include "tap.h"

/* A callback the test controls: counts calls, remembers the last
 * arguments, and (when gated) blocks until the test opens the gate. */
struct probe {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int calls;
	bool gated, inside, open;
	bool verify;
	const uint8_t *data;
	size_t len;
	int outcome;
};

static struct probe pr = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER,
};

static int process(void *arg, bool verify_only, const uint8_t *data, size_t len)
{
	struct probe *p = arg;
	int ret;

	pthread_mutex_lock(&p->lock);
	p->calls++;
	p->verify = verify_only;
	p->data = data;
	p->len = len;
	p->inside = true;
	pthread_cond_broadcast(&p->cond);
	while (p->gated && !p->open)
		pthread_cond_wait(&p->cond, &p->lock);
	p->inside = false;
	ret = data ? p->outcome : -EFBIG;
	pthread_mutex_unlock(&p->lock);
	return ret;
}

static void probe_reset(int outcome, bool gated)
{
	pthread_mutex_lock(&pr.lock);
	pr.calls = 0;
	pr.gated = gated;
	pr.open = false;
	pr.inside = false;
	pr.data = NULL;
	pr.len = 0;
	pr.outcome = outcome;
	pthread_mutex_unlock(&pr.lock);
}

static void wait_inside(void)
{
	pthread_mutex_lock(&pr.lock);
	while (!pr.inside)
		pthread_cond_wait(&pr.cond, &pr.lock);
	pthread_mutex_unlock(&pr.lock);
}

static void open_gate(void)
{
	pthread_mutex_lock(&pr.lock);
	pr.open = true;
	pthread_cond_broadcast(&pr.cond);
	pthread_mutex_unlock(&pr.lock);
}

static int calls(void)
{
	int n;

	pthread_mutex_lock(&pr.lock);
	n = pr.calls;
	pthread_mutex_unlock(&pr.lock);
	return n;
}

static int put(struct stage *sp, int dir, const char *name, const char *text)
{
	int ret = stage_open(sp, dir, name, true, false, true, 0600);

	if (!ret)
		ret = stage_write(sp, dir, name, text, strlen(text), 0);
	return ret < 0 ? ret : 0;
}

static void test_semantics(void)
{
	struct stage_attr a;
	struct stage *sp;

	stage_new(&sp, 8192, 65536, process, &pr);
	probe_reset(-EKEYREJECTED, false);
	TAP_EQ_INT(stage_open(sp, STAGE_IMPORT, "f", true, false, false, 0644), 0, "create");
	TAP_EQ_INT(stage_flush(sp, STAGE_IMPORT, "f"), 0, "flush with nothing written: 0");
	TAP_EQ_INT(calls(), 0, "... without processing");
	TAP_EQ_INT(stage_write(sp, STAGE_IMPORT, "f", "hello", 5, 0), 5, "write");
	TAP_EQ_INT(stage_flush(sp, STAGE_IMPORT, "f"), -EKEYREJECTED, "flush gives the outcome");
	tap_ok(calls() == 1 && pr.len == 5 && !memcmp(pr.data, "hello", 5) && !pr.verify,
	       "the callback saw the bytes once");
	TAP_EQ_INT(stage_flush(sp, STAGE_IMPORT, "f"), -EKEYREJECTED, "second flush: same outcome");
	TAP_EQ_INT(calls(), 1, "... not processed again");
	stage_release(sp, STAGE_IMPORT, "f");
	TAP_EQ_INT(stage_getattr(sp, STAGE_IMPORT, "f", &a), 0, "still listed after release");
	TAP_EQ_INT(a.size, 5, "... with its size");
	TAP_EQ_INT(stage_open(sp, STAGE_IMPORT, "f", false, false, false, 0), -EPERM,
		   "its bytes are gone: reopening to append refused");
	TAP_EQ_INT(stage_open(sp, STAGE_IMPORT, "f", false, false, true, 0), 0,
		   "O_TRUNC open empties it");
	TAP_EQ_INT(stage_flush(sp, STAGE_IMPORT, "f"), 0, "an emptied file's flush is 0");
	stage_release(sp, STAGE_IMPORT, "f");
	TAP_EQ_INT(put(sp, STAGE_VERIFY, "v", "abc"), 0, "write into verify/");
	TAP_EQ_INT(stage_flush(sp, STAGE_VERIFY, "v"), -EKEYREJECTED, "verify flush");
	tap_ok(pr.verify, "... processed as verify");
	stage_release(sp, STAGE_VERIFY, "v");
	stage_free(sp);
}

/* A write past the per-file limit makes close(2) say EFBIG, not what the
 * cut bytes would look like to the callback (EBADMSG, EINVAL). */
static void test_too_large(void)
{
	static char block[8192];
	struct stage *sp;

	stage_new(&sp, sizeof(block), 65536, process, &pr);
	probe_reset(-EBADMSG, false);
	stage_open(sp, STAGE_IMPORT, "big", true, false, false, 0600);
	TAP_EQ_INT(stage_write(sp, STAGE_IMPORT, "big", block, sizeof(block), 0), sizeof(block),
		   "a write up to the limit");
	TAP_EQ_INT(stage_write(sp, STAGE_IMPORT, "big", block, 1, sizeof(block)), -EFBIG,
		   "a write past it: EFBIG");
	TAP_EQ_INT(stage_write(sp, STAGE_IMPORT, "big", block, 1, 0), -EFBIG,
		   "later writes: EFBIG too");
	TAP_EQ_INT(stage_flush(sp, STAGE_IMPORT, "big"), -EFBIG, "flush: EFBIG");
	tap_ok(calls() == 1 && pr.data == NULL && pr.len == sizeof(block),
	       "the callback was told (data NULL, len the limit) to report it");
	TAP_EQ_INT(stage_flush(sp, STAGE_IMPORT, "big"), -EFBIG, "second flush: EFBIG");
	TAP_EQ_INT(calls(), 1, "... reported once");
	stage_release(sp, STAGE_IMPORT, "big");
	TAP_EQ_INT(put(sp, STAGE_IMPORT, "big", "x"), 0, "rewritten from empty");
	TAP_EQ_INT(stage_flush(sp, STAGE_IMPORT, "big"), -EBADMSG, "then processed normally");
	stage_release(sp, STAGE_IMPORT, "big");

	stage_free(sp);
}

struct job {
	pthread_t t;
	struct stage *sp;
	const char *name;
	int ret;
	bool done;
};

static void *flush_job(void *arg)
{
	struct job *j = arg;

	j->ret = stage_flush(j->sp, STAGE_IMPORT, j->name);
	__atomic_store_n(&j->done, true, __ATOMIC_SEQ_CST);
	return NULL;
}

static void *write_job(void *arg)
{
	struct job *j = arg;

	j->ret = stage_write(j->sp, STAGE_IMPORT, j->name, "more", 4, 0);
	__atomic_store_n(&j->done, true, __ATOMIC_SEQ_CST);
	return NULL;
}

static bool done(struct job *j)
{
	return __atomic_load_n(&j->done, __ATOMIC_SEQ_CST);
}

static void list_into(void *arg, const char *name)
{
	strcat(arg, name);
	strcat(arg, " ");
}

static void test_no_wait_while_processing(void)
{
	struct job j1 = { .name = "slow" }, j2 = { .name = "slow" }, j3 = { .name = "slow" };
	struct stage_attr a;
	struct stage *sp;
	char seen[256] = "", buf[8];
	mode_t mode = 0644;

	stage_new(&sp, 8192, 65536, process, &pr);
	j1.sp = j2.sp = j3.sp = sp;
	put(sp, STAGE_IMPORT, "slow", "sealed");
	put(sp, STAGE_IMPORT, "other", "data");
	probe_reset(-EKEYREJECTED, true);
	pthread_create(&j1.t, NULL, flush_job, &j1);
	wait_inside();

	/* Each of these hangs (the alarm ends the test) if processing held
	 * the stage's lock. */
	stage_list(sp, STAGE_IMPORT, list_into, seen);
	tap_ok(strstr(seen, "slow") && strstr(seen, "other"), "listing answers (%s)", seen);
	TAP_EQ_INT(stage_getattr(sp, STAGE_IMPORT, "slow", &a), 0, "getattr of the busy file");
	TAP_EQ_INT(a.size, 6, "... its size");
	TAP_EQ_INT(stage_getattr(sp, STAGE_IMPORT, "other", &a), 0, "getattr of another file");
	TAP_EQ_INT(stage_read(sp, STAGE_IMPORT, "slow", buf, sizeof(buf), 0), 6,
		   "reading the busy file");
	TAP_EQ_INT(stage_write(sp, STAGE_IMPORT, "other", "DATA", 4, 0), 4,
		   "another file's write");
	TAP_EQ_INT(put(sp, STAGE_IMPORT, "new", "x"), 0, "a new file");
	TAP_EQ_INT(stage_rename(sp, STAGE_IMPORT, "other", "other2"), 0, "a rename");
	TAP_EQ_INT(stage_unlink(sp, STAGE_IMPORT, "new"), 0, "an unlink");
	TAP_EQ_INT(stage_setattr(sp, STAGE_IMPORT, "slow", &mode, NULL), 0, "chmod of the busy file");

	/* Same file: a second flush waits for the outcome, a write waits
	 * until the bytes are no longer pinned. */
	pthread_create(&j2.t, NULL, flush_job, &j2);
	pthread_create(&j3.t, NULL, write_job, &j3);
	usleep(200 * 1000);
	tap_ok(!done(&j2) && !done(&j3), "flush and write of the busy file wait");
	TAP_EQ_INT(calls(), 1, "... and nothing is processed twice");
	open_gate();
	pthread_join(j1.t, NULL);
	pthread_join(j2.t, NULL);
	pthread_join(j3.t, NULL);
	TAP_EQ_INT(j1.ret, -EKEYREJECTED, "the processing flush gets the outcome");
	TAP_EQ_INT(j2.ret, -EKEYREJECTED, "the waiting flush gets the same outcome");
	TAP_EQ_INT(j3.ret, 4, "the write went in after it");
	TAP_EQ_INT(calls(), 1, "processed once");
	probe_reset(0, false);
	TAP_EQ_INT(stage_flush(sp, STAGE_IMPORT, "slow"), 0, "rewritten: processed again");
	TAP_EQ_INT(stage_read(sp, STAGE_IMPORT, "slow", buf, 6, 0), 6, "read");
	tap_ok(!memcmp(buf, "moreed", 6), "... the write landed on the old bytes");
	stage_free(sp);
}

/* Unlink and rename over a file under processing take its name at once;
 * the processing ends on its own bytes and nothing leaks (ASan). */
static void test_unlink_while_processing(void)
{
	struct job j1 = { .name = "slow" }, j2 = { .name = "victim" };
	struct stage_attr a;
	struct stage *sp;

	stage_new(&sp, 8192, 65536, process, &pr);
	j1.sp = j2.sp = sp;
	put(sp, STAGE_IMPORT, "slow", "sealed");
	probe_reset(-EBADMSG, true);
	pthread_create(&j1.t, NULL, flush_job, &j1);
	wait_inside();
	TAP_EQ_INT(stage_unlink(sp, STAGE_IMPORT, "slow"), 0, "unlink of the busy file");
	TAP_EQ_INT(stage_getattr(sp, STAGE_IMPORT, "slow", &a), -ENOENT, "... gone at once");
	TAP_EQ_INT(put(sp, STAGE_IMPORT, "slow", "again"), 0, "the name can be reused");
	open_gate();
	pthread_join(j1.t, NULL);
	TAP_EQ_INT(j1.ret, -EBADMSG, "the processing still reports its outcome");
	TAP_EQ_INT(stage_getattr(sp, STAGE_IMPORT, "slow", &a), 0, "the new file is there");
	TAP_EQ_INT(a.size, 5, "... with its own bytes");

	put(sp, STAGE_IMPORT, "victim", "sealed");
	put(sp, STAGE_IMPORT, "tmp", "x");
	probe_reset(-EBADMSG, true);
	pthread_create(&j2.t, NULL, flush_job, &j2);
	wait_inside();
	TAP_EQ_INT(stage_rename(sp, STAGE_IMPORT, "tmp", "victim"), 0,
		   "a rename over the busy file");
	open_gate();
	pthread_join(j2.t, NULL);
	TAP_EQ_INT(j2.ret, -EBADMSG, "its processing ends normally");
	TAP_EQ_INT(stage_getattr(sp, STAGE_IMPORT, "victim", &a), 0, "the name is the renamed file");
	TAP_EQ_INT(a.size, 1, "... with its size");
	stage_free(sp);
}

int main(void)
{
	/* A deadlock is a failure, not a hung test run. */
	alarm(30);
	test_semantics();
	test_too_large();
	test_no_wait_while_processing();
	test_unlink_while_processing();
	return tap_done();
}
