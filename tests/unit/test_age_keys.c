/* Unit tests of the X25519 and ssh-ed25519 types and of the key file
 * parsers: against files the stock age CLI made (tests/vectors/keys, see
 * its README), seal/unseal round trips, and the refusals. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "keyfs/age.h"
#include "keyfs/age_keys.h"
#include "keyfs/age_recipient.h"
#include "keyfs/armor.h"

#include "bech32.h"
#include "tap.h"

static char keys_dir[4096];

/* A fixture, whole, NUL-terminated. */
static char *fixture(const char *name, size_t *len)
{
	char path[8192];
	char *buf = NULL;
	FILE *f;
	long size;

	snprintf(path, sizeof(path), "%s/%s", keys_dir, name);
	f = fopen(path, "rb");
	if (!f) {
		tap_ok(false, "read fixture %s", name);
		exit(tap_done());
	}
	if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 &&
	    fseek(f, 0, SEEK_SET) == 0) {
		buf = calloc(1, size + 1);
		if (buf && fread(buf, 1, size, f) != (size_t)size) {
			free(buf);
			buf = NULL;
		}
		*len = size;
	}
	fclose(f);
	return buf;
}

/* An age file fixture, its armor removed if it has one. */
static uint8_t *age_fixture(const char *name, size_t *len)
{
	char *text = fixture(name, len);
	uint8_t *bin;
	size_t n;

	if (strncmp(text, "-----BEGIN AGE", 14) != 0)
		return (uint8_t *)text;
	if (armor_decode((uint8_t *)text, *len, &bin, &n) < 0) {
		tap_ok(false, "dearmor %s", name);
		exit(tap_done());
	}
	free(text);
	*len = n;
	return bin;
}

static int identities(struct age_identity_list *l, const char *name)
{
	char why[256];
	size_t len;
	char *text = fixture(name, &len);
	int ret = age_keys_identities(l, text, len, why, sizeof(why));

	if (ret < 0)
		printf("# %s:%s\n", name, why);
	free(text);
	return ret;
}

/* age_unseal_with() and a check of the plaintext; returns its error. */
static int open_with(const uint8_t *in, size_t len,
		     const struct age_identity_list *l, const char *want,
		     size_t *which)
{
	uint8_t *pt = NULL;
	size_t ptlen = 0;
	int ret = age_unseal_with(in, len, l->id, l->n, &pt, &ptlen, which);

	if (ret == 0 && (ptlen != strlen(want) || memcmp(pt, want, ptlen)))
		ret = -EILSEQ;
	if (pt)
		sodium_free(pt);
	return ret;
}

/* ---- files made by the stock age CLI ---- */

