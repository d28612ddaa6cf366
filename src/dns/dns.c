/* SPDX-License-Identifier: ISC */
/* dns.c - see dns.h */
#include "dns/dns.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <assert.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <ares.h>
#include <event2/event.h>

#include "lib/util.h"

/* The questions dns.c asks. An address look-up is two of them. */
enum dns_qtype { DNS_Q_MX, DNS_Q_A, DNS_Q_AAAA };

/* Cache buckets: a power of two; chains stay short at DNS_CACHE_MAX_DEFAULT. */
#define DNS_BUCKETS 1024

/* dns_answer - one classified answer, immutable once made. Shared by the
 * cache and by callbacks being delivered, hence the reference count. */
struct dns_answer {
	int refs;
	enum dns_status status;
	const char *reason;
	bool null_mx;
	struct dns_mx *mx; /* hosts are owned here */
	size_t n_mx;
	struct sockaddr_storage *addrs;
	size_t n_addrs;
	int64_t expires_ms; /* mono_ms() */
};

struct dns_wait;
TAILQ_HEAD(dns_wait_list, dns_wait);

/* dns_entry - one (name, type) in the cache: a question in flight with the
 * queries waiting for it, or a cached answer. */
struct dns_entry {
	struct dns *dns;
	enum dns_qtype type;
	char name[DNS_NAME_MAX + 1]; /* lower case, no final dot */
	uint32_t hash;
	struct dns_entry *hnext;
	TAILQ_ENTRY(dns_entry) lru; /* cached answers only; most recent first */
	bool pending;
	struct dns_wait_list waits; /* while pending */
	struct dns_answer *answer;  /* when not pending */
};

/* dns_wait - one query's interest in one entry. */
struct dns_wait {
	struct dns_query *q;
	struct dns_entry *entry;    /* while waiting */
	struct dns_answer *answer;  /* once answered (a reference) */
	TAILQ_ENTRY(dns_wait) link; /* in entry->waits */
};

struct dns_query {
	struct dns *dns;
	dns_cb *cb;
	void *arg;
	char name[DNS_NAME_MAX + 2]; /* as given, for the result */
	bool is_addr;
	bool badname;
	bool from_cache; /* every wait was answered from the cache */
	bool ready;      /* on dns->ready */
	uint64_t ready_seq;
	struct dns_wait waits[2]; /* MX: [0]; address: [0] AAAA, [1] A */
	unsigned n_waits;
	unsigned n_done;
	TAILQ_ENTRY(dns_query) all_link;
	TAILQ_ENTRY(dns_query) ready_link;
};

/* dns_sock - a socket c-ares asked us to watch. */
struct dns_sock {
	ares_socket_t fd;
	struct event *ev;
	struct dns_sock *next;
};

TAILQ_HEAD(dns_query_list, dns_query);
TAILQ_HEAD(dns_entry_list, dns_entry);

struct dns {
	struct event_base *base;
	ares_channel channel;
	bool channel_ok;
	struct event *timer;   /* c-ares time-outs */
	struct event *deliver; /* runs callbacks of ready queries */
	struct dns_sock *socks;
	struct dns_entry *buckets[DNS_BUCKETS];
	struct dns_entry_list lru;
	size_t n_cached;
	struct dns_query_list all;   /* every live query */
	struct dns_query_list ready; /* answered, callback not yet run */
	uint64_t ready_seq;          /* queries made ready so far */
	struct dns_options opt;
	struct dns_stats stats;
	bool *gone; /* set when freed while callbacks are being run */
};

static void dns_arm_timer(struct dns *dns);

/* dns_status_name - see dns.h */
const char *dns_status_name(enum dns_status status)
{
	switch (status) {
	case DNS_OK:
		return "ok";
	case DNS_NXDOMAIN:
		return "nxdomain";
	case DNS_NODATA:
		return "nodata";
	case DNS_TEMPFAIL:
		return "tempfail";
	case DNS_BADNAME:
		return "badname";
	}
	return "unknown";
}

/* dns_name_valid - see dns.h. RFC 1035 2.3.4 gives the lengths; RFC 1123
 * 2.1 the host name characters. The underscore is let through because
 * real zones use it in names that are not host names (RFC 2181 11). */
bool dns_name_valid(const char *name)
{
	size_t len = strlen(name), label = 0;

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > DNS_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		bool ldh = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		           (c >= '0' && c <= '9') || c == '-' || c == '_';
		if (!ldh)
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0;
}

/* ------------------------------------------------------------------ */
/* Servers */

