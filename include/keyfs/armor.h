/* ASCII armor of age files: "-----BEGIN AGE ENCRYPTED FILE-----", padded
 * base64 in 64-column lines, LF endings, "-----END AGE ENCRYPTED FILE-----\n".
 * Decoding is strict, as age's own: canonical base64, full lines but the
 * last, no headers, nothing but whitespace around the armor. */
#ifndef KEYFS_ARMOR_H
#define KEYFS_ARMOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARMOR_BEGIN "-----BEGIN AGE ENCRYPTED FILE-----"
#define ARMOR_END "-----END AGE ENCRYPTED FILE-----"

/* Exact size armor_encode() writes for len input bytes. */
size_t armor_size(size_t len);

/* *out is malloc()ed, armor_size(len) bytes (not NUL-terminated).
 * -ENOMEM, or -EFBIG beyond SIZE_MAX / 4 input bytes. */
int armor_encode(const uint8_t *in, size_t len, char **out, size_t *outlen);

/* True if in starts (after optional leading whitespace, as age allows)
 * with the BEGIN line, i.e. the input is meant to be armored. */
bool armor_detect(const uint8_t *in, size_t len);

/* Decode armored input; -EINVAL on any armor error. *out is malloc()ed. */
int armor_decode(const uint8_t *in, size_t len, uint8_t **out, size_t *outlen);

#endif
