/* Unit tests of SSH signatures and allowed_signers, against the real
 * tool twice over: ssh-keygen's signatures (tests/vectors/sshsig, see its
 * README) verify and sshsig_sign() reproduces them byte for byte; and
 * ssh-keygen -Y verify, run here, accepts what sshsig_sign() and
 * sshsig_allowed_line() write and trusts exactly the allowed_signers
 * lines that sshsig_allowed() trusts. */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "keyfs/sshsig.h"

#include "tap.h"

extern char **environ;

static char vec_dir[4096], tmp_dir[64];
static uint8_t pk[SSHSIG_PK_LEN], sk[SSHSIG_SK_LEN];
static char *msg;
static size_t msglen;

/* A whole file, NUL-terminated, or NULL. */
static char *slurp(const char *dir, const char *name, size_t *len)
{
	char path[4200];
	char *buf = NULL;
	long n;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rb");
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (buf = malloc((size_t)n + 1)) && fread(buf, 1, (size_t)n, f) == (size_t)n) {
		buf[n] = '\0';
		*len = (size_t)n;
	} else {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

static int put_file(const char *name, const void *p, size_t n)
{
	char path[128];
	FILE *f;
	int ret;

	snprintf(path, sizeof(path), "%s/%s", tmp_dir, name);
	f = fopen(path, "wb");
	if (!f)
		return -1;
	ret = fwrite(p, 1, n, f) == n ? 0 : -1;
	return fclose(f) == 0 ? ret : -1;
}

/* ---- the test key, from the OpenSSH private key file ---- */

struct rd {
	const uint8_t *p;
	size_t n;
};

static bool rd_str(struct rd *r, struct rd *s)
{
	uint32_t n;

	if (r->n < 4)
		return false;
	n = (uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 | (uint32_t)r->p[2] << 8 | r->p[3];
	if (n > r->n - 4)
		return false;
	*s = (struct rd){ r->p + 4, n };
	r->p += 4 + n;
	r->n -= 4 + n;
	return true;
}

/* PROTOCOL.key: "openssh-key-v1\0", cipher "none", kdf "none", kdf
 * options, 1 key, its public blob, then the private section: two check
 * words, type, public key, and the 64-byte secret key in libsodium's
 * layout (seed || public key). */
static bool load_key(void)
{
	static const char begin[] = "-----BEGIN OPENSSH PRIVATE KEY-----\n";
	uint8_t bin[1024], seed_pk[SSHSIG_PK_LEN], seed_sk[SSHSIG_SK_LEN];
	struct rd r, f, sec, secret;
	char *pem, *end;
	size_t len, n;
	bool ok = false;
	int i;

	pem = slurp(vec_dir, "id_ed25519", &len);
	if (!pem || strncmp(pem, begin, strlen(begin)) != 0 ||
	    !(end = strstr(pem, "-----END")) ||
	    sodium_base642bin(bin, sizeof(bin), pem + strlen(begin),
			      (size_t)(end - pem) - strlen(begin), "\n", &n, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    n < 15 || memcmp(bin, "openssh-key-v1", 15) != 0)
		goto out;
	r = (struct rd){ bin + 15, n - 15 };
	for (i = 0; i < 3; i++)
		if (!rd_str(&r, &f))
			goto out;
	if (r.n < 4 || !(r.p += 4, r.n -= 4, rd_str(&r, &f)) || !rd_str(&r, &sec) || sec.n < 8)
		goto out;
	sec.p += 8;
	sec.n -= 8;
	if (!rd_str(&sec, &f) || !rd_str(&sec, &f) || f.n != SSHSIG_PK_LEN ||
	    !rd_str(&sec, &secret) || secret.n != SSHSIG_SK_LEN)
		goto out;
	memcpy(pk, f.p, SSHSIG_PK_LEN);
	memcpy(sk, secret.p, SSHSIG_SK_LEN);
	/* The seed alone gives the same key pair. */
	crypto_sign_seed_keypair(seed_pk, seed_sk, sk);
	ok = memcmp(seed_pk, pk, sizeof(pk)) == 0 && memcmp(seed_sk, sk, sizeof(sk)) == 0;
out:
	sodium_memzero(bin, sizeof(bin));
	free(pem);
	return ok;
}

/* ---- running ssh-keygen ---- */

/* argv run with stdin from in and stdout and stderr into out, both in
 * tmp_dir; its exit status, or -1. */
static int run(const char *const argv[], const char *in, const char *out)
{
	char inpath[128], outpath[128];
	posix_spawn_file_actions_t fa;
	int st, ret = -1;
	pid_t pid;

	snprintf(inpath, sizeof(inpath), "%s/%s", tmp_dir, in);
	snprintf(outpath, sizeof(outpath), "%s/%s", tmp_dir, out);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, inpath, O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, outpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	/* posix_spawn's argv is char *const[] for history's sake; it does
	 * not write to the strings. */
	if (posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ) == 0 &&
	    waitpid(pid, &st, 0) == pid && WIFEXITED(st))
		ret = WEXITSTATUS(st);
	posix_spawn_file_actions_destroy(&fa);
	return ret;
}

/* ssh-keygen -Y verify of tmp_dir's "sig" over "msg" against
 * "allowed"; its exit status. With want_good, its words are checked. */
static int keygen_verify(const char *principal, const char *ns, const char *when, bool want_good)
{
	char allowed[128], sig[128], opt[64], *out;
	size_t n;
	int ret;

	snprintf(allowed, sizeof(allowed), "%s/allowed", tmp_dir);
	snprintf(sig, sizeof(sig), "%s/sig", tmp_dir);
	snprintf(opt, sizeof(opt), "verify-time=%s", when ? when : "");
	{
		const char *argv[] = { "ssh-keygen", "-Y", "verify", "-f",	  allowed,
				       "-I",	     principal, "-n", ns, "-s",
				       sig,	     when ? "-O" : NULL, opt, NULL };

		ret = run(argv, "msg", "out");
	}
	if (ret == 0 && want_good) {
		out = slurp(tmp_dir, "out", &n);
		tap_ok(out && !strncmp(out, "Good \"", 6) && strstr(out, principal),
		       "ssh-keygen: %.*s", out ? (int)strcspn(out, "\n") : 0, out ? out : "");
		free(out);
	}
	return ret;
}

/* The vector allowed_signers and msg into tmp_dir. */
static int put_allowed_msg(void)
{
	char *text;
	size_t n;
	int ret;

	text = slurp(vec_dir, "allowed_signers", &n);
	ret = text && put_file("allowed", text, n) == 0 && put_file("msg", msg, msglen) == 0 ?
		      0 :
		      -1;
	free(text);
	return ret;
}

/* ---- verify ---- */

static void test_verify_vectors(void)
{
	static const char *sigs[] = { "msg.sig", "msg.sha256.sig" };
	uint8_t got[SSHSIG_PK_LEN];
	char *sig, *other, *m;
	size_t n, on, i;

	for (i = 0; i < 2; i++) {
		sig = slurp(vec_dir, sigs[i], &n);
		if (!tap_ok(sig != NULL, "read %s", sigs[i]))
			continue;
		memset(got, 0, sizeof(got));
		TAP_EQ_INT(sshsig_verify(sig, n, "keyfs", (uint8_t *)msg, msglen, got), 0,
			   "ssh-keygen's %s verifies", sigs[i]);
		tap_ok(memcmp(got, pk, sizeof(pk)) == 0, "%s: the signer is id_ed25519", sigs[i]);
		TAP_EQ_INT(sshsig_verify(sig, n, "other", (uint8_t *)msg, msglen, got), -EBADMSG,
			   "%s: another namespace is -EBADMSG", sigs[i]);
		m = malloc(msglen);
		memcpy(m, msg, msglen);
		m[msglen / 2] ^= 0x01;
		TAP_EQ_INT(sshsig_verify(sig, n, "keyfs", (uint8_t *)m, msglen, got), -EBADMSG,
			   "%s: a flipped message bit is -EBADMSG", sigs[i]);
		TAP_EQ_INT(sshsig_verify(sig, n, "keyfs", (uint8_t *)msg, msglen - 1, got),
			   -EBADMSG, "%s: a shorter message is -EBADMSG", sigs[i]);
		free(m);
		TAP_EQ_INT(sshsig_verify(sig, n - 1, "keyfs", (uint8_t *)msg, msglen, got), 0,
			   "%s: without its last newline still verifies", sigs[i]);
		TAP_EQ_INT(sshsig_verify(sig, n, "", (uint8_t *)msg, msglen, got), -EINVAL,
			   "%s: an empty namespace is refused", sigs[i]);
		free(sig);
	}
	other = slurp(vec_dir, "msg.other.sig", &on);
	if (tap_ok(other != NULL, "read msg.other.sig")) {
		TAP_EQ_INT(sshsig_verify(other, on, "keyfs", (uint8_t *)msg, msglen, got), -EBADMSG,
			   "namespace other under keyfs is -EBADMSG");
		TAP_EQ_INT(sshsig_verify(other, on, "other", (uint8_t *)msg, msglen, got), 0,
			   "namespace other under other verifies");
	}
	free(other);
}

/* Every prefix and every one-byte change of a good armor is refused,
 * with -EINVAL or -EBADMSG, never accepted. */
static void test_damage(void)
{
	uint8_t got[SSHSIG_PK_LEN];
	size_t n, i, bad = 0, einval = 0;
	char *sig;
	int ret;

	sig = slurp(vec_dir, "msg.sig", &n);
	if (!tap_ok(sig != NULL, "read msg.sig"))
		return;
	for (i = 0; i + 1 < n; i++)
		if (sshsig_verify(sig, i, "keyfs", (uint8_t *)msg, msglen, got) != -EINVAL)
			bad++;
	TAP_EQ_INT(bad, 0, "every truncation (%zu) is -EINVAL", n - 1);
	bad = 0;
	for (i = 0; i < n; i++) {
		sig[i] ^= 0x01;
		ret = sshsig_verify(sig, n, "keyfs", (uint8_t *)msg, msglen, got);
		sig[i] ^= 0x01;
		if (ret != -EINVAL && ret != -EBADMSG)
			bad++;
		einval += ret == -EINVAL;
	}
	TAP_EQ_INT(bad, 0, "every flipped bit of the armor is refused (%zu -EINVAL)", einval);
	free(sig);
}

/* An armor of arbitrary blob bytes, as ssh-keygen lays it out. */
static size_t armor(char *out, size_t cap, const uint8_t *blob, size_t n)
{
	char b64[2048];
	size_t len, i, o;

	sodium_bin2base64(b64, sizeof(b64), blob, n, sodium_base64_VARIANT_ORIGINAL);
	len = strlen(b64);
	o = (size_t)snprintf(out, cap, "-----BEGIN SSH SIGNATURE-----\n");
	for (i = 0; i < len; i += 70)
		o += (size_t)snprintf(out + o, cap - o, "%.70s\n", b64 + i);
	o += (size_t)snprintf(out + o, cap - o, "-----END SSH SIGNATURE-----\n");
	return o;
}

/* Blobs changed in place, re-armored: each field's refusal. */
static void test_blob_fields(void)
{
	uint8_t blob[1024], b[1100], got[SSHSIG_PK_LEN];
	char *sig, text[2048];
	size_t n, len, t;
	/* Offsets in the keyfs blob: magic 6, version 4, key 4+51, then
	 * namespace 4+5, reserved 4, hash 4+6, signature 4+83. */
	const size_t ver = 6, keytype = 10 + 4 + 4, ns = 10 + 55, res = ns + 9, alg = res + 4;

	sig = slurp(vec_dir, "msg.sig", &n);
	if (!tap_ok(sig != NULL && put_allowed_msg() == 0, "read msg.sig"))
		return;
	tap_ok(sodium_base642bin(blob, sizeof(blob), sig + 30, n - 30 - 28, "\n", &len, NULL,
				 sodium_base64_VARIANT_ORIGINAL) == 0 &&
		       len == alg + 10 + 87,
	       "decode msg.sig's blob (%zu bytes)", len);
	free(sig);

	t = armor(text, sizeof(text), blob, len);
	TAP_EQ_INT(sshsig_verify(text, t, "keyfs", (uint8_t *)msg, msglen, got), 0,
		   "the test's armor of the blob verifies");
	memcpy(b, blob, len);
	b[ver + 3] = 2;
	t = armor(text, sizeof(text), b, len);
	TAP_EQ_INT(sshsig_verify(text, t, "keyfs", (uint8_t *)msg, msglen, got), -EINVAL,
		   "version 2 is -EINVAL");
	b[ver + 3] = 0;
	t = armor(text, sizeof(text), b, len);
	TAP_EQ_INT(sshsig_verify(text, t, "keyfs", (uint8_t *)msg, msglen, got), -EINVAL,
		   "version 0 is -EINVAL");
	memcpy(b, blob, len);
	memcpy(b + keytype, "ssh-ed25518", 11);
	t = armor(text, sizeof(text), b, len);
	TAP_EQ_INT(sshsig_verify(text, t, "keyfs", (uint8_t *)msg, msglen, got), -EINVAL,
		   "another key type is -EINVAL");
	memcpy(b, blob, len);
	memcpy(b + alg + 4, "sha384", 6);
	t = armor(text, sizeof(text), b, len);
	TAP_EQ_INT(sshsig_verify(text, t, "keyfs", (uint8_t *)msg, msglen, got), -EINVAL,
		   "hash sha384 is -EINVAL");
	memcpy(b, blob, len);
	b[len] = 0;
	t = armor(text, sizeof(text), b, len + 1);
	TAP_EQ_INT(sshsig_verify(text, t, "keyfs", (uint8_t *)msg, msglen, got), -EINVAL,
		   "a byte after the signature is -EINVAL");
	memcpy(b, blob, len);
	b[ns + 4] = 'K';
	t = armor(text, sizeof(text), b, len);
	TAP_EQ_INT(sshsig_verify(text, t, "keyfs", (uint8_t *)msg, msglen, got), -EBADMSG,
		   "namespace Keyfs under keyfs is -EBADMSG");
	b[ns + 4] = '\0';
	t = armor(text, sizeof(text), b, len);
	TAP_EQ_INT(sshsig_verify(text, t, "keyfs", (uint8_t *)msg, msglen, got), -EINVAL,
		   "a NUL in the namespace is -EINVAL");
	/* A reserved field with content: not signed, ignored, as the
	 * protocol says and ssh-keygen does (checked below). */
	memcpy(b, blob, res);
	memset(b + res, 0, 3);
	b[res + 3] = 3;
	memcpy(b + res + 4, "tag", 3);
	memcpy(b + res + 7, blob + res + 4, len - res - 4);
	t = armor(text, sizeof(text), b, len + 3);
	TAP_EQ_INT(sshsig_verify(text, t, "keyfs", (uint8_t *)msg, msglen, got), 0,
		   "a reserved field with content is ignored");
	if (put_file("sig", text, t) == 0)
		TAP_EQ_INT(keygen_verify("signer@keyfs", "keyfs", NULL, false), 0,
			   "ssh-keygen ignores the reserved field too");
}

/* Armor text the way people change it. We are never more lenient than
 * ssh-keygen: what we accept, it accepts. */
static void test_armor_text(void)
{
	uint8_t got[SSHSIG_PK_LEN];
	char *sig, text[2048], *p;
	size_t n, t, i;
	int ret;
	struct {
		const char *what;
		int want;
	} cases[] = {
		{ "CRLF line ends (BEGIN's too)", -EINVAL },
		{ "CR before the base64's newlines", 0 },
		{ "one long base64 line", 0 },
		{ "a space before BEGIN", -EINVAL },
		{ "text after END", -EINVAL },
		{ "white space after END", 0 },
		{ "no padding", -EINVAL },
		{ "stray bits before the padding", -EINVAL },
		{ "a space inside the base64", -EINVAL },
		{ "a byte above 0x7f inside the base64", -EINVAL },
		{ "over SSHSIG_ARMOR_MAX", -EINVAL },
	};

	sig = slurp(vec_dir, "msg.sig", &n);
	if (!tap_ok(sig != NULL && put_allowed_msg() == 0, "read msg.sig"))
		return;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memcpy(text, sig, n);
		t = n;
		switch (i) {
		case 0:
			for (t = 0, p = sig; p < sig + n; p++) {
				if (*p == '\n')
					text[t++] = '\r';
				text[t++] = *p;
			}
			break;
		case 1:
			for (t = 0, p = sig; p < sig + n; p++) {
				if (*p == '\n' && p > sig + 30 && p < sig + n - 28)
					text[t++] = '\r';
				text[t++] = *p;
			}
			break;
		case 2:
			for (t = 0, p = sig; p < sig + n; p++)
				if (*p != '\n' || p < sig + 30 || p >= sig + n - 29)
					text[t++] = *p;
			break;
		case 3:
			text[0] = ' ';
			memcpy(text + 1, sig, n);
			t = n + 1;
			break;
		case 4:
			memcpy(text + n, "x\n", 2);
			t = n + 2;
			break;
		case 5:
			memcpy(text + n, " \n\n", 3);
			t = n + 3;
			break;
		case 6:
			/* "...Aw==\n-----END": drop the "==" */
			p = strstr(text, "==\n-----END");
			memmove(p, p + 2, (size_t)(text + n - p - 2));
			t = n - 2;
			break;
		case 7:
			/* Before "==" only a digit's top 2 bits count: A, Q, g
			 * or w; the next digit sets a stray low bit. */
			p = strstr(text, "==\n-----END");
			p[-1]++;
			break;
		case 8:
			text[40] = ' ';
			break;
		case 9:
			text[40] = (char)0xc1;
			break;
		case 10:
			memset(text + n, '\n', SSHSIG_ARMOR_MAX);
			t = n + SSHSIG_ARMOR_MAX;
			break;
		}
		ret = sshsig_verify(text, t, "keyfs", (uint8_t *)msg, msglen, got);
		TAP_EQ_INT(ret, cases[i].want, "armor with %s: %d", cases[i].what, cases[i].want);
		if (ret == 0 && put_file("sig", text, t) == 0)
			TAP_EQ_INT(keygen_verify("signer@keyfs", "keyfs", NULL, false), 0,
				   "ssh-keygen accepts it too");
	}
	free(sig);
}

/* ---- sign ---- */

static void test_sign_vectors(void)
{
	static const struct {
		const char *ns, *file;
	} v[] = { { "keyfs", "msg.sig" }, { "other", "msg.other.sig" } };
	char out[SSHSIG_ARMOR_MAX], *want;
	size_t n, i;
	int ret;

	for (i = 0; i < 2; i++) {
		want = slurp(vec_dir, v[i].file, &n);
		if (!tap_ok(want != NULL, "read %s", v[i].file))
			continue;
		ret = sshsig_sign(sk, v[i].ns, (uint8_t *)msg, msglen, out, sizeof(out));
		TAP_EQ_INT(ret, n, "sign under %s: %zu bytes, as ssh-keygen", v[i].ns, n);
		tap_ok(ret >= 0 && (size_t)ret == n && memcmp(out, want, n) == 0 && !out[n],
		       "sign under %s gives ssh-keygen's %s byte for byte", v[i].ns, v[i].file);
		TAP_EQ_INT(sshsig_sign(sk, v[i].ns, (uint8_t *)msg, msglen, out, n), -ENOSPC,
			   "no room for the NUL is -ENOSPC");
		TAP_EQ_INT(sshsig_sign(sk, v[i].ns, (uint8_t *)msg, msglen, out, n + 1), n,
			   "exactly enough room");
		free(want);
	}
}

static void test_sign_limits(void)
{
	char ns[SSHSIG_NAMESPACE_MAX + 2], out[SSHSIG_ARMOR_MAX];
	uint8_t got[SSHSIG_PK_LEN];
	int ret;

	TAP_EQ_INT(sshsig_sign(sk, "", (uint8_t *)msg, msglen, out, sizeof(out)), -EINVAL,
		   "an empty namespace is -EINVAL");
	memset(ns, 'n', sizeof(ns) - 1);
	ns[sizeof(ns) - 1] = '\0';
	TAP_EQ_INT(sshsig_sign(sk, ns, (uint8_t *)msg, msglen, out, sizeof(out)), -EINVAL,
		   "a namespace over SSHSIG_NAMESPACE_MAX is -EINVAL");
	TAP_EQ_INT(sshsig_verify("", 0, ns, (uint8_t *)msg, msglen, got), -EINVAL,
		   "verify refuses that namespace too");
	ns[SSHSIG_NAMESPACE_MAX] = '\0';
	ret = sshsig_sign(sk, ns, (uint8_t *)msg, msglen, out, sizeof(out));
	tap_ok(ret > 0 && ret < SSHSIG_ARMOR_MAX, "the longest namespace fits (%d bytes)", ret);
	TAP_EQ_INT(sshsig_verify(out, (size_t)ret, ns, (uint8_t *)msg, msglen, got), 0,
		   "and verifies");
	ret = sshsig_sign(sk, "keyfs", NULL, 0, out, sizeof(out));
	TAP_EQ_INT(sshsig_verify(out, (size_t)ret, "keyfs", NULL, 0, got), 0,
		   "an empty message signs and verifies");
}

/* ssh-keygen -Y verify accepts our signatures of a fresh key under a
 * line of sshsig_allowed_line(): the proof that a restorer without keyfs
 * can check them. Namespace lengths 5 (keyfs), 39 (the base64 ends at a
 * line's end) and the longest; messages empty and not. */
static void test_keygen_accepts(void)
{
	uint8_t kpk[SSHSIG_PK_LEN], ksk[SSHSIG_SK_LEN];
	char ns[SSHSIG_NAMESPACE_MAX + 1], out[SSHSIG_ARMOR_MAX], line[512], key[96];
	static const size_t nslen[] = { 0, 39, SSHSIG_NAMESPACE_MAX };
	size_t i, n;
	int ret, len;

	crypto_sign_keypair(kpk, ksk);
	len = sshsig_allowed_line("keyfs-test@example.org", kpk, line, sizeof(line));
	tap_ok(len > 0 && put_file("allowed", line, (size_t)len) == 0, "allowed line: %s", line);
	for (i = 0; i < 3; i++) {
		if (i == 0) {
			strcpy(ns, "keyfs");
		} else {
			memset(ns, 'a', nslen[i]);
			ns[nslen[i]] = '\0';
			/* a line for this namespace too */
			sshsig_pubkey_text(kpk, key, sizeof(key));
			snprintf(line, sizeof(line), "keyfs-test@example.org %s\n", key);
			put_file("allowed", line, strlen(line));
		}
		for (n = 0; n < 2; n++) {
			ret = sshsig_sign(ksk, ns, (uint8_t *)msg, n ? msglen : 0, out, sizeof(out));
			if (!tap_ok(ret > 0 && put_file("sig", out, (size_t)ret) == 0 &&
					    put_file("msg", msg, n ? msglen : 0) == 0,
				    "sign (namespace of %zu, message of %zu)", strlen(ns),
				    n ? msglen : 0))
				continue;
			TAP_EQ_INT(keygen_verify("keyfs-test@example.org", ns, NULL, true), 0,
				   "ssh-keygen -Y verify accepts it");
		}
	}
	/* The harness sees a refusal: a changed message. */
	put_file("msg", "other", 5);
	tap_ok(keygen_verify("keyfs-test@example.org", ns, NULL, false) != 0,
	       "ssh-keygen refuses it for another message");
	sodium_memzero(ksk, sizeof(ksk));
}

/* ---- allowed_signers ---- */

static void test_allowed_vector(void)
{
	static const struct {
		const char *ns, *want;
	} cases[] = {
		{ "keyfs", "signer@keyfs" }, { "other", "signer@keyfs" },
		{ "git", "elsewhere@keyfs" }, { "file", "elsewhere@keyfs" },
		{ "ssh", NULL },
	};
	const long long now = time(NULL);
	uint8_t opk[SSHSIG_PK_LEN], rpk[SSHSIG_PK_LEN], rsk[SSHSIG_SK_LEN], blob[51];
	char *text, *pub, p[SSHSIG_PRINCIPAL_MAX + 1], small[4];
	size_t n, pn, i;
	bool got;

	text = slurp(vec_dir, "allowed_signers", &n);
	if (!tap_ok(text != NULL, "read allowed_signers"))
		return;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		strcpy(p, "unchanged");
		got = sshsig_allowed(text, n, pk, cases[i].ns, now, p, sizeof(p));
		if (cases[i].want)
			tap_ok(got && !strcmp(p, cases[i].want), "namespace %s: %s (got %s)",
			       cases[i].ns, cases[i].want, got ? p : "none");
		else
			tap_ok(!got && !strcmp(p, "unchanged"), "namespace %s: no line",
			       cases[i].ns);
	}
	tap_ok(sshsig_allowed(text, n, pk, "keyfs", now, NULL, 0), "principal may be NULL");
	tap_ok(sshsig_allowed(text, n, pk, "keyfs", now, small, sizeof(small)) &&
		       !strcmp(small, "sig"),
	       "a short principal buffer gets the start, NUL-terminated");
	/* the other key, through its .pub */
	pub = slurp(vec_dir, "other_ed25519.pub", &pn);
	/* "ssh-ed25519 " and 68 base64 digits of the 51-byte blob, whose
	 * last 32 bytes are the key */
	tap_ok(pub && sodium_base642bin(blob, sizeof(blob), pub + 12, 68, NULL, &pn, NULL,
					sodium_base64_VARIANT_ORIGINAL) == 0 &&
		       pn == sizeof(blob),
	       "read other_ed25519.pub's key");
	memcpy(opk, blob + sizeof(blob) - sizeof(opk), sizeof(opk));
	free(pub);
	tap_ok(sshsig_allowed(text, n, opk, "anything", now, p, sizeof(p)) &&
		       !strcmp(p, "other@keyfs"),
	       "the other key: other@keyfs in any namespace");
	crypto_sign_keypair(rpk, rsk);
	tap_ok(!sshsig_allowed(text, n, rpk, "keyfs", now, p, sizeof(p)), "an unknown key: no line");
	tap_ok(!sshsig_allowed(text, n / 2, pk, "keyfs", now, p, sizeof(p)),
	       "the first half of the file: no line");
	free(text);
}

