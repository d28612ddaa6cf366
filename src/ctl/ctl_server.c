/* SPDX-License-Identifier: ISC */
/* ctl_server.c - see ctl_server.h */
#include "ctl/ctl_server.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "ctl/ctl_proto.h"
#include "lib/limits.h"
#include "lib/log.h"
#include "lib/util.h"
#include "queue/spool.h"
#include "server/server.h"
#include "delivery/delivery.h"
#include "server/ratelimit.h"

struct ctl_server {
	struct server *srv;
	struct evconnlistener *evl;
	char *path;
};

/* One control connection: a request, an answer, then close. */
struct ctl_conn {
	struct ctl_server *ctl;
	struct bufferevent *bev;
	bool answered; /* the answer is written; free once it is sent */
	bool busy;     /* a queue operation is in flight and will answer */
	bool gone;     /* the client left while busy */
};

static char error_buf[256];

static void conn_free(struct ctl_conn *c)
{
	bufferevent_free(c->bev);
	free(c);
}

static void on_conn_write(struct bufferevent *bev, void *arg)
{
	struct ctl_conn *c = arg;
	if (c->answered)
		conn_free(c);
}

/* answer - write the whole answer; the connection closes once it is sent. */
static void __attribute__((format(printf, 3, 4)))
answer(struct ctl_conn *c, bool ok, const char *fmt, ...)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	va_list ap;
	evbuffer_add_printf(out, "%s", ok ? "ok" : "error");
	if (fmt != NULL && *fmt != '\0') {
		evbuffer_add(out, " ", 1);
		va_start(ap, fmt);
		evbuffer_add_vprintf(out, fmt, ap);
		va_end(ap);
	}
	evbuffer_add(out, "\n", 1);
	c->answered = true;
	bufferevent_disable(c->bev, EV_READ);
	bufferevent_enable(c->bev, EV_WRITE);
}

static void do_status(struct ctl_conn *c)
{
	struct server *srv = c->ctl->srv;
	struct spool_stats st;
	struct delivery_stats ds;
	spool_get_stats(srv->spool, &st);
	delivery_get_stats(srv->delivery, &ds);
	answer(c, true,
	       "detourd running\n"
	       "hostname: %s\n"
	       "delivery: %s\n"
	       "pid: %d\n"
	       "uptime_seconds: %lld\n"
	       "connections: %u\n"
	       "connections_total: %llu\n"
	       "messages_accepted: %llu\n"
	       "messages_refused: %llu\n"
	       "queue_messages: %llu\n"
	       "queue_batches: %llu\n"
	       "queue_pending: %llu\n"
	       "delivery_messages_out: %llu\n"
	       "delivery_connections: %llu\n"
	       "delivered: %llu\n"
	       "deferred: %llu\n"
	       "failed: %llu\n"
	       "bounces: %llu\n"
	       "refused_rate_limit: %llu\n"
	       "refused_auth_blocked: %llu\n"
	       "refused_per_ip: %llu",
	       srv->cfg->hostname, delivery_paused(srv->delivery) ? "paused" : "running",
	       (int)getpid(), (long long)(time(NULL) - srv->started), srv->n_sessions,
	       (unsigned long long)srv->total_sessions, (unsigned long long)srv->messages_accepted,
	       (unsigned long long)srv->messages_refused, (unsigned long long)st.messages,
	       (unsigned long long)st.batches, (unsigned long long)st.pending,
	       (unsigned long long)ds.messages_out, (unsigned long long)ds.connections,
	       (unsigned long long)ds.delivered, (unsigned long long)ds.deferred,
	       (unsigned long long)ds.failed, (unsigned long long)ds.bounces,
	       (unsigned long long)srv->refused_rate, (unsigned long long)srv->refused_auth_blocked,
	       (unsigned long long)srv->refused_per_ip);
}

/* do_usage - what an account may still send now, under the limits given
 * (detourctl reads the account's own limits from the database). */
