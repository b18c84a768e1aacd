/* Outcomes of imports and activations, in keyfs' words (outcome.h). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "outcome.h"

#define HEADING "last imports (newest first):\n"

int outcome_last(const char *mount, char *buf, size_t size)
{
	char path[4096], *at, *end;
	size_t len = 0;
	ssize_t n = 1;
	int fd;

	snprintf(path, sizeof(path), "%s/.control", mount);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* the history ends the status: keep reading, the tail is what counts */
	while (n > 0) {
		if (len == size - 1) {
			/* from the heading on, or the bytes that may begin it */
			at = strstr(buf, HEADING);
			if (!at)
				at = buf + len - (sizeof(HEADING) - 2);
			len = (size_t)(buf + len - at);
			memmove(buf, at, len);
		}
		n = read(fd, buf + len, size - 1 - len);
		if (n > 0)
			len += (size_t)n;
		buf[len] = '\0';
	}
	close(fd);
	at = strstr(buf, HEADING);
	if (!at || strncmp(at + strlen(HEADING), "  ", 2))
		return -ENOENT;
	at += strlen(HEADING) + 2;
	end = strchr(at, '\n');
	len = end ? (size_t)(end - at) : strlen(at);
	memmove(buf, at, len);
	buf[len] = '\0';
	return 0;
}

int outcome_copy(const char *mount, const char *dir, const char *file)
{
	char path[4096], buf[65536], *copy;
	const char *base;
	ssize_t n = 0;
	int in, out, err = 0;

	in = open(file, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	copy = strdup(file);
	base = copy ? basename(copy) : "backup";
	snprintf(path, sizeof(path), "%s/%s/%s", mount, dir, base);
	out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0) {
		err = -errno;
		goto out;
	}
	while (!err && (n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			err = errno ? -errno : -EIO;
	if (n < 0 && !err)
		err = -errno;
	if (close(out) && !err)
		err = -errno; /* the outcome of the import or verify */
	unlink(path);
out:
	close(in);
	free(copy);
	return err;
}

void outcome_say(const char *file, int err)
{
	if (err == -EKEYREJECTED)
		fprintf(stderr, "%s: no password or identity keyfs holds opens it\n", file);
	else if (err == -ENOKEY)
		fprintf(stderr, "%s: keyfs has no password or identity at all (keyfsctl password, "
			"unlock or identity add)\n", file);
	else if (err == -EBADMSG)
		fprintf(stderr, "%s: damaged or truncated copy\n", file);
	else if (err == -EINVAL)
		fprintf(stderr, "%s: not a keyfs backup (not age, or a bad or unsafe archive)\n", file);
	else
		fprintf(stderr, "%s: %s\n", file, strerror(-err));
}

int outcome_copy_in(const char *mount, const char *dir, const char *file)
{
	char line[8192];
	int err;

	if (access(file, R_OK)) {
		err = -errno;
		fprintf(stderr, "keyfsctl: %s: %s\n", file, strerror(-err));
		return err;
	}
	err = outcome_copy(mount, dir, file);
	if (!err) {
		printf("%s: %s\n", file, !strcmp(dir, "verify") ? "good copy" : "restored (see status)");
		return 0;
	}
	outcome_say(file, err);
	/* keyfs' own words: the member or directory a refusal is about */
	if (outcome_last(mount, line, sizeof(line)) == 0)
		fprintf(stderr, "keyfs: %s\n", line);
	return err;
}