static void test_stock_files(void)
{
	struct age_identity_list ids, ssh, locked;
	size_t len, n, which = 9;
	char *plain = fixture("plain.txt", &len), why[256], *text;
	uint8_t *f;
	int ret;

	TAP_EQ_INT(identities(&ids, "identities.txt"), 0,
		   "identities.txt: two age-keygen identities");
	TAP_EQ_INT(ids.n, 2, "two identities");
	TAP_EQ_INT(identities(&ssh, "id_ed25519"), 0,
		   "id_ed25519: an unencrypted OpenSSH key");
	TAP_EQ_INT(ssh.n, 1, "one identity");

	f = age_fixture("plain.age.x25519", &n);
	ret = open_with(f, n, &ids, plain, &which);
	tap_ok(ret == 0 && which == 1,
	       "age -r file opened by the second identity (%d)", ret);
	TAP_EQ_INT(open_with(f, n, &ssh, plain, NULL), -EKEYREJECTED,
		   "age -r file: the ssh key is not its recipient");
	free(f);

	/* The real age's tag, conversion and tweak, all in one. */
	f = age_fixture("plain.age.ssh", &n);
	TAP_EQ_INT(open_with(f, n, &ssh, plain, NULL), 0,
		   "age -R id_ed25519.pub file opened by id_ed25519");
	TAP_EQ_INT(open_with(f, n, &ids, plain, NULL), -EKEYREJECTED,
		   "age -R file: not for the age identities");
	free(f);

	f = age_fixture("plain.age.both", &n);
	TAP_EQ_INT(open_with(f, n, &ssh, plain, NULL), 0,
		   "file to both opened by the ssh key alone");
	TAP_EQ_INT(open_with(f, n, &ids, plain, NULL), 0,
		   "file to both opened by the age identities alone");
	free(f);

	/* Sealed to an encrypted key keyfs cannot load; the other ssh key
	 * sees a stanza with another tag. */
	f = age_fixture("plain.age.locked", &n);
	TAP_EQ_INT(open_with(f, n, &ssh, plain, NULL), -EKEYREJECTED,
		   "file to the locked key: another key's tag");
	free(f);
	text = fixture("id_ed25519_locked", &len);
	ret = age_keys_identities(&locked, text, len, why, sizeof(why));
	TAP_EQ_INT(ret, AGE_SSH_ENCRYPTED,
		   "passphrase-protected OpenSSH key: its own error");
	tap_ok(strcmp(why, "line 1: " AGE_SSH_ENCRYPTED_MSG) == 0,
	       "and the message telling what to do (%s)", why);
	TAP_EQ_INT(locked.n, 0, "and no identity");
	free(text);

	text = fixture("id_rsa", &len);
	ret = age_keys_identities(&locked, text, len, why, sizeof(why));
	tap_ok(ret == -EINVAL &&
		       strcmp(why, "line 1: only Ed25519 OpenSSH keys are "
				   "supported") == 0,
	       "RSA OpenSSH key refused (%s)", why);
	free(text);

	age_identity_list_free(&ids);
	age_identity_list_free(&ssh);
	free(plain);
}

/* ---- sealing to recipients ---- */

static void test_seal(void)
{
	struct age_identity_list ids, ssh, other;
	struct age_recipient_list rl;
	size_t len, n = 0, which;
	char *text, why[256];
	const char *msg = "a keyset";
	uint8_t *c = NULL;
	char *pub;
	int ret;

	text = fixture("recipients.txt", &len);
	ret = age_keys_recipients(&rl, text, len, why, sizeof(why));
	TAP_EQ_INT(ret, 0, "recipients.txt parses");
	TAP_EQ_INT(rl.n, 2, "two recipients");
	pub = fixture("age.pub", &len);
	pub[strcspn(pub, "\n")] = '\0';
	tap_ok(rl.n == 2 && strcmp(rl.display[0], pub) == 0 &&
		       strcmp(rl.display[1], "test@keyfs") == 0,
	       "displayed as the age1 string and the ssh comment");
	free(text);

	ret = age_seal_to((const uint8_t *)msg, strlen(msg), rl.r, rl.n, &c,
			  &n);
	TAP_EQ_INT(ret, 0, "seal to [x25519, ssh-ed25519]");
	TAP_EQ_INT(n, age_sealed_size_for(rl.r, rl.n, strlen(msg)),
		   "sealed size as announced");
	/* The tag of id_ed25519.pub, as age wrote it in plain.age.ssh. */
	tap_ok(memmem(c, n, "\n-> ssh-ed25519 uYMWeQ ", 23) != NULL,
	       "ssh stanza carries the key's tag");
	tap_ok(memmem(c, n, "\n-> X25519 ", 11) != NULL, "an X25519 stanza");

	identities(&ids, "age.key");
	identities(&ssh, "id_ed25519");
	identities(&other, "age2.key");
	which = 9;
	TAP_EQ_INT(open_with(c, n, &ids, msg, &which), 0,
		   "opened by the age identity alone");
	TAP_EQ_INT(which, 0, "which is the identity's index");
	TAP_EQ_INT(open_with(c, n, &ssh, msg, NULL), 0,
		   "opened by the ssh key alone");
	TAP_EQ_INT(open_with(c, n, &other, msg, NULL), -EKEYREJECTED,
		   "another age identity: no match");
	free(c);

	/* One recipient each. */
	ret = age_seal_to((const uint8_t *)msg, strlen(msg), &rl.r[1], 1, &c,
			  &n);
	TAP_EQ_INT(ret, 0, "seal to the ssh key alone");
	TAP_EQ_INT(open_with(c, n, &ids, msg, NULL), -EKEYREJECTED,
		   "the age identity cannot open it");
	TAP_EQ_INT(open_with(c, n, &ssh, msg, NULL), 0, "the ssh key can");
	free(c);

	age_identity_list_free(&ids);
	age_identity_list_free(&ssh);
	age_identity_list_free(&other);
	age_recipient_list_free(&rl);
	free(pub);
}

