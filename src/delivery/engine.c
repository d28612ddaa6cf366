/* SPDX-License-Identifier: ISC */
/*
 * engine.c - the delivery engine (delivery.h): fetching due work from the
 * queue, destinations and their routes, and turning results into queue
 * states, bounces and log lines.
 *
 * A claimed message is split into jobs, one per destination (recipient
 * domain, or the single smarthost destination). A destination resolves its
 * route once (reused for DELIVERY_ROUTE_TTL_MS), opens up to
 * DELIVERY_DEST_CONCURRENCY connections, and hands each ready connection
 * the next job. When every job of a message is back, its results go to the
 * queue in one update, with the bounce for its failures, if any, in the
 * same transaction.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "config/config.h"
#include "delivery/bounce.h"
#include "delivery/delivery_internal.h"
#include "delivery/retry.h"
#include "dns/dns.h"
#include "lib/log.h"
#include "lib/util.h"

#define DEST_BUCKETS 256
/* Longest smarthost password read from its file. */
#define SMARTHOST_PASSWORD_MAX 1024

struct delivery {
	struct event_base *base;
	struct config *cfg;
	struct spool *spool;
	struct dns *dns;
	struct dns_route_policy policy;
	struct sockaddr_storage *our_addrs;
	size_t n_our_addrs;
	SSL_CTX *ssl_mx;        /* opportunistic: no certificate checks (RFC 7435) */
	SSL_CTX *ssl_smarthost; /* checked against smarthost_ca_file or the system CAs */
	char *smarthost_password;
	struct destination *dests[DEST_BUCKETS];
	struct event *timer; /* the next due recipient */
	bool fetching;
	bool kick_again; /* a kick arrived while a fetch was out */
	bool stopped;
	bool paused;
	uint64_t msgs_out;
	uint64_t n_conns;
	struct delivery_stats stats;
};

/* Resolving the smarthost list: every host looked up at once, the targets
 * kept in the order of the configuration. */
struct smarthost_lookup {
	struct destination *dest;
	size_t n;
	size_t pending;
	struct smarthost_entry {
		struct smarthost_lookup *sl;
		char host[DNS_NAME_MAX + 1];
		uint16_t port;
		struct dns_query *q;
		size_t n_addrs;
		struct sockaddr_storage addrs[DNS_ROUTE_TARGETS_MAX];
		const char *error;
	} * entries;
};

static void dest_pump(struct destination *dest);
static void fetch(struct delivery *d);

struct event_base *engine_base(struct destination *dest)
{
	return dest->d->base;
}

/* ---- settings --------------------------------------------------------- */

static uint16_t smarthost_default_port(const struct config *cfg)
{
	switch (cfg->smarthost_tls) {
	case SMARTHOST_TLS_IMPLICIT:
		return 465;
	case SMARTHOST_TLS_STARTTLS:
		return 587;
	case SMARTHOST_TLS_NONE:
		return 25;
	}
	return 25;
}

static void settings_for(struct delivery *d, const struct destination *dest,
                         struct outbound_settings *set_r)
{
	const struct config *cfg = d->cfg;
	memset(set_r, 0, sizeof(*set_r));
	set_r->ehlo_name = cfg->hostname;
	set_r->connect_timeout = cfg->connect_timeout;
	set_r->reply_timeout = cfg->reply_timeout;
	if (!dest->smarthost) {
		set_r->tls = SMTP_CLIENT_TLS_OPPORTUNISTIC;
		set_r->ssl_ctx = d->ssl_mx;
		return;
	}
	/* A smarthost is a relay we chose: its certificate is checked, and
	 * credentials never travel outside TLS. */
	set_r->ssl_ctx = d->ssl_smarthost;
	set_r->verify = true;
	switch (cfg->smarthost_tls) {
	case SMARTHOST_TLS_STARTTLS:
		set_r->tls = SMTP_CLIENT_TLS_REQUIRED;
		break;
	case SMARTHOST_TLS_IMPLICIT:
		set_r->implicit_tls = true;
		break;
	case SMARTHOST_TLS_NONE:
		set_r->tls = SMTP_CLIENT_TLS_NONE;
		break;
	}
	set_r->auth_user = cfg->smarthost_user;
	set_r->auth_password = d->smarthost_password;
}

static SSL_CTX *client_ctx(bool verify, const char *ca_file, const char **error_r)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL) {
		*error_r = "cannot create a TLS client context";
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	if (verify) {
		int ok = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
		                 : SSL_CTX_set_default_verify_paths(ctx);
		if (ok != 1) {
			*error_r = "smarthost_ca_file cannot be read as PEM certificates";
			SSL_CTX_free(ctx);
			ERR_clear_error();
			return NULL;
		}
	}
	return ctx;
}

/* read_password_file - the first line of path. Refuses a file other users
 * can read: the password would not be a secret. */
static char *read_password_file(const char *path, const char **error_r)
{
	static char err[300];
	struct stat st;
	FILE *f = fopen(path, "re");
	if (f == NULL || fstat(fileno(f), &st) < 0) {
		snprintf(err, sizeof(err), "smarthost_password_file %s: %s", path, strerror(errno));
		*error_r = err;
		if (f)
			fclose(f);
		return NULL;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(err, sizeof(err),
		         "smarthost_password_file %s is readable by others (chmod 600 it)", path);
		*error_r = err;
		fclose(f);
		return NULL;
	}
	char line[SMARTHOST_PASSWORD_MAX + 2];
	if (fgets(line, sizeof(line), f) == NULL) {
		snprintf(err, sizeof(err), "smarthost_password_file %s is empty", path);
		*error_r = err;
		fclose(f);
		return NULL;
	}
	fclose(f);
	line[strcspn(line, "\r\n")] = '\0';
	char *pw = xstrdup(line);
	explicit_bzero(line, sizeof(line));
	return pw;
}

