/* libFuzzer target: the keyfs-agent frame body parser. A body it accepts
 * has exactly one encoding, so agent_encode() of the parsed message must
 * give the same bytes back behind the length prefix, and parse again to
 * the same message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keyfs/agent_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_same(const struct agent_msg *a, const struct agent_msg *b)
{
	size_t i;

	if (a->code != b->code || a->nfields != b->nfields)
		abort();
	for (i = 0; i < a->nfields; i++)
		if (a->f[i].len != b->f[i].len || memcmp(a->f[i].p, b->f[i].p, a->f[i].len))
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct agent_msg m, again;
	static uint8_t frame[4 + AGENT_FRAME_MAX];
	uint32_t body_len;
	int n;

	if (agent_parse(data, size, &m) != 0)
		return 0;
	n = agent_encode(frame, m.code, m.f, m.nfields);
	if (n < 4 || (size_t)n != 4 + size)
		abort();
	body_len = (uint32_t)frame[0] << 24 | (uint32_t)frame[1] << 16 |
		   (uint32_t)frame[2] << 8 | frame[3];
	if (body_len != size || memcmp(frame + 4, data, size))
		abort();
	if (agent_parse(frame + 4, body_len, &again) != 0)
		abort();
	check_same(&m, &again);
	return 0;
}
