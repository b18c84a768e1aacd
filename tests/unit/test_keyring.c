/* Unit tests of the keyring: the recipients shown for the stock key
 * fixtures (tests/vectors/keys), origins, replace, forget, the limit, and
 * that a reader holds off a writer. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "keyfs/age.h"
#include "keyfs/keyring.h"

#include "bech32.h"
#include "tap.h"

/* age-keygen's "public key:" line of age.key, and ssh-keygen -l's
 * fingerprint of id_ed25519.pub. */
#define AGE_PUB "age1ws0c709qz5lexlgvzwg0c2eafdwcm48cf7nf8lrz3gu0khkhnvtq7ec7uf"
#define AGE2_PUB "age1f7ytfwdz3lv4xferx4hwa57dhwtgqxf9jw9cft800gh9wq3fg39sslys5u"
#define SSH_FPR "ssh-ed25519 SHA256:uYMWeQIjlTDB27jH9GZ9nd7D2W8S1oYmF4w1QvI/hn0"

static char keys_dir[4096];

static char *fixture(const char *name, size_t *len)
{
	char path[8192], *buf;
	FILE *f;
	long size;

	snprintf(path, sizeof(path), "%s/%s", keys_dir, name);
	f = fopen(path, "rb");
	if (!f || fseek(f, 0, SEEK_END) || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
		tap_ok(false, "read fixture %s", name);
		exit(tap_done());
	}
	buf = calloc(1, (size_t)size + 1);
	if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size)
		exit(1);
	fclose(f);
	*len = (size_t)size;
	return buf;
}

static void parse(struct age_identity_list *l, const char *name)
{
	size_t len;
	char *text = fixture(name, &len);

	if (age_keys_identities(l, text, len, NULL, 0)) {
		tap_ok(false, "parse %s", name);
		exit(tap_done());
	}
	free(text);
}

static int add(struct keyring *kr, enum keyring_origin o, const char *name)
{
	struct age_identity_list l;

	parse(&l, name);
	return keyring_add(kr, o, &l, 1);
}

static int replace(struct keyring *kr, enum keyring_origin o, const char *name)
{
	struct age_identity_list l;

	parse(&l, name);
	return keyring_replace(kr, o, &l, 1);
}

/* The status block, malloc()ed. */
static char *report(struct keyring *kr)
{
	char *text = NULL;
	size_t len;
	FILE *f = open_memstream(&text, &len);

	keyring_report(kr, f);
	fclose(f);
	return text;
}

static bool reports(struct keyring *kr, const char *line)
{
	char *text = report(kr);
	bool found = strstr(text, line) != NULL;

	if (!found)
		fprintf(stderr, "# report:\n%s", text);
	free(text);
	return found;
}

static void test_recipients(void)
{
	char out[AGE_IDENTITY_RECIPIENT_MAX];
	struct age_identity_list l;
	struct age_identity id;
	struct age_pass p = { "pw", 2 };

	parse(&l, "age.key");
	TAP_EQ_INT(age_identity_recipient(&l.id[0], out, sizeof(out)), 0, "age1 of age.key");
	tap_ok(!strcmp(out, AGE_PUB), "it is age-keygen's public key: %s", out);
	TAP_EQ_INT(age_identity_recipient(&l.id[0], out, 20), -ENOSPC, "too small: -ENOSPC");
	age_identity_list_free(&l);
	parse(&l, "id_ed25519");
	TAP_EQ_INT(age_identity_recipient(&l.id[0], out, sizeof(out)), 0, "recipient of id_ed25519");
	tap_ok(!strcmp(out, SSH_FPR), "it is ssh-keygen -l's fingerprint: %s", out);
	TAP_EQ_INT(age_identity_recipient(&l.id[0], out, 30), -ENOSPC, "too small: -ENOSPC");
	age_identity_list_free(&l);
	TAP_EQ_INT(age_scrypt_identity(&id, &p, 18), 0, "a scrypt identity");
	TAP_EQ_INT(age_identity_recipient(&id, out, sizeof(out)), -ENOTSUP, "has no recipient");
	age_identity_clear(&id);
}

