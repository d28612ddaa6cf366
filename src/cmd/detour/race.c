/* SPDX-License-Identifier: ISC */
/* race.c - see race.h */
#include "cmd/detour/race.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd/detour/classify.h"
#include "cmd/detour/detour.h"
#include "cmd/detour/portmem.h"
#include "lib/util.h"

#define RACE_ADDRS_MAX    2 /* the first IPv6 and the first IPv4 address */
#define RACE_ATTEMPTS_MAX (DETOUR_PORTS_MAX * RACE_ADDRS_MAX)

enum verdict {
	V_PENDING,
	V_REFUSED,     /* the connection was refused */
	V_BLOCKED,     /* nothing answered */
	V_INTERCEPTED, /* something else answered, or TLS was stripped */
	V_CERT,        /* a certificate that does not check out */
	V_TLS,         /* the handshake failed */
	V_SERVER,      /* the relay answered with an error (greeting 4xx/5xx...) */
	V_NOT_TRIED,   /* a winner was found first */
	V_WON,
};

struct attempt {
	unsigned port;
	bool implicit;
	const struct sockaddr_storage *addr;
	socklen_t addrlen;
	bool remembered;
	struct conn *conn;
	enum verdict verdict;
	bool mark_intercepted; /* remember as intercepted on this network */
	char why[320];
};

struct race_state {
	struct race *r;
	struct sockaddr_storage addrs[RACE_ADDRS_MAX];
	socklen_t addrlens[RACE_ADDRS_MAX];
	size_t naddrs;
	struct attempt at[RACE_ATTEMPTS_MAX];
	size_t n;
};

/* say - detour_warn, with -v only (the arguments are not evaluated
 * otherwise). */
#define say(r, ...)                                                                                \
	do {                                                                                       \
		if ((r)->verbose)                                                                  \
			detour_warn(__VA_ARGS__);                                                  \
	} while (0)

static const char *verdict_name(enum verdict v)
{
	switch (v) {
	case V_REFUSED:
		return "refused";
	case V_BLOCKED:
		return "blocked";
	case V_INTERCEPTED:
		return "intercepted";
	case V_CERT:
		return "certificate refused";
	case V_TLS:
		return "TLS failed";
	case V_SERVER:
		return "server error";
	case V_NOT_TRIED:
		return "not needed";
	case V_PENDING:
		return "no answer";
	case V_WON:
		return "used";
	}
	return "?";
}

static int resolve(struct race_state *s)
{
	struct race *r = s->r;
	const char *host = r->account->host;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG};
	struct addrinfo *res = NULL;
	int e = getaddrinfo(host, NULL, &hints, &res);
	if (e != 0) {
		/* No such name is for the user to fix; anything else may be
		 * this network's resolver, and passes. */
		r->exit_code = e == EAI_NONAME ? EX_NOHOST : EX_TEMPFAIL;
		snprintf(r->summary, sizeof(r->summary), "cannot find the address of %s: %s", host,
		         gai_strerror(e));
		return -1;
	}
	bool have4 = false, have6 = false;
	for (struct addrinfo *ai = res; ai != NULL && s->naddrs < RACE_ADDRS_MAX;
	     ai = ai->ai_next) {
		if ((ai->ai_family == AF_INET && have4) || (ai->ai_family == AF_INET6 && have6) ||
		    (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
		    ai->ai_addrlen > sizeof(s->addrs[0]))
			continue;
		memcpy(&s->addrs[s->naddrs], ai->ai_addr, ai->ai_addrlen);
		s->addrlens[s->naddrs++] = ai->ai_addrlen;
		if (ai->ai_family == AF_INET)
			have4 = true;
		else
			have6 = true;
	}
	freeaddrinfo(res);
	if (s->naddrs == 0) {
		r->exit_code = EX_NOHOST;
		snprintf(r->summary, sizeof(r->summary), "%s has no usable address", host);
		return -1;
	}
	return 0;
}

