/* SPDX-License-Identifier: ISC */
/* server.c - see server.h */
#include "server/server.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/file.h>
#include <event2/listener.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/config.h"
#include "ctl/ctl_server.h"
#include "lib/limits.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/workers.h"
#include "queue/spool.h"
#include "server/session.h"
#include "server/tls.h"
#include "delivery/delivery.h"
#include "server/ratelimit.h"

/* One bound socket: an address of a [listener NAME] section. */
struct server_listener {
	struct server_listener *next;
	struct server *srv;
	const struct config_listener *cl; /* in srv->cfg, updated on reload */
	struct config_addr addr;
	struct evconnlistener *evl;
	int fd;
};

/* Backlog of each listening socket: the kernel queues this many connections
 * while the loop is busy (somaxconn caps it). */
#define LISTEN_BACKLOG 1024
/* After accept() fails for lack of descriptors, pause accepting this long. */
#define ACCEPT_PAUSE_MS 100

static char error_buf[PATH_MAX + 256];

/* bind_addr - create, bind and listen on one address; -1 with error_buf. */
static int bind_addr(const struct config_addr *a, const char *cfg_path,
                     const struct config_listener *cl)
{
	int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* [::]:587 and 0.0.0.0:587 are separate listen lines, so an IPv6
	 * socket must not also take IPv4. */
	if (a->ss.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
		goto fail;
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0)
		goto fail;
	if (listen(fd, LISTEN_BACKLOG) < 0)
		goto fail;
	return fd;
fail:
	snprintf(error_buf, sizeof(error_buf), "%s:%d: listener '%s': cannot listen on %s: %s",
	         cfg_path, cl->line, cl->name, a->text, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

static void resume_accepting(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	if (srv->stopping)
		return;
	for (struct server_listener *l = srv->listeners; l != NULL; l = l->next)
		if (l->evl != NULL)
			evconnlistener_enable(l->evl);
}

/* on_accept_error - out of descriptors: accept() would fail in a tight loop,
 * so stop accepting for a moment; sessions already open go on. */
static void on_accept_error(struct evconnlistener *evl, void *arg)
{
	struct server_listener *l = arg;
	struct server *srv = l->srv;
	int err = EVUTIL_SOCKET_ERROR();
	log_event(LOG_LEVEL_WARN, "smtp.accept_error", "listener=%s error=\"%s\"", l->cl->name,
	          strerror(err));
	for (struct server_listener *o = srv->listeners; o != NULL; o = o->next)
		if (o->evl != NULL)
			evconnlistener_disable(o->evl);
	struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
	event_base_once(srv->base, -1, EV_TIMEOUT, resume_accepting, srv, &tv);
}

/* ---- connections per client address ---------------------------------- */

#define IP_BUCKETS 1024

struct ip_count {
	struct ip_count *next;
	unsigned count;
	char addr[INET6_ADDRSTRLEN];
};

static unsigned ip_bucket(const char *addr)
{
	return str_hash(addr) % IP_BUCKETS;
}

/* sockaddr_text - the client's address as sessions print it (an
 * IPv4-mapped IPv6 address as IPv4). */
static void sockaddr_text(const struct sockaddr *sa, char *out, size_t size)
{
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
			inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], out, (socklen_t)size);
		else
			inet_ntop(AF_INET6, &s6->sin6_addr, out, (socklen_t)size);
	} else {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out,
		          (socklen_t)size);
	}
}

/* ip_acquire - count one more connection from addr, unless it already has
 * max (then false). */
static bool ip_acquire(struct server *srv, const char *addr, unsigned max)
{
	unsigned b = ip_bucket(addr);
	struct ip_count *c;
	for (c = srv->ip_counts[b]; c != NULL; c = c->next)
		if (strcmp(c->addr, addr) == 0)
			break;
	if (c != NULL && c->count >= max)
		return false;
	if (c == NULL) {
		c = xcalloc(1, sizeof(*c));
		str_copy(c->addr, addr, sizeof(c->addr));
		c->next = srv->ip_counts[b];
		srv->ip_counts[b] = c;
	}
	c->count++;
	return true;
}

void server_ip_release(struct server *srv, const char *addr)
{
	for (struct ip_count **pp = &srv->ip_counts[ip_bucket(addr)]; *pp != NULL;
	     pp = &(*pp)->next) {
		struct ip_count *c = *pp;
		if (strcmp(c->addr, addr) != 0)
			continue;
		if (--c->count == 0) {
			*pp = c->next;
			free(c);
		}
		return;
	}
}

