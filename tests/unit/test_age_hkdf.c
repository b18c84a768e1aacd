/* Unit tests of HKDF-SHA-256: the SHA-256 test cases of RFC 5869
 * (appendix A.1 to A.3), extract and expand alone and together, and the
 * output limit. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <sodium.h>

#include "age_hkdf.h"
#include "tap.h"

struct rfc_case {
	const char *name;
	uint8_t ikm[80], salt[80], info[80];
	size_t ikmlen, saltlen, infolen, len;
	const char *prk, *okm; /* hex */
};

static void fill(uint8_t *b, size_t n, uint8_t first)
{
	size_t i;

	for (i = 0; i < n; i++)
		b[i] = (uint8_t)(first + i);
}

static bool hex_is(const uint8_t *b, size_t n, const char *hex)
{
	char got[2 * AGE_HKDF_MAX + 1];

	sodium_bin2hex(got, sizeof(got), b, n);
	return strcmp(got, hex) == 0;
}

static void run_case(const struct rfc_case *c)
{
	uint8_t prk[AGE_HKDF_LEN], okm[82], okm2[82];

	TAP_EQ_INT(age_hkdf_extract(prk, c->salt, c->saltlen, c->ikm,
				    c->ikmlen), 0, "%s: extract", c->name);
	tap_ok(hex_is(prk, sizeof(prk), c->prk), "%s: PRK", c->name);
	TAP_EQ_INT(age_hkdf_expand(okm, c->len, prk, c->info, c->infolen), 0,
		   "%s: expand", c->name);
	tap_ok(hex_is(okm, c->len, c->okm), "%s: OKM", c->name);
	TAP_EQ_INT(age_hkdf(okm2, c->len, c->saltlen ? c->salt : NULL,
			    c->saltlen, c->ikm, c->ikmlen,
			    c->infolen ? c->info : NULL, c->infolen), 0,
		   "%s: hkdf", c->name);
	tap_ok(hex_is(okm2, c->len, c->okm), "%s: hkdf OKM", c->name);
}

static void test_rfc5869(void)
{
	struct rfc_case c;

	/* A.1: basic test case with SHA-256 */
	memset(&c, 0, sizeof(c));
	c.name = "RFC 5869 A.1";
	memset(c.ikm, 0x0b, c.ikmlen = 22);
	fill(c.salt, c.saltlen = 13, 0x00);
	fill(c.info, c.infolen = 10, 0xf0);
	c.len = 42;
	c.prk = "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5";
	c.okm = "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
		"34007208d5b887185865";
	run_case(&c);

	/* A.2: longer inputs and outputs (three expand blocks) */
	memset(&c, 0, sizeof(c));
	c.name = "RFC 5869 A.2";
	fill(c.ikm, c.ikmlen = 80, 0x00);
	fill(c.salt, c.saltlen = 80, 0x60);
	fill(c.info, c.infolen = 80, 0xb0);
	c.len = 82;
	c.prk = "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244";
	c.okm = "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
		"59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
		"cc30c58179ec3e87c14c01d5c1f3434f1d87";
	run_case(&c);

	/* A.3: zero-length salt and info, as age's header key uses */
	memset(&c, 0, sizeof(c));
	c.name = "RFC 5869 A.3";
	memset(c.ikm, 0x0b, c.ikmlen = 22);
	c.len = 42;
	c.prk = "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04";
	c.okm = "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
		"9d201395faa4b61a96c8";
	run_case(&c);
}

static void test_limits(void)
{
	static uint8_t big[AGE_HKDF_MAX + 1];
	uint8_t prk[AGE_HKDF_LEN] = { 1 }, head[AGE_HKDF_LEN];

	TAP_EQ_INT(age_hkdf_expand(big, AGE_HKDF_MAX + 1, prk, NULL, 0),
		   -EINVAL, "expand refuses 255 * 32 + 1 bytes");
	TAP_EQ_INT(age_hkdf(big, AGE_HKDF_MAX + 1, NULL, 0, prk, 1, NULL, 0),
		   -EINVAL, "hkdf refuses 255 * 32 + 1 bytes");
	TAP_EQ_INT(age_hkdf_expand(big, AGE_HKDF_MAX, prk, NULL, 0), 0,
		   "expand gives 255 * 32 bytes");
	/* Output is a prefix of any longer output from the same inputs. */
	TAP_EQ_INT(age_hkdf_expand(head, sizeof(head), prk, NULL, 0), 0,
		   "expand one block");
	tap_ok(memcmp(head, big, sizeof(head)) == 0, "one block is a prefix");
	TAP_EQ_INT(age_hkdf_expand(head, 0, prk, NULL, 0), 0,
		   "expand zero bytes");
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	test_rfc5869();
	test_limits();
	return tap_done();
}