/* dns_parse_server - one "ADDR[:PORT]" / "[V6]:PORT" / "V6" token into the
 * form c-ares reads ("ADDR:PORT", "[V6]:PORT"), appended to out. */
static bool dns_parse_server(const char *tok, size_t len, char *out, size_t out_size)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *port = NULL;
	size_t host_len, port_len = 0;
	bool v6;
	unsigned char bin[16];

	if (len > 0 && tok[0] == '[') {
		const char *close = memchr(tok, ']', len);
		if (close == NULL)
			return false;
		host_len = (size_t)(close - tok - 1);
		if (host_len >= sizeof(host))
			return false;
		memcpy(host, tok + 1, host_len);
		if (close + 1 < tok + len) {
			if (close[1] != ':')
				return false;
			port = close + 2;
			port_len = (size_t)(tok + len - port);
		}
		v6 = true;
	} else {
		const char *colon = memchr(tok, ':', len);
		if (colon != NULL && memchr(colon + 1, ':', (size_t)(tok + len - colon - 1))) {
			host_len = len; /* a bare IPv6 address: no port */
			v6 = true;
		} else if (colon != NULL) {
			host_len = (size_t)(colon - tok);
			port = colon + 1;
			port_len = (size_t)(tok + len - port);
			v6 = false;
		} else {
			host_len = len;
			v6 = false;
		}
		if (host_len >= sizeof(host))
			return false;
		memcpy(host, tok, host_len);
	}
	host[host_len] = '\0';
	if (inet_pton(v6 ? AF_INET6 : AF_INET, host, bin) != 1)
		return false;

	unsigned long p = 53;
	if (port != NULL) {
		if (port_len == 0 || port_len > 5)
			return false;
		p = 0;
		for (size_t i = 0; i < port_len; i++) {
			if (port[i] < '0' || port[i] > '9')
				return false;
			p = p * 10 + (unsigned long)(port[i] - '0');
		}
		if (p == 0 || p > 65535)
			return false;
	}
	size_t used = strlen(out);
	int n = snprintf(out + used, out_size - used, "%s%s%s%s:%lu", used ? "," : "",
	                 v6 ? "[" : "", host, v6 ? "]" : "", p);
	return n > 0 && (size_t)n < out_size - used;
}

/* dns_servers_csv - the configuration's space-separated list into the
 * comma-separated one of ares_set_servers_ports_csv. */
static bool dns_servers_csv(const char *servers, char *out, size_t out_size)
{
	size_t count = 0;
	const char *p = servers;

	out[0] = '\0';
	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '\0')
			break;
		size_t len = strcspn(p, " \t,");
		if (++count > DNS_SERVERS_MAX || !dns_parse_server(p, len, out, out_size))
			return false;
		p += len;
	}
	return count > 0;
}

/* ------------------------------------------------------------------ */
/* c-ares on the loop */

static struct dns_sock **dns_sock_find(struct dns *dns, ares_socket_t fd)
{
	struct dns_sock **pp = &dns->socks;
	while (*pp != NULL && (*pp)->fd != fd)
		pp = &(*pp)->next;
	return pp;
}

static void dns_sock_ready(evutil_socket_t fd, short what, void *arg)
{
	struct dns *dns = arg;
	ares_socket_t rfd = (what & EV_READ) ? (ares_socket_t)fd : ARES_SOCKET_BAD;
	ares_socket_t wfd = (what & EV_WRITE) ? (ares_socket_t)fd : ARES_SOCKET_BAD;

	ares_process_fd(dns->channel, rfd, wfd);
	dns_arm_timer(dns);
}

/* dns_sock_state - c-ares opened, changed or closed (neither readable nor
 * writable) one of its sockets. */
static void dns_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns *dns = data;
	struct dns_sock **pp = dns_sock_find(dns, fd);
	struct dns_sock *s = *pp;

	if (s != NULL) {
		event_free(s->ev);
		s->ev = NULL;
	}
	if (!readable && !writable) {
		if (s != NULL) {
			*pp = s->next;
			free(s);
		}
		return;
	}
	if (s == NULL) {
		s = xcalloc(1, sizeof(*s));
		s->fd = fd;
		s->next = dns->socks;
		dns->socks = s;
	}
	short what = EV_PERSIST | (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);
	s->ev = event_new(dns->base, fd, what, dns_sock_ready, dns);
	if (s->ev == NULL || event_add(s->ev, NULL) != 0)
		abort(); /* out of memory: see util.h */
}

