/* Unit tests for policy.c: the password policy (classes, lengths counted
 * in UTF-8 characters, byte cap, control characters) and the vault
 * (backup slot, unlock slots, generation, forget, and forget waiting for
 * a reader that still holds a password; setters that change nothing and
 * vault_generation() never waiting for the write lock; where each
 * password came from). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "keyfs/config.h"
#include "keyfs/policy.h"
#include "keyfs/vault.h"

#include "tap.h"

/* ---- policy ---- */

/* test_secret links the secret area alone, not config.c: the config fields the
 * policy reads, at their documented defaults (complex, 8). */
static void policy_defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	c->policy = POLICY_COMPLEX;
	c->min_length = 8;
}

/* Checks pw (NUL-terminated; len = strlen) and, when refused, that *why
 * contains want. want == NULL means the password must be accepted. */
static void policy_case(const struct config *c, const char *pw, size_t len, const char *want,
			const char *label)
{
	const char *why = NULL;
	int ret = policy_check(c, pw, len, &why);

	if (!want) {
		tap_ok(ret == 0, "policy accepts %s (ret %d, why %s)", label, ret, why ? why : "-");
		return;
	}
	tap_ok(ret == -EINVAL && why && strstr(why, want),
	       "policy refuses %s with \"%s\" (ret %d, why %s)", label, want, ret, why ? why : "-");
}

#define ACCEPT(c, pw, label) policy_case(c, pw, strlen(pw), NULL, label)
#define REFUSE(c, pw, want, label) policy_case(c, pw, strlen(pw), want, label)

static void test_policy_complex(void)
{
	struct config c;
	char buf[SECRET_PW_MAX + 2];

	policy_defaults(&c);

	ACCEPT(&c, "Abcdefg1!", "a password with every class");
	REFUSE(&c, "abcdefg1!", "upper-case", "no upper case");
	REFUSE(&c, "ABCDEFG1!", "lower-case", "no lower case");
	REFUSE(&c, "Abcdefgh!", "digit", "no digit");
	REFUSE(&c, "Abcdefg12", "symbol", "no symbol");
	REFUSE(&c, "Abcde1!", "shorter than 8", "7 characters");
	ACCEPT(&c, "Abcdef1!", "exactly 8 characters");
	ACCEPT(&c, "Ab cd 1!", "spaces as symbols");

	/* UTF-8: characters count, continuation bytes do not. */
	ACCEPT(&c, "Ab\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4" "1!", "8 characters in 12 bytes (Abääää1!)");
	REFUSE(&c, "Ab\xc3\xa4\xc3\xa4\xc3\xa4" "1!", "shorter than 8",
	       "7 characters in 10 bytes (Abäää1!)");
	{
		/* "Ääääää1!": 8 characters, 14 bytes; its length is fine, so
		 * a refusal may only be about a class, never about length. */
		const char *pw = "\xc3\x84\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4" "1!";
		const char *why = NULL;
		int ret = policy_check(&c, pw, strlen(pw), &why);

		tap_ok(ret == 0 || (why && !strstr(why, "shorter")),
		       "\"Ääääää1!\" (8 chars, 14 bytes) is not refused for length (ret %d, why %s)",
		       ret, why ? why : "-");
	}
	/* 4-byte sequences: 😀 is one character. 7 of them + "A1" is 9
	 * characters; 4 emoji + "Ab1" is 7. */
	ACCEPT(&c, "Ab1\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80",
	       "8 characters with emoji as symbols");
	REFUSE(&c, "Ab1\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80", "shorter",
	       "7 characters in 19 bytes");

	/* The byte cap: 128 accepted, 129 refused. */
	memset(buf, 'a', sizeof(buf));
	memcpy(buf, "A1!", 3);
	buf[SECRET_PW_MAX] = '\0';
	ACCEPT(&c, buf, "exactly 128 bytes");
	buf[SECRET_PW_MAX] = 'a';
	buf[SECRET_PW_MAX + 1] = '\0';
	REFUSE(&c, buf, "longer than 128", "129 bytes");
	/* 129 bytes that are only 65 characters: the cap is in bytes. */
	{
		char u[SECRET_PW_MAX + 2];
		size_t i;

		memcpy(u, "A1!", 3);
		for (i = 3; i + 2 <= SECRET_PW_MAX + 1; i += 2)
			memcpy(u + i, "\xc3\xa4", 2);
		u[i] = '\0';
		TAP_EQ_INT(i, SECRET_PW_MAX + 1, "multi-byte probe is 129 bytes");
		REFUSE(&c, u, "longer than 128", "129 bytes of mostly 2-byte characters");
	}

	REFUSE(&c, "", "empty", "the empty password");
	REFUSE(&c, "Abcdefg1!\n", "control", "a trailing newline");
	REFUSE(&c, "Abc\tdefg1!", "control", "a tab");
	REFUSE(&c, "Abcdefg1!\x7f", "control", "DEL");
	REFUSE(&c, "\x1b[0mAbcdefg1!", "control", "an escape sequence");
	/* An embedded NUL byte is a control character too. */
	policy_case(&c, "Abcd\0efg1!", 10, "control", "an embedded NUL");
	/* A short password with a control character: either reason is
	 * right, but it must be refused. */
	{
		const char *why = NULL;

		TAP_EQ_INT(policy_check(&c, "a\x01", 2, &why), -EINVAL, "short password with control char refused");
	}
}

