/* SPDX-License-Identifier: ISC */
/* ctl_client.c - see ctl_client.h */
#include "ctl/ctl_client.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl/ctl_proto.h"
#include "lib/util.h"

/* Largest answer accepted (status lines, messages). */
#define CTL_ANSWER_MAX (1024 * 1024)

int ctl_request(const char *path, const char *request, char **answer_r)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	if (!str_copy(sun.sun_path, path, sizeof(sun.sun_path))) {
		*answer_r = xasprintf("control socket path too long: %s", path);
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		*answer_r = xasprintf("cannot reach detourd at %s: %s (is it running?)", path,
		                      strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	char *req = xasprintf("%s\n", request);
	if (write_all(fd, req, strlen(req)) < 0) {
		*answer_r = xasprintf("writing to %s: %s", path, strerror(errno));
		free(req);
		close(fd);
		return -1;
	}
	free(req);

	size_t cap = 4096, got = 0;
	char *buf = xmalloc(cap);
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int pr = poll(&pfd, 1, CTL_TIMEOUT * 1000);
		if (pr == 0) {
			*answer_r =
			    xasprintf("detourd did not answer within %d seconds", CTL_TIMEOUT);
			free(buf);
			close(fd);
			return -1;
		}
		if (got + 1 >= cap) {
			if (cap >= CTL_ANSWER_MAX)
				break;
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
		ssize_t n = read(fd, buf + got, cap - got - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	int status;
	const char *rest;
	if (strncmp(buf, "ok", 2) == 0 && (buf[2] == ' ' || buf[2] == '\n' || buf[2] == '\0')) {
		status = 0;
		rest = buf + 2;
	} else if (strncmp(buf, "error", 5) == 0) {
		status = 1;
		rest = buf + 5;
	} else {
		*answer_r = xasprintf("unexpected answer from detourd");
		free(buf);
		return -1;
	}
	if (*rest == ' ')
		rest++;
	*answer_r = xstrdup(rest);
	free(buf);
	return status;
}