static void dns_timer_fired(evutil_socket_t fd, short what, void *arg)
{
	struct dns *dns = arg;
	ares_process_fd(dns->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_arm_timer(dns);
}

/* dns_arm_timer - wake up when c-ares's next time-out is due, if any
 * question is in flight. */
static void dns_arm_timer(struct dns *dns)
{
	struct timeval tv, *tvp;

	if (!dns->channel_ok)
		return;
	tvp = ares_timeout(dns->channel, NULL, &tv);
	if (tvp == NULL)
		evtimer_del(dns->timer);
	else
		evtimer_add(dns->timer, tvp);
}

/* ------------------------------------------------------------------ */
/* Answers */

static struct dns_answer *dns_answer_new(enum dns_status status, const char *reason)
{
	struct dns_answer *a = xcalloc(1, sizeof(*a));
	a->refs = 1;
	a->status = status;
	a->reason = reason;
	return a;
}

static struct dns_answer *dns_answer_ref(struct dns_answer *a)
{
	a->refs++;
	return a;
}

static void dns_answer_unref(struct dns_answer **ap)
{
	struct dns_answer *a = *ap;
	if (a == NULL)
		return;
	*ap = NULL;
	if (--a->refs > 0)
		return;
	for (size_t i = 0; i < a->n_mx; i++)
		free((char *)a->mx[i].host);
	free(a->mx);
	free(a->addrs);
	free(a);
}

/* dns_skip_name - step over a (possibly compressed) name; RFC 1035 4.1.4. */
static bool dns_skip_name(const unsigned char **p, const unsigned char *end)
{
	while (*p < end) {
		unsigned len = **p;
		if (len == 0) {
			(*p)++;
			return true;
		}
		if ((len & 0xc0) == 0xc0) {
			*p += 2;
			return *p <= end;
		}
		if (len & 0xc0)
			return false;
		*p += 1 + len;
	}
	return false;
}

static uint32_t dns_get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/*
 * dns_packet_ttls - the smallest TTL of the answer section (what a positive
 * answer may be cached for, RFC 2181 5.2), and the negative TTL of the
 * authority section's SOA: min(SOA TTL, SOA MINIMUM) (RFC 2308 5). Either
 * is -1 when absent. c-ares's parsers do not return MX TTLs, hence this.
 */
static void dns_packet_ttls(const unsigned char *buf, int len, int64_t *answer_r,
                            int64_t *negative_r)
{
	*answer_r = -1;
	*negative_r = -1;
	if (buf == NULL || len < 12)
		return;
	const unsigned char *p = buf, *end = buf + len;
	unsigned qd = (unsigned)buf[4] << 8 | buf[5];
	unsigned an = (unsigned)buf[6] << 8 | buf[7];
	unsigned ns = (unsigned)buf[8] << 8 | buf[9];
	p += 12;
	for (unsigned i = 0; i < qd; i++) {
		if (!dns_skip_name(&p, end) || end - p < 4)
			return;
		p += 4;
	}
	for (unsigned i = 0; i < an + ns; i++) {
		if (!dns_skip_name(&p, end) || end - p < 10)
			return;
		unsigned type = (unsigned)p[0] << 8 | p[1];
		/* RFC 2181 8: a TTL with the top bit set is taken as zero. */
		uint32_t ttl = dns_get32(p + 4);
		int64_t t = ttl > INT32_MAX ? 0 : (int64_t)ttl;
		unsigned rdlen = (unsigned)p[8] << 8 | p[9];
		p += 10;
		if ((size_t)(end - p) < rdlen)
			return;
		if (i < an) {
			if (*answer_r < 0 || t < *answer_r)
				*answer_r = t;
		} else if (type == ns_t_soa && rdlen >= 20) {
			uint32_t min = dns_get32(p + rdlen - 4);
			int64_t m = min > INT32_MAX ? 0 : (int64_t)min;
			*negative_r = m < t ? m : t;
		}
		p += rdlen;
	}
}

static int64_t dns_clamp_ttl(int64_t ttl)
{
	if (ttl < DNS_TTL_MIN)
		return DNS_TTL_MIN;
	if (ttl > DNS_TTL_MAX)
		return DNS_TTL_MAX;
	return ttl;
}

/* One MX record while sorting; pos keeps the answer's order among equal
 * preferences (qsort is not stable). */
struct dns_mx_sort {
	unsigned preference;
	size_t pos;
	const char *host;
};

static int dns_mx_cmp(const void *a, const void *b)
{
	const struct dns_mx_sort *x = a, *y = b;
	if (x->preference != y->preference)
		return x->preference < y->preference ? -1 : 1;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* dns_parse_mx - the MX records of a successful answer. The list is sorted
 * by preference (a stable order: the answer's among equals) and cut at
 * DNS_MX_MAX. */
static struct dns_answer *dns_parse_mx(const unsigned char *buf, int len)
{
	struct ares_mx_reply *list = NULL;
	int rc = ares_parse_mx_reply(buf, len, &list);
	if (rc == ARES_ENODATA)
		return dns_answer_new(DNS_NODATA, "no MX records");
	if (rc != ARES_SUCCESS)
		return dns_answer_new(DNS_TEMPFAIL, "malformed MX answer");

	size_t n = 0;
	for (struct ares_mx_reply *m = list; m != NULL; m = m->next)
		n++;
	/* A hostile answer over TCP may hold thousands of records: sort
	 * them all, keep the best DNS_MX_MAX. */
	struct dns_mx_sort *all = xcalloc(n, sizeof(*all));
	size_t i = 0;
	for (struct ares_mx_reply *m = list; m != NULL; m = m->next, i++) {
		all[i].preference = m->priority;
		all[i].pos = i;
		/* The root name expands to "" (RFC 7505 3: exchange "."). */
		all[i].host = m->host[0] == '\0' ? "." : m->host;
	}
	qsort(all, n, sizeof(*all), dns_mx_cmp);
	struct dns_answer *a = dns_answer_new(DNS_OK, "ok");
	a->n_mx = n < DNS_MX_MAX ? n : DNS_MX_MAX;
	a->mx = xcalloc(a->n_mx, sizeof(*a->mx));
	for (i = 0; i < a->n_mx; i++) {
		a->mx[i].preference = all[i].preference;
		a->mx[i].host = xstrdup(all[i].host);
	}
	/* RFC 7505 3: a null MX is the only MX record, preference 0,
	 * exchange ".". */
	a->null_mx = n == 1 && a->mx[0].preference == 0 && strcmp(a->mx[0].host, ".") == 0;
	free(all);
	ares_free_data(list);
	return a;
}

/* dns_parse_addrs - the A or AAAA records of a successful answer. */
static struct dns_answer *dns_parse_addrs(enum dns_qtype type, const unsigned char *buf, int len)
{
	int n = DNS_ADDRS_MAX, rc;
	struct dns_answer *a;

	if (type == DNS_Q_A) {
		struct ares_addrttl ttls[DNS_ADDRS_MAX];
		rc = ares_parse_a_reply(buf, len, NULL, ttls, &n);
		if (rc != ARES_SUCCESS)
			goto fail;
		a = dns_answer_new(DNS_OK, "ok");
		a->addrs = xcalloc((size_t)n, sizeof(*a->addrs));
		for (int i = 0; i < n; i++) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&a->addrs[i];
			sin->sin_family = AF_INET;
			sin->sin_addr = ttls[i].ipaddr;
		}
	} else {
		struct ares_addr6ttl ttls[DNS_ADDRS_MAX];
		rc = ares_parse_aaaa_reply(buf, len, NULL, ttls, &n);
		if (rc != ARES_SUCCESS)
			goto fail;
		a = dns_answer_new(DNS_OK, "ok");
		a->addrs = xcalloc((size_t)n, sizeof(*a->addrs));
		for (int i = 0; i < n; i++) {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->addrs[i];
			sin6->sin6_family = AF_INET6;
			memcpy(&sin6->sin6_addr, &ttls[i].ip6addr, sizeof(sin6->sin6_addr));
		}
	}
	a->n_addrs = (size_t)n;
	if (n == 0) {
		/* only a CNAME, say, and nothing of this type behind it */
		a->status = DNS_NODATA;
		a->reason = "no address records";
	}
	return a;
fail:
	if (rc == ARES_ENODATA)
		return dns_answer_new(DNS_NODATA, "no address records");
	return dns_answer_new(DNS_TEMPFAIL, "malformed address answer");
}

/* dns_ares_reason - the text of a c-ares failure, for logs and bounces. */
static const char *dns_ares_reason(int status)
{
	switch (status) {
	case ARES_ESERVFAIL:
		return "SERVFAIL";
	case ARES_EREFUSED:
		return "REFUSED";
	case ARES_ETIMEOUT:
		return "timeout";
	case ARES_ECONNREFUSED:
		/* c-ares 1.18 also ends here when every try got SERVFAIL or
		 * REFUSED (it moves on to the next server, then keeps
		 * this status): the name servers failed, we cannot say how. */
		return "name server failure (SERVFAIL, REFUSED or unreachable)";
	case ARES_EFORMERR:
		return "FORMERR";
	case ARES_ENOTIMP:
		return "NOTIMP";
	case ARES_EBADRESP:
		return "bad response";
	default:
		return "resolver error";
	}
}

/* dns_classify - turn one c-ares outcome into an answer. */
static struct dns_answer *dns_classify(enum dns_qtype type, int status, const unsigned char *buf,
                                       int len)
{
	struct dns_answer *a;
	int64_t ttl, negative, keep;

	dns_packet_ttls(buf, len, &ttl, &negative);
	switch (status) {
	case ARES_SUCCESS:
		a = type == DNS_Q_MX ? dns_parse_mx(buf, len) : dns_parse_addrs(type, buf, len);
		if (a->status == DNS_OK)
			keep = ttl >= 0 ? ttl : DNS_TTL_MIN;
		else if (a->status == DNS_NODATA)
			keep = negative >= 0 ? negative : DNS_NEGATIVE_TTL_DEFAULT;
		else
			keep = DNS_TEMPFAIL_TTL;
		break;
	case ARES_ENODATA:
		a = dns_answer_new(DNS_NODATA,
		                   type == DNS_Q_MX ? "no MX records" : "no address records");
		keep = negative >= 0 ? negative : DNS_NEGATIVE_TTL_DEFAULT;
		break;
	case ARES_ENOTFOUND:
		a = dns_answer_new(DNS_NXDOMAIN, "no such domain");
		keep = negative >= 0 ? negative : DNS_NEGATIVE_TTL_DEFAULT;
		break;
	case ARES_EBADNAME:
		a = dns_answer_new(DNS_BADNAME, "bad name");
		keep = DNS_TTL_MAX;
		break;
	default:
		a = dns_answer_new(DNS_TEMPFAIL, dns_ares_reason(status));
		keep = DNS_TEMPFAIL_TTL;
		break;
	}
	a->expires_ms = mono_ms() + dns_clamp_ttl(keep) * 1000;
	return a;
}

/* ------------------------------------------------------------------ */
/* Cache */

static uint32_t dns_hash(enum dns_qtype type, const char *name)
{
	uint32_t h = 2166136261u ^ (uint32_t)type; /* FNV-1a */
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		h ^= *p;
		h *= 16777619u;
	}
	return h;
}

static struct dns_entry *dns_entry_find(struct dns *dns, enum dns_qtype type, const char *name,
                                        uint32_t hash)
{
	for (struct dns_entry *e = dns->buckets[hash % DNS_BUCKETS]; e != NULL; e = e->hnext)
		if (e->hash == hash && e->type == type && strcmp(e->name, name) == 0)
			return e;
	return NULL;
}

/* dns_entry_remove - drop a cached (not pending) entry. */
static void dns_entry_remove(struct dns *dns, struct dns_entry *e)
{
	struct dns_entry **pp = &dns->buckets[e->hash % DNS_BUCKETS];

	assert(!e->pending);
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	TAILQ_REMOVE(&dns->lru, e, lru);
	dns->n_cached--;
	dns_answer_unref(&e->answer);
	free(e);
}

/* dns_cache_trim - drop the least recently used answers past the bound. */
static void dns_cache_trim(struct dns *dns, size_t max)
{
	while (dns->n_cached > max)
		dns_entry_remove(dns, TAILQ_LAST(&dns->lru, dns_entry_list));
}

void dns_cache_flush(struct dns *dns)
{
	dns_cache_trim(dns, 0);
}

/* ------------------------------------------------------------------ */
/* Queries */

static void dns_query_ready(struct dns_query *q)
{
	struct dns *dns = q->dns;
	q->ready = true;
	q->ready_seq = ++dns->ready_seq;
	TAILQ_INSERT_TAIL(&dns->ready, q, ready_link);
	event_active(dns->deliver, EV_TIMEOUT, 0);
}

/* dns_wait_answered - one part of a query has its answer. */
static void dns_wait_answered(struct dns_wait *w, struct dns_answer *a)
{
	w->entry = NULL;
	w->answer = dns_answer_ref(a);
	if (++w->q->n_done == w->q->n_waits)
		dns_query_ready(w->q);
}

/* dns_ares_done - c-ares finished a question. No user callback runs from
 * here (c-ares forbids freeing the channel inside its callbacks): waiting
 * queries move to the ready list, which dns_deliver runs. */
static void dns_ares_done(void *arg, int status, int timeouts, unsigned char *buf, int len)
{
	struct dns_entry *e = arg;
	struct dns *dns = e->dns;
	struct dns_wait *w;

	if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED)
		return; /* dns_free is tearing everything down */

	struct dns_answer *a = dns_classify(e->type, status, buf, len);
	e->pending = false;
	e->answer = a;
	while ((w = TAILQ_FIRST(&e->waits)) != NULL) {
		TAILQ_REMOVE(&e->waits, w, link);
		dns_wait_answered(w, a);
	}
	TAILQ_INSERT_HEAD(&dns->lru, e, lru);
	dns->n_cached++;
	if (dns->opt.no_cache)
		dns_entry_remove(dns, e);
	else
		dns_cache_trim(dns, dns->opt.cache_max);
}