/* ---- low-order points: the all-zero shared secret ---- */

/* Points of order 1, 2, 4 and 8 on Curve25519 (their u-coordinates). */
static const char *const low_order[] = {
	"0000000000000000000000000000000000000000000000000000000000000000",
	"0100000000000000000000000000000000000000000000000000000000000000",
	"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
	"5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
	"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
};

/* A sealed file's share (the 43 characters after prefix) replaced with
 * the identity point's: unwrapping it gives the all-zero secret. */
static int open_zero_share(uint8_t *c, size_t n, const char *prefix,
			   const struct age_identity_list *l)
{
	uint8_t *p = memmem(c, n, prefix, strlen(prefix));

	if (!p)
		return 1;
	memset(p + strlen(prefix), 'A', AGE_B64_LEN(32));
	return open_with(c, n, l, "x", NULL);
}

static void test_low_order(void)
{
	struct age_identity_list ids, ssh;
	struct age_recipient_list rl;
	struct age_recipient r;
	uint8_t pk[32], *c = NULL;
	char s[BECH32_MAX_LEN + 1], why[256];
	size_t i, n, len;
	char *text;

	for (i = 0; i < sizeof(low_order) / sizeof(low_order[0]); i++) {
		sodium_hex2bin(pk, sizeof(pk), low_order[i], 64, NULL, NULL,
			       NULL);
		TAP_EQ_INT(age_x25519_recipient_key(&r, pk), -EINVAL,
			   "low-order point %zu refused as a recipient", i);
		bech32_encode(s, sizeof(s), "age", pk, sizeof(pk));
		TAP_EQ_INT(age_x25519_recipient(&r, s, strlen(s)), -EINVAL,
			   "and as its age1 string");
		TAP_EQ_INT(age_keys_recipients(&rl, s, strlen(s), why,
					       sizeof(why)),
			   -EINVAL, "and in a recipients file (%s)", why);
	}

	/* The identity side: the CCTV vectors cover X25519; ssh-ed25519
	 * here, on a file sealed by keyfs with its share zeroed. */
	identities(&ids, "age.key");
	identities(&ssh, "id_ed25519");
	text = fixture("recipients.txt", &len);
	age_keys_recipients(&rl, text, len, why, sizeof(why));
	age_seal_to((const uint8_t *)"x", 1, &rl.r[1], 1, &c, &n);
	TAP_EQ_INT(open_zero_share(c, n, "-> ssh-ed25519 uYMWeQ ", &ssh),
		   -EINVAL, "ssh-ed25519 share of low order: invalid file");
	free(c);
	age_seal_to((const uint8_t *)"x", 1, &rl.r[0], 1, &c, &n);
	TAP_EQ_INT(open_zero_share(c, n, "-> X25519 ", &ids), -EINVAL,
		   "X25519 share of low order: invalid file");
	free(c);
	free(text);
	age_recipient_list_free(&rl);
	age_identity_list_free(&ids);
	age_identity_list_free(&ssh);
}

/* ---- the parsers' refusals ---- */

struct refusal {
	const char *text, *why;
};