static void test_origins(void)
{
	struct keyring *kr;

	if (keyring_new(&kr))
		exit(1);
	TAP_EQ_INT(keyring_count(kr), 0, "empty");
	tap_ok(reports(kr, "identities: 0\n"), "report of none");
	TAP_EQ_INT(add(kr, KEYRING_CONTROL, "age.key"), 1, "control gives age.key");
	TAP_EQ_INT(add(kr, KEYRING_CONTROL, "age.key"), 0, "again: no change");
	TAP_EQ_INT(keyring_count(kr), 1, "held once");
	TAP_EQ_INT(replace(kr, KEYRING_FILE, "identities.txt"), 1, "the file gives both");
	TAP_EQ_INT(keyring_count(kr), 2, "two held");
	tap_ok(reports(kr, "  " AGE_PUB " (control, file)\n"), "age.key from control and file");
	tap_ok(reports(kr, "  " AGE2_PUB " (file)\n"), "age2.key from the file");
	TAP_EQ_INT(replace(kr, KEYRING_FILE, "age2.key"), 1, "the file no longer has age.key");
	TAP_EQ_INT(keyring_count(kr), 2, "age.key stays: control gave it");
	tap_ok(reports(kr, "  " AGE_PUB " (control)\n"), "now from control alone");
	TAP_EQ_INT(keyring_replace(kr, KEYRING_FILE, NULL, 0), 1, "the file is empty");
	TAP_EQ_INT(keyring_count(kr), 1, "age2.key gone with it");

	/* The agent's never displace a given one, and go with the agent. */
	TAP_EQ_INT(replace(kr, KEYRING_AGENT, "identities.txt"), 1, "the agent gives both");
	tap_ok(reports(kr, "  " AGE_PUB " (control, agent)\n"), "shared with control");
	TAP_EQ_INT(replace(kr, KEYRING_AGENT, "identities.txt"), 0, "the same answer: no change");
	TAP_EQ_INT(add(kr, KEYRING_CREDENTIAL, "id_ed25519"), 1, "the credential gives the ssh key");
	tap_ok(reports(kr, "  " SSH_FPR " (credential)\n"), "ssh key shown by fingerprint");
	keyring_forget_from(kr, KEYRING_AGENT);
	TAP_EQ_INT(keyring_count(kr), 2, "agent forgotten: control's and credential's stay");
	tap_ok(reports(kr, "  " AGE_PUB " (control)\n"), "age.key back to control alone");
	tap_ok(!reports(kr, AGE2_PUB), "age2.key, the agent's alone, is gone");
	tap_ok(!reports(kr, "AGE-SECRET-KEY"), "no secret in the report");
	keyring_forget(kr);
	TAP_EQ_INT(keyring_count(kr), 0, "forget wipes them all");
	keyring_free(kr);
	keyring_free(NULL);
}

/* n fresh identities in age-keygen's format. */
static char *many(size_t n, size_t *len)
{
	uint8_t sk[32];
	char *text = calloc(n, 80), *p = text;
	size_t i;

	for (i = 0; i < n; i++) {
		randombytes_buf(sk, sizeof(sk));
		p += bech32_encode(p, 80, "AGE-SECRET-KEY-", sk, sizeof(sk));
		*p++ = '\n';
	}
	*len = (size_t)(p - text);
	return text;
}

static void test_limit(void)
{
	struct age_identity_list l;
	struct keyring *kr;
	size_t len;
	char *text;

	if (keyring_new(&kr))
		exit(1);
	TAP_EQ_INT(add(kr, KEYRING_CONTROL, "age.key"), 1, "one held");
	text = many(KEYRING_MAX, &len);
	TAP_EQ_INT(age_keys_identities(&l, text, len, NULL, 0), 0, "%d fresh identities", KEYRING_MAX);
	TAP_EQ_INT(keyring_add(kr, KEYRING_FILE, &l, 1), -ENOSPC, "one too many: -ENOSPC");
	TAP_EQ_INT(keyring_count(kr), 1, "and nothing changed");
	TAP_EQ_INT(age_keys_identities(&l, text, len, NULL, 0), 0, "again");
	TAP_EQ_INT(keyring_replace(kr, KEYRING_CONTROL, &l, 1), 1, "replacing control's fits");
	TAP_EQ_INT(keyring_count(kr), KEYRING_MAX, "the limit held");
	free(text);
	keyring_free(kr);
}

static void *do_forget(void *arg)
{
	keyring_forget(arg);
	return NULL;
}

static void test_reader_holds_writer(void)
{
	struct age_identity id[KEYRING_MAX];
	struct keyring *kr;
	struct timespec ms = { 0, 100 * 1000 * 1000 };
	pthread_t t;
	uint8_t *pt;
	size_t ptlen, n, len;
	uint8_t *in;
	char *plain;
	int ret;

	if (keyring_new(&kr))
		exit(1);
	add(kr, KEYRING_CONTROL, "age.key");
	n = keyring_read(kr, id, KEYRING_MAX);
	TAP_EQ_INT(n, 1, "read one");
	pthread_create(&t, NULL, do_forget, kr);
	nanosleep(&ms, NULL);
	in = (uint8_t *)fixture("plain.age.x25519", &len);
	ret = age_unseal_with(in, len, id, n, &pt, &ptlen, NULL);
	TAP_EQ_INT(ret, 0, "it opens plain.age.x25519 while forget waits");
	plain = fixture("plain.txt", &len);
	tap_ok(!ret && ptlen == len && !memcmp(pt, plain, len), "the plaintext");
	if (!ret)
		sodium_free(pt);
	keyring_read_end(kr);
	pthread_join(t, NULL);
	TAP_EQ_INT(keyring_count(kr), 0, "forget ran after the read ended");
	free(in);
	free(plain);
	keyring_free(kr);
}

int main(void)
{
	const char *v = getenv("VECTORS");

	if (sodium_init() < 0)
		return 1;
	snprintf(keys_dir, sizeof(keys_dir), "%s/../keys", v ? v : ".");
	test_recipients();
	test_origins();
	test_limit();
	test_reader_holds_writer();
	return tap_done();
}
