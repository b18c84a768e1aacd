/* libFuzzer target: a whole age file, binary or armored, opened with one
 * fixed X25519 identity through age_unseal_with(), as an import with an
 * identity does; checks in unwrap.h. The keys below are test keys made
 * for this target with age-keygen and used nowhere else; the seeds in
 * corpus/fuzz_unwrap_x25519 were sealed with `age -r` to
 *   age1hxjwyt659p7ad8w5xalmv5xt24umeaw3xaxh9mfgxh5ntpww048s8xg675
 * (the public key of ours). No seed is sealed to other. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "keyfs/age_recipient.h"

#include "unwrap.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char ours_key[] =
	"AGE-SECRET-KEY-1UTM3Z0UCE497AEHTR0P60QS3KAWGM454H3MSZFJCATPFS5552CZSMPH3FZ";
static const char other_key[] =
	"AGE-SECRET-KEY-1RTRREU8TZT2D38WREYHTG4VET909UZ38T36MY2TMMUZVWN5GU9WQN2HUGZ";

static struct age_identity ours, other;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (sodium_init() < 0 ||
	    age_x25519_identity(&ours, ours_key, strlen(ours_key)) != 0 ||
	    age_x25519_identity(&other, other_key, strlen(other_key)) != 0)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_unwrap(data, size, &ours, &other);
	return 0;
}
