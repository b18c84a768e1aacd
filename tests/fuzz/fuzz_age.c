/* libFuzzer target: the full reader as an import runs it: armor if the
 * input says so, then age_unseal() with one fixed passphrase ("password",
 * the one of the CCTV scrypt vectors and of the seed exports).
 *
 * Fuzzing only: inputs whose scrypt stanza asks for logN above 12 are
 * skipped, since each such try costs up to 2^22 scrypt blocks and would
 * stall the fuzzer. The real reader refuses only above AGE_LOGN_MAX (22);
 * the header parsing that decides this is fuzzed in full, there and in
 * fuzz_age_header. */
#include <stdint.h>
#include <stdlib.h>

#include <sodium.h>

#include "keyfs/age.h"
#include "keyfs/armor.h"

#define FUZZ_LOGN_CAP 12

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct age_pass pass = { "password", 8 };
	const uint8_t *in = data;
	uint8_t *bin = NULL, *pt;
	size_t len = size, ptlen, which;

	if (armor_detect(data, size)) {
		if (armor_decode(data, size, &bin, &len) != 0)
			return 0;
		in = bin;
	}
	if (age_peek_logn(in, len) <= FUZZ_LOGN_CAP &&
	    age_unseal(in, len, &pass, 1, &pt, &ptlen, &which) == 0) {
		if (which != 0)
			abort();
		sodium_free(pt);
	}
	free(bin);
	return 0;
}