/* apply_config - everything derived from cfg; all or nothing. */
static int apply_config(struct delivery *d, struct config *cfg, const char **error_r)
{
	SSL_CTX *smarthost_ctx = NULL;
	char *password = NULL;
	if (cfg->smarthost != NULL && cfg->smarthost_tls != SMARTHOST_TLS_NONE) {
		smarthost_ctx = client_ctx(true, cfg->smarthost_ca_file, error_r);
		if (smarthost_ctx == NULL)
			return -1;
	}
	if (cfg->smarthost_password_file != NULL) {
		password = read_password_file(cfg->smarthost_password_file, error_r);
		if (password == NULL) {
			SSL_CTX_free(smarthost_ctx);
			return -1;
		}
	}
	if (d->ssl_smarthost != NULL)
		SSL_CTX_free(d->ssl_smarthost);
	d->ssl_smarthost = smarthost_ctx;
	if (d->smarthost_password != NULL) {
		explicit_bzero(d->smarthost_password, strlen(d->smarthost_password));
		free(d->smarthost_password);
	}
	d->smarthost_password = password;
	struct config *old = d->cfg;
	d->cfg = config_ref(cfg);
	config_unref(&old);
	d->policy.our_hostname = d->cfg->hostname;
	d->policy.allow_loopback_mx = d->cfg->allow_loopback_mx;
	d->policy.port = (uint16_t)d->cfg->mx_port;
	return 0;
}

/* ---- destinations ------------------------------------------------------- */

static unsigned dest_bucket(const char *key)
{
	unsigned h = 5381;
	for (const char *p = key; *p; p++)
		h = h * 33 + (unsigned char)*p;
	return h % DEST_BUCKETS;
}

static struct destination *dest_get(struct delivery *d, const char *key, bool smarthost)
{
	unsigned b = dest_bucket(key);
	for (struct destination *dest = d->dests[b]; dest != NULL; dest = dest->next)
		if (strcmp(dest->key, key) == 0)
			return dest;
	struct destination *dest = xcalloc(1, sizeof(*dest));
	dest->d = d;
	str_copy(dest->key, key, sizeof(dest->key));
	dest->smarthost = smarthost;
	dest->next = d->dests[b];
	d->dests[b] = dest;
	return dest;
}

/* dest_free - a destination with nothing queued and no connection. */
static void dest_free(struct destination *dest)
{
	struct delivery *d = dest->d;
	for (struct destination **pp = &d->dests[dest_bucket(dest->key)]; *pp; pp = &(*pp)->next) {
		if (*pp == dest) {
			*pp = dest->next;
			break;
		}
	}
	dns_route_cancel(&dest->route_query);
	free(dest);
}

static void dest_maybe_free(struct destination *dest)
{
	if (dest->queued == 0 && dest->conns == NULL && dest->route_query == NULL &&
	    dest->smarthost_lookup == NULL)
		dest_free(dest);
}

static void job_free(struct dlv_job *job)
{
	free(job->rcpt);
	free(job->crcpts);
	free(job->results);
	free(job);
}

/* ---- results ----------------------------------------------------------- */

static void msg_finish(struct dlv_msg *m);

static void msg_free(struct dlv_msg *m)
{
	spool_work_free(&m->work);
	free(m->results);
	free(m->info);
	free(m);
}

/* job_settle - a job's results become its message's. */
static void job_settle(struct dlv_job *job)
{
	struct dlv_msg *m = job->msg;
	for (size_t i = 0; i < job->n; i++)
		m->results[job->rcpt[i]] = job->results[i];
	job_free(job);
	if (--m->jobs_open == 0)
		msg_finish(m);
}

/* dest_fail_queue - every queued job of dest gets the same result (a route
 * or connection failure). */
static void dest_fail_queue(struct destination *dest, enum smtp_client_status status,
                            const char *code, int smtp_code, const char *text)
{
	while (dest->queue_head != NULL) {
		struct dlv_job *job = dest->queue_head;
		dest->queue_head = job->next;
		dest->queued--;
		for (size_t i = 0; i < job->n; i++) {
			struct smtp_client_result *r = &job->results[i];
			r->status = status;
			r->reason = SMTP_CLIENT_R_NONE;
			r->remote = false;
			r->code = smtp_code;
			str_copy(r->enhanced, code, sizeof(r->enhanced));
			str_copy(r->text, text, sizeof(r->text));
		}
		job_settle(job);
	}
	dest->queue_tail = NULL;
}

void engine_job_done(struct destination *dest, struct outbound *ob, struct dlv_job *job,
                     const char *relay, const char *tls, bool remote_dsn)
{
	struct dlv_msg *m = job->msg;
	for (size_t i = 0; i < job->n; i++) {
		struct dlv_rcpt_info *info = &m->info[job->rcpt[i]];
		str_copy(info->relay, relay, sizeof(info->relay));
		str_copy(info->tls, tls, sizeof(info->tls));
		info->remote_dsn = remote_dsn;
	}
	job_settle(job);
}