/* dns_wait_start - attach w to the answer for (type, name): from the cache,
 * by joining a question in flight, or by asking. */
static void dns_wait_start(struct dns_query *q, struct dns_wait *w, enum dns_qtype type,
                           const char *name)
{
	struct dns *dns = q->dns;
	uint32_t hash = dns_hash(type, name);
	struct dns_entry *e = dns_entry_find(dns, type, name, hash);

	w->q = q;
	if (e != NULL && !e->pending) {
		if (e->answer->expires_ms > mono_ms()) {
			dns->stats.cache_hits++;
			TAILQ_REMOVE(&dns->lru, e, lru);
			TAILQ_INSERT_HEAD(&dns->lru, e, lru);
			dns_wait_answered(w, e->answer);
			return;
		}
		dns_entry_remove(dns, e); /* expired */
		e = NULL;
	}
	q->from_cache = false;
	if (e != NULL) {
		dns->stats.coalesced++;
		w->entry = e;
		TAILQ_INSERT_TAIL(&e->waits, w, link);
		return;
	}
	e = xcalloc(1, sizeof(*e));
	e->dns = dns;
	e->type = type;
	str_copy(e->name, name, sizeof(e->name));
	e->hash = hash;
	e->pending = true;
	TAILQ_INIT(&e->waits);
	e->hnext = dns->buckets[hash % DNS_BUCKETS];
	dns->buckets[hash % DNS_BUCKETS] = e;
	w->entry = e;
	TAILQ_INSERT_TAIL(&e->waits, w, link);

	int qtype = type == DNS_Q_MX ? ns_t_mx : type == DNS_Q_A ? ns_t_a : ns_t_aaaa;
	dns->stats.queries++;
	/* ares_query, not ares_search: the name is absolute, no search list
	 * (RFC 5321 5.1: MX names are fully qualified). It may call back at
	 * once; dns_ares_done copes, the entry being complete by now. */
	ares_query(dns->channel, e->name, ns_c_in, qtype, dns_ares_done, e);
}