static void do_usage(struct ctl_conn *c, const char *account, const char *mrate, const char *rrate)
{
	struct server *srv = c->ctl->srv;
	struct config_rate m, r;
	const char *e;
	if (config_parse_rate(mrate, &m, &e) < 0 || config_parse_rate(rrate, &r, &e) < 0) {
		answer(c, false, "bad rate: %s", e);
		return;
	}
	int64_t now = mono_ms();
	unsigned ma = ratelimit_available(srv->rl_messages, account, m, now);
	unsigned ra = ratelimit_available(srv->rl_recipients, account, r, now);
	answer(c, true, "usage\nmessages_available: %u\nrecipients_available: %u", ma, ra);
}

static void do_reload(struct ctl_conn *c)
{
	char *message = NULL;
	int r = server_reload(c->ctl->srv, &message);
	if (r < 0)
		log_event(LOG_LEVEL_WARN, "server.reload", "result=refused source=control");
	answer(c, r == 0, "%s", message);
	free(message);
}

static const char *const op_names[] = {"delete", "hold", "release", "flush", "flush"};
static const char *const op_done_names[] = {"deleted", "held", "released", "scheduled now",
                                            "every deferred message scheduled now"};

/* An operation handed to the spool; the connection may be gone when it ends. */
struct ctl_op {
	struct ctl_conn *conn;
	enum spool_op op;
	char qid[QID_SIZE];
};

static void op_done(void *arg, enum spool_result result)
{
	struct ctl_op *op = arg;
	op->conn->busy = false;
	/* A flushed or released message is due now. */
	if (result == SPOOL_OK && op->op != SPOOL_OP_DELETE && op->op != SPOOL_OP_HOLD)
		delivery_kick(op->conn->ctl->srv->delivery);
	log_event(LOG_LEVEL_INFO, "queue.admin", "qid=%s action=%s result=%s", op->qid,
	          op_names[op->op],
	          result == SPOOL_OK         ? "ok"
	          : result == SPOOL_NOTFOUND ? "not-found"
	                                     : "failed");
	if (op->conn->gone)
		conn_free(op->conn);
	else if (result == SPOOL_OK && op->op == SPOOL_OP_FLUSH_ALL)
		answer(op->conn, true, "%s", op_done_names[op->op]);
	else if (result == SPOOL_OK)
		answer(op->conn, true, "%s: %s", op->qid, op_done_names[op->op]);
	else if (result == SPOOL_NOTFOUND)
		answer(op->conn, false, "%s: no such message in the queue", op->qid);
	else
		answer(op->conn, false, "%s: the queue could not be changed (see the log)",
		       op->qid);
	free(op);
}

static void do_queue_op(struct ctl_conn *c, const char *verb, const char *qid)
{
	if (strcmp(verb, "flush") == 0 && qid == NULL) {
		struct ctl_op *op = xcalloc(1, sizeof(*op));
		op->conn = c;
		op->op = SPOOL_OP_FLUSH_ALL;
		str_copy(op->qid, "-", sizeof(op->qid));
		bufferevent_disable(c->bev, EV_READ);
		c->busy = true;
		spool_op(c->ctl->srv->spool, SPOOL_OP_FLUSH_ALL, "", op_done, op);
		return;
	}
	for (size_t i = 0; i < SPOOL_OP_FLUSH + 1; i++) {
		if (strcmp(verb, op_names[i]) != 0)
			continue;
		if (qid == NULL || !spool_qid_valid(qid)) {
			answer(c, false, "'%s' is not a queue id", qid ? qid : "");
			return;
		}
		struct ctl_op *op = xcalloc(1, sizeof(*op));
		op->conn = c;
		op->op = (enum spool_op)i;
		str_copy(op->qid, qid, sizeof(op->qid));
		/* Reading stops until the answer; the spool's callback writes it. */
		bufferevent_disable(c->bev, EV_READ);
		c->busy = true;
		spool_op(c->ctl->srv->spool, op->op, qid, op_done, op);
		return;
	}
	answer(c, false, "unknown queue command '%s'", verb);
}

