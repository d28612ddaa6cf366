/* SPDX-License-Identifier: ISC */
/*
 * dns.h - asynchronous DNS look-ups for delivery: c-ares driven by the
 * libevent loop, with a small answer cache.
 *
 * Owns: the c-ares channel, its sockets and its timer on the caller's
 * event_base; the cache of answers (positive and negative, kept for their
 * TTL between a floor and a ceiling, bounded in size); the coalescing of
 * identical questions in flight; the classification of every resolver
 * outcome into enum dns_status. Does not own: what an answer means for mail
 * (dns_route.h decides MX order, null MX, loops), nor which servers to ask
 * (the configuration's [delivery] resolver).
 *
 * Threads: every function on the loop thread of the event_base given to
 * dns_new. Callbacks always run from the loop, never from inside the call
 * that started the look-up, so a caller may start, cancel or free from a
 * callback.
 *
 * Time: each question is sent up to DNS_TRIES_DEFAULT times per server,
 * waiting DNS_TIMEOUT_MS_DEFAULT for the first try; c-ares doubles the wait
 * after each round through the servers, so one server answers within 5 s or
 * is retried once for up to 10 s more: at worst 15 s per look-up, then
 * DNS_TEMPFAIL. A SERVFAIL or REFUSED answer moves on to the next try at
 * once.
 */
#ifndef DETOUR_DNS_H
#define DETOUR_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct dns;
struct dns_query;

/* RFC 1035 2.3.4: 255 octets on the wire, so 253 characters as text
 * without the final dot. Longer names are DNS_BADNAME without a query. */
#define DNS_NAME_MAX 253
/* Records kept from one answer; the rest are dropped (the most preferred
 * MX records are the ones kept). */
#define DNS_MX_MAX    32
#define DNS_ADDRS_MAX 32
/* resolver = "..." names at most this many servers. */
#define DNS_SERVERS_MAX 8

/* First wait for an answer, and tries per server (see the block above). */
#define DNS_TIMEOUT_MS_DEFAULT 5000
#define DNS_TRIES_DEFAULT      2

/* Cache: answers are kept for their TTL, but at least DNS_TTL_MIN seconds
 * (so a burst of deliveries to one domain shares one look-up even when the
 * zone says TTL 0) and at most DNS_TTL_MAX (so a changed MX is seen within
 * the hour). Negative answers are kept for the SOA's negative TTL (RFC 2308
 * 5), DNS_NEGATIVE_TTL_DEFAULT when the answer has no SOA. Temporary
 * failures are kept DNS_TEMPFAIL_TTL seconds, so a dead name server does
 * not make every message wait for its own time-out (RFC 2308 7.1 allows up
 * to five minutes). At most DNS_CACHE_MAX_DEFAULT answers; the least
 * recently used goes first. */
#define DNS_TTL_MIN              5
#define DNS_TTL_MAX              3600
#define DNS_NEGATIVE_TTL_DEFAULT 60
#define DNS_TEMPFAIL_TTL         5
#define DNS_CACHE_MAX_DEFAULT    4096

enum dns_status {
	DNS_OK,       /* records found */
	DNS_NXDOMAIN, /* the name does not exist (RCODE 3) */
	DNS_NODATA,   /* the name exists, without records of this type */
	DNS_TEMPFAIL, /* SERVFAIL, REFUSED, time-out, no server reachable...: try later */
	DNS_BADNAME,  /* not a valid domain name: nothing was asked */
};

struct dns_mx {
	unsigned preference;
	const char *host; /* "." for the root (a null MX's exchange) */
};

/*
 * The outcome of one look-up, valid only during the callback: copy what must
 * outlive it. For an address look-up the A and AAAA answers are merged: the
 * status is DNS_OK when either family has addresses (even if the other
 * failed), else DNS_TEMPFAIL if either failed temporarily, else DNS_BADNAME,
 * else DNS_NXDOMAIN when both say so, else DNS_NODATA.
 */