static struct dns_query *dns_query_new(struct dns *dns, const char *name, bool is_addr, dns_cb *cb,
                                       void *arg)
{
	struct dns_query *q = xcalloc(1, sizeof(*q));
	char key[DNS_NAME_MAX + 2];

	q->dns = dns;
	q->cb = cb;
	q->arg = arg;
	q->is_addr = is_addr;
	q->from_cache = true;
	TAILQ_INSERT_TAIL(&dns->all, q, all_link);
	if (!dns_name_valid(name)) {
		q->badname = true;
		q->from_cache = false;
		str_copy(q->name, name, sizeof(q->name)); /* may be cut: only shown */
		dns_query_ready(q);
		return q;
	}
	str_copy(q->name, name, sizeof(q->name));
	str_copy(key, name, sizeof(key));
	size_t len = strlen(key);
	if (key[len - 1] == '.')
		key[len - 1] = '\0';
	str_lower(key);

	q->n_waits = is_addr ? 2 : 1;
	if (is_addr) {
		dns_wait_start(q, &q->waits[0], DNS_Q_AAAA, key);
		dns_wait_start(q, &q->waits[1], DNS_Q_A, key);
	} else {
		dns_wait_start(q, &q->waits[0], DNS_Q_MX, key);
	}
	dns_arm_timer(dns);
	return q;
}

