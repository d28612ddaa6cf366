/* SPDX-License-Identifier: ISC */
/*
 * dns_route.h - from a recipient domain to the ordered list of (MX host,
 * address) targets that delivery connects to, or a classified failure.
 *
 * Owns: the mail routing rules of RFC 5321 5.1 and RFC 7505: MX preference
 * order with a random order among equal preferences, the implicit MX when a
 * domain has none, the null MX, the "we are an MX ourselves" rule (use only
 * MX hosts more preferred than our own record), the refusal of loopback and
 * unspecified addresses, the bounds on what is tried, and which outcome is
 * temporary and which permanent (with its RFC 3463 enhanced status code).
 * Does not own: the look-ups themselves (dns.h), connecting, or what to do
 * with a failure (delivery retries or bounces).
 *
 * The rules are pure functions (dns_route_plan, dns_route_host_outcome,
 * dns_route_finish, dns_route_decide) that tests feed with made-up answers;
 * dns_route_start drives them with real look-ups on the loop.
 * Threads: dns_route_start and dns_route_cancel on the loop thread of the
 * struct dns; the pure functions on any thread.
 */
#ifndef DETOUR_DNS_ROUTE_H
#define DETOUR_DNS_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "dns/dns.h"

/* Addresses in one route: delivery tries at most this many per attempt
 * (RFC 5321 5.1 asks for a configurable limit on how many are tried). */
#define DNS_ROUTE_TARGETS_MAX 10
/* MX hosts looked up for one route, most preferred first. */
#define DNS_ROUTE_HOSTS_MAX 10
/* Room for a failure's text (it names the domain or host). */
#define DNS_ROUTE_TEXT_MAX 512

enum dns_route_status {
	DNS_ROUTE_OK,       /* targets to try, in order */
	DNS_ROUTE_TEMPFAIL, /* try again later (4.x.x) */
	DNS_ROUTE_PERMFAIL, /* never deliverable as things stand: bounce (5.x.x) */
};

/* dns_route_random_fn - a random 32-bit number, for the order among MX
 * records of equal preference (RFC 5321 5.1). */
typedef uint32_t dns_route_random_fn(void *arg);

/* What routing needs to know about us. The pointers are borrowed: they must
 * stay valid while a route that was given them is in flight. */
struct dns_route_policy {
	const char *our_hostname; /* [server] hostname: an MX of this name is us */
	/* Our own addresses: an MX address among them is us (RFC 5321 5.1).
	 * With port 0 the address is us on any port; with a port, only when
	 * that port is mx_port. List every local address a wildcard
	 * listener covers. */
	const struct sockaddr_storage *our_addrs;
	size_t n_our_addrs;
	bool allow_loopback_mx;      /* [delivery] allow_loopback_mx: tests only */
	uint16_t port;               /* [delivery] mx_port, set in every target */
	dns_route_random_fn *random; /* NULL: arc4random */
	void *random_arg;
};

struct dns_route_target {
	/* The MX host; the domain for an implicit MX; the bare address
	 * ("192.0.2.1", "2001:db8::1") for an address literal. */
	char host[DNS_NAME_MAX + 1];
	unsigned preference;
	struct sockaddr_storage addr; /* with the port set */
	socklen_t addr_len;
};

struct dns_route {
	enum dns_route_status status;
	char code[8];                  /* enhanced status code, "4.4.3"; "" when OK */
	char text[DNS_ROUTE_TEXT_MAX]; /* why, for logs and the bounce; "" when OK */
	bool implicit_mx;              /* the domain had no MX: its own A/AAAA */
	size_t n_targets;
	struct dns_route_target targets[DNS_ROUTE_TARGETS_MAX];
};

/* One MX host to look up. */
struct dns_route_host {
	char name[DNS_NAME_MAX + 1];
	unsigned preference;
};