static void test_policy_length(void)
{
	struct config c;

	policy_defaults(&c);
	c.policy = POLICY_LENGTH;
	ACCEPT(&c, "abcdefgh", "length policy: 8 lower-case letters");
	ACCEPT(&c, "12345678", "length policy: 8 digits");
	REFUSE(&c, "abcdefg", "shorter", "length policy: 7 letters");
	REFUSE(&c, "abcdefg\n", "control", "length policy: control character");
	REFUSE(&c, "", "empty", "length policy: empty");
	REFUSE(&c, "\xc3\x84\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4", "shorter",
	       "length policy: 7 characters in 14 bytes");
	ACCEPT(&c, "\xc3\x84\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4" "1!",
	       "length policy: \"Ääääää1!\" (8 characters, 14 bytes)");

	policy_defaults(&c);
	c.min_length = 12;
	REFUSE(&c, "Abcdefghi1!", "shorter", "min 12: 11 characters");
	ACCEPT(&c, "Abcdefghij1!", "min 12: 12 characters");
	REFUSE(&c, "abcdefghij1!", "upper-case", "min 12: still complex");
}

/* ---- vault ---- */

static bool pass_is(const struct age_pass *p, const char *want)
{
	return p->len == strlen(want) && memcmp(p->p, want, p->len) == 0;
}

/* Runs fn(arg) in a thread and reports whether it finished within
 * seconds: a lock left held must fail a check, not hang the test. */
static bool finishes(void *(*fn)(void *), void *arg, int seconds)
{
	struct timespec ts;
	pthread_t t;

	if (pthread_create(&t, NULL, fn, arg))
		return false;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += seconds;
	if (pthread_timedjoin_np(t, NULL, &ts)) {
		pthread_detach(t);
		return false;
	}
	return true;
}

static void *do_forget(void *arg)
{
	vault_forget(arg);
	return NULL;
}