struct dns_query *dns_lookup_mx(struct dns *dns, const char *domain, dns_cb *cb, void *arg)
{
	return dns_query_new(dns, domain, false, cb, arg);
}

struct dns_query *dns_lookup_addr(struct dns *dns, const char *host, dns_cb *cb, void *arg)
{
	return dns_query_new(dns, host, true, cb, arg);
}

/* dns_query_free - unlink q from everything it waits on, and free it. */
static void dns_query_free(struct dns_query *q)
{
	struct dns *dns = q->dns;

	for (unsigned i = 0; i < q->n_waits; i++) {
		struct dns_wait *w = &q->waits[i];
		if (w->entry != NULL) {
			TAILQ_REMOVE(&w->entry->waits, w, link);
			w->entry = NULL;
		}
		dns_answer_unref(&w->answer);
	}
	if (q->ready)
		TAILQ_REMOVE(&dns->ready, q, ready_link);
	TAILQ_REMOVE(&dns->all, q, all_link);
	free(q);
}

void dns_cancel(struct dns_query **qp)
{
	if (*qp == NULL)
		return;
	dns_query_free(*qp);
	*qp = NULL;
}

static unsigned dns_ttl_left(const struct dns_answer *a, int64_t now)
{
	int64_t left = (a->expires_ms - now + 999) / 1000;
	return left > 0 ? (unsigned)left : 0;
}

