/* libFuzzer target: a whole age file, binary or armored, opened with one
 * fixed unencrypted OpenSSH Ed25519 key through age_unseal_with(), as an
 * import with an SSH identity does; checks in unwrap.h. The key below is
 * a test key made for this target (ssh-keygen -t ed25519 -N '') and used
 * nowhere else; the seeds in corpus/fuzz_unwrap_ssh were sealed with
 * `age -R` to its public key,
 *   ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMlg18pzs5OOv6DmcdG93CT1xWq8jpYzEMFhBvhjWqyh
 * The other identity, tried first, is an X25519 key no seed is sealed
 * to: every ssh-ed25519 stanza is "not mine" to it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "keyfs/age_recipient.h"

#include "unwrap.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char ours_key[] =
	"-----BEGIN OPENSSH PRIVATE KEY-----\n"
	"b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
	"QyNTUxOQAAACDJYNfKc7OTjr+g5nHRvdwk9cVqvI6WMxDBYQb4Y1qsoQAAAJji/ZF94v2R\n"
	"fQAAAAtzc2gtZWQyNTUxOQAAACDJYNfKc7OTjr+g5nHRvdwk9cVqvI6WMxDBYQb4Y1qsoQ\n"
	"AAAECv9W+Rykkq++fxS/eCkGvievvKAedlXdU9GWy5JgrzE8lg18pzs5OOv6DmcdG93CT1\n"
	"xWq8jpYzEMFhBvhjWqyhAAAAE2tleWZzIGZ1enogdGVzdCBrZXkBAg==\n"
	"-----END OPENSSH PRIVATE KEY-----\n";
static const char other_key[] =
	"AGE-SECRET-KEY-1RTRREU8TZT2D38WREYHTG4VET909UZ38T36MY2TMMUZVWN5GU9WQN2HUGZ";

static struct age_identity ours, other;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (sodium_init() < 0 ||
	    age_ssh_identity(&ours, ours_key, strlen(ours_key)) != 0 ||
	    age_x25519_identity(&other, other_key, strlen(other_key)) != 0)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_unwrap(data, size, &ours, &other);
	return 0;
}