static void set_port(struct sockaddr_storage *ss, unsigned port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

/* plan - the attempts in order (see race.h). */
static void plan(struct race_state *s, const struct portmem_entry *mem, int64_t now)
{
	const struct client_account *a = s->r->account;
	const struct client_port *order[DETOUR_PORTS_MAX];
	size_t n = 0;
	const struct client_port *remembered = NULL;
	if (mem != NULL && mem->port != 0)
		for (size_t i = 0; i < a->nports; i++)
			if (a->ports[i].port == mem->port && a->ports[i].implicit == mem->implicit)
				remembered = &a->ports[i];
	if (remembered != NULL)
		order[n++] = remembered;
	/* implicit TLS, then STARTTLS; then the same for ports seen
	 * intercepted here lately */
	for (int late = 0; late < 2; late++)
		for (int starttls = 0; starttls < 2; starttls++)
			for (size_t i = 0; i < a->nports; i++) {
				const struct client_port *p = &a->ports[i];
				bool bad = mem != NULL && portmem_is_intercepted(mem, p->port, now);
				if (p == remembered || p->implicit == (bool)starttls ||
				    bad != (bool)late)
					continue;
				order[n++] = p;
			}
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < s->naddrs; k++) {
			struct attempt *t = &s->at[s->n++];
			memset(t, 0, sizeof(*t));
			t->port = order[i]->port;
			t->implicit = order[i]->implicit;
			t->addr = &s->addrs[k];
			t->addrlen = s->addrlens[k];
			t->remembered = order[i] == remembered;
		}
	}
}

static void addr_text(const struct sockaddr_storage *ss, char *buf, size_t size)
{
	if (ss->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, buf,
		          (socklen_t)size);
	else
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, buf,
		          (socklen_t)size);
}

static void start(struct race_state *s, struct attempt *t)
{
	struct race *r = s->r;
	const struct client_account *a = r->account;
	struct sockaddr_storage addr = *t->addr;
	set_port(&addr, t->port);
	struct conn_settings cs = {
	    .host = a->host,
	    .addr = (const struct sockaddr *)&addr,
	    .addrlen = t->addrlen,
	    .implicit_tls = t->implicit,
	    .ssl_ctx = r->ssl_ctx,
	    .require_verified = true,
	    .gate = true,
	    .tls = SMTP_CLIENT_TLS_REQUIRED,
	    .auth_user = a->user,
	    .auth_password = a->user != NULL ? r->password : NULL,
	    .wait_ms = a->timeout * 1000,
	    .deadline = mono_ms() + (int64_t)a->timeout * 1000,
	};
	char at[INET6_ADDRSTRLEN];
	addr_text(t->addr, at, sizeof(at));
	say(r, "trying %s port %u (%s)%s", at, t->port, t->implicit ? "implicit TLS" : "STARTTLS",
	    t->remembered ? ", the port that last worked on this network" : "");
	t->conn = conn_open(&cs);
}

/* intercepted_signs - a masked greeting or rewritten EHLO keywords (see
 * classify.h): nothing to wait for, whatever TLS would say. */
static bool intercepted_signs(const struct attempt *t, char *why, size_t size)
{
	size_t n;
	const struct conn_reply *rep = conn_replies(t->conn, &n);
	if (n >= 1 && classify_masked(rep[0].text)) {
		snprintf(why, size, "the greeting is masked: a firewall inspects SMTP here");
		return true;
	}
	if (n >= 2 && !rep[1].in_tls) {
		const char *nl = strchr(rep[1].text, '\n');
		char which[64];
		if (classify_masked(rep[1].text) ||
		    (nl != NULL && classify_mangled_keywords(nl + 1, which, sizeof(which)))) {
			snprintf(why, size,
			         "EHLO keywords are rewritten: a firewall inspects SMTP here");
			return true;
		}
	}
	return false;
}

/* judge - the verdict on a finished (failed) attempt. */
static void judge(struct race_state *s, struct attempt *t)
{
	struct conn *c = t->conn;
	const char *err = conn_error(c);
	const struct smtp_client_result *se = conn_smtp_error(c);
	const struct tlsinfo *tls = conn_tls(c);
	switch (conn_failure(c)) {
	case CONN_FAIL_CONNECT:
		switch (conn_connect_result(c)) {
		case PROBE_CONNECT_REFUSED:
		case PROBE_CONNECT_UNREACHABLE:
			t->verdict = V_REFUSED;
			break;
		case PROBE_CONNECT_TIMEOUT:
			t->verdict = V_BLOCKED;
			break;
		default:
			t->verdict = V_REFUSED;
			break;
		}
		snprintf(t->why, sizeof(t->why), "%s", err);
		return;
	case CONN_FAIL_SILENT:
		t->verdict = V_BLOCKED;
		snprintf(t->why, sizeof(t->why), "%s", err);
		return;
	case CONN_FAIL_CERT:
		t->verdict = V_CERT;
		/* A certificate for another name is someone else's server. */
		t->mark_intercepted = tls->has_cert && !tls->name_ok;
		snprintf(t->why, sizeof(t->why), "%s; no credentials sent", err);
		return;
	case CONN_FAIL_TLS:
		t->verdict = V_TLS;
		snprintf(t->why, sizeof(t->why), "%s", err);
		return;
	case CONN_FAIL_SMTP:
		if (se != NULL && se->reason == SMTP_CLIENT_R_TLS_REQUIRED) {
			/* RFC 3207 allows a server without STARTTLS, but the relay
			 * offers it everywhere: someone removed it. */
			t->verdict = V_INTERCEPTED;
			t->mark_intercepted = true;
			snprintf(t->why, sizeof(t->why),
			         "no STARTTLS (stripped on the way, or another server answers); no "
			         "credentials sent");
			return;
		}
		t->verdict = V_SERVER;
		snprintf(t->why, sizeof(t->why), "%s", err);
		return;
	case CONN_FAIL_ABORTED:
		t->verdict = V_BLOCKED;
		snprintf(t->why, sizeof(t->why), "no usable answer within %us",
		         s->r->account->timeout);
		return;
	case CONN_FAIL_NONE:
		break;
	}
	t->verdict = V_SERVER;
	snprintf(t->why, sizeof(t->why), "%s", err[0] ? err : "failed");
}

