/* Unit tests of the age module: the C2SP CCTV vectors, and seal/unseal
 * round trips with the failures keyfs must tell apart.
 *
 * Some vectors are zlib-compressed; zlib's inflate decodes them. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>
#include <zlib.h>

#include "keyfs/age.h"
#include "keyfs/age_recipient.h"
#include "keyfs/armor.h"

#include "tap.h"

/* ---- inflate, for the compressed vectors ---- */

/* A whole zlib stream into a growing buffer; trailing bytes after the
 * stream's end, or a stream cut short, are errors. */
static int zlib_inflate(const uint8_t *in, size_t len, uint8_t **out,
			size_t *outlen)
{
	z_stream zs = { 0 };
	uint8_t *buf = NULL, *p;
	size_t cap = 0;
	int ret;

	if (len > UINT_MAX || inflateInit(&zs) != Z_OK)
		return -1;
	zs.next_in = (Bytef *)in;
	zs.avail_in = (uInt)len;
	do {
		if (zs.total_out == cap) {
			cap = cap ? cap * 2 : 65536;
			p = realloc(buf, cap);
			if (!p) {
				ret = Z_MEM_ERROR;
				break;
			}
			buf = p;
		}
		zs.next_out = buf + zs.total_out;
		zs.avail_out = (uInt)(cap - zs.total_out);
		ret = inflate(&zs, Z_NO_FLUSH);
	} while (ret == Z_OK);
	inflateEnd(&zs);
	if (ret != Z_STREAM_END || zs.avail_in) {
		free(buf);
		return -1;
	}
	*out = buf;
	*outlen = zs.total_out;
	return 0;
}

/* ---- CCTV vectors ---- */

enum expect { X_SUCCESS, X_NO_MATCH, X_HMAC, X_HEADER, X_PAYLOAD, X_ARMOR,
	      X_NCLASS };
static const char *const class_name[X_NCLASS] = {
	"success", "no match", "HMAC failure", "header failure",
	"payload failure", "armor failure",
};
static const int class_errno[X_NCLASS] = {
	0, -EKEYREJECTED, -EBADMSG, -EINVAL, -EBADMSG, -EINVAL,
};
static int nrun[X_NCLASS], nskip[X_NCLASS];

/* Header failures of the post-quantum stanza that only its identity
 * detects (its arguments, its share, its shared secret): a file key
 * cannot, and keyfs has no such identity. */
static const char *const recipient_checks[] = {
	"hybrid_extra_argument", "hybrid_identity", "hybrid_long_share",
	"hybrid_low_order", "hybrid_not_canonical_enc", "hybrid_short_share",
};

/* Why a vector keyfs cannot decide is left undecided: its identity is of
 * a type keyfs does not support. */
#define PQ_SKIP "post-quantum identity (mlkem768x25519, age1pq): not supported by keyfs"
#define X25519_ID "AGE-SECRET-KEY-1"

struct vector {
	int expect;
	const char *payload; /* hex SHA-256 */
	struct age_pass pass[4];
	const char *ident[4];
	size_t npass, nident, keylen;
	uint8_t key[64];
	bool armored, compressed;
	const uint8_t *body;
	size_t bodylen;
};

static int parse_expect(const char *v)
{
	int i;

	for (i = 0; i < X_NCLASS; i++)
		if (strcmp(v, class_name[i]) == 0)
			return i;
	return -1;
}

/* "key: value" lines, an empty line, the age file. Returns a reason to
 * ignore the file, or NULL. */
static const char *parse_vector(char *buf, size_t len, struct vector *v)
{
	char *line = buf, *nl, *val;

	memset(v, 0, sizeof(*v));
	v->expect = -1;
	for (;;) {
		nl = memchr(line, '\n', len - (line - buf));
		if (!nl)
			return "no end of the vector's headers";
		*nl = '\0';
		if (line == nl)
			break;
		val = strstr(line, ": ");
		if (!val)
			return "malformed vector header";
		*val = '\0';
		val += 2;
		if (strcmp(line, "expect") == 0)
			v->expect = parse_expect(val);
		else if (strcmp(line, "payload") == 0)
			v->payload = val;
		else if (strcmp(line, "passphrase") == 0 && v->npass < 4)
			v->pass[v->npass++] = (struct age_pass){ val,
								 strlen(val) };
		else if (strcmp(line, "file key") == 0)
			sodium_hex2bin(v->key, sizeof(v->key), val,
				       strlen(val), NULL, &v->keylen, NULL);
		else if (strcmp(line, "armored") == 0)
			v->armored = strcmp(val, "yes") == 0;
		else if (strcmp(line, "compressed") == 0)
			v->compressed = strcmp(val, "zlib") == 0;
		else if (strcmp(line, "identity") == 0 && v->nident < 4)
			v->ident[v->nident++] = val;
		else if (strcmp(line, "comment") != 0)
			return "unknown vector key";
		line = nl + 1;
	}
	if (v->expect < 0)
		return "unknown expect";
	v->body = (uint8_t *)nl + 1;
	v->bodylen = len - (size_t)(v->body - (uint8_t *)buf);
	return NULL;
}

