/* libFuzzer target: the age header and stanza parser and the STREAM
 * payload, through the file-key path (no scrypt, so it runs fast). The key
 * is the one of the CCTV vectors the seeds come from, so mutations that
 * keep the header MAC reach the payload chunks. */
#include <stdint.h>
#include <stdlib.h>

#include <sodium.h>

#include "keyfs/age.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t file_key[AGE_FILE_KEY_LEN] = "YELLOW SUBMARINE";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *pt;
	size_t ptlen;
	int logn;

	logn = age_peek_logn(data, size);
	if (logn == 0 || logn > AGE_LOGN_MAX)
		abort(); /* a stanza that passes must carry a usable work factor */
	if (age_unseal_file_key(data, size, file_key, &pt, &ptlen) == 0) {
		/* the plaintext can never be larger than the file */
		if (ptlen >= size)
			abort();
		sodium_free(pt);
	}
	return 0;
}