static void test_vault_basic(void)
{
	struct age_pass pass[VAULT_SLOTS], bp;
	struct vault *v = NULL;
	uint64_t g0, g, gr;
	char pw[8];
	size_t n, i;
	int ret;

	TAP_EQ_INT(vault_new(&v), 0, "vault_new");
	if (!v)
		return;
	tap_ok(!vault_has_password(v), "new vault has no password");
	TAP_EQ_INT(vault_unlock_count(v), 0, "new vault has no unlock password");
	g0 = vault_generation(v);
	TAP_EQ_INT(vault_read_backup(v, &bp, &gr), -ENOKEY, "read_backup on an empty vault: -ENOKEY");
	/* -ENOKEY holds no lock: a writer must get through. */
	if (!tap_ok(finishes(do_forget, v, 5), "no lock left held after -ENOKEY"))
		return; /* the vault stays locked: nothing more can run on it */
	g0 = vault_generation(v);

	TAP_EQ_INT(vault_set(v, "Secret-1", 8), 0, "vault_set");
	tap_ok(vault_has_password(v), "vault has a password after set");
	TAP_EQ_INT(vault_generation(v), g0 + 1, "set bumps the generation");
	ret = vault_read_backup(v, &bp, &gr);
	TAP_EQ_INT(ret, 0, "read_backup after set");
	if (!ret) {
		tap_ok(pass_is(&bp, "Secret-1"), "read_backup returns the bytes set");
		TAP_EQ_INT(gr, g0 + 1, "read_backup returns the generation");
		vault_read_end(v);
	}

	/* A shorter password replaces the longer one entirely. */
	TAP_EQ_INT(vault_set(v, "Xy3!", 4), 0, "set a shorter password");
	TAP_EQ_INT(vault_generation(v), g0 + 2, "second set bumps the generation again");
	if (!vault_read_backup(v, &bp, &gr)) {
		tap_ok(pass_is(&bp, "Xy3!"), "the new password replaced the old one");
		vault_read_end(v);
	} else {
		tap_ok(false, "read_backup after second set");
	}

	/* Refused sizes change nothing. */
	TAP_EQ_INT(vault_set(v, "x", 0), -EINVAL, "set of an empty password: -EINVAL");
	{
		char big[SECRET_PW_MAX + 1];

		memset(big, 'a', sizeof(big));
		TAP_EQ_INT(vault_set(v, big, sizeof(big)), -EINVAL, "set of 129 bytes: -EINVAL");
		TAP_EQ_INT(vault_set(v, big, SECRET_PW_MAX), 0, "set of 128 bytes");
		if (!vault_read_backup(v, &bp, &gr)) {
			tap_ok(bp.len == SECRET_PW_MAX && !memcmp(bp.p, big, SECRET_PW_MAX),
			       "128-byte password kept whole");
			vault_read_end(v);
		}
		TAP_EQ_INT(vault_set(v, "Xy3!", 4), 0, "set back to a short password");
	}
	g = vault_generation(v);
	TAP_EQ_INT(vault_add_unlock(v, "", 0), -EINVAL, "add_unlock of an empty password: -EINVAL");
	TAP_EQ_INT(vault_unlock_count(v), 0, "refused unlock not counted");

	/* Unlock slots: dedup, then VAULT_SLOTS - 1 of them, then -ENOSPC. */
	TAP_EQ_INT(vault_add_unlock(v, "u00", 3), 0, "add_unlock u00");
	TAP_EQ_INT(vault_add_unlock(v, "u00", 3), 0, "add_unlock u00 again");
	TAP_EQ_INT(vault_unlock_count(v), 1, "a repeated unlock password is kept once");
	TAP_EQ_INT(vault_add_unlock(v, "u0", 2), 0, "add_unlock u0 (a prefix of u00)");
	TAP_EQ_INT(vault_unlock_count(v), 2, "a prefix is a different password");
	for (i = 2; i < VAULT_SLOTS - 1; i++) {
		snprintf(pw, sizeof(pw), "u%02zu", i);
		ret = vault_add_unlock(v, pw, strlen(pw));
		if (ret)
			break;
	}
	TAP_EQ_INT(ret, 0, "add_unlock fills every slot");
	TAP_EQ_INT(vault_unlock_count(v), VAULT_SLOTS - 1, "VAULT_SLOTS - 1 unlock passwords held");
	TAP_EQ_INT(vault_add_unlock(v, "one-too-many", 12), -ENOSPC, "one more: -ENOSPC");
	TAP_EQ_INT(vault_add_unlock(v, "u05", 3), 0, "a known one when full is still accepted");
	{
		char big[SECRET_PW_MAX + 1];

		memset(big, 'b', sizeof(big));
		TAP_EQ_INT(vault_add_unlock(v, big, sizeof(big)), -EINVAL,
			   "129 bytes when full: -EINVAL, not -ENOSPC");
		TAP_EQ_INT(vault_add_unlock(v, "", 0), -EINVAL, "empty when full: -EINVAL");
	}
	TAP_EQ_INT(vault_unlock_count(v), VAULT_SLOTS - 1, "count unchanged when full");
	TAP_EQ_INT(vault_generation(v), g, "unlock passwords do not bump the generation");

	/* vault_read: backup first, then the unlock passwords in order. */
	n = vault_read(v, pass, &gr);
	TAP_EQ_INT(n, VAULT_SLOTS, "vault_read returns backup + every unlock");
	TAP_EQ_INT(gr, g, "vault_read returns the generation");
	tap_ok(n >= 1 && pass_is(&pass[0], "Xy3!"), "vault_read lists the backup first");
	tap_ok(n >= 3 && pass_is(&pass[1], "u00") && pass_is(&pass[2], "u0"),
	       "vault_read lists unlock passwords in the order added");
	tap_ok(n == VAULT_SLOTS && pass_is(&pass[VAULT_SLOTS - 1], "u14"),
	       "vault_read lists the last unlock password last");
	vault_read_end(v);

	/* Forget: everything gone, generation bumped. */
	vault_forget(v);
	tap_ok(!vault_has_password(v), "forget clears the backup password");
	TAP_EQ_INT(vault_unlock_count(v), 0, "forget clears the unlock passwords");
	TAP_EQ_INT(vault_generation(v), g + 1, "forget bumps the generation");
	TAP_EQ_INT(vault_read_backup(v, &bp, &gr), -ENOKEY, "read_backup after forget: -ENOKEY");
	n = vault_read(v, pass, NULL);
	TAP_EQ_INT(n, 0, "vault_read after forget: nothing");
	vault_read_end(v);

	/* Slots are reusable, and an unlock-only vault lists no backup. */
	TAP_EQ_INT(vault_add_unlock(v, "old-pw", 6), 0, "add_unlock after forget");
	n = vault_read(v, pass, NULL);
	tap_ok(n == 1 && pass_is(&pass[0], "old-pw"), "unlock-only vault: vault_read gives the unlock password");
	vault_read_end(v);
	tap_ok(!vault_has_password(v), "an unlock password is not a backup password");

	vault_free(v);
	vault_free(NULL); /* allowed */
}