long engine_read_body(struct dlv_job *job, uint64_t off, void *buf, size_t len)
{
	struct spool_work *w = job->msg->work;
	if (w->data != NULL) {
		if (off >= w->size)
			return 0;
		size_t n = (size_t)(w->size - off) < len ? (size_t)(w->size - off) : len;
		memcpy(buf, w->data + off, n);
		return (long)n;
	}
	return spool_read_body(job->msg->d->spool, w->qid, off, buf, len);
}

static long read_original(void *arg, uint64_t off, void *buf, size_t len)
{
	struct dlv_msg *m = arg;
	struct dlv_job fake = {.msg = m};
	return engine_read_body(&fake, off, buf, len);
}

static void put_bounce(void *arg, const void *data, size_t len)
{
	spool_msg_append(arg, data, len);
}

/* format_duration - "5 days", "1 hour", "90 seconds", for bounces. */
static void format_duration(unsigned secs, char *out, size_t size)
{
	if (secs % 86400 == 0)
		snprintf(out, size, "%u day%s", secs / 86400, secs == 86400 ? "" : "s");
	else if (secs % 3600 == 0)
		snprintf(out, size, "%u hour%s", secs / 3600, secs == 3600 ? "" : "s");
	else if (secs % 60 == 0)
		snprintf(out, size, "%u minute%s", secs / 60, secs == 60 ? "" : "s");
	else
		snprintf(out, size, "%u seconds", secs);
}

/* enhanced_or - the enhanced code of a result, or a default of its class. */
static const char *enhanced_or(const struct smtp_client_result *r, const char *fallback)
{
	return r->enhanced[0] ? r->enhanced : fallback;
}

/* make_bounce - the notification for the recipients that need one, or
 * NULL. kinds[i] is BOUNCE_FAILED / BOUNCE_DELAYED / BOUNCE_RELAYED, or -1
 * for none; retry_until[i] is when a delayed recipient will be given up. */
static struct spool_msg *make_bounce(struct dlv_msg *m, const int *kinds, const time_t *retry_until)
{
	struct delivery *d = m->d;
	struct spool_work *w = m->work;
	size_t n = 0;
	enum bounce_kind worst = BOUNCE_RELAYED;
	struct bounce_rcpt *br = xcalloc(w->n_rcpts, sizeof(*br));
	char(*diag)[SMTP_REPLYLINE_MAX + 16] = xcalloc(w->n_rcpts, sizeof(*diag));
	char(*mta)[DELIVERY_RELAY_MAX] = xcalloc(w->n_rcpts, sizeof(*mta));
	time_t now = time(NULL);
	for (size_t i = 0; i < w->n_rcpts; i++) {
		if (kinds[i] < 0)
			continue;
		const struct smtp_client_result *r = &m->results[i];
		struct bounce_rcpt *b = &br[n++];
		b->kind = (enum bounce_kind)kinds[i];
		/* The report is about the worst news: failed, then delayed. */
		if (b->kind == BOUNCE_FAILED ||
		    (b->kind == BOUNCE_DELAYED && worst == BOUNCE_RELAYED))
			worst = b->kind;
		b->address = w->rcpts[i].address;
		b->orcpt = w->rcpts[i].orcpt;
		b->status = b->kind == BOUNCE_RELAYED   ? "2.0.0"
		            : b->kind == BOUNCE_DELAYED ? enhanced_or(r, "4.0.0")
		                                        : enhanced_or(r, "5.0.0");
		if (b->kind == BOUNCE_DELAYED)
			b->will_retry_until = retry_until[i];
		/* RFC 3464 2.3.5: a DNS name, so "host[address]:port" is cut. */
		str_copy(mta[i], m->info[i].relay, sizeof(mta[i]));
		mta[i][strcspn(mta[i], "[")] = '\0';
		b->remote_mta = mta[i][0] ? mta[i] : NULL;
		if (r->remote)
			snprintf(diag[i], sizeof(diag[i]), "%d %s%s%s", r->code, r->enhanced,
			         r->enhanced[0] ? " " : "", r->text);
		else
			snprintf(diag[i], sizeof(diag[i]), "%s", r->text);
		b->diagnostic = diag[i];
		b->diagnostic_smtp = r->remote;
		b->last_attempt = now;
	}
	struct spool_msg *bounce = NULL;
	if (n > 0) {
		bounce = spool_msg_new(d->spool);
		struct spool_envelope *env = spool_msg_envelope(bounce);
		env->sender = xstrdup("");
		env->smtputf8 = w->smtputf8;
		/* The original travels inside it: its 8-bit octets too. */
		env->body = w->body;
		env->listener = xstrdup("bounce");
		env->arrival_ms = now_ms();
		spool_msg_add_rcpt(bounce, w->sender, 0, NULL);
		struct bounce_info bi = {
		    .kind = worst,
		    .reporting_mta = d->cfg->hostname,
		    .qid = w->qid,
		    .sender = w->sender,
		    .envid = w->envid,
		    .ret = w->ret,
		    .smtputf8 = w->smtputf8,
		    .arrival = (time_t)(w->arrival_ms / 1000),
		    .now = now,
		    .rcpts = br,
		    .n_rcpts = n,
		    .original_size = w->size,
		};
		if (bounce_compose(&bi, put_bounce, bounce, read_original, m) < 0)
			spool_msg_free(&bounce);
	}
	free(diag);
	free(mta);
	free(br);
	return bounce;
}

/* delay_warning_due - should the sender now hear that this deferred
 * recipient is still being retried? Once, after [delivery] delay_warning in
 * the queue, if its NOTIFY asks for (or leaves room for) DELAY. */