/* handle - one request line, split into words. */
static void handle(struct ctl_conn *c, char *line)
{
	char *words[4] = {NULL};
	size_t n = 0;
	for (char *save = NULL, *w = strtok_r(line, " ", &save); w != NULL && n < 4;
	     w = strtok_r(NULL, " ", &save))
		words[n++] = w;
	if (n == 0) {
		answer(c, false, "empty request");
	} else if (strcmp(words[0], "status") == 0 && n == 1) {
		do_status(c);
	} else if (strcmp(words[0], "reload") == 0 && n == 1) {
		do_reload(c);
	} else if (strcmp(words[0], "usage") == 0 && n == 4) {
		do_usage(c, words[1], words[2], words[3]);
	} else if (strcmp(words[0], "delivery") == 0 && n == 2 &&
	           (strcmp(words[1], "pause") == 0 || strcmp(words[1], "resume") == 0)) {
		bool pause = strcmp(words[1], "pause") == 0;
		delivery_pause(c->ctl->srv->delivery, pause);
		answer(c, true, "delivery %s",
		       pause ? "paused: messages are queued, not sent" : "resumed");
	} else if (strcmp(words[0], "queue") == 0 && (n == 3 || n == 2)) {
		do_queue_op(c, words[1], words[2]);
	} else {
		answer(c, false, "unknown request");
	}
}

static void on_conn_read(struct bufferevent *bev, void *arg)
{
	struct ctl_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	if (c->answered)
		return;
	size_t len;
	char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);
	if (line == NULL) {
		if (evbuffer_get_length(in) >= CTL_REQUEST_MAX)
			answer(c, false, "request longer than %d octets", CTL_REQUEST_MAX);
		return;
	}
	if (len >= CTL_REQUEST_MAX || memchr(line, '\0', len) != NULL)
		answer(c, false, "malformed request");
	else
		handle(c, line);
	free(line);
}

static void on_conn_event(struct bufferevent *bev, short what, void *arg)
{
	struct ctl_conn *c = arg;
	/* A queue operation in flight still refers to c: its callback frees
	 * it. Otherwise the connection is over (EOF, error or timeout). */
	if (c->busy) {
		c->gone = true;
		bufferevent_disable(bev, EV_READ | EV_WRITE);
		return;
	}
	conn_free(c);
}

static void on_accept(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
	struct ctl_server *ctl = arg;
	struct ctl_conn *c = xcalloc(1, sizeof(*c));
	c->ctl = ctl;
	c->bev = bufferevent_socket_new(ctl->srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(c->bev, on_conn_read, on_conn_write, on_conn_event, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, CTL_REQUEST_MAX + 1);
	struct timeval tv = {CTL_TIMEOUT, 0};
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	bufferevent_enable(c->bev, EV_READ);
}

/* socket_in_use - does something answer on path? */
static bool socket_in_use(const struct sockaddr_un *sun)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	bool used = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0;
	close(fd);
	return used;
}

struct ctl_server *ctl_server_new(struct server *srv, const char *path, const char **error_r)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	if (!str_copy(sun.sun_path, path, sizeof(sun.sun_path))) {
		*error_r = "control socket path too long";
		return NULL;
	}
	if (socket_in_use(&sun)) {
		snprintf(error_buf, sizeof(error_buf),
		         "another detourd is running (it answers on %s)", path);
		*error_r = error_buf;
		return NULL;
	}
	unlink(path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	/* Only the daemon's own user may talk to it. */
	mode_t old = umask(0177);
	int r = fd < 0 ? -1 : bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (r < 0 || listen(fd, 16) < 0) {
		snprintf(error_buf, sizeof(error_buf), "cannot listen on control socket %s: %s",
		         path, strerror(errno));
		*error_r = error_buf;
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	struct ctl_server *ctl = xcalloc(1, sizeof(*ctl));
	ctl->srv = srv;
	ctl->path = xstrdup(path);
	ctl->evl = evconnlistener_new(srv->base, on_accept, ctl,
	                              LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	return ctl;
}

void ctl_server_free(struct ctl_server **ctlp)
{
	struct ctl_server *ctl = *ctlp;
	if (ctl == NULL)
		return;
	*ctlp = NULL;
	evconnlistener_free(ctl->evl);
	unlink(ctl->path);
	free(ctl->path);
	free(ctl);
}