/* refuse_now - answer a connection we will not serve, and close it. */
static void refuse_now(int fd, const char *reply)
{
	if (send(fd, reply, strlen(reply), MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		/* the client is gone already */
	}
	close(fd);
}

static void on_accept(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
	struct server_listener *l = arg;
	struct server *srv = l->srv;
	if (srv->stopping) {
		close(fd);
		return;
	}
	if (srv->n_sessions >= srv->cfg->max_connections) {
		refuse_now(fd, "421 4.7.0 Too many connections; try again later\r\n");
		log_event(LOG_LEVEL_WARN, "smtp.refused", "listener=%s reason=max_connections",
		          l->cl->name);
		return;
	}
	/* One address may not take every connection; trusted networks (a
	 * local application queueing a burst) are not counted. */
	char addr[INET6_ADDRSTRLEN];
	sockaddr_text(sa, addr, sizeof(addr));
	bool trusted = config_is_trusted(srv->cfg, sa);
	if (!trusted && !ip_acquire(srv, addr, srv->cfg->max_connections_per_ip)) {
		srv->refused_per_ip++;
		refuse_now(fd,
		           "421 4.7.0 Too many connections from your address; try again later\r\n");
		struct logline ll;
		logline_init(&ll, "smtp.refused");
		logline_str(&ll, "listener", l->cl->name);
		logline_str(&ll, "client", addr);
		logline_str(&ll, "reason", "max_connections_per_ip");
		logline_emit(&ll, LOG_LEVEL_WARN);
		return;
	}
	session_start(srv, l->cl, fd, sa, (socklen_t)salen, addr, trusted);
}

/* bind_all - a list of bound sockets for every address of cfg, taking
 * sockets from *reuse (same address) instead of binding again. */
static struct server_listener *bind_all(struct server *srv, const struct config *cfg,
                                        struct server_listener **reuse, const char **error_r)
{
	struct server_listener *head = NULL;
	for (size_t i = 0; i < cfg->n_listeners; i++) {
		const struct config_listener *cl = &cfg->listeners[i];
		for (size_t a = 0; a < cl->n_addrs; a++) {
			struct server_listener *l = NULL;
			for (struct server_listener **pp = reuse; pp && *pp; pp = &(*pp)->next) {
				if (strcmp((*pp)->addr.text, cl->addrs[a].text) == 0) {
					l = *pp;
					*pp = l->next;
					break;
				}
			}
			if (l == NULL) {
				int fd = bind_addr(&cl->addrs[a], cfg->path, cl);
				if (fd < 0) {
					*error_r = error_buf;
					/* give back what was taken from reuse */
					while (head != NULL) {
						struct server_listener *n = head->next;
						if (head->evl != NULL && reuse != NULL) {
							head->next = *reuse;
							*reuse = head;
						} else {
							close(head->fd);
							free(head);
						}
						head = n;
					}
					return NULL;
				}
				l = xcalloc(1, sizeof(*l));
				l->fd = fd;
				l->addr = cl->addrs[a];
				l->srv = srv;
			}
			l->cl = cl;
			l->next = head;
			head = l;
		}
	}
	return head;
}

static void listener_close(struct server_listener *l)
{
	if (l->evl != NULL)
		evconnlistener_free(l->evl); /* closes the socket */
	else
		close(l->fd);
	free(l);
}

/* start_accepting - an evconnlistener for every socket that has none. */
static void start_accepting(struct server *srv)
{
	for (struct server_listener *l = srv->listeners; l != NULL; l = l->next) {
		if (l->evl != NULL)
			continue;
		l->evl =
		    evconnlistener_new(srv->base, on_accept, l,
		                       LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, l->fd);
		evconnlistener_set_error_cb(l->evl, on_accept_error);
		log_event(LOG_LEVEL_INFO, "server.listen", "listener=%s address=%s", l->cl->name,
		          l->addr.text);
	}
}

/* tls_for - the TLS context cfg needs: NULL with *ctx_r NULL when no
 * listener uses TLS, -1 when the certificate or key cannot be used. */
static int tls_for(const struct config *cfg, SSL_CTX **ctx_r, const char **error_r)
{
	*ctx_r = NULL;
	for (size_t i = 0; i < cfg->n_listeners; i++) {
		if (cfg->listeners[i].tls == LISTENER_TLS_NONE)
			continue;
		*ctx_r = tls_server_ctx_new(cfg->certificate, cfg->private_key, error_r);
		return *ctx_r ? 0 : -1;
	}
	return 0;
}

int server_check_tls(const struct config *cfg, const char **error_r)
{
	static char msg[PATH_MAX + 600];
	SSL_CTX *ctx;
	if (tls_for(cfg, &ctx, error_r) < 0) {
		snprintf(msg, sizeof(msg), "%s:%d: %s", cfg->path, cfg->certificate_line, *error_r);
		*error_r = msg;
		return -1;
	}
	if (ctx != NULL)
		SSL_CTX_free(ctx);
	return 0;
}

struct server *server_new(struct config *cfg, const char **error_r)
{
	struct server *srv = xcalloc(1, sizeof(*srv));
	srv->cfg = config_ref(cfg);
	srv->started = time(NULL);
	srv->lock_fd = -1;
	srv->ip_counts = xcalloc(IP_BUCKETS, sizeof(*srv->ip_counts));
	/* The key is read now, as root, like the ports are bound. */
	if (tls_for(cfg, &srv->tls_ctx, error_r) < 0)
		goto fail;
	srv->listeners = bind_all(srv, cfg, NULL, error_r);
	if (srv->listeners == NULL)
		goto fail;
	return srv;
fail:
	if (srv->tls_ctx != NULL)
		SSL_CTX_free(srv->tls_ctx);
	config_unref(&srv->cfg);
	free(srv->ip_counts);
	free(srv);
	return NULL;
}

/* lock_state_dir - one daemon per state folder: a second one would remove
 * the first one's spill files and fight over the queue. */
static int lock_state_dir(struct server *srv, const char **error_r)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/detourd.lock", srv->cfg->state_dir);
	srv->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (srv->lock_fd < 0 || flock(srv->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			snprintf(error_buf, sizeof(error_buf),
			         "another detourd is running with state_dir %s",
			         srv->cfg->state_dir);
		else
			snprintf(error_buf, sizeof(error_buf), "cannot lock %s: %s", path,
			         strerror(errno));
		*error_r = error_buf;
		return -1;
	}
	return 0;
}

int server_start(struct server *srv, struct event_base *base, const char **error_r)
{
	srv->base = base;
	if (lock_state_dir(srv, error_r) < 0)
		return -1;
	srv->spool = spool_open(srv->cfg->state_dir, srv->base, error_r);
	if (srv->spool == NULL)
		return -1;
	srv->ctl = ctl_server_new(srv, srv->cfg->control_socket, error_r);
	if (srv->ctl == NULL)
		return -1;
	srv->workers = workers_new(base, AUTH_WORKERS);
	srv->rl_messages = ratelimit_new(RATELIMIT_KEYS_MAX);
	srv->rl_recipients = ratelimit_new(RATELIMIT_KEYS_MAX);
	srv->rl_auth = ratelimit_new(RATELIMIT_KEYS_MAX);
	/* Our own specific listening addresses: an MX that resolves to one of
	 * them is a mail loop. */
	struct sockaddr_storage ours[CONFIG_LISTENERS_MAX];
	size_t n_ours = 0;
	for (struct server_listener *l = srv->listeners; l != NULL && n_ours < ARRAY_SIZE(ours);
	     l = l->next) {
		const struct sockaddr_storage *ss = &l->addr.ss;
		bool any =
		    (ss->ss_family == AF_INET &&
		     ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY)) ||
		    (ss->ss_family == AF_INET6 &&
		     IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr));
		if (!any)
			ours[n_ours++] = *ss;
	}
	srv->delivery = delivery_new(base, srv->cfg, srv->spool, ours, n_ours, error_r);
	if (srv->delivery == NULL)
		return -1;
	delivery_start(srv->delivery);
	start_accepting(srv);
	log_event(LOG_LEVEL_INFO, "server.start", "hostname=%s state_dir=%s", srv->cfg->hostname,
	          srv->cfg->state_dir);
	return 0;
}