static bool delay_warning_due(const struct config *cfg, const struct spool_work *w,
                              const struct spool_work_rcpt *rc, int64_t now)
{
	return cfg->delay_warning > 0 && !rc->warned &&
	       now - w->arrival_ms >= (int64_t)cfg->delay_warning * 1000 &&
	       bounce_wanted(rc->notify, BOUNCE_DELAYED);
}

static void update_done(void *arg, enum spool_result result)
{
	struct dlv_msg *m = arg;
	struct delivery *d = m->d;
	if (result != SPOOL_OK && result != SPOOL_NOTFOUND)
		log_event(LOG_LEVEL_WARN, "delivery.record_failed", "qid=%s result=%d",
		          m->work->qid, (int)result);
	msg_free(m);
	d->msgs_out--;
	fetch(d);
}

/* msg_finish - every recipient has a result: record them. */
static void msg_finish(struct dlv_msg *m)
{
	struct delivery *d = m->d;
	struct spool_work *w = m->work;
	const struct config *cfg = d->cfg;
	int64_t now = now_ms();
	struct spool_rcpt_update *u = xcalloc(w->n_rcpts, sizeof(*u));
	int *kinds = xcalloc(w->n_rcpts, sizeof(*kinds));
	time_t *retry_until = xcalloc(w->n_rcpts, sizeof(*retry_until));
	char(*last)[SMTP_REPLYLINE_MAX + 16] = xcalloc(w->n_rcpts, sizeof(*last));
	bool any_bounce = false;

	for (size_t i = 0; i < w->n_rcpts; i++) {
		struct smtp_client_result *r = &m->results[i];
		struct spool_work_rcpt *rc = &w->rcpts[i];
		const char *outcome;
		kinds[i] = -1;
		u[i].idx = rc->idx;
		if (r->remote)
			snprintf(last[i], sizeof(last[i]), "%d %s%s%s", r->code, r->enhanced,
			         r->enhanced[0] ? " " : "", r->text);
		else
			snprintf(last[i], sizeof(last[i]), "%s", r->text);
		bounce_sanitize(last[i], last[i], sizeof(last[i]));
		u[i].last_result = last[i];
		switch (r->status) {
		case SMTP_CLIENT_OK:
			u[i].state = SPOOL_RCPT_DELIVERED;
			outcome = "delivered";
			d->stats.delivered++;
			/* RFC 3461 6.2.2: a next hop without DSN ends our duty to
			 * report success: say "relayed" now. */
			if (!m->info[i].remote_dsn && bounce_wanted(rc->notify, BOUNCE_RELAYED))
				kinds[i] = BOUNCE_RELAYED;
			break;
		case SMTP_CLIENT_PERMFAIL:
			u[i].state = SPOOL_RCPT_FAILED;
			outcome = "failed";
			d->stats.failed++;
			if (bounce_wanted(rc->notify, BOUNCE_FAILED))
				kinds[i] = BOUNCE_FAILED;
			break;
		default: {
			int64_t next;
			if (retry_next(cfg->retry, cfg->n_retry, cfg->max_age, rc->attempts + 1,
			               w->arrival_ms, now, &next)) {
				u[i].state = SPOOL_RCPT_DEFERRED;
				u[i].next_attempt_ms = next;
				outcome = "deferred";
				d->stats.deferred++;
				if (delay_warning_due(cfg, w, rc, now)) {
					/* Once per recipient: recorded in the same
					 * transaction that queues the notice. */
					u[i].warned = true;
					kinds[i] = BOUNCE_DELAYED;
					retry_until[i] =
					    (time_t)((w->arrival_ms / 1000) + cfg->max_age);
				}
			} else {
				/* Given up: the last temporary error is what the
				 * sender is told, with the fact that time ran out. */
				u[i].state = SPOOL_RCPT_FAILED;
				outcome = "expired";
				d->stats.failed++;
				size_t l = strlen(r->text);
				char age[32];
				format_duration(cfg->max_age, age, sizeof(age));
				snprintf(r->text + l, sizeof(r->text) - l,
				         "%s(gave up after %s in the queue)", l ? " " : "", age);
				if (!r->remote && r->code == 0)
					r->code = 421;
				if (bounce_wanted(rc->notify, BOUNCE_FAILED))
					kinds[i] = BOUNCE_FAILED;
			}
		}
		}
		any_bounce |= kinds[i] >= 0;

		struct logline l;
		logline_init(&l, "delivery.result");
		logline_str(&l, "qid", w->qid);
		logline_fmt(&l, "to", "<%s>", rc->address);
		logline_str(&l, "relay", m->info[i].relay[0] ? m->info[i].relay : "none");
		logline_str(&l, "tls", m->info[i].tls[0] ? m->info[i].tls : "none");
		logline_int(&l, "delay_ms", (long long)(now - w->arrival_ms));
		logline_int(&l, "attempt", rc->attempts + 1);
		logline_str(&l, "dsn",
		            enhanced_or(r, r->status == SMTP_CLIENT_OK         ? "2.0.0"
		                           : r->status == SMTP_CLIENT_PERMFAIL ? "5.0.0"
		                                                               : "4.0.0"));
		logline_str(&l, "result", outcome);
		logline_str(&l, "reply", last[i]);
		logline_emit(&l, LOG_LEVEL_INFO);
	}

	struct spool_msg *bounce = NULL;
	if (any_bounce) {
		if (w->sender[0] == '\0') {
			/* RFC 3461 6.2 / RFC 5321 6.1: never notify the null
			 * sender; that is how bounce loops are avoided. */
			log_event(LOG_LEVEL_INFO, "delivery.bounce_dropped",
			          "qid=%s reason=null-sender", w->qid);
		} else {
			bounce = make_bounce(m, kinds, retry_until);
			if (bounce != NULL) {
				d->stats.bounces++;
				log_event(LOG_LEVEL_INFO, "delivery.bounce", "qid=%s bounce_qid=%s",
				          w->qid, spool_msg_envelope(bounce)->qid);
			}
		}
	}
	spool_update(d->spool, w->qid, u, w->n_rcpts, bounce, update_done, m);
	free(u);
	free(kinds);
	free(retry_until);
	free(last);
}