/* A reader holds the backup password while another thread forgets:
 * forget must wait, and the password must stay intact until released. */
struct forget_race {
	struct vault *v;
	atomic_int started;	/* forget thread about to call vault_forget */
	atomic_int done;	/* vault_forget returned */
};

static void *race_forget(void *arg)
{
	struct forget_race *r = arg;

	atomic_store(&r->started, 1);
	vault_forget(r->v);
	atomic_store(&r->done, 1);
	return NULL;
}

static void test_vault_forget_waits(void)
{
	struct forget_race r = { 0 };
	struct timespec pause = { 0, 200 * 1000 * 1000 };
	struct age_pass bp;
	uint64_t g, gr;
	pthread_t t;
	bool intact;
	int ret;

	if (vault_new(&r.v))
		return;
	vault_set(r.v, "Abcdefg1!", 9);
	g = vault_generation(r.v);
	ret = vault_read_backup(r.v, &bp, &gr);
	TAP_EQ_INT(ret, 0, "reader takes the backup password");
	if (ret)
		goto out;
	if (pthread_create(&t, NULL, race_forget, &r)) {
		vault_read_end(r.v);
		tap_ok(false, "pthread_create");
		goto out;
	}
	while (!atomic_load(&r.started))
		sched_yield();
	/* Give forget time to run if it did not wait; the check below can
	 * only pass wrongly on a slow machine, never fail wrongly. */
	nanosleep(&pause, NULL);
	tap_ok(!atomic_load(&r.done), "forget waits while a reader holds the password");
	intact = pass_is(&bp, "Abcdefg1!");
	tap_ok(intact, "the password is intact under the reader");
	vault_read_end(r.v);
	pthread_join(t, NULL);
	tap_ok(atomic_load(&r.done), "forget finishes once the reader is done");
	tap_ok(!vault_has_password(r.v), "forgotten after the reader released it");
	TAP_EQ_INT(vault_generation(r.v), g + 1, "generation bumped by the forget");

	/* Same with vault_read() holding every password. */
	{
		struct age_pass pass[VAULT_SLOTS];
		size_t n;

		vault_set(r.v, "Abcdefg1!", 9);
		vault_add_unlock(r.v, "old", 3);
		atomic_store(&r.started, 0);
		atomic_store(&r.done, 0);
		n = vault_read(r.v, pass, NULL);
		TAP_EQ_INT(n, 2, "vault_read holds two passwords");
		if (pthread_create(&t, NULL, race_forget, &r)) {
			vault_read_end(r.v);
			goto out;
		}
		while (!atomic_load(&r.started))
			sched_yield();
		nanosleep(&pause, NULL);
		tap_ok(!atomic_load(&r.done), "forget waits for a vault_read reader");
		tap_ok(n == 2 && pass_is(&pass[0], "Abcdefg1!") && pass_is(&pass[1], "old"),
		       "passwords intact under a vault_read reader");
		vault_read_end(r.v);
		pthread_join(t, NULL);
		tap_ok(atomic_load(&r.done) && !vault_has_password(r.v) && !vault_unlock_count(r.v),
		       "forget done after vault_read_end");
	}
out:
	vault_free(r.v);
}