/* What ssh-keygen answers for each principal of the vector file, with
 * ssh-keygen's own signature in each namespace, agrees with
 * sshsig_allowed() over that principal's line. */
static void test_allowed_vector_keygen(void)
{
	static const char *principals[] = { "other@keyfs",  "rsa@keyfs",	"ca@keyfs",
					    "expired@keyfs", "future@keyfs",	"elsewhere@keyfs",
					    "unknown@keyfs", "commented@keyfs", "signer@keyfs" };
	static const char *spaces[] = { "keyfs", "git" };
	const long long now = time(NULL);
	char *text, *line, *nl, out[SSHSIG_ARMOR_MAX], p[SSHSIG_PRINCIPAL_MAX + 1];
	size_t n, i, j, k, disagree = 0;
	bool ours, theirs;
	int ret;

	text = slurp(vec_dir, "allowed_signers", &n);
	if (!tap_ok(text != NULL && put_file("allowed", text, n) == 0 &&
			    put_file("msg", msg, msglen) == 0,
		    "allowed_signers and msg in place"))
		goto out;
	for (j = 0; j < 2; j++) {
		ret = sshsig_sign(sk, spaces[j], (uint8_t *)msg, msglen, out, sizeof(out));
		if (ret < 0 || put_file("sig", out, (size_t)ret) != 0)
			continue;
		for (i = 0; i < sizeof(principals) / sizeof(principals[0]); i++) {
			/* that principal's line alone */
			ours = false;
			for (line = text; line < text + n; line = nl + 1) {
				nl = memchr(line, '\n', (size_t)(text + n - line));
				if (!nl)
					break;
				k = strspn(line, " \t");
				if (!strncmp(line + k, principals[i], strlen(principals[i])))
					ours = sshsig_allowed(line, (size_t)(nl - line), pk,
							      spaces[j], now, p, sizeof(p));
			}
			theirs = keygen_verify(principals[i], spaces[j], NULL, false) == 0;
			if (!tap_ok(ours == theirs, "%s in %s: keyfs %d, ssh-keygen %d",
				    principals[i], spaces[j], ours, theirs))
				disagree++;
		}
	}
	TAP_EQ_INT(disagree, 0, "keyfs and ssh-keygen agree on every line of the vector file");
out:
	free(text);
}