struct dns_result {
	enum dns_status status;
	const char *reason; /* short static text for logs and bounces: "SERVFAIL", "timeout" */
	const char *name;   /* the name that was asked, as given */
	/* MX look-ups: sorted by preference, at most DNS_MX_MAX. */
	const struct dns_mx *mx;
	size_t n_mx;
	bool null_mx; /* RFC 7505: exactly one MX, preference 0, exchange "." */
	/* Address look-ups: AF_INET6 and AF_INET, port 0, interleaved IPv6
	 * first (RFC 8305 4) so either family is tried early; at most
	 * DNS_ADDRS_MAX. */
	const struct sockaddr_storage *addrs;
	size_t n_addrs;
	unsigned ttl; /* seconds the answer is still cached for */
	bool cached;  /* every part came from the cache, nothing was sent */
};

/* dns_cb - a look-up finished; q is no longer valid. */
typedef void dns_cb(void *arg, const struct dns_result *result);

struct dns_options {
	unsigned timeout_ms; /* first wait per try; 0: DNS_TIMEOUT_MS_DEFAULT */
	unsigned tries;      /* per server; 0: DNS_TRIES_DEFAULT */
	size_t cache_max;    /* answers cached; 0: DNS_CACHE_MAX_DEFAULT */
	bool no_cache;       /* keep nothing (still coalesces questions in flight) */
};

struct dns_stats {
	uint64_t queries;    /* questions sent to c-ares */
	uint64_t cache_hits; /* answered from the cache */
	uint64_t coalesced;  /* joined a question already in flight */
	size_t cached;       /* answers in the cache now */
};

/*
 * dns_new - a resolver on base. servers is the configuration's resolver
 * value: space-separated addresses with optional ports ("127.0.0.1:5353
 * [::1]:5353 192.0.2.1"; IPv6 with a port needs brackets; the port defaults
 * to 53), or NULL for the servers of the system's resolv.conf. Returns NULL
 * with a static message in *error_r when servers does not parse or c-ares
 * cannot start.
 */
struct dns *dns_new(struct event_base *base, const char *servers, const char **error_r);
/* dns_new_with - the same with options (tests shorten the time-outs). */
struct dns *dns_new_with(struct event_base *base, const char *servers,
                         const struct dns_options *options, const char **error_r);
/* dns_free - cancel every look-up (no callback runs) and free; sets *dns to
 * NULL. May be called from a callback. */
void dns_free(struct dns **dns);

/*
 * dns_lookup_mx - the MX records of domain. dns_lookup_addr - the A and
 * AAAA records of host, asked in parallel. Names may end with a dot; case
 * does not matter. The callback runs exactly once, later, unless the query
 * is cancelled or the resolver freed first. The returned handle stays valid
 * until then.
 */
struct dns_query *dns_lookup_mx(struct dns *dns, const char *domain, dns_cb *cb, void *arg);
struct dns_query *dns_lookup_addr(struct dns *dns, const char *host, dns_cb *cb, void *arg);

/* dns_cancel - the requester went away: its callback will not run. The
 * question itself continues and its answer is still cached. Sets *q to NULL;
 * a NULL *q is ignored. Not valid once the callback has run. */
void dns_cancel(struct dns_query **q);

/* dns_cache_flush - forget every cached answer (questions in flight go on). */
void dns_cache_flush(struct dns *dns);
void dns_get_stats(const struct dns *dns, struct dns_stats *stats_r);
/* dns_base - the event_base the resolver runs on. */
struct event_base *dns_base(const struct dns *dns);

/* dns_status_name - "ok", "nxdomain", "nodata", "tempfail", "badname". */
const char *dns_status_name(enum dns_status status);

/* dns_name_valid - is name a host or domain name we will ask about:
 * labels of letters, digits, '-' and '_', 1 to 63 octets each, at most
 * DNS_NAME_MAX in all, one final dot allowed. */
bool dns_name_valid(const char *name);

#endif