/* Several readers and a setter at once: every read sees one whole
 * password, never a mix of two. */
struct churn {
	struct vault *v;
	atomic_int stop;
	atomic_int bad;
	atomic_long reads;
};

static void *churn_reader(void *arg)
{
	struct churn *c = arg;
	struct age_pass bp;
	uint64_t g;

	while (!atomic_load(&c->stop)) {
		if (vault_read_backup(c->v, &bp, &g))
			continue;
		if (!pass_is(&bp, "Aaaaaaa1!") && !pass_is(&bp, "Bbbbbbbbbbbb2?"))
			atomic_store(&c->bad, 1);
		vault_read_end(c->v);
		atomic_fetch_add(&c->reads, 1);
	}
	return NULL;
}

static void test_vault_churn(void)
{
	struct churn c = { 0 };
	pthread_t t[4];
	size_t i, started = 0;

	if (vault_new(&c.v))
		return;
	vault_set(c.v, "Aaaaaaa1!", 9);
	for (i = 0; i < 4; i++)
		started += !pthread_create(&t[i], NULL, churn_reader, &c);
	/* Write until the readers have read a fair amount (bounded, in
	 * case a reader is starved by the writer-preferring lock). */
	for (i = 0; i < 2000 || (atomic_load(&c.reads) < 2000 && i < 2000000); i++) {
		if (i % 2)
			vault_set(c.v, "Aaaaaaa1!", 9);
		else
			vault_set(c.v, "Bbbbbbbbbbbb2?", 14);
		if (i % 500 == 0)
			vault_forget(c.v);
	}
	atomic_store(&c.stop, 1);
	for (i = 0; i < started; i++)
		pthread_join(t[i], NULL);
	TAP_EQ_INT(started, 4, "4 reader threads started");
	tap_ok(atomic_load(&c.reads) >= 2000, "readers ran alongside the writer");
	tap_ok(!atomic_load(&c.bad), "concurrent readers never saw a torn password (%ld reads)",
	       (long)atomic_load(&c.reads));
	vault_free(c.v);
}

/* ---- the lock rule: what must never wait for a reader ---- */

/* One vault call in a thread. Static storage: a call that hangs on a
 * broken vault is detached and may still finish after the test. */
struct call {
	struct vault *v;
	int ret;
	uint64_t gen;
};

static void *call_add_known(void *arg)
{
	struct call *c = arg;

	c->ret = vault_add_unlock(c->v, "Known-unlock-1", 14);
	return NULL;
}

static void *call_set_same(void *arg)
{
	struct call *c = arg;

	c->ret = vault_set(c->v, "Backup-pass-1", 13);
	return NULL;
}

static void *call_set_keyset_same(void *arg)
{
	struct call *c = arg;

	c->ret = vault_set_keyset(c->v, "web", "Web-pass-1", 10);
	return NULL;
}

static void *call_generation(void *arg)
{
	struct call *c = arg;

	c->gen = vault_generation(c->v);
	return NULL;
}

static void *call_set_new(void *arg)
{
	struct call *c = arg;

	c->ret = vault_set(c->v, "Backup-pass-2", 13);
	return NULL;
}

/* A sealer holds a read lock for a whole scrypt run. Giving keyfs a
 * password it already holds (every export open does, with an agent) must
 * not wait for it, or take the write lock that makes every later reader
 * wait; vault_generation() must not wait even behind a waiting writer,
 * because the seal cache calls it under the mutex a sealer waits for. */