static void test_recipient_refusals(void)
{
	static const struct refusal cases[] = {
		{ "", "line 1: no recipients in the file" },
		{ "ssh-ed25519\n", "line 1: malformed ssh-ed25519 key" },
		{ "ssh-ed25519-cert-v01@openssh.com AAAA x\n",
		  "line 1: this SSH key type is not supported: use an "
		  "ssh-ed25519 key or an age1 recipient" },
		{ "# only a comment\n\n", "line 2: no recipients in the file" },
		{ "#\nssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ x\n",
		  "line 2: ssh-rsa keys are not supported: use an ssh-ed25519 "
		  "key or an age1 recipient" },
		{ "ecdsa-sha2-nistp256 AAAAE2VjZHNh x\n",
		  "line 1: this SSH key type is not supported: use an "
		  "ssh-ed25519 key or an age1 recipient" },
		{ "age1pq1qqqqqqqqqqqqqqqqqqqqqqqq\n",
		  "line 1: post-quantum age1pq recipients are not supported" },
		{ "age1yubikey1qwerty\n",
		  "line 1: age plugin recipients are not supported" },
		{ "age1qqqqqqqq\n", "line 1: malformed age1 recipient" },
		{ " \n", "line 1: not an age1 or ssh-ed25519 recipient" },
		{ "hello\n", "line 1: not an age1 or ssh-ed25519 recipient" },
		{ "AGE-SECRET-KEY-1QQQQ\n",
		  "line 1: an identity (secret key), not a recipient" },
		{ "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAWHDFHUlx3VmzcoylXwphY5"
		  "jqYDDNZx8izuxlEQbsR\n",
		  "line 1: malformed ssh-ed25519 key" },
		/* An ssh-rsa blob under an ssh-ed25519 label. */
		{ "ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAAAgQ==\n",
		  "line 1: malformed ssh-ed25519 key" },
	};
	struct age_recipient_list rl;
	char why[256];
	size_t i;
	int ret;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ret = age_keys_recipients(&rl, cases[i].text,
					  strlen(cases[i].text), why,
					  sizeof(why));
		tap_ok(ret == -EINVAL && strcmp(why, cases[i].why) == 0 &&
			       rl.n == 0 && rl.r == NULL,
		       "recipients refusal %zu: %s", i, why);
	}
	ret = age_keys_recipients(&rl, "age1\0x\n", 7, why, sizeof(why));
	tap_ok(ret == -EINVAL && strcmp(why, "line 1: not a text line") == 0,
	       "a NUL byte refused (%s)", why);
}

static void test_recipient_forms(void)
{
	struct age_recipient_list rl;
	size_t len;
	char *pub = fixture("age.pub", &len), *ssh, why[256], text[512];
	int ret;

	pub[strcspn(pub, "\n")] = '\0';
	ssh = fixture("id_ed25519.pub", &len);
	ssh[strcspn(ssh, "\n")] = '\0';

	snprintf(text, sizeof(text), "%s\r\n# c\r\n%s\r\n", pub, ssh);
	ret = age_keys_recipients(&rl, text, strlen(text), why, sizeof(why));
	tap_ok(ret == 0 && rl.n == 2 && strcmp(rl.display[0], pub) == 0 &&
		       strcmp(rl.display[1], "test@keyfs") == 0,
	       "CRLF lines, no final newline needed");
	age_recipient_list_free(&rl);

	/* The key without its comment, and one with spaces in it. */
	snprintf(text, sizeof(text), "%.80s\n%.80s  my laptop \x01 \n", ssh,
		 ssh);
	ret = age_keys_recipients(&rl, text, strlen(text), why, sizeof(why));
	tap_ok(ret == 0 && rl.n == 2 &&
		       strcmp(rl.display[0], "ssh-ed25519 key") == 0 &&
		       strcmp(rl.display[1], "my laptop ?") == 0,
	       "display of no comment, and of a comment with a control "
	       "character (%s|%s)",
	       rl.n > 0 ? rl.display[0] : "", rl.n > 1 ? rl.display[1] : "");
	age_recipient_list_free(&rl);

	/* age reads recipients in lowercase only. */
	for (len = 0; pub[len]; len++)
		if (pub[len] >= 'a' && pub[len] <= 'z')
			pub[len] = (char)(pub[len] - 'a' + 'A');
	ret = age_keys_recipients(&rl, pub, strlen(pub), why, sizeof(why));
	TAP_EQ_INT(ret, -EINVAL, "uppercase AGE1 refused (%s)", why);
	free(pub);
	free(ssh);
}