/* same_string - both NULL or equal. */
static bool same_string(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

int server_reload(struct server *srv, char **message_r)
{
	char *errors = NULL;
	const char *error = NULL;
	struct config *cfg = config_load(srv->cfg->path, &errors);
	if (cfg == NULL) {
		*message_r =
		    xasprintf("reload refused, the running configuration stays:\n%s", errors);
		free(errors);
		return -1;
	}
	/* These are opened once, as root, at start-up. */
	if (strcmp(cfg->state_dir, srv->cfg->state_dir) != 0 ||
	    strcmp(cfg->control_socket, srv->cfg->control_socket) != 0 ||
	    !same_string(cfg->user, srv->cfg->user)) {
		*message_r = xstrdup("reload refused: state_dir, control_socket and user change "
		                     "only with a restart");
		config_unref(&cfg);
		return -1;
	}
	/* A new certificate is read on every reload (renewals need no
	 * restart); sessions already in TLS keep the context they began with. */
	SSL_CTX *tls_ctx;
	if (tls_for(cfg, &tls_ctx, &error) < 0) {
		*message_r =
		    xasprintf("reload refused, the running configuration stays: %s", error);
		config_unref(&cfg);
		return -1;
	}
	if (srv->delivery != NULL && delivery_reload(srv->delivery, cfg, &error) < 0) {
		*message_r =
		    xasprintf("reload refused, the running configuration stays: %s", error);
		if (tls_ctx != NULL)
			SSL_CTX_free(tls_ctx);
		config_unref(&cfg);
		return -1;
	}
	struct server_listener *old = srv->listeners;
	struct server_listener *fresh = bind_all(srv, cfg, &old, &error);
	if (fresh == NULL) {
		srv->listeners = old;
		*message_r =
		    xasprintf("reload refused, the running configuration stays: %s", error);
		/* Delivery took the new settings already: give it the old ones
		 * back (they worked a moment ago). */
		const char *ignored;
		if (srv->delivery != NULL)
			delivery_reload(srv->delivery, srv->cfg, &ignored);
		if (tls_ctx != NULL)
			SSL_CTX_free(tls_ctx);
		config_unref(&cfg);
		return -1;
	}
	if (srv->tls_ctx != NULL)
		SSL_CTX_free(srv->tls_ctx);
	srv->tls_ctx = tls_ctx;
	/* What is left in old is no longer configured. */
	while (old != NULL) {
		struct server_listener *n = old->next;
		log_event(LOG_LEVEL_INFO, "server.unlisten", "address=%s", old->addr.text);
		listener_close(old);
		old = n;
	}
	srv->listeners = fresh;
	config_unref(&srv->cfg);
	srv->cfg = cfg;
	start_accepting(srv);
	log_event(LOG_LEVEL_INFO, "server.reload", "result=ok listeners=%zu", cfg->n_listeners);
	*message_r = xstrdup("configuration reloaded");
	return 0;
}

static void maybe_exit(struct server *srv)
{
	if (srv->stopping && srv->n_sessions == 0)
		event_base_loopexit(srv->base, NULL);
}

static void grace_over(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	log_event(LOG_LEVEL_INFO, "server.grace_over", "sessions=%u", srv->n_sessions);
	struct session *s = srv->sessions;
	while (s != NULL) {
		struct session *n = session_next(s);
		session_shutdown(s, true);
		s = n;
	}
	maybe_exit(srv);
}

void server_stop(struct server *srv)
{
	if (srv->stopping)
		return;
	srv->stopping = true;
	delivery_stop(srv->delivery);
	log_event(LOG_LEVEL_INFO, "server.stop", "sessions=%u grace=%us", srv->n_sessions,
	          srv->cfg->shutdown_grace);
	while (srv->listeners != NULL) {
		struct server_listener *n = srv->listeners->next;
		listener_close(srv->listeners);
		srv->listeners = n;
	}
	struct session *s = srv->sessions;
	while (s != NULL) {
		struct session *n = session_next(s);
		session_shutdown(s, false);
		s = n;
	}
	struct timeval tv = {srv->cfg->shutdown_grace, 0};
	srv->grace_timer = evtimer_new(srv->base, grace_over, srv);
	evtimer_add(srv->grace_timer, &tv);
	maybe_exit(srv);
}

void server_session_added(struct server *srv, struct session *s)
{
	srv->n_sessions++;
	srv->total_sessions++;
}

void server_session_removed(struct server *srv, struct session *s)
{
	srv->n_sessions--;
	maybe_exit(srv);
}

void server_free(struct server **srvp)
{
	struct server *srv = *srvp;
	if (srv == NULL)
		return;
	*srvp = NULL;
	while (srv->listeners != NULL) {
		struct server_listener *n = srv->listeners->next;
		listener_close(srv->listeners);
		srv->listeners = n;
	}
	ctl_server_free(&srv->ctl);
	workers_free(&srv->workers);
	delivery_free(&srv->delivery);
	spool_close(&srv->spool);
	if (srv->tls_ctx != NULL)
		SSL_CTX_free(srv->tls_ctx);
	if (srv->grace_timer != NULL)
		event_free(srv->grace_timer);
	if (srv->lock_fd >= 0)
		close(srv->lock_fd);
	ratelimit_free(&srv->rl_messages);
	ratelimit_free(&srv->rl_recipients);
	ratelimit_free(&srv->rl_auth);
	for (size_t i = 0; i < IP_BUCKETS; i++) {
		while (srv->ip_counts[i] != NULL) {
			struct ip_count *c = srv->ip_counts[i];
			srv->ip_counts[i] = c->next;
			free(c);
		}
	}
	free(srv->ip_counts);
	config_unref(&srv->cfg);
	free(srv);
}