/* One line at a time, against ssh-keygen at a fixed time in a zone with
 * summer time (TZ, inherited by ssh-keygen). */
static void test_allowed_keygen_lines(void)
{
	static const struct {
		const char *line; /* $K: our key; $O: the other; $R: RSA */
		const char *principal; /* what -I names */
		bool want;
	} cases[] = {
		{ "a@x $K", "a@x", true },
		{ "a@x,b@y $K", "a@x", true },
		{ "*@x $K", "*@x", true },
		{ "a@x,!a@x $K", "a@x", false },
		{ "!a@x $K", "!a@x", false },
		{ "\"a b\" $K", "a b", true },
		{ "\"a b\"$K", "a b", true },
		{ "a@x\"b $K", "a@x\"b", false },
		{ "  a@x\t$K comment with words", "a@x", true },
		{ "a@x $K\r", "a@x", true },
		{ "# a@x $K", "# a@x", false },
		{ "a@x $O", "a@x", false },
		{ "a@x $R", "a@x", false },
		{ "a@x namespaces=\"keyfs\" $K", "a@x", true },
		{ "a@x NameSpaces=\"k?yf*\" $K", "a@x", true },
		{ "a@x namespaces=\"git\" $K", "a@x", false },
		{ "a@x namespaces=\"*,!keyfs\" $K", "a@x", false },
		{ "a@x namespaces=\"a b,keyfs\" $K", "a@x", true },
		{ "a@x namespaces=\"x\\\"y,keyfs\" $K", "a@x", true },
		{ "a@x namespaces=\"keyfs $K", "a@x", false },
		{ "a@x namespaces=keyfs $K", "a@x", false },
		{ "a@x namespaces=\"keyfs\",namespaces=\"keyfs\" $K", "a@x", false },
		{ "a@x ,namespaces=\"keyfs\" $K", "a@x", true },
		{ "a@x namespaces=\"keyfs\", $K", "a@x", false },
		{ "a@x cert-authority $K", "a@x", false },
		{ "a@x Cert-Authority,namespaces=\"keyfs\" $K", "a@x", false },
		{ "a@x no-touch-required $K", "a@x", false },
		{ "a@x ssh-ed25519 $K", "a@x", false },
		/* now is 2030-07-01 12:00:00Z, 08:00 EDT */
		{ "a@x valid-after=\"20300101\" $K", "a@x", true },
		{ "a@x valid-after=\"20300702\" $K", "a@x", false },
		{ "a@x valid-before=\"20300701\" $K", "a@x", false },
		{ "a@x valid-before=\"20300702\" $K", "a@x", true },
		{ "a@x valid-before=\"20300701120000Z\" $K", "a@x", true },
		{ "a@x valid-before=\"20300701115959Z\" $K", "a@x", false },
		{ "a@x valid-before=\"20300701115959utc\" $K", "a@x", false },
		{ "a@x valid-after=\"20300701120000z\" $K", "a@x", true },
		{ "a@x valid-after=\"20300701120001Z\" $K", "a@x", false },
		/* 07:30 read as EST (tm_isdst 0) is 12:30Z: still valid */
		{ "a@x valid-before=\"203007010730\" $K", "a@x", true },
		{ "a@x valid-before=\"203007010630\" $K", "a@x", false },
		{ "a@x VALID-AFTER=\"20300101\",valid-before=\"20310101\" $K", "a@x", true },
		{ "a@x valid-after=\"20310101\",valid-before=\"20300101\" $K", "a@x", false },
		{ "a@x valid-before=\"20300101\",valid-before=\"20310101\" $K", "a@x", false },
		{ "a@x valid-before=\"2031010112\" $K", "a@x", false },
		{ "a@x valid-before=\"20311301\" $K", "a@x", false },
		{ "a@x valid-before=\"20310231\" $K", "a@x", true },
		{ "a@x valid-before=20310101 $K", "a@x", false },
	};
	char key[SSHSIG_PUBKEY_TEXT_MAX], other[128], rsa[512], line[1024], *pub, *o;
	char p[SSHSIG_PRINCIPAL_MAX + 1];
	const long long now = 1909137600; /* 2030-07-01T12:00:00Z */
	size_t i, n, k, disagree = 0;
	bool ours, theirs;

	setenv("TZ", "EST5EDT", 1);
	tzset();
	sshsig_pubkey_text(pk, key, sizeof(key));
	pub = slurp(vec_dir, "other_ed25519.pub", &n);
	snprintf(other, sizeof(other), "%.80s", pub ? pub : "");
	free(pub);
	pub = slurp(vec_dir, "id_rsa.pub", &n);
	snprintf(rsa, sizeof(rsa), "%s", pub ? pub : "");
	if (strchr(rsa, '\n'))
		*strchr(rsa, '\n') = '\0';
	free(pub);
	if (!tap_ok(put_file("msg", msg, msglen) == 0, "msg in place"))
		return;
	{
		char out[SSHSIG_ARMOR_MAX];
		int ret = sshsig_sign(sk, "keyfs", (uint8_t *)msg, msglen, out, sizeof(out));

		put_file("sig", out, ret > 0 ? (size_t)ret : 0);
	}
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (k = 0, o = line; cases[i].line[k]; k++) {
			const char c = cases[i].line[k] == '$' ? cases[i].line[k + 1] : 0;
			const char *sub = c == 'K' ? key : c == 'O' ? other : c == 'R' ? rsa : NULL;

			if (sub) {
				o += sprintf(o, "%s", sub);
				k++;
			} else {
				*o++ = cases[i].line[k];
			}
		}
		*o = '\0';
		strcpy(p, "-");
		ours = sshsig_allowed(line, strlen(line), pk, "keyfs", now, p, sizeof(p));
		tap_ok(ours == cases[i].want && (!ours || !strcmp(p, cases[i].principal)),
		       "keyfs on %s: %d (%s)", cases[i].line, cases[i].want, p);
		strcat(line, "\n");
		put_file("allowed", line, strlen(line));
		theirs = keygen_verify(cases[i].principal, "keyfs", "20300701120000Z", false) == 0;
		if (!tap_ok(ours == theirs, "ssh-keygen on %s: %d", cases[i].line, theirs))
			disagree++;
	}
	TAP_EQ_INT(disagree, 0, "keyfs and ssh-keygen agree on every line");
	unsetenv("TZ");
	tzset();
}

