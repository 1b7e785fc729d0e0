/* A small epoll HTTP/1.1 server for the TCP benchmarks (bench/e2e/tcp.py): the real servers' side of wrk.
 *
 *   httpsrv PORT NAME MAX_SECONDS
 *
 * Every request (any method, any path) is answered with "200 OK" and the body "NAME\n"; the connection is
 * kept open unless the request says "Connection: close".  One thread, level-triggered epoll, non-blocking
 * sockets, no allocation per request beyond the per-connection read buffer.  The lab's Python httpd
 * (lb/lab/httpd.py) answers a few thousand requests per second; this answers far more than a balancer in
 * this lab can pass, so wrk measures the balancer and not the server.  It exits by itself after
 * MAX_SECONDS (alarm), so a forgotten server cannot outlive the benchmark.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXFD 65536
#define BUFSZ 4096

struct conn {
	unsigned len;
	char buf[BUFSZ];
};

static struct conn *conns[MAXFD];
static char resp_ka[256], resp_close[256];
static int resp_ka_len, resp_close_len;

static void drop(int ep, int fd)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
	close(fd);
	free(conns[fd]);
	conns[fd] = NULL;
}

/* Answer every complete request in the buffer; returns 0 to keep the connection, -1 to close it. */
static int serve(int fd, struct conn *c)
{
	for (;;) {
		char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
		if (!end)
			return c->len >= BUFSZ ? -1 : 0;
		unsigned reqlen = (unsigned)(end + 4 - c->buf);
		int close_it = memmem(c->buf, reqlen, "onnection: close", 16) != NULL ||
			       memmem(c->buf, reqlen, "onnection: Close", 16) != NULL;
		const char *r = close_it ? resp_close : resp_ka;
		int rl = close_it ? resp_close_len : resp_ka_len;
		if (send(fd, r, (size_t)rl, MSG_NOSIGNAL) != rl)
			return -1;
		if (close_it)
			return -1;
		memmove(c->buf, c->buf + reqlen, c->len - reqlen);
		c->len -= reqlen;
	}
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s PORT NAME MAX_SECONDS\n", argv[0]);
		return 2;
	}
	int port = atoi(argv[1]);
	const char *name = argv[2];
	alarm((unsigned)atoi(argv[3]));
	resp_ka_len = snprintf(resp_ka, sizeof(resp_ka),
			       "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nX-Server: %s\r\n\r\n%s\n",
			       strlen(name) + 1, name, name);
	resp_close_len = snprintf(resp_close, sizeof(resp_close),
				  "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nX-Server: %s\r\nConnection: close\r\n\r\n%s\n",
				  strlen(name) + 1, name, name);

	int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	int one = 1;
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (bind(ls, (struct sockaddr *)&a, sizeof(a)) || listen(ls, 4096)) {
		perror("bind/listen");
		return 1;
	}
	int ep = epoll_create1(0);
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
	epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
	printf("listening on %d\n", port);
	fflush(stdout);

	struct epoll_event evs[256];
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (fd == ls) {
				for (;;) {
					int cfd = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
					if (cfd < 0)
						break;
					if (cfd >= MAXFD || !(conns[cfd] = calloc(1, sizeof(struct conn)))) {
						close(cfd);
						continue;
					}
					setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					struct epoll_event ce = {.events = EPOLLIN, .data.fd = cfd};
					epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &ce);
				}
				continue;
			}
			struct conn *c = conns[fd];
			if (!c)
				continue;
			ssize_t r = recv(fd, c->buf + c->len, BUFSZ - c->len, 0);
			if (r <= 0) {
				if (r < 0 && (errno == EAGAIN || errno == EINTR))
					continue;
				drop(ep, fd);
				continue;
			}
			c->len += (unsigned)r;
			if (serve(fd, c) < 0)
				drop(ep, fd);
		}
	}
}
