/* keyfs' metadata files (see meta.h). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "keyfs/dirwalk.h"
#include "keyfs/keyset.h"
#include "keyfs/meta.h"
#include "keyfs/replace.h"

static int meta_path(const char *key, char *path, size_t size)
{
	const char *p;

	for (p = key; *p; p++)
		if (*p == '/' || (p == key && *p == '.'))
			return -EINVAL;
	if (!*key || snprintf(path, size, STATE_META "/%s", key) >= (int)size)
		return -EINVAL;
	return 0;
}

int meta_get(const struct state *s, const char *key, char *buf, size_t size)
{
	char path[PATH_MAX];
	ssize_t n;
	int fd, ret;

	ret = meta_path(key, path, sizeof(path));
	if (ret)
		return ret;
	fd = file_open_regular(s->fd, path, NULL, NULL);
	if (fd < 0)
		return fd;
	n = read(fd, buf, size - 1);
	ret = n < 0 ? -errno : 0;
	close(fd);
	if (!ret)
		buf[n] = '\0';
	return ret;
}

int meta_set(const struct state *s, const char *key, const char *value)
{
	char path[PATH_MAX];
	int ret;

	ret = meta_path(key, path, sizeof(path));
	if (ret)
		return ret;
	if (!*value)
		return unlinkat(s->fd, path, 0) && errno != ENOENT ? -errno : 0;
	return file_replace(s->fd, path, &(struct iovec){ (void *)value, strlen(value) }, 1);
}

static void hint_key(const char *keyset, char key[static KEYSET_NAME_MAX + 8])
{
	snprintf(key, KEYSET_NAME_MAX + 8, "%s%s", keyset ? "hint." : "hint", keyset ? keyset : "");
}

int meta_hint(const struct state *s, const char *keyset, char *buf, size_t size)
{
	char key[KEYSET_NAME_MAX + 8];

	hint_key(keyset, key);
	return meta_get(s, key, buf, size);
}

int meta_set_hint(const struct state *s, const char *keyset, const char *text)
{
	char key[KEYSET_NAME_MAX + 8];

	hint_key(keyset, key);
	return meta_set(s, key, text);
}

/* Drops an editor's trailing line end; false if a control character
 * remains. */
static bool hint_clean(char *h)
{
	size_t n = strlen(h), i;

	while (n && (h[n - 1] == '\n' || h[n - 1] == '\r'))
		h[--n] = '\0';
	for (i = 0; i < n; i++)
		if ((unsigned char)h[i] < 0x20 || h[i] == 0x7f)
			return false;
	return true;
}

int meta_hint_for(const struct state *s, const char *keyset, char *buf, size_t size)
{
	if (meta_hint(s, keyset, buf, size) && meta_hint(s, NULL, buf, size)) {
		buf[0] = '\0';
		return 0;
	}
	if (hint_clean(buf))
		return 0;
	buf[0] = '\0';
	return -EINVAL;
}

static void own_key(const char *keyset, char key[static KEYSET_NAME_MAX + 16])
{
	snprintf(key, KEYSET_NAME_MAX + 16, "own-password.%s", keyset);
}

bool meta_own_password(const struct state *s, const char *keyset)
{
	char key[KEYSET_NAME_MAX + 16], val[8];

	own_key(keyset, key);
	return !meta_get(s, key, val, sizeof(val));
}

int meta_set_own_password(const struct state *s, const char *keyset, bool own)
{
	char key[KEYSET_NAME_MAX + 16];

	own_key(keyset, key);
	return meta_set(s, key, own ? "yes" : "");
}