static void test_vault_unchanged_never_waits(void)
{
	static struct call c, w;
	struct timespec pause = { 0, 200 * 1000 * 1000 };
	struct age_pass pass[VAULT_SLOTS];
	bool all = true;
	pthread_t writer;
	uint64_t g;

	if (vault_new(&c.v))
		return;
	w.v = c.v;
	vault_set(c.v, "Backup-pass-1", 13);
	vault_add_unlock(c.v, "Known-unlock-1", 14);
	vault_set_keyset(c.v, "web", "Web-pass-1", 10);
	g = vault_generation(c.v);
	vault_read(c.v, pass, NULL); /* the sealer */

	c.ret = -1;
	all &= tap_ok(finishes(call_add_known, &c, 3) && c.ret == 0,
		      "a known unlock password is taken while a reader holds the vault");
	c.ret = -1;
	all &= tap_ok(finishes(call_set_same, &c, 3) && c.ret == 0,
		      "the same backup password is taken while a reader holds the vault");
	c.ret = -1;
	all &= tap_ok(finishes(call_set_keyset_same, &c, 3) && c.ret == 0,
		      "the same keyset password is taken while a reader holds the vault");
	c.gen = 0;
	all &= tap_ok(finishes(call_generation, &c, 3) && c.gen == g,
		      "vault_generation() while a reader holds the vault; unchanged by the same passwords");

	/* A real change waits for the reader; the generation still reads. */
	if (pthread_create(&writer, NULL, call_set_new, &w)) {
		vault_read_end(c.v);
		tap_ok(false, "pthread_create");
		return;
	}
	nanosleep(&pause, NULL); /* let the writer queue up */
	c.gen = 0;
	all &= tap_ok(finishes(call_generation, &c, 3) && c.gen == g,
		      "vault_generation() does not wait behind a waiting writer");
	vault_read_end(c.v);
	pthread_join(writer, NULL);
	TAP_EQ_INT(vault_generation(c.v), g + 1, "a new backup password bumps the generation once");
	if (all)
		vault_free(c.v); /* else a detached call may still use it */
}

/* ---- origins: given to keyfs or from the agent ---- */

static bool backup_is(struct vault *v, const char *pw)
{
	return vault_is_backup(v, pw, strlen(pw));
}

static bool keyset_is(struct vault *v, const char *keyset, const char *pw)
{
	struct age_pass p;
	uint64_t g;
	bool same;

	if (vault_read_for(v, keyset, &p, &g))
		return false;
	same = pass_is(&p, pw);
	vault_read_end(v);
	return same;
}