/* Step 1's result: the hosts to look up, in the order they will be tried. */
struct dns_route_plan {
	char domain[DNS_NAME_MAX + 1];
	bool implicit_mx;
	bool literal;       /* the domain is an address literal "[192.0.2.1]" */
	bool self_listed;   /* our hostname is one of the MX hosts */
	unsigned self_pref; /* its preference, when self_listed */
	size_t n_hosts;
	struct dns_route_host hosts[DNS_ROUTE_HOSTS_MAX];
};

/* Step 2's result for one host: what its address answer gives. */
struct dns_route_outcome {
	enum dns_status status;
	const char *reason; /* static, from dns.h */
	bool self;          /* one of its addresses is ours */
	size_t n_refused;   /* loopback or unspecified addresses dropped */
	size_t n_addrs;
	struct sockaddr_storage addrs[DNS_ROUTE_TARGETS_MAX];
};

/*
 * dns_route_plan - step 1: the MX answer for domain into the hosts to look
 * up. Returns true when plan_r lists hosts; false when the route is already
 * decided (a failure, in route_r): NXDOMAIN, a bad name, a temporary
 * failure, a null MX, or only ourselves as MX.
 */
bool dns_route_plan(const struct dns_route_policy *policy, const char *domain,
                    const struct dns_result *mx, struct dns_route_plan *plan_r,
                    struct dns_route *route_r);

/* dns_route_literal - if domain is an address literal (RFC 5321 4.1.3:
 * "[192.0.2.1]", "[IPv6:2001:db8::1]"), make its one-host plan and the
 * host's outcome, and return true. No DNS is involved. */
bool dns_route_literal(const struct dns_route_policy *policy, const char *domain,
                       struct dns_route_plan *plan_r, struct dns_route_outcome *outcome_r);

/* dns_route_host_outcome - step 2, per host: sort its addresses into the
 * usable ones, the refused ones and ours. */
void dns_route_host_outcome(const struct dns_route_policy *policy, const struct dns_result *addrs,
                            struct dns_route_outcome *outcome_r);

/* dns_route_finish - step 3: the targets, or why there are none.
 * outcomes[i] belongs to plan->hosts[i]. */
void dns_route_finish(const struct dns_route_policy *policy, const struct dns_route_plan *plan,
                      const struct dns_route_outcome *outcomes, struct dns_route *route_r);

/* dns_route_addr_fn - the address answer for host (tests: from a table). */
typedef const struct dns_result *dns_route_addr_fn(void *arg, const char *host);

/* dns_route_decide - the three steps at once, without DNS: mx is the MX
 * answer for domain, addr_for gives each host's address answer. */
void dns_route_decide(const struct dns_route_policy *policy, const char *domain,
                      const struct dns_result *mx, dns_route_addr_fn *addr_for, void *arg,
                      struct dns_route *route_r);

/* dns_route_cb - the route is decided; it is valid during the call only, and
 * the struct dns_route_query is gone. */
typedef void dns_route_cb(void *arg, const struct dns_route *route);

struct dns_route_query;

/*
 * dns_route_start - look up domain's MX, then its hosts' addresses (in
 * parallel, through the cache), and call cb once with the route. Address
 * literals are routed without DNS. The callback never runs from inside this
 * call.
 */
struct dns_route_query *dns_route_start(struct dns *dns, const struct dns_route_policy *policy,
                                        const char *domain, dns_route_cb *cb, void *arg);

/* dns_route_cancel - the requester went away: no callback. Sets *rq to
 * NULL; NULL is ignored. Not valid after the callback ran. */
void dns_route_cancel(struct dns_route_query **rq);

/* dns_route_addr_refused - is this address never a delivery target
 * (unspecified), or only with allow_loopback (loopback)? */
bool dns_route_addr_refused(const struct sockaddr_storage *ss, bool allow_loopback);
/* dns_route_addr_equal - the same IP address, ports ignored, an
 * IPv4-mapped IPv6 address equal to its IPv4 form. */
bool dns_route_addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

#endif