static bool payload_ok(const struct vector *v, const uint8_t *pt, size_t n)
{
	uint8_t h[crypto_hash_sha256_BYTES];
	char hex[sizeof(h) * 2 + 1];

	crypto_hash_sha256(h, pt, n);
	sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
	return v->payload && strcmp(hex, v->payload) == 0;
}

static bool in_list(const char *name, const char *const *list, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(name, list[i]) == 0)
			return true;
	return false;
}

/* The vector's X25519 identities into id; how many, or -1 if one does
 * not parse. *others counts the identities of other types. */
static int x25519_identities(const struct vector *v, struct age_identity *id,
			     size_t *others)
{
	size_t i;
	int n = 0;

	*others = 0;
	for (i = 0; i < v->nident; i++) {
		if (strncmp(v->ident[i], X25519_ID, strlen(X25519_ID)) != 0) {
			(*others)++;
			continue;
		}
		if (age_x25519_identity(&id[n], v->ident[i],
					strlen(v->ident[i])) < 0)
			return -1;
		n++;
	}
	return n;
}

/* Runs the age file through passphrases, identities or the file key.
 * NULL if decided (and reported), else the reason it cannot be. */
static const char *decide(const char *name, const struct vector *v,
			  const uint8_t *in, size_t len)
{
	struct age_identity id[4] = { 0 };
	uint8_t *pt = NULL;
	size_t ptlen = 0, others, i;
	int want = class_errno[v->expect], ret, nid;
	bool ok;

	nid = x25519_identities(v, id, &others);
	if (nid < 0) {
		tap_ok(false, "vector %s: X25519 identity parses", name);
		ret = 0;
	} else if (v->npass > 0) {
		ret = age_unseal(in, len, v->pass, v->npass, &pt, &ptlen, NULL);
	} else if (nid > 0 && (others == 0 || v->expect == X_HEADER)) {
		/* A header failure does not depend on which identity would
		 * open the file: keyfs' own X25519 ones decide it. */
		ret = age_unseal_with(in, len, id, (size_t)nid, &pt, &ptlen,
				      NULL);
	} else if (v->expect == X_NO_MATCH) {
		ret = 0;
		name = NULL;
	} else if (v->keylen != AGE_FILE_KEY_LEN ||
		   in_list(name, recipient_checks,
			   sizeof(recipient_checks) / sizeof(char *))) {
		ret = 0;
		name = NULL;
	} else {
		/* A success, HMAC or payload case of a post-quantum file:
		 * its file key decides what keyfs can. */
		ret = age_unseal_file_key(in, len, v->key, &pt, &ptlen);
	}
	for (i = 0; i < (size_t)(nid > 0 ? nid : 0); i++)
		age_identity_clear(&id[i]);
	if (!name)
		return PQ_SKIP;
	if (nid < 0)
		return NULL;
	/* keyfs refuses logN above its cap as "wrong key" before any work;
	 * age calls the same file a header failure. */
	if (strcmp(name, "scrypt_work_factor_23") == 0)
		want = -EKEYREJECTED;
	ok = ret == want && (ret < 0 || payload_ok(v, pt, ptlen));
	tap_ok(ok, "vector %s: %s (got %d, want %d)", name,
	       class_name[v->expect], ret, want);
	if (pt)
		sodium_free(pt);
	return NULL;
}