/* ---- routes -------------------------------------------------------------- */

static void route_failed(struct destination *dest, const struct dns_route *route)
{
	struct logline l;
	logline_init(&l, "delivery.route_failed");
	logline_str(&l, "domain", dest->smarthost ? "(smarthost)" : dest->key);
	logline_str(&l, "dsn", route->code);
	logline_str(&l, "reason", route->text);
	logline_emit(&l, LOG_LEVEL_INFO);
	bool perm = route->status == DNS_ROUTE_PERMFAIL;
	dest_fail_queue(dest, perm ? SMTP_CLIENT_PERMFAIL : SMTP_CLIENT_TEMPFAIL, route->code,
	                perm ? 550 : 451, route->text);
}

static void route_done(void *arg, const struct dns_route *route)
{
	struct destination *dest = arg;
	dest->route_query = NULL;
	if (route->status != DNS_ROUTE_OK) {
		dest->route_state = ROUTE_NONE;
		route_failed(dest, route);
		dest_maybe_free(dest);
		return;
	}
	dest->route = *route;
	dest->route_state = ROUTE_READY;
	dest->route_expires_ms = mono_ms() + DELIVERY_ROUTE_TTL_MS;
	dest_pump(dest);
}

static void smarthost_lookup_free(struct smarthost_lookup *sl)
{
	for (size_t i = 0; i < sl->n; i++)
		dns_cancel(&sl->entries[i].q);
	free(sl->entries);
	free(sl);
}

/* smarthost_finish - all smarthost names are resolved: the route. */
static void smarthost_finish(struct smarthost_lookup *sl)
{
	struct destination *dest = sl->dest;
	struct dns_route route = {.status = DNS_ROUTE_OK};
	const char *error = NULL;
	for (size_t i = 0; i < sl->n; i++) {
		struct smarthost_entry *e = &sl->entries[i];
		if (e->error != NULL)
			error = e->error;
		for (size_t a = 0; a < e->n_addrs && route.n_targets < DNS_ROUTE_TARGETS_MAX; a++) {
			struct dns_route_target *t = &route.targets[route.n_targets++];
			str_copy(t->host, e->host, sizeof(t->host));
			t->addr = e->addrs[a];
			if (t->addr.ss_family == AF_INET6) {
				((struct sockaddr_in6 *)&t->addr)->sin6_port = htons(e->port);
				t->addr_len = sizeof(struct sockaddr_in6);
			} else {
				((struct sockaddr_in *)&t->addr)->sin_port = htons(e->port);
				t->addr_len = sizeof(struct sockaddr_in);
			}
		}
	}
	dest->smarthost_lookup = NULL;
	smarthost_lookup_free(sl);
	if (route.n_targets == 0) {
		route.status = DNS_ROUTE_TEMPFAIL;
		str_copy(route.code, "4.4.3", sizeof(route.code));
		snprintf(route.text, sizeof(route.text), "smarthost cannot be resolved: %s",
		         error ? error : "no address");
	}
	route_done(dest, &route);
}

static void smarthost_resolved(void *arg, const struct dns_result *res)
{
	struct smarthost_entry *e = arg;
	struct smarthost_lookup *sl = e->sl;
	e->q = NULL;
	if (res->status == DNS_OK) {
		for (size_t a = 0; a < res->n_addrs && a < DNS_ROUTE_TARGETS_MAX; a++)
			e->addrs[e->n_addrs++] = res->addrs[a];
	} else {
		e->error = res->reason;
	}
	if (--sl->pending == 0)
		smarthost_finish(sl);
}

/* smarthost_start - look up every smarthost of the configuration. */
static void smarthost_start(struct destination *dest)
{
	struct delivery *d = dest->d;
	char *list = xstrdup(d->cfg->smarthost), *save = NULL;
	struct smarthost_lookup *sl = xcalloc(1, sizeof(*sl));
	sl->dest = dest;
	dest->smarthost_lookup = sl;
	size_t cap = 0;
	for (char *w = strtok_r(list, " \t", &save); w != NULL; w = strtok_r(NULL, " \t", &save)) {
		if (sl->n == cap) {
			cap = cap ? cap * 2 : 4;
			sl->entries = xreallocarray(sl->entries, cap, sizeof(*sl->entries));
		}
		struct smarthost_entry *e = &sl->entries[sl->n++];
		memset(e, 0, sizeof(*e));
		e->port = smarthost_default_port(d->cfg);
		/* "[v6]:port", "v4:port", "name:port", or without the port */
		char *host = w, *port = NULL;
		if (*w == '[') {
			char *close = strchr(w, ']');
			if (close) {
				*close = '\0';
				host = w + 1;
				port = close[1] == ':' ? close + 2 : NULL;
			}
		} else if ((port = strrchr(w, ':')) != NULL) {
			*port++ = '\0';
		}
		if (port != NULL)
			e->port = (uint16_t)atoi(port);
		str_copy(e->host, host, sizeof(e->host));
	}
	free(list);
	/* Literals need no DNS; names are looked up in parallel. Lookups are
	 * started only after the array stops moving. */
	sl->pending = 1;
	for (size_t i = 0; i < sl->n; i++) {
		struct smarthost_entry *e = &sl->entries[i];
		e->sl = sl;
		struct sockaddr_in *s4 = (struct sockaddr_in *)&e->addrs[0];
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&e->addrs[0];
		if (inet_pton(AF_INET, e->host, &s4->sin_addr) == 1) {
			s4->sin_family = AF_INET;
			e->n_addrs = 1;
		} else if (inet_pton(AF_INET6, e->host, &s6->sin6_addr) == 1) {
			s6->sin6_family = AF_INET6;
			e->n_addrs = 1;
		} else {
			sl->pending++;
			e->q = dns_lookup_addr(d->dns, e->host, smarthost_resolved, e);
		}
	}
	if (--sl->pending == 0)
		smarthost_finish(sl);
}

