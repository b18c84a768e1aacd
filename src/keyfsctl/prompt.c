/* Asking for a secret on the terminal (see prompt.h). */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "prompt.h"

int prompt_secret(const char *prompt, bool from_stdin, char *buf, size_t size, size_t *len)
{
	struct termios old, quiet;
	bool tty = false;
	size_t n = 0;
	ssize_t got;
	int fd, ret = 0;
	char c;

	fd = from_stdin ? STDIN_FILENO : open("/dev/tty", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		fprintf(stderr, "keyfsctl: no terminal to ask for a password (use --stdin)\n");
		return ret;
	}
	if (!from_stdin && !tcgetattr(fd, &old)) {
		tty = true;
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(fd, TCSANOW, &quiet);
		(void)!write(fd, prompt, strlen(prompt));
	}
	/* byte by byte: nothing beyond the line is consumed or buffered */
	while ((got = read(fd, &c, 1)) == 1 && c != '\n') {
		if (n + 1 >= size) {
			n = size; /* too long: refused below */
			continue;
		}
		buf[n++] = c;
	}
	if (got < 0)
		ret = -errno;
	if (tty) {
		tcsetattr(fd, TCSANOW, &old);
		(void)!write(fd, "\n", 1);
	}
	if (!from_stdin)
		close(fd);
	sodium_memzero(&c, sizeof(c)); /* the last byte read, at EOF */
	if (!ret && got == 0 && n == 0)
		ret = -ENODATA;
	if (!ret && n >= size)
		ret = -EMSGSIZE;
	if (ret)
		return ret;
	if (n && buf[n - 1] == '\r')
		n--;
	*len = n;
	return 0;
}