/* dns_merge_addrs - the result of an address query from its AAAA and A
 * answers (dns.h, struct dns_result). */
static void dns_merge_addrs(const struct dns_answer *v6, const struct dns_answer *v4,
                            struct sockaddr_storage *out, struct dns_result *r)
{
	size_t i6 = 0, i4 = 0, n = 0;
	size_t n6 = v6->status == DNS_OK ? v6->n_addrs : 0;
	size_t n4 = v4->status == DNS_OK ? v4->n_addrs : 0;

	while (n < DNS_ADDRS_MAX && (i6 < n6 || i4 < n4)) {
		if (i6 < n6)
			out[n++] = v6->addrs[i6++];
		if (n < DNS_ADDRS_MAX && i4 < n4)
			out[n++] = v4->addrs[i4++];
	}
	r->addrs = out;
	r->n_addrs = n;
	if (n > 0) {
		r->status = DNS_OK;
		r->reason = v6->status == DNS_TEMPFAIL || v4->status == DNS_TEMPFAIL
		                ? "partial: one address family failed"
		                : "ok";
	} else if (v6->status == DNS_TEMPFAIL || v4->status == DNS_TEMPFAIL) {
		r->status = DNS_TEMPFAIL;
		r->reason = v6->status == DNS_TEMPFAIL ? v6->reason : v4->reason;
	} else if (v6->status == DNS_BADNAME || v4->status == DNS_BADNAME) {
		r->status = DNS_BADNAME;
		r->reason = "bad name";
	} else if (v6->status == DNS_NXDOMAIN && v4->status == DNS_NXDOMAIN) {
		r->status = DNS_NXDOMAIN;
		r->reason = v4->reason;
	} else {
		r->status = DNS_NODATA;
		r->reason = "no address records";
	}
}

/* dns_deliver - run the callbacks of ready queries, in the order they
 * became ready. A callback may start, cancel, or free the resolver. Queries
 * that become ready meanwhile (cache hits started by a callback) wait for
 * the next round, so the loop is never starved. */
static void dns_deliver(evutil_socket_t fd, short what, void *arg)
{
	struct dns *dns = arg;
	struct dns_query *q;
	uint64_t round = dns->ready_seq;
	bool gone = false;

	dns->gone = &gone;
	while ((q = TAILQ_FIRST(&dns->ready)) != NULL && q->ready_seq <= round) {
		struct sockaddr_storage merged[DNS_ADDRS_MAX];
		struct dns_answer *held[2] = {NULL, NULL};
		struct dns_result r;
		char name[sizeof(q->name)];
		int64_t now = mono_ms();

		memset(&r, 0, sizeof(r));
		memcpy(name, q->name, sizeof(name));
		r.name = name;
		r.cached = q->from_cache;
		if (q->badname) {
			r.status = DNS_BADNAME;
			r.reason = "bad name";
		} else if (!q->is_addr) {
			const struct dns_answer *a = q->waits[0].answer;
			r.status = a->status;
			r.reason = a->reason;
			r.mx = a->mx;
			r.n_mx = a->n_mx;
			r.null_mx = a->null_mx;
			r.ttl = dns_ttl_left(a, now);
		} else {
			const struct dns_answer *v6 = q->waits[0].answer, *v4 = q->waits[1].answer;
			dns_merge_addrs(v6, v4, merged, &r);
			unsigned t6 = dns_ttl_left(v6, now), t4 = dns_ttl_left(v4, now);
			r.ttl = t6 < t4 ? t6 : t4;
		}
		/* The answers outlive the query, which the callback may not
		 * touch: hold them, free the query, then call. */
		for (unsigned i = 0; i < q->n_waits; i++) {
			held[i] = q->waits[i].answer;
			q->waits[i].answer = NULL;
		}
		dns_cb *cb = q->cb;
		void *cb_arg = q->arg;
		dns_query_free(q);
		cb(cb_arg, &r);
		dns_answer_unref(&held[0]);
		dns_answer_unref(&held[1]);
		if (gone)
			return;
	}
	dns->gone = NULL;
	if (!TAILQ_EMPTY(&dns->ready))
		event_active(dns->deliver, EV_TIMEOUT, 0);
}