static void dest_route(struct destination *dest)
{
	if (dest->route_state == ROUTE_PENDING)
		return;
	dest->route_state = ROUTE_PENDING;
	if (dest->smarthost) {
		smarthost_start(dest);
		return;
	}
	dest->route_query =
	    dns_route_start(dest->d->dns, &dest->d->policy, dest->key, route_done, dest);
}

/* ---- connections --------------------------------------------------------- */

static void dest_remove_conn(struct destination *dest, struct outbound *ob)
{
	struct outbound *prev = NULL;
	for (struct outbound *c = dest->conns; c != NULL; prev = c, c = outbound_next(c)) {
		if (c != ob)
			continue;
		if (prev)
			outbound_set_next(prev, outbound_next(c));
		else
			dest->conns = outbound_next(c);
		break;
	}
	dest->n_conns--;
	dest->d->n_conns--;
}

void engine_conn_ready(struct destination *dest, struct outbound *ob)
{
	if (dest->queue_head == NULL || dest->d->stopped) {
		outbound_idle(ob);
		return;
	}
	struct dlv_job *job = dest->queue_head;
	dest->queue_head = job->next;
	if (dest->queue_head == NULL)
		dest->queue_tail = NULL;
	dest->queued--;
	job->next = NULL;
	outbound_send(ob, job);
}

void engine_conn_closed(struct destination *dest, struct outbound *ob, bool ever_ready,
                        const struct smtp_client_result *error, const char *relay)
{
	dest_remove_conn(dest, ob);
	if (!ever_ready) {
		/* Every target failed before any message: the destination is
		 * unreachable right now. Its queued jobs wait for their next
		 * retry, unless another connection is up and can take them. */
		bool others = false;
		for (struct outbound *c = dest->conns; c != NULL; c = outbound_next(c))
			others |= outbound_ever_ready(c);
		if (!others) {
			char text[SMTP_REPLYLINE_MAX];
			snprintf(text, sizeof(text), "%s",
			         error ? error->text : "no server of this destination answered");
			struct logline l;
			logline_init(&l, "delivery.unreachable");
			logline_str(&l, "domain", dest->smarthost ? "(smarthost)" : dest->key);
			logline_str(&l, "relay", relay);
			logline_str(&l, "reason", text);
			logline_emit(&l, LOG_LEVEL_INFO);
			/* A connection-level problem is never a reason to
			 * bounce: other servers, or later, may do better. So
			 * the status is temporary, class 4, whatever was said
			 * (a smarthost's 535 5.7.8 becomes 4.7.8). */
			char code[SMTP_ENHCODE_MAX + 1] = "4.4.1";
			if (error != NULL && error->enhanced[0]) {
				str_copy(code, error->enhanced, sizeof(code));
				code[0] = '4';
			}
			int smtp_code = error && error->code ? error->code : 421;
			if (smtp_code >= 500)
				smtp_code -= 100;
			dest_fail_queue(dest, SMTP_CLIENT_TEMPFAIL, code, smtp_code, text);
			dest->route_state = ROUTE_NONE;
		}
	}
	dest_pump(dest);
	dest_maybe_free(dest);
}

/* dest_pump - give queued jobs to idle connections, and open more. */
static void dest_pump(struct destination *dest)
{
	struct delivery *d = dest->d;
	if (d->stopped || dest->queue_head == NULL)
		return;
	if (dest->route_state == ROUTE_READY && mono_ms() > dest->route_expires_ms)
		dest->route_state = ROUTE_NONE;
	for (struct outbound *c = dest->conns; c != NULL && dest->queue_head != NULL;
	     c = outbound_next(c)) {
		if (outbound_is_ready(c))
			engine_conn_ready(dest, c);
	}
	if (dest->queue_head == NULL)
		return;
	if (dest->route_state != ROUTE_READY) {
		dest_route(dest);
		return;
	}
	unsigned connecting = 0;
	for (struct outbound *c = dest->conns; c != NULL; c = outbound_next(c))
		connecting += !outbound_ever_ready(c);
	/* One new connection per queued job not already covered, within the
	 * destination's and the engine's limits. */
	while (dest->queued > connecting && dest->n_conns < DELIVERY_DEST_CONCURRENCY &&
	       d->n_conns < DELIVERY_CONNECTIONS_MAX) {
		struct outbound_settings set;
		settings_for(d, dest, &set);
		dest->n_conns++;
		d->n_conns++;
		connecting++;
		struct outbound *ob = outbound_open(dest, &set);
		outbound_set_next(ob, dest->conns);
		dest->conns = ob;
	}
}