/* remember - store the winner and what was found intercepted. */
static void remember(struct race_state *s, const struct attempt *winner)
{
	struct race *r = s->r;
	if (r->state_dir == NULL)
		return;
	char *path = xasprintf("%s/networks", r->state_dir);
	struct portmem pm;
	int64_t now = (int64_t)time(NULL);
	if (portmem_load(path, &pm) == 0) {
		/* The MAC may be known now that packets went to the gateway. */
		struct netid id;
		netid_get((const struct sockaddr *)&s->addrs[0], s->addrlens[0], &id);
		struct portmem_entry *e = portmem_touch(&pm, &id, r->account->host, now);
		for (size_t i = 0; i < s->n; i++)
			if (s->at[i].mark_intercepted)
				portmem_mark_intercepted(e, s->at[i].port, now);
		if (winner != NULL)
			portmem_set_winner(e, winner->port, winner->implicit, now);
		if (detour_mkdirs(r->state_dir, 0700) < 0 || portmem_save(path, &pm) < 0)
			say(r, "cannot save %s: %s", path, strerror(errno));
	}
	portmem_free(&pm);
	free(path);
}

static void summarize(struct race_state *s)
{
	struct race *r = s->r;
	size_t off = 0;
	bool reached = false, cert = false;
	off += (size_t)snprintf(r->summary, sizeof(r->summary),
	                        "cannot submit to %s:", r->account->host);
	for (size_t i = 0; i < s->n; i++) {
		const struct attempt *t = &s->at[i];
		/* one entry per port: the first address's, unless another did
		 * better */
		bool dup = false;
		for (size_t j = 0; j < i; j++)
			if (s->at[j].port == t->port)
				dup = true;
		if (t->verdict == V_SERVER)
			reached = true;
		if (t->verdict == V_CERT)
			cert = true;
		if (dup || off >= sizeof(r->summary))
			continue;
		int w = snprintf(r->summary + off, sizeof(r->summary) - off, "%s %u %s (%s)",
		                 off > 0 && i > 0 ? ";" : "", t->port, verdict_name(t->verdict),
		                 t->why);
		if (w > 0)
			off += (size_t)w;
	}
	/* EX_TEMPFAIL when the relay itself answered (busy, closing): later
	 * will do. EX_UNAVAILABLE when this network lets nothing usable
	 * through, or a certificate is wrong: a retry from here will not
	 * help, another network or another setting will. */
	r->exit_code = reached && !cert ? EX_TEMPFAIL : EX_UNAVAILABLE;
}

static size_t running(const struct race_state *s, struct conn **conns)
{
	size_t k = 0;
	for (size_t i = 0; i < s->n; i++)
		if (s->at[i].conn != NULL && s->at[i].verdict == V_PENDING)
			conns[k++] = s->at[i].conn;
	return k;
}

/* authenticate - the gate is open: wait for AUTH to finish. */
static int authenticate(struct race_state *s, struct attempt *t)
{
	struct race *r = s->r;
	conn_release(t->conn);
	while (conn_status(t->conn) == CONN_BUSY)
		conn_wait(&t->conn, 1, 0);
	if (conn_status(t->conn) == CONN_IDLE)
		return 0;
	const struct smtp_client_result *e = conn_smtp_error(t->conn);
	char text[SMTP_REPLYLINE_MAX];
	detour_printable(text, sizeof(text), conn_error(t->conn));
	if (e != NULL && e->reason == SMTP_CLIENT_R_AUTH_FAILED &&
	    e->status == SMTP_CLIENT_PERMFAIL) {
		r->exit_code = EX_NOPERM;
		r->permanent = true;
		snprintf(r->summary, sizeof(r->summary),
		         "%s refused the user name or password of account '%s' (%s)",
		         r->account->host, r->account->name, text);
	} else if (e != NULL && e->reason == SMTP_CLIENT_R_AUTH_UNAVAILABLE) {
		r->exit_code = EX_UNAVAILABLE;
		r->permanent = true;
		snprintf(r->summary, sizeof(r->summary), "%s port %u: %s", r->account->host,
		         t->port, text);
	} else {
		r->exit_code = EX_TEMPFAIL;
		snprintf(r->summary, sizeof(r->summary), "%s port %u: %s", r->account->host,
		         t->port, text);
	}
	return -1;
}