/* ------------------------------------------------------------------ */
/* Life cycle */

struct dns *dns_new(struct event_base *base, const char *servers, const char **error_r)
{
	return dns_new_with(base, servers, NULL, error_r);
}

struct dns *dns_new_with(struct event_base *base, const char *servers,
                         const struct dns_options *options, const char **error_r)
{
	struct dns *dns;
	struct ares_options ao;
	char csv[DNS_SERVERS_MAX * (INET6_ADDRSTRLEN + 10)];
	int mask;

	if (servers != NULL && !dns_servers_csv(servers, csv, sizeof(csv))) {
		*error_r = "resolver: expected 1 to 8 IP addresses, each with an optional port "
		           "(192.0.2.1:53 or [2001:db8::1]:53)";
		return NULL;
	}
	if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS) {
		*error_r = "resolver: c-ares did not initialise";
		return NULL;
	}
	dns = xcalloc(1, sizeof(*dns));
	dns->base = base;
	if (options != NULL)
		dns->opt = *options;
	if (dns->opt.timeout_ms == 0)
		dns->opt.timeout_ms = DNS_TIMEOUT_MS_DEFAULT;
	if (dns->opt.tries == 0)
		dns->opt.tries = DNS_TRIES_DEFAULT;
	if (dns->opt.cache_max == 0)
		dns->opt.cache_max = DNS_CACHE_MAX_DEFAULT;
	TAILQ_INIT(&dns->lru);
	TAILQ_INIT(&dns->all);
	TAILQ_INIT(&dns->ready);
	dns->timer = evtimer_new(base, dns_timer_fired, dns);
	dns->deliver = event_new(base, -1, 0, dns_deliver, dns);
	if (dns->timer == NULL || dns->deliver == NULL)
		abort();

	memset(&ao, 0, sizeof(ao));
	/* No search list and no HOSTALIASES: every name is absolute. No
	 * rotation: the first configured server is the primary. */
	ao.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
	ao.timeout = (int)dns->opt.timeout_ms;
	ao.tries = (int)dns->opt.tries;
	ao.sock_state_cb = dns_sock_state;
	ao.sock_state_cb_data = dns;
	mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB |
	       ARES_OPT_NOROTATE;
	if (ares_init_options(&dns->channel, &ao, mask) != ARES_SUCCESS) {
		*error_r = "resolver: c-ares could not start (resolv.conf?)";
		goto fail;
	}
	dns->channel_ok = true;
	if (servers != NULL && ares_set_servers_ports_csv(dns->channel, csv) != ARES_SUCCESS) {
		*error_r = "resolver: c-ares refused the server list";
		goto fail;
	}
	return dns;
fail:
	dns_free(&dns);
	return NULL;
}

void dns_free(struct dns **dnsp)
{
	struct dns *dns = *dnsp;
	struct dns_query *q;

	if (dns == NULL)
		return;
	*dnsp = NULL;
	if (dns->gone != NULL)
		*dns->gone = true;
	/* Queries first (no callback will run), then c-ares, whose callbacks
	 * now only see ARES_EDESTRUCTION, then the cache. */
	while ((q = TAILQ_FIRST(&dns->all)) != NULL)
		dns_query_free(q);
	if (dns->channel_ok)
		ares_destroy(dns->channel);
	dns->channel_ok = false;
	for (size_t i = 0; i < DNS_BUCKETS; i++) {
		struct dns_entry *e = dns->buckets[i], *next;
		for (; e != NULL; e = next) {
			next = e->hnext;
			dns_answer_unref(&e->answer);
			free(e);
		}
	}
	while (dns->socks != NULL) {
		struct dns_sock *s = dns->socks;
		dns->socks = s->next;
		if (s->ev != NULL)
			event_free(s->ev);
		free(s);
	}
	if (dns->timer != NULL)
		event_free(dns->timer);
	if (dns->deliver != NULL)
		event_free(dns->deliver);
	free(dns);
	ares_library_cleanup();
}

void dns_get_stats(const struct dns *dns, struct dns_stats *stats_r)
{
	*stats_r = dns->stats;
	stats_r->cached = dns->n_cached;
}

struct event_base *dns_base(const struct dns *dns)
{
	return dns->base;
}