static void test_allowed_line(void)
{
	static const char *bad[] = { "", "a b", "a,b", "a\"b", "#a", "!a", "a\tb", "a\x01" };
	char line[512], long_p[SSHSIG_PRINCIPAL_MAX + 2], p[SSHSIG_PRINCIPAL_MAX + 1];
	char key[SSHSIG_PUBKEY_TEXT_MAX], want[512], *pub;
	size_t i, n;
	int ret;

	TAP_EQ_INT(sshsig_pubkey_text(pk, key, sizeof(key)), 80, "public key text is 80 bytes");
	pub = slurp(vec_dir, "id_ed25519.pub", &n);
	tap_ok(pub && !strncmp(pub, key, strlen(key)) && pub[strlen(key)] == ' ',
	       "public key text as id_ed25519.pub: %s", key);
	free(pub);
	TAP_EQ_INT(sshsig_pubkey_text(pk, key, 80), -ENOSPC, "no room for the NUL is -ENOSPC");
	ret = sshsig_allowed_line("backup@host", pk, line, sizeof(line));
	snprintf(want, sizeof(want), "backup@host namespaces=\"keyfs\" %s\n", key);
	tap_ok(ret == (int)strlen(want) && !strcmp(line, want), "allowed line: %s", line);
	TAP_EQ_INT(sshsig_allowed_line("backup@host", pk, line, strlen(want)), -ENOSPC,
		   "no room for the NUL is -ENOSPC");
	tap_ok(sshsig_allowed(line, strlen(line), pk, "keyfs", 0, p, sizeof(p)) &&
		       !strcmp(p, "backup@host"),
	       "the line reads back");
	tap_ok(!sshsig_allowed(line, strlen(line), pk, "git", 0, p, sizeof(p)),
	       "and only for keyfs");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		TAP_EQ_INT(sshsig_allowed_line(bad[i], pk, line, sizeof(line)), -EINVAL,
			   "principal \"%s\" is -EINVAL", bad[i]);
	memset(long_p, 'p', sizeof(long_p) - 1);
	long_p[sizeof(long_p) - 1] = '\0';
	TAP_EQ_INT(sshsig_allowed_line(long_p, pk, line, sizeof(line)), -EINVAL,
		   "a principal over SSHSIG_PRINCIPAL_MAX is -EINVAL");
	long_p[SSHSIG_PRINCIPAL_MAX] = '\0';
	ret = sshsig_allowed_line(long_p, pk, line, sizeof(line));
	tap_ok(ret > 0 && sshsig_allowed(line, (size_t)ret, pk, "keyfs", 0, p, sizeof(p)) &&
		       !strcmp(p, long_p),
	       "the longest principal is written and read back");
}

int main(void)
{
	const char *v = getenv("VECTORS");

	if (sodium_init() < 0)
		return 1;
	/* VECTORS is <root>/tests/vectors/age. */
	snprintf(vec_dir, sizeof(vec_dir), "%s/../sshsig", v ? v : "tests/vectors/age");
	strcpy(tmp_dir, "/tmp/keyfs-test-sshsig.XXXXXX");
	msg = slurp(vec_dir, "msg", &msglen);
	if (!tap_ok(msg != NULL, "read %s/msg", vec_dir) ||
	    !tap_ok(load_key(), "the secret key of id_ed25519") ||
	    !tap_ok(mkdtemp(tmp_dir) != NULL, "temporary directory"))
		return tap_done();
	test_verify_vectors();
	test_damage();
	test_blob_fields();
	test_armor_text();
	test_sign_vectors();
	test_sign_limits();
	test_keygen_accepts();
	test_allowed_line();
	test_allowed_vector();
	test_allowed_vector_keygen();
	test_allowed_keygen_lines();
	tap_ok(tap_rmtree(tmp_dir) == 0, "temporary directory removed");
	sodium_memzero(sk, sizeof(sk));
	free(msg);
	return tap_done();
}
