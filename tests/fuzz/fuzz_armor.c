/* libFuzzer target: the armor decoder. Beyond not crashing, whatever it
 * accepts must survive armor_encode() and decode back to the same bytes,
 * and armor_detect() must agree that the input is armored. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keyfs/armor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *bin, *again;
	size_t binlen, againlen, armlen;
	char *arm;

	if (armor_decode(data, size, &bin, &binlen) != 0)
		return 0;
	if (!armor_detect(data, size))
		abort();
	if (armor_encode(bin, binlen, &arm, &armlen) != 0)
		abort();
	if (armlen != armor_size(binlen))
		abort();
	if (armor_decode((const uint8_t *)arm, armlen, &again, &againlen) != 0 ||
	    againlen != binlen || memcmp(again, bin, binlen) != 0)
		abort();
	free(again);
	free(arm);
	free(bin);
	return 0;
}