/* ---- messages -------------------------------------------------------------- */

/* rcpt_dest_key - where a recipient goes: its domain in lower case (an
 * address literal as written). */
static void rcpt_dest_key(const char *address, char *out, size_t size)
{
	const char *at = strrchr(address, '@');
	str_copy(out, at ? at + 1 : "", size);
	if (out[0] != '[')
		str_lower(out);
}

static void queue_job(struct destination *dest, struct dlv_job *job)
{
	if (dest->queue_tail)
		dest->queue_tail->next = job;
	else
		dest->queue_head = job;
	dest->queue_tail = job;
	dest->queued++;
}

/* msg_dispatch - split a claimed message into one job per destination. */
static void msg_dispatch(struct delivery *d, struct spool_work *w)
{
	struct dlv_msg *m = xcalloc(1, sizeof(*m));
	m->d = d;
	m->work = w;
	m->results = xcalloc(w->n_rcpts, sizeof(*m->results));
	m->info = xcalloc(w->n_rcpts, sizeof(*m->info));
	m->started_ms = mono_ms();
	d->msgs_out++;

	bool *done = xcalloc(w->n_rcpts, sizeof(*done));
	struct destination *dests[64];
	struct dlv_job *jobs[64];
	size_t n_jobs = 0;
	for (size_t i = 0; i < w->n_rcpts; i++) {
		if (done[i])
			continue;
		char key[DNS_NAME_MAX + 2];
		bool smarthost = d->cfg->smarthost != NULL;
		if (smarthost)
			key[0] = '\0';
		else
			rcpt_dest_key(w->rcpts[i].address, key, sizeof(key));
		struct dlv_job *job = xcalloc(1, sizeof(*job));
		job->msg = m;
		job->rcpt = xcalloc(w->n_rcpts, sizeof(*job->rcpt));
		for (size_t j = i; j < w->n_rcpts; j++) {
			char k2[DNS_NAME_MAX + 2];
			if (done[j])
				continue;
			if (smarthost)
				k2[0] = '\0';
			else
				rcpt_dest_key(w->rcpts[j].address, k2, sizeof(k2));
			if (strcmp(key, k2) == 0) {
				job->rcpt[job->n++] = (unsigned)j;
				done[j] = true;
			}
		}
		job->crcpts = xcalloc(job->n, sizeof(*job->crcpts));
		job->results = xcalloc(job->n, sizeof(*job->results));
		for (size_t k = 0; k < job->n; k++) {
			const struct spool_work_rcpt *r = &w->rcpts[job->rcpt[k]];
			job->crcpts[k].address = r->address;
			job->crcpts[k].notify = r->notify;
			job->crcpts[k].orcpt = r->orcpt;
		}
		job->cmsg.reverse_path = w->sender;
		job->cmsg.rcpts = job->crcpts;
		job->cmsg.nrcpts = job->n;
		job->cmsg.size = w->size;
		job->cmsg.body_8bit = w->body == SMTP_BODY_8BITMIME;
		job->cmsg.smtputf8 = w->smtputf8;
		job->cmsg.ret = w->ret;
		job->cmsg.envid = w->envid;
		m->jobs_open++;
		struct destination *dest = dest_get(d, key, smarthost);
		if (n_jobs < ARRAY_SIZE(jobs)) {
			dests[n_jobs] = dest;
			jobs[n_jobs++] = job;
		} else {
			queue_job(dest, job);
			dest_pump(dest);
		}
	}
	free(done);
	/* Queue every job before pumping, so that a job that fails at once
	 * cannot finish the message while others are still being made. */
	for (size_t i = 0; i < n_jobs; i++)
		queue_job(dests[i], jobs[i]);
	for (size_t i = 0; i < n_jobs; i++)
		dest_pump(dests[i]);
}

/* ---- fetching -------------------------------------------------------------- */

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	fetch(arg);
}

static void fetch_done(void *arg, enum spool_result result, struct spool_work *list,
                       int64_t next_due_ms)
{
	struct delivery *d = arg;
	d->fetching = false;
	size_t n = 0;
	while (list != NULL) {
		struct spool_work *w = list;
		list = w->next;
		w->next = NULL;
		n++;
		if (d->stopped)
			spool_work_free(&w);
		else
			msg_dispatch(d, w);
	}
	if (d->stopped)
		return;
	if (d->kick_again || (result == SPOOL_OK && next_due_ms <= now_ms())) {
		/* More is due now (the fetch was full) or arrived meanwhile. */
		d->kick_again = false;
		fetch(d);
		return;
	}
	if (next_due_ms != INT64_MAX) {
		int64_t wait = next_due_ms - now_ms();
		if (wait < 0)
			wait = 0;
		if (wait > 3600 * 1000)
			wait = 3600 * 1000;
		struct timeval tv = {(time_t)(wait / 1000), (suseconds_t)((wait % 1000) * 1000)};
		evtimer_add(d->timer, &tv);
	}
	(void)n;
}

/* fetch - ask the queue for due work, unless a fetch is already out or
 * enough messages are being delivered. */