static void test_identity_refusals(void)
{
	static const struct refusal cases[] = {
		{ "# nothing\n", "line 1: no identities in the file" },
		{ "", "line 1: no identities in the file" },
		{ "AGE-SECRET-KEY-PQ-1QQQQ\n",
		  "line 1: post-quantum AGE-SECRET-KEY-PQ identities are not "
		  "supported" },
		{ "AGE-PLUGIN-YUBIKEY-1QQQQ\n",
		  "line 1: age plugin identities are not supported" },
		{ "# a\nage1ws0c709qz5lexlgvzwg0c2eafdwcm48cf7nf8lrz3gu0khkhnvtq7"
		  "ec7uf\n",
		  "line 2: a recipient (public key), not an identity" },
		{ "age-encryption.org/v1\n-> scrypt x 18\n",
		  "line 1: an encrypted identity file: open it with its "
		  "passphrase first" },
		{ "-----BEGIN RSA PRIVATE KEY-----\n",
		  "line 1: not an OpenSSH Ed25519 private key" },
		{ "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n",
		  "line 1: malformed OpenSSH private key" },
		{ "AGE-SECRET-KEY-1DLDCGM8W4SSFLXJ0Z9AK33NW0J2DTPEFLR4YT7VGZDHWSH"
		  "8V0VDSY4CLHW\n",
		  "line 1: malformed AGE-SECRET-KEY-1 identity" },
		{ "age-secret-key-1dldcgm8w4ssflxj0z9ak33nw0j2dtpeflr4yt7vgzdhwsh"
		  "8v0vdsy4clhv\n",
		  "line 1: not an AGE-SECRET-KEY-1 identity" },
	};
	struct age_identity_list l;
	char why[256];
	size_t i;
	int ret;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ret = age_keys_identities(&l, cases[i].text,
					  strlen(cases[i].text), why,
					  sizeof(why));
		tap_ok(ret == -EINVAL && strcmp(why, cases[i].why) == 0 &&
			       l.n == 0 && l.id == NULL,
		       "identity refusal %zu: %s", i, why);
	}
}

/* Every way of cutting or corrupting an OpenSSH key fails cleanly. */
static void test_ssh_key_damage(void)
{
	struct age_identity id;
	size_t len, i, bad = 0, ok = 0;
	char *text = fixture("id_ed25519", &len);
	char *copy = malloc(len);
	int ret;

	/* Up to the last LF, which is optional. */
	for (i = 0; i < len - 1; i++) {
		ret = age_ssh_identity(&id, text, i);
		if (ret == 0)
			age_identity_clear(&id);
		bad += ret == 0;
	}
	TAP_EQ_INT(bad, 0, "no prefix of the key file loads");
	bad = 0;
	for (i = 36; i < len - 35; i++) {
		memcpy(copy, text, len);
		copy[i] = copy[i] == 'A' ? 'B' : 'A';
		ret = age_ssh_identity(&id, copy, len);
		if (ret == 0) {
			age_identity_clear(&id);
			ok++;
		} else if (ret != -EINVAL && ret != -EPROTONOSUPPORT &&
			   ret != AGE_SSH_ENCRYPTED) {
			printf("# change at %zu: %d\n", i, ret);
			bad++;
		}
	}
	TAP_EQ_INT(bad, 0, "changed characters: loaded or -EINVAL");
	/* Only the check words and the comment are free to change. */
	tap_ok(ok < 40, "few changes load (%zu)", ok);
	free(copy);
	free(text);
}

int main(void)
{
	const char *v = getenv("VECTORS");

	if (sodium_init() < 0)
		return 1;
	snprintf(keys_dir, sizeof(keys_dir), "%s/../keys", v ? v : ".");
	test_stock_files();
	test_seal();
	test_low_order();
	test_recipient_refusals();
	test_recipient_forms();
	test_identity_refusals();
	test_ssh_key_damage();
	return tap_done();
}