static void run_vector(const char *name, char *buf, size_t len)
{
	uint8_t *inflated = NULL, *dearmored = NULL;
	const uint8_t *in;
	const char *skip;
	struct vector v;
	size_t n;
	int ret;

	skip = parse_vector(buf, len, &v);
	if (skip) {
		tap_ok(false, "vector %s: %s", name, skip);
		return;
	}
	in = v.body;
	n = v.bodylen;
	if (v.compressed) {
		if (zlib_inflate(in, n, &inflated, &n) < 0) {
			tap_ok(false, "vector %s: inflate", name);
			goto out;
		}
		in = inflated;
	}
	if (v.armored) {
		ret = armor_decode(in, n, &dearmored, &n);
		if (v.expect == X_ARMOR || ret < 0) {
			nrun[v.expect]++;
			TAP_EQ_INT(ret, v.expect == X_ARMOR ? -EINVAL : 0,
				   "vector %s: armor", name);
			goto out;
		}
		in = dearmored;
	}
	skip = decide(name, &v, in, n);
	if (skip) {
		nskip[v.expect]++;
		tap_ok(true, "# SKIP vector %s: %s", name, skip);
	} else {
		nrun[v.expect]++;
	}
out:
	free(inflated);
	free(dearmored);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *read_all(const char *dir, const char *name, size_t *len)
{
	char path[4096];
	char *buf = NULL;
	FILE *f;
	long size;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rb");
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 &&
	    fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc(size + 1);
		if (buf && fread(buf, 1, size, f) != (size_t)size) {
			free(buf);
			buf = NULL;
		}
		*len = size;
	}
	fclose(f);
	return buf;
}

static void test_vectors(void)
{
	const char *dir = getenv("VECTORS");
	char **names = NULL, *buf;
	size_t n = 0, i, len;
	struct dirent *e;
	DIR *d;
	int c;

	d = dir ? opendir(dir) : NULL;
	if (!tap_ok(d != NULL, "open vector dir $VECTORS"))
		return;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || strcmp(e->d_name, "README.md") == 0)
			continue;
		names = realloc(names, (n + 1) * sizeof(*names));
		names[n++] = strdup(e->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_names);
	for (i = 0; i < n; i++) {
		buf = read_all(dir, names[i], &len);
		if (tap_ok(buf != NULL, "read vector %s", names[i]))
			run_vector(names[i], buf, len);
		free(buf);
		free(names[i]);
	}
	free(names);
	printf("# %zu vector files\n", n);
	for (c = 0; c < X_NCLASS; c++)
		printf("# %-16s run %3d, skipped %3d\n", class_name[c],
		       nrun[c], nskip[c]);
}

/* ---- round trips ---- */

static const struct age_pass pw = { "correct horse", 13 };
static const struct age_pass bad_pw = { "battery staple", 14 };

static int seal(const uint8_t *pt, size_t len, int logn, uint8_t **out,
		size_t *outlen)
{
	return age_seal(pt, len, &pw, logn, out, outlen);
}

static int unseal(const uint8_t *in, size_t len, const struct age_pass *p,
		  size_t np)
{
	uint8_t *pt = NULL;
	size_t ptlen;
	int ret = age_unseal(in, len, p, np, &pt, &ptlen, NULL);

	if (pt)
		sodium_free(pt);
	return ret;
}

static void test_round_trip(size_t len)
{
	uint8_t *pt = malloc(len + 1), *c1 = NULL, *c2 = NULL, *out = NULL;
	struct age_pass two[2] = { bad_pw, pw };
	size_t n1 = 0, n2 = 0, outlen = 0, which = 9;
	int ret;

	randombytes_buf(pt, len);
	TAP_EQ_INT(seal(pt, len, 10, &c1, &n1), 0, "seal %zu bytes", len);
	TAP_EQ_INT(n1, age_sealed_size(len, 10), "sealed size of %zu", len);
	TAP_EQ_INT(seal(pt, len, 10, &c2, &n2), 0, "seal %zu again", len);
	tap_ok(n1 == n2 && memcmp(c1, c2, n1) != 0,
	       "two seals of %zu bytes differ", len);
	tap_ok(memcmp(c1 + 32, c2 + 32, 22) != 0, "fresh salt at %zu", len);
	ret = age_unseal(c1, n1, two, 2, &out, &outlen, &which);
	tap_ok(ret == 0 && outlen == len && memcmp(out, pt, len) == 0 &&
		       which == 1,
	       "unseal %zu bytes with the second passphrase", len);
	if (out)
		sodium_free(out);
	TAP_EQ_INT(age_peek_logn(c1, n1), 10, "peek logN at %zu", len);
	TAP_EQ_INT(unseal(c1, n1, &bad_pw, 1), -EKEYREJECTED,
		   "wrong passphrase at %zu", len);
	TAP_EQ_INT(unseal(c1, n1, &pw, 0), -EKEYREJECTED,
		   "no passphrase at %zu", len);

	c1[n1 - 1 - len / 2] ^= 0x01;
	TAP_EQ_INT(unseal(c1, n1, &pw, 1), -EBADMSG,
		   "flipped payload byte at %zu", len);
	c1[n1 - 1 - len / 2] ^= 0x01;
	/* The MAC's base64 is at [106, 149) of a logN 10 header. */
	c1[120] = c1[120] == 'A' ? 'B' : 'A';
	TAP_EQ_INT(unseal(c1, n1, &pw, 1), -EBADMSG,
		   "flipped header MAC at %zu", len);
	TAP_EQ_INT(unseal(c2, n2 - 1, &pw, 1), -EBADMSG,
		   "truncated by one byte at %zu", len);
	if (len > AGE_CHUNK_LEN)
		TAP_EQ_INT(unseal(c2, n2 - (len % AGE_CHUNK_LEN) - AGE_TAG_LEN,
				  &pw, 1),
			   -EBADMSG, "final chunk dropped at %zu", len);
	c2 = realloc(c2, n2 + 1);
	c2[n2] = 0;
	TAP_EQ_INT(unseal(c2, n2 + 1, &pw, 1), -EBADMSG,
		   "trailing byte at %zu", len);
	free(c1);
	free(c2);
	free(pt);
}