static void test_vault_origins(void)
{
	char names[VAULT_KEYSET_SLOTS][KEYSET_NAME_MAX + 1];
	struct vault *v;
	uint64_t g;

	if (vault_new(&v))
		return;
	/* backup: the agent's until one is given; then the given one wins */
	TAP_EQ_INT(vault_set_from(v, VAULT_AGENT, "Agent-pass-1", 12), 1, "agent sets the backup password");
	TAP_EQ_INT(vault_set_from(v, VAULT_AGENT, "Agent-pass-1", 12), 0, "the same again: no change");
	TAP_EQ_INT(vault_set_from(v, VAULT_AGENT, "Agent-pass-2", 12), 1, "the agent replaces its own");
	TAP_EQ_INT(vault_set(v, "Given-pass-1", 12), 0, "a given password replaces the agent's");
	g = vault_generation(v);
	TAP_EQ_INT(vault_set_from(v, VAULT_AGENT, "Agent-pass-2", 12), 0,
		   "the agent does not replace a given password");
	tap_ok(backup_is(v, "Given-pass-1"), "the given backup password is kept");
	TAP_EQ_INT(vault_generation(v), g, "no generation bump for a refused agent password");

	/* unlock and keyset passwords of both origins */
	TAP_EQ_INT(vault_add_unlock(v, "Unlock-given", 12), 0, "given unlock password");
	TAP_EQ_INT(vault_add_unlock_from(v, VAULT_AGENT, "Unlock-agent", 12), 1, "agent unlock password");
	TAP_EQ_INT(vault_add_unlock_from(v, VAULT_AGENT, "Unlock-agent", 12), 0, "known: no change");
	TAP_EQ_INT(vault_set_keyset_from(v, VAULT_AGENT, "web", "Web-agent", 9), 1, "agent keyset password");
	TAP_EQ_INT(vault_set_keyset(v, "web", "Web-given", 9), 0, "a given keyset password replaces it");
	TAP_EQ_INT(vault_set_keyset_from(v, VAULT_AGENT, "web", "Web-agent", 9), 0,
		   "the agent does not replace a given keyset password");
	tap_ok(keyset_is(v, "web", "Web-given"), "the given keyset password is kept");
	TAP_EQ_INT(vault_set_keyset_from(v, VAULT_AGENT, "db", "Db-agent", 8), 1, "agent password for db");

	/* forgetting the agent's leaves the given ones */
	g = vault_generation(v);
	vault_forget_from(v, VAULT_AGENT);
	tap_ok(backup_is(v, "Given-pass-1"), "forget_from(agent) keeps the given backup password");
	TAP_EQ_INT(vault_unlock_count(v), 1, "forget_from(agent) keeps the given unlock password only");
	tap_ok(vault_keysets(v, names, VAULT_KEYSET_SLOTS) == 1 && !strcmp(names[0], "web"),
	       "forget_from(agent) keeps the given keyset password only");
	TAP_EQ_INT(vault_generation(v), g + 1, "forgetting a sealing password bumps the generation");
	vault_forget_from(v, VAULT_AGENT);
	TAP_EQ_INT(vault_generation(v), g + 1, "nothing more to forget: no bump");

	/* the agent's unlock passwords follow what it holds */
	{
		struct age_pass keep[] = { { "Unlock-a2", 9 }, { "Unlock-given", 12 } };

		vault_add_unlock_from(v, VAULT_AGENT, "Unlock-a1", 9);
		vault_add_unlock_from(v, VAULT_AGENT, "Unlock-a2", 9);
		g = vault_generation(v);
		vault_keep_unlock_from(v, VAULT_AGENT, keep, 2);
		TAP_EQ_INT(vault_unlock_count(v), 2, "keep_unlock_from wipes the agent's it no longer holds");
		vault_keep_unlock_from(v, VAULT_AGENT, NULL, 0);
		TAP_EQ_INT(vault_unlock_count(v), 1, "keep_unlock_from(nothing) keeps the given one");
		TAP_EQ_INT(vault_generation(v), g, "unlock passwords do not bump the generation");
	}

	/* the agent's password given again becomes given, without a bump */
	vault_forget(v);
	TAP_EQ_INT(vault_set_from(v, VAULT_AGENT, "Same-pass-1", 11), 1, "agent backup password");
	g = vault_generation(v);
	TAP_EQ_INT(vault_set(v, "Same-pass-1", 11), 0, "the same password given");
	TAP_EQ_INT(vault_generation(v), g, "giving the same password is no change");
	vault_forget_from(v, VAULT_AGENT);
	tap_ok(backup_is(v, "Same-pass-1"), "a password given again stays when the agent's go");

	/* drop: one slot, only if it came from the agent */
	vault_drop_from(v, VAULT_AGENT, NULL);
	tap_ok(backup_is(v, "Same-pass-1"), "drop_from(agent) keeps a given backup password");
	TAP_EQ_INT(vault_set_keyset_from(v, VAULT_AGENT, "db", "Db-agent", 8), 1, "agent password for db");
	vault_drop_from(v, VAULT_AGENT, "web");
	vault_drop_from(v, VAULT_AGENT, "db");
	TAP_EQ_INT(vault_keysets(v, names, VAULT_KEYSET_SLOTS), 0, "drop_from(agent, db) wipes db's");
	vault_forget(v);
	TAP_EQ_INT(vault_set_from(v, VAULT_AGENT, "Agent-pass-1", 12), 1, "agent backup password");
	vault_drop_from(v, VAULT_AGENT, NULL);
	tap_ok(!vault_has_password(v), "drop_from(agent) wipes the agent's backup password");
	vault_free(v);
}

int main(void)
{
	if (sodium_init() < 0) {
		tap_ok(false, "sodium_init");
		return tap_done();
	}
	test_policy_complex();
	test_policy_length();
	test_vault_basic();
	test_vault_forget_waits();
	test_vault_churn();
	test_vault_unchanged_never_waits();
	test_vault_origins();
	return tap_done();
}