int race_run(struct race *r)
{
	struct race_state *s = xcalloc(1, sizeof(*s));
	s->r = r;
	r->winner = NULL;
	r->permanent = false;
	r->exit_code = EX_UNAVAILABLE;
	r->summary[0] = '\0';
	int rc = -1;
	if (resolve(s) < 0)
		goto out;
	netid_get((const struct sockaddr *)&s->addrs[0], s->addrlens[0], &r->netid);
	if (r->verbose) {
		char d[300];
		netid_describe(&r->netid, d, sizeof(d));
		say(r, "this network: %s", d);
	}
	struct portmem pm = {0};
	struct portmem_entry *mem = NULL;
	char *path = r->state_dir != NULL ? xasprintf("%s/networks", r->state_dir) : NULL;
	if (path != NULL && portmem_load(path, &pm) == 0)
		mem = portmem_find(&pm, &r->netid, r->account->host);
	free(path);
	plan(s, mem, (int64_t)time(NULL));
	portmem_free(&pm);

	struct conn *conns[RACE_ATTEMPTS_MAX];
	size_t next = 0;
	int64_t t_start = mono_ms(), next_at = t_start;
	struct attempt *winner = NULL;
	for (;;) {
		int64_t now = mono_ms();
		if (next < s->n && now >= next_at) {
			struct attempt *t = &s->at[next++];
			start(s, t);
			bool head = t->remembered && (next == s->n || !s->at[next].remembered);
			next_at =
			    now + (head ? DETOUR_REMEMBERED_HEAD_START_MS : DETOUR_STAGGER_MS);
		}
		/* Look at every attempt: finished ones, signs of interception,
		 * and the first (in order of preference) to be READY. */
		for (size_t i = 0; i < next; i++) {
			struct attempt *t = &s->at[i];
			if (t->verdict != V_PENDING)
				continue;
			enum conn_status st = conn_status(t->conn);
			if ((st == CONN_BUSY || st == CONN_READY) &&
			    intercepted_signs(t, t->why, sizeof(t->why))) {
				conn_abort(t->conn);
				t->verdict = V_INTERCEPTED;
				t->mark_intercepted = true;
				say(r, "port %u: intercepted: %s", t->port, t->why);
				next_at = now;
				continue;
			}
			if (st == CONN_FAILED || st == CONN_DONE) {
				judge(s, t);
				say(r, "port %u: %s: %s", t->port, verdict_name(t->verdict),
				    t->why);
				next_at = now; /* RFC 8305 5: the next one at once */
				continue;
			}
			if (st == CONN_READY && winner == NULL)
				winner = t;
		}
		if (winner != NULL)
			break;
		size_t k = running(s, conns);
		if (k == 0 && next == s->n)
			break;
		conn_wait(conns, k, next < s->n ? next_at : 0);
	}
	for (size_t i = 0; i < s->n; i++) {
		struct attempt *t = &s->at[i];
		if (t == winner)
			continue;
		if (t->conn != NULL && t->verdict == V_PENDING) {
			conn_abort(t->conn); /* its gate never opened */
			t->verdict = V_NOT_TRIED;
			str_copy(t->why, "another port was faster", sizeof(t->why));
		} else if (t->conn == NULL) {
			t->verdict = V_NOT_TRIED;
			str_copy(t->why, "another port worked", sizeof(t->why));
		}
	}
	if (winner == NULL) {
		summarize(s);
		remember(s, NULL);
		goto out;
	}
	winner->verdict = V_WON;
	say(r, "port %u answers as %s with verified TLS after %lld ms; authenticating",
	    winner->port, r->account->host, (long long)(mono_ms() - t_start));
	if (authenticate(s, winner) < 0) {
		remember(s, NULL);
		goto out;
	}
	r->winner = winner->conn;
	winner->conn = NULL;
	r->port = winner->port;
	r->implicit = winner->implicit;
	remember(s, winner);
	rc = 0;
out:
	for (size_t i = 0; i < s->n; i++)
		conn_free(&s->at[i].conn);
	free(s);
	return rc;
}

void race_free(struct race *r)
{
	conn_free(&r->winner);
}