/* A valid logN 10 file relabelled logN 23: refused before any scrypt. */
static void test_logn_cap(void)
{
	uint8_t *c = NULL, *pt = NULL;
	struct timespec t0, t1;
	size_t n = 0, ptlen;
	double secs;
	int ret;

	seal((const uint8_t *)"x", 1, 10, &c, &n);
	tap_ok(memcmp(c + 54, " 10\n", 4) == 0, "logN sits at byte 54");
	memcpy(c + 54, " 23\n", 4);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ret = age_unseal(c, n, &pw, 1, &pt, &ptlen, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	TAP_EQ_INT(ret, -EKEYREJECTED, "logN 23 refused");
	tap_ok(secs < 0.05, "logN 23 refused in %.6f s", secs);
	TAP_EQ_INT(age_peek_logn(c, n), -EKEYREJECTED, "peek refuses 23");
	TAP_EQ_INT(age_peek_logn(c, 10), -EINVAL, "peek of a truncated header");
	free(c);
}

static void test_misc(void)
{
	uint8_t *c = NULL, *pt = NULL, *bin = NULL;
	size_t n = 0, ptlen = 0, alen, blen;
	char *armored = NULL;
	int ret, logn;

	for (logn = 10; logn <= 22; logn++)
		TAP_EQ_INT(age_sealed_size(1000, logn),
			   150 + AGE_NONCE_LEN + 1000 + AGE_TAG_LEN,
			   "sealed size at logN %d", logn);
	TAP_EQ_INT(age_sealed_size(200000, 18),
		   150 + AGE_NONCE_LEN + 200000 + 4 * AGE_TAG_LEN,
		   "sealed size of 200000 at logN 18");
	TAP_EQ_INT(seal((const uint8_t *)"", 0, 9, &c, &n), -EINVAL,
		   "logN 9 refused for sealing");
	TAP_EQ_INT(seal((const uint8_t *)"", 0, 23, &c, &n), -EINVAL,
		   "logN 23 refused for sealing");

	/* The default work factor, once: what export writes. */
	TAP_EQ_INT(seal((const uint8_t *)"keyset", 6, AGE_LOGN_DEFAULT, &c,
			&n), 0, "seal at logN 18");
	TAP_EQ_INT(n, age_sealed_size(6, AGE_LOGN_DEFAULT), "size at 18");
	TAP_EQ_INT(age_peek_logn(c, n), 18, "peek logN 18");
	ret = armor_encode(c, n, &armored, &alen);
	TAP_EQ_INT(ret, 0, "armor the sealed file");
	ret = armor_decode((uint8_t *)armored, alen, &bin, &blen);
	tap_ok(ret == 0 && blen == n && memcmp(bin, c, n) == 0,
	       "armor round trip of a sealed file");
	ret = age_unseal(bin, blen, &pw, 1, &pt, &ptlen, NULL);
	tap_ok(ret == 0 && ptlen == 6 && memcmp(pt, "keyset", 6) == 0,
	       "unseal at logN 18");
	if (pt)
		sodium_free(pt);
	TAP_EQ_INT(age_unseal((const uint8_t *)"", 0, &pw, 1, &pt, &ptlen,
			      NULL), -EINVAL, "empty input");
	TAP_EQ_INT(age_unseal(c, 40, &pw, 1, &pt, &ptlen, NULL), -EINVAL,
		   "header cut short");
	free(armored);
	free(bin);
	free(c);
}

int main(void)
{
	static const size_t sizes[] = { 0, 1, 65535, 65536, 65537, 200000 };
	size_t i;

	if (sodium_init() < 0)
		return 1;
	test_vectors();
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		test_round_trip(sizes[i]);
	test_logn_cap();
	test_misc();
	return tap_done();
}
