/* The newest outcome in a keyfs status (outcome.h). */
#include <errno.h>
#include <fcntl.h>
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
