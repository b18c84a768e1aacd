/* libFuzzer target: the age header and stanza parser and the STREAM
 * payload, through the file-key path (no scrypt, so it runs fast). The key
 * is the one of the CCTV vectors the seeds come from, so mutations that
 * keep the header MAC reach the payload chunks. A header that parses is
 * also written back from its stanzas: the format leaves the writer no
 * choice, so it must give the same bytes up to the MAC. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "keyfs/age.h"
#include "keyfs/age_header.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t file_key[AGE_FILE_KEY_LEN] = "YELLOW SUBMARINE";

static void check_rewrite(const uint8_t *data, size_t size)
{
	struct age_header h;
	uint8_t *out = NULL;
	size_t i, bytes = 0, len;

	if (age_header_parse(data, size, &h) != 0)
		return;
	for (i = 0; i < h.nstanzas; i++) {
		if (h.stanza[i].nargs > AGE_STANZA_ARGS_MAX)
			goto out; /* parses, but is not kept whole */
		bytes += age_stanza_size(&h.stanza[i]);
	}
	out = malloc(age_header_size(bytes));
	if (!out)
		goto out;
	if (age_header_write(out, h.stanza, h.nstanzas, file_key, &len) != 0 ||
	    len != h.payload || memcmp(out, data, h.mac_end) != 0)
		abort();
out:
	free(out);
	age_header_free(&h);
}

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
	check_rewrite(data, size);
	return 0;
}