static void fetch(struct delivery *d)
{
	if (d->stopped || d->paused)
		return;
	if (d->fetching) {
		d->kick_again = true;
		return;
	}
	if (d->msgs_out >= DELIVERY_INFLIGHT_MAX)
		return; /* update_done fetches again as room frees up */
	d->fetching = true;
	evtimer_del(d->timer);
	spool_fetch(d->spool, now_ms(), DELIVERY_INFLIGHT_MAX - d->msgs_out, fetch_done, d);
}

/* ---- the public side ------------------------------------------------------- */

struct delivery *delivery_new(struct event_base *base, struct config *cfg, struct spool *spool,
                              const struct sockaddr_storage *our_addrs, size_t n_our_addrs,
                              const char **error_r)
{
	struct delivery *d = xcalloc(1, sizeof(*d));
	d->base = base;
	d->spool = spool;
	if (n_our_addrs > 0) {
		d->our_addrs = xcalloc(n_our_addrs, sizeof(*d->our_addrs));
		memcpy(d->our_addrs, our_addrs, n_our_addrs * sizeof(*our_addrs));
	}
	d->n_our_addrs = n_our_addrs;
	d->policy.our_addrs = d->our_addrs;
	d->policy.n_our_addrs = n_our_addrs;
	d->dns = dns_new(base, cfg->resolver, error_r);
	if (d->dns == NULL)
		goto fail;
	d->ssl_mx = client_ctx(false, NULL, error_r);
	if (d->ssl_mx == NULL)
		goto fail;
	if (apply_config(d, cfg, error_r) < 0)
		goto fail;
	d->timer = evtimer_new(base, on_timer, d);
	d->paused = cfg->pause;
	return d;
fail:
	delivery_free(&d);
	return NULL;
}

void delivery_start(struct delivery *d)
{
	log_event(LOG_LEVEL_INFO, "delivery.start", "route=%s paused=%s",
	          d->cfg->smarthost ? d->cfg->smarthost : "mx", d->paused ? "yes" : "no");
	fetch(d);
}

void delivery_pause(struct delivery *d, bool paused)
{
	if (d->paused == paused)
		return;
	d->paused = paused;
	log_event(LOG_LEVEL_INFO, paused ? "delivery.pause" : "delivery.resume",
	          "messages_out=%llu", (unsigned long long)d->msgs_out);
	if (paused)
		evtimer_del(d->timer);
	else
		fetch(d);
}

bool delivery_paused(const struct delivery *d)
{
	return d->paused;
}

void delivery_kick(struct delivery *d)
{
	if (d != NULL)
		fetch(d);
}

int delivery_reload(struct delivery *d, struct config *cfg, const char **error_r)
{
	bool was = d->cfg->pause;
	if (apply_config(d, cfg, error_r) < 0)
		return -1;
	/* A changed "pause" in the file wins; otherwise a pause or resume
	 * given with detourctl stays. */
	if (cfg->pause != was)
		delivery_pause(d, cfg->pause);
	/* Routes are worked out again under the new settings. */
	for (size_t b = 0; b < DEST_BUCKETS; b++)
		for (struct destination *dest = d->dests[b]; dest != NULL; dest = dest->next)
			if (dest->route_state == ROUTE_READY)
				dest->route_state = ROUTE_NONE;
	return 0;
}

void delivery_stop(struct delivery *d)
{
	if (d == NULL || d->stopped)
		return;
	d->stopped = true;
	if (d->timer != NULL)
		evtimer_del(d->timer);
	/* Nothing is recorded for messages out for delivery: their claims end
	 * with the process, and after a restart they are due at once. */
	for (size_t b = 0; b < DEST_BUCKETS; b++) {
		while (d->dests[b] != NULL) {
			struct destination *dest = d->dests[b];
			while (dest->conns != NULL) {
				struct outbound *ob = dest->conns;
				dest->conns = outbound_next(ob);
				struct dlv_job *job = outbound_job(ob);
				outbound_abort(ob);
				d->n_conns--;
				if (job != NULL) {
					struct dlv_msg *m = job->msg;
					job_free(job);
					if (--m->jobs_open == 0) {
						msg_free(m);
						d->msgs_out--;
					}
				}
			}
			while (dest->queue_head != NULL) {
				struct dlv_job *job = dest->queue_head;
				dest->queue_head = job->next;
				struct dlv_msg *m = job->msg;
				job_free(job);
				if (--m->jobs_open == 0) {
					msg_free(m);
					d->msgs_out--;
				}
			}
			if (dest->smarthost_lookup != NULL) {
				smarthost_lookup_free(dest->smarthost_lookup);
				dest->smarthost_lookup = NULL;
			}
			d->dests[b] = dest->next;
			dns_route_cancel(&dest->route_query);
			free(dest);
		}
	}
}

void delivery_free(struct delivery **dp)
{
	struct delivery *d = *dp;
	if (d == NULL)
		return;
	*dp = NULL;
	delivery_stop(d);
	if (d->timer != NULL)
		event_free(d->timer);
	dns_free(&d->dns);
	if (d->ssl_mx != NULL)
		SSL_CTX_free(d->ssl_mx);
	if (d->ssl_smarthost != NULL)
		SSL_CTX_free(d->ssl_smarthost);
	if (d->smarthost_password != NULL) {
		explicit_bzero(d->smarthost_password, strlen(d->smarthost_password));
		free(d->smarthost_password);
	}
	free(d->our_addrs);
	config_unref(&d->cfg);
	free(d);
}

void delivery_get_stats(const struct delivery *d, struct delivery_stats *stats_r)
{
	*stats_r = d->stats;
	stats_r->messages_out = d->msgs_out;
	stats_r->connections = d->n_conns;
}
