/* SPDX-License-Identifier: ISC */
/* dns_route.c - see dns_route.h */
#include "dns/dns_route.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "lib/util.h"

/* ------------------------------------------------------------------ */
/* Addresses */

/* dns_route_v4 - the IPv4 address in ss (also inside an IPv4-mapped IPv6
 * address, RFC 4291 2.5.5.2), in host order; false when there is none. */
static bool dns_route_v4(const struct sockaddr_storage *ss, uint32_t *v4_r)
{
	if (ss->ss_family == AF_INET) {
		*v4_r = ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr);
		return true;
	}
	if (ss->ss_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a)) {
			const uint8_t *b = a->s6_addr + 12;
			*v4_r = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 |
			        b[3];
			return true;
		}
	}
	return false;
}

bool dns_route_addr_refused(const struct sockaddr_storage *ss, bool allow_loopback)
{
	uint32_t v4;

	if (dns_route_v4(ss, &v4)) {
		/* RFC 1122 3.2.1.3: 0.0.0.0/8 is "this host": never a peer. */
		if ((v4 >> 24) == 0)
			return true;
		/* 127.0.0.0/8 is loopback (RFC 1122 3.2.1.3). */
		return (v4 >> 24) == 127 && !allow_loopback;
	}
	if (ss->ss_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
		if (IN6_IS_ADDR_UNSPECIFIED(a))
			return true;
		return IN6_IS_ADDR_LOOPBACK(a) && !allow_loopback;
	}
	return true; /* not an Internet address */
}

bool dns_route_addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	uint32_t x = 0, y = 0;
	bool ax = dns_route_v4(a, &x), by = dns_route_v4(b, &y);

	if (ax || by)
		return ax && by && x == y;
	if (a->ss_family != AF_INET6 || b->ss_family != AF_INET6)
		return false;
	return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
	              &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
}

/* ------------------------------------------------------------------ */
/* Decisions */

/* dns_route_name_eq - the same DNS name: case and a final dot do not
 * matter (RFC 4343). */
static bool dns_route_name_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 0 && a[la - 1] == '.')
		la--;
	if (lb > 0 && b[lb - 1] == '.')
		lb--;
	if (la != lb || la == 0)
		return false;
	for (size_t i = 0; i < la; i++) {
		unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
		if (x >= 'A' && x <= 'Z')
			x = (unsigned char)(x - 'A' + 'a');
		if (y >= 'A' && y <= 'Z')
			y = (unsigned char)(y - 'A' + 'a');
		if (x != y)
			return false;
	}
	return true;
}

/* dns_route_printable - name for a failure text, with anything that is not
 * printable ASCII shown as '?': the text ends up in a bounce. */
static const char *dns_route_printable(const char *name, char *buf, size_t size)
{
	size_t i = 0;
	for (; name[i] != '\0' && i + 1 < size; i++)
		buf[i] = (name[i] > 0x20 && name[i] < 0x7f) ? name[i] : '?';
	buf[i] = '\0';
	return buf;
}

static void dns_route_fail(struct dns_route *route, enum dns_route_status status, const char *code,
                           const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void dns_route_fail(struct dns_route *route, enum dns_route_status status, const char *code,
                           const char *fmt, ...)
{
	va_list ap;

	route->status = status;
	route->n_targets = 0;
	str_copy(route->code, code, sizeof(route->code));
	va_start(ap, fmt);
	vsnprintf(route->text, sizeof(route->text), fmt, ap);
	va_end(ap);
}

static void dns_route_init(struct dns_route *route)
{
	memset(route, 0, sizeof(*route));
	route->status = DNS_ROUTE_OK;
}

static uint32_t dns_route_default_random(void *arg)
{
	return arc4random();
}

/* dns_route_shuffle - RFC 5321 5.1: among MX records of equal preference
 * the order must be random, to spread the load. The records are sorted by
 * preference; each run of equal ones is shuffled (Fisher-Yates). */
static void dns_route_shuffle(const struct dns_route_policy *policy, struct dns_mx *mx, size_t n)
{
	dns_route_random_fn *rnd = policy->random ? policy->random : dns_route_default_random;

	for (size_t i = 0; i < n;) {
		size_t j = i + 1;
		while (j < n && mx[j].preference == mx[i].preference)
			j++;
		for (size_t k = j - i; k > 1; k--) {
			size_t r = rnd(policy->random_arg) % k;
			struct dns_mx t = mx[i + k - 1];
			mx[i + k - 1] = mx[i + r];
			mx[i + r] = t;
		}
		i = j;
	}
}

static void dns_route_plan_init(struct dns_route_plan *plan, const char *domain)
{
	memset(plan, 0, sizeof(*plan));
	str_copy(plan->domain, domain, sizeof(plan->domain));
	size_t len = strlen(plan->domain);
	if (len > 1 && plan->domain[len - 1] == '.')
		plan->domain[len - 1] = '\0';
}

bool dns_route_plan(const struct dns_route_policy *policy, const char *domain,
                    const struct dns_result *mx, struct dns_route_plan *plan_r,
                    struct dns_route *route_r)
{
	struct dns_mx list[DNS_MX_MAX];
	char shown[DNS_NAME_MAX + 1];
	size_t n = 0;

	dns_route_init(route_r);
	dns_route_plan_init(plan_r, domain);
	switch (mx->status) {
	case DNS_NXDOMAIN:
		dns_route_fail(route_r, DNS_ROUTE_PERMFAIL, "5.1.2", "domain does not exist: %s",
		               plan_r->domain);
		return false;
	case DNS_BADNAME:
		dns_route_fail(route_r, DNS_ROUTE_PERMFAIL, "5.1.2", "not a valid domain name: %s",
		               dns_route_printable(domain, shown, sizeof(shown)));
		return false;
	case DNS_TEMPFAIL:
		/* RFC 3463 X.4.3: directory server failure. */
		dns_route_fail(route_r, DNS_ROUTE_TEMPFAIL, "4.4.3",
		               "DNS lookup failed temporarily: MX %s: %s", plan_r->domain,
		               mx->reason ? mx->reason : "error");
		return false;
	case DNS_NODATA:
	case DNS_OK:
		break;
	}
	if (mx->status == DNS_OK && mx->null_mx) {
		dns_route_fail(route_r, DNS_ROUTE_PERMFAIL, "5.1.10",
		               "recipient domain does not accept mail (null MX): %s",
		               plan_r->domain);
		return false;
	}
	if (mx->status == DNS_OK) {
		/* An exchange "." beside other records breaks RFC 7505 3;
		 * it cannot be connected to, so it is left out. */
		for (size_t i = 0; i < mx->n_mx && n < DNS_MX_MAX; i++)
			if (strcmp(mx->mx[i].host, ".") != 0 && mx->mx[i].host[0] != '\0')
				list[n++] = mx->mx[i];
		if (n == 0 && mx->n_mx > 0) {
			dns_route_fail(route_r, DNS_ROUTE_PERMFAIL, "5.1.10",
			               "recipient domain does not accept mail (null MX): %s",
			               plan_r->domain);
			return false;
		}
	}
	if (n == 0) {
		/* RFC 5321 5.1: no MX records: the domain itself is the
		 * implicit MX, with preference 0. */
		plan_r->implicit_mx = true;
		route_r->implicit_mx = true;
		list[0].preference = 0;
		list[0].host = plan_r->domain;
		n = 1;
	} else {
		/* dns.h gives them sorted by preference; sort again in case
		 * the answer came from elsewhere (tests), then shuffle. */
		for (size_t i = 1; i < n; i++) {
			struct dns_mx cur = list[i];
			size_t j = i;
			while (j > 0 && list[j - 1].preference > cur.preference) {
				list[j] = list[j - 1];
				j--;
			}
			list[j] = cur;
		}
		dns_route_shuffle(policy, list, n);
	}

	/* RFC 5321 5.1: if we are one of the MX hosts, only those more
	 * preferred than our own record may be used; with none, this is a
	 * mail loop. */
	for (size_t i = 0; i < n; i++) {
		if (policy->our_hostname != NULL &&
		    dns_route_name_eq(list[i].host, policy->our_hostname) &&
		    (!plan_r->self_listed || list[i].preference < plan_r->self_pref)) {
			plan_r->self_listed = true;
			plan_r->self_pref = list[i].preference;
		}
	}
	for (size_t i = 0; i < n && plan_r->n_hosts < DNS_ROUTE_HOSTS_MAX; i++) {
		if (plan_r->self_listed && list[i].preference >= plan_r->self_pref)
			continue;
		bool dup = false;
		for (size_t k = 0; k < plan_r->n_hosts && !dup; k++)
			dup = dns_route_name_eq(plan_r->hosts[k].name, list[i].host);
		if (dup)
			continue;
		struct dns_route_host *h = &plan_r->hosts[plan_r->n_hosts++];
		str_copy(h->name, list[i].host, sizeof(h->name));
		h->preference = list[i].preference;
	}
	if (plan_r->n_hosts == 0) {
		dns_route_fail(route_r, DNS_ROUTE_PERMFAIL, "5.4.6",
		               "mail loop: MX points back to this relay: %s is an MX of %s",
		               policy->our_hostname, plan_r->domain);
		return false;
	}
	return true;
}

void dns_route_host_outcome(const struct dns_route_policy *policy, const struct dns_result *r,
                            struct dns_route_outcome *outcome_r)
{
	memset(outcome_r, 0, sizeof(*outcome_r));
	outcome_r->status = r->status;
	outcome_r->reason = r->reason;
	if (r->status != DNS_OK)
		return;
	for (size_t i = 0; i < r->n_addrs; i++) {
		const struct sockaddr_storage *ss = &r->addrs[i];
		for (size_t k = 0; k < policy->n_our_addrs; k++) {
			const struct sockaddr_storage *our = &policy->our_addrs[k];
			in_port_t port = our->ss_family == AF_INET6
			                     ? ((const struct sockaddr_in6 *)our)->sin6_port
			                     : ((const struct sockaddr_in *)our)->sin_port;
			/* Ours on another port than mx_port: connecting
			 * there does not reach us (tests run a fake MX on
			 * the relay's own address). */
			if (dns_route_addr_equal(ss, our) &&
			    (port == 0 || ntohs(port) == policy->port))
				outcome_r->self = true;
		}
		if (dns_route_addr_refused(ss, policy->allow_loopback_mx)) {
			outcome_r->n_refused++;
			continue;
		}
		if (outcome_r->n_addrs < DNS_ROUTE_TARGETS_MAX)
			outcome_r->addrs[outcome_r->n_addrs++] = *ss;
	}
}

bool dns_route_literal(const struct dns_route_policy *policy, const char *domain,
                       struct dns_route_plan *plan_r, struct dns_route_outcome *outcome_r)
{
	size_t len = strlen(domain);
	char text[INET6_ADDRSTRLEN + 1];
	struct sockaddr_storage ss;
	const char *start = domain + 1;
	int family = AF_INET;

	if (len == 0 || domain[0] != '[')
		return false;
	/* RFC 5321 4.1.3: "[IPv6:" address "]", the tag in any case. */
	size_t inner = len >= 2 && domain[len - 1] == ']' ? len - 2 : 0;
	if (mem_istarts(start, inner, "IPv6:")) {
		start += 5;
		family = AF_INET6;
	}
	size_t n = inner > 0 ? (size_t)(domain + len - 1 - start) : 0;
	memset(&ss, 0, sizeof(ss));
	memset(outcome_r, 0, sizeof(*outcome_r));
	dns_route_plan_init(plan_r, domain);
	plan_r->literal = true;
	plan_r->n_hosts = 1;
	str_copy(plan_r->hosts[0].name, plan_r->domain, sizeof(plan_r->hosts[0].name));
	if (n == 0 || n >= sizeof(text)) {
		outcome_r->status = DNS_BADNAME;
		outcome_r->reason = "bad address literal";
		return true;
	}
	memcpy(text, start, n);
	text[n] = '\0';
	void *dst = family == AF_INET ? (void *)&((struct sockaddr_in *)&ss)->sin_addr
	                              : (void *)&((struct sockaddr_in6 *)&ss)->sin6_addr;
	if (inet_pton(family, text, dst) != 1) {
		outcome_r->status = DNS_BADNAME;
		outcome_r->reason = "bad address literal";
		return true;
	}
	ss.ss_family = (sa_family_t)family;
	/* The target's host is the bare address: what a TLS client checks
	 * the certificate against, and no name to send as SNI. */
	str_copy(plan_r->hosts[0].name, text, sizeof(plan_r->hosts[0].name));
	struct dns_result r = {.status = DNS_OK, .reason = "ok", .addrs = &ss, .n_addrs = 1};
	dns_route_host_outcome(policy, &r, outcome_r);
	return true;
}

static void dns_route_add_target(const struct dns_route_policy *policy, struct dns_route *route,
                                 const struct dns_route_host *h, const struct sockaddr_storage *ss)
{
	for (size_t i = 0; i < route->n_targets; i++)
		if (dns_route_addr_equal(&route->targets[i].addr, ss))
			return; /* two MX names for one address: try it once */
	struct dns_route_target *t = &route->targets[route->n_targets++];
	str_copy(t->host, h->name, sizeof(t->host));
	t->preference = h->preference;
	t->addr = *ss;
	if (ss->ss_family == AF_INET) {
		((struct sockaddr_in *)&t->addr)->sin_port = htons(policy->port);
		t->addr_len = sizeof(struct sockaddr_in);
	} else {
		((struct sockaddr_in6 *)&t->addr)->sin6_port = htons(policy->port);
		t->addr_len = sizeof(struct sockaddr_in6);
	}
}

void dns_route_finish(const struct dns_route_policy *policy, const struct dns_route_plan *plan,
                      const struct dns_route_outcome *outcomes, struct dns_route *route_r)
{
	bool self = plan->self_listed;
	unsigned cutoff = plan->self_pref;
	const char *self_host = policy->our_hostname;
	const struct dns_route_outcome *temp = NULL;
	const char *temp_host = NULL;
	bool refused = false, badname = false;

	dns_route_init(route_r);
	route_r->implicit_mx = plan->implicit_mx;

	/* RFC 5321 5.1 again: an MX host whose address is ours is us too. */
	for (size_t i = 0; i < plan->n_hosts; i++) {
		if (outcomes[i].self && (!self || plan->hosts[i].preference < cutoff)) {
			self = true;
			cutoff = plan->hosts[i].preference;
			self_host = plan->hosts[i].name;
		}
	}
	bool usable = false;
	for (size_t i = 0; i < plan->n_hosts; i++)
		usable |= !self || plan->hosts[i].preference < cutoff;
	if (!usable) {
		dns_route_fail(route_r, DNS_ROUTE_PERMFAIL, "5.4.6",
		               "mail loop: MX points back to this relay: %s for %s", self_host,
		               plan->domain);
		return;
	}

	for (size_t i = 0; i < plan->n_hosts; i++) {
		const struct dns_route_outcome *o = &outcomes[i];
		if (self && plan->hosts[i].preference >= cutoff)
			continue;
		if (o->status == DNS_TEMPFAIL && temp == NULL) {
			temp = o;
			temp_host = plan->hosts[i].name;
		}
		badname |= o->status == DNS_BADNAME;
		refused |= o->n_refused > 0;
		for (size_t k = 0; k < o->n_addrs && route_r->n_targets < DNS_ROUTE_TARGETS_MAX;
		     k++)
			dns_route_add_target(policy, route_r, &plan->hosts[i], &o->addrs[k]);
	}
	if (route_r->n_targets > 0)
		return;

	/* Nothing to connect to. A temporary failure may clear: wait for it. */
	if (temp != NULL) {
		dns_route_fail(route_r, DNS_ROUTE_TEMPFAIL, "4.4.3",
		               "DNS lookup failed temporarily: %s %s: %s",
		               plan->implicit_mx ? "host" : "MX host", temp_host,
		               temp->reason ? temp->reason : "error");
	} else if (plan->literal && badname) {
		char shown[DNS_NAME_MAX + 1];
		dns_route_fail(route_r, DNS_ROUTE_PERMFAIL, "5.1.2",
		               "not a valid address literal: %s",
		               dns_route_printable(plan->domain, shown, sizeof(shown)));
	} else if (refused) {
		/* Loopback is this machine: connecting there is a loop or a
		 * trap, never the recipient's server (RFC 5321 5.1's "we are
		 * the MX" in another form). */
		dns_route_fail(route_r, DNS_ROUTE_PERMFAIL, "5.4.4",
		               "unusable route: %s resolves only to loopback or unspecified "
		               "addresses",
		               plan->domain);
	} else if (plan->implicit_mx) {
		/* RFC 5321 5.1: no MX and an unusable implicit MX is an
		 * error to report: the domain has nowhere to take mail. */
		dns_route_fail(route_r, DNS_ROUTE_PERMFAIL, "5.4.4",
		               "unable to route: %s has no MX and no address records",
		               plan->domain);
	} else {
		/* MX records naming hosts that do not exist: often a zone
		 * being changed, so retry rather than bounce at once. */
		dns_route_fail(route_r, DNS_ROUTE_TEMPFAIL, "4.4.4",
		               "unable to route: no MX host of %s resolves", plan->domain);
	}
}

void dns_route_decide(const struct dns_route_policy *policy, const char *domain,
                      const struct dns_result *mx, dns_route_addr_fn *addr_for, void *arg,
                      struct dns_route *route_r)
{
	struct dns_route_plan plan;
	struct dns_route_outcome outcomes[DNS_ROUTE_HOSTS_MAX];

	if (dns_route_literal(policy, domain, &plan, &outcomes[0])) {
		dns_route_finish(policy, &plan, outcomes, route_r);
		return;
	}
	if (!dns_route_plan(policy, domain, mx, &plan, route_r))
		return;
	for (size_t i = 0; i < plan.n_hosts; i++) {
		const struct dns_result *r = addr_for(arg, plan.hosts[i].name);
		struct dns_result none = {.status = DNS_NXDOMAIN, .reason = "no such domain"};
		dns_route_host_outcome(policy, r != NULL ? r : &none, &outcomes[i]);
	}
	dns_route_finish(policy, &plan, outcomes, route_r);
}

/* ------------------------------------------------------------------ */
/* Driving the look-ups */

struct dns_route_lookup {
	struct dns_route_query *rq;
	struct dns_query *q;
};

struct dns_route_query {
	struct dns *dns;
	struct dns_route_policy policy;
	dns_route_cb *cb;
	void *arg;
	char domain[DNS_NAME_MAX + 2];
	struct dns_query *mx_q;
	struct event *literal_ev; /* delivers an address literal's route */
	struct dns_route_plan plan;
	struct dns_route_outcome outcomes[DNS_ROUTE_HOSTS_MAX];
	struct dns_route_lookup lookups[DNS_ROUTE_HOSTS_MAX];
	size_t pending;
	struct dns_route route; /* for a route decided early */
};

static void dns_route_query_free(struct dns_route_query *rq)
{
	dns_cancel(&rq->mx_q);
	for (size_t i = 0; i < DNS_ROUTE_HOSTS_MAX; i++)
		dns_cancel(&rq->lookups[i].q);
	if (rq->literal_ev != NULL)
		event_free(rq->literal_ev);
	free(rq);
}

void dns_route_cancel(struct dns_route_query **rqp)
{
	if (*rqp == NULL)
		return;
	dns_route_query_free(*rqp);
	*rqp = NULL;
}

/* dns_route_done - hand route over and free rq: the callback may do
 * anything, including freeing the resolver. */
static void dns_route_done(struct dns_route_query *rq, const struct dns_route *route)
{
	dns_route_cb *cb = rq->cb;
	void *arg = rq->arg;
	struct dns_route copy = *route;

	dns_route_query_free(rq);
	cb(arg, &copy);
}

static void dns_route_addr_done(void *arg, const struct dns_result *r)
{
	struct dns_route_lookup *l = arg;
	struct dns_route_query *rq = l->rq;

	l->q = NULL;
	dns_route_host_outcome(&rq->policy, r, &rq->outcomes[l - rq->lookups]);
	if (--rq->pending > 0)
		return;
	dns_route_finish(&rq->policy, &rq->plan, rq->outcomes, &rq->route);
	dns_route_done(rq, &rq->route);
}

static void dns_route_mx_done(void *arg, const struct dns_result *mx)
{
	struct dns_route_query *rq = arg;

	rq->mx_q = NULL;
	if (!dns_route_plan(&rq->policy, rq->domain, mx, &rq->plan, &rq->route)) {
		dns_route_done(rq, &rq->route);
		return;
	}
	/* Every host at once: the answers come back in any order, the plan
	 * keeps the order. Most are cache hits. */
	rq->pending = rq->plan.n_hosts;
	for (size_t i = 0; i < rq->plan.n_hosts; i++) {
		rq->lookups[i].rq = rq;
		rq->lookups[i].q = dns_lookup_addr(rq->dns, rq->plan.hosts[i].name,
		                                   dns_route_addr_done, &rq->lookups[i]);
	}
}

static void dns_route_literal_ready(evutil_socket_t fd, short what, void *arg)
{
	struct dns_route_query *rq = arg;
	dns_route_finish(&rq->policy, &rq->plan, rq->outcomes, &rq->route);
	dns_route_done(rq, &rq->route);
}

struct dns_route_query *dns_route_start(struct dns *dns, const struct dns_route_policy *policy,
                                        const char *domain, dns_route_cb *cb, void *arg)
{
	struct dns_route_query *rq = xcalloc(1, sizeof(*rq));

	rq->dns = dns;
	rq->policy = *policy;
	rq->cb = cb;
	rq->arg = arg;
	str_copy(rq->domain, domain, sizeof(rq->domain));
	if (dns_route_literal(policy, domain, &rq->plan, &rq->outcomes[0])) {
		rq->literal_ev = evtimer_new(dns_base(dns), dns_route_literal_ready, rq);
		if (rq->literal_ev == NULL)
			abort();
		struct timeval now = {0, 0};
		evtimer_add(rq->literal_ev, &now);
		return rq;
	}
	/* A domain longer than the buffer is not a domain: the look-up says
	 * DNS_BADNAME, so keep the original text for it. */
	rq->mx_q = dns_lookup_mx(dns, strlen(domain) < sizeof(rq->domain) ? rq->domain : domain,
	                         dns_route_mx_done, rq);
	return rq;
}
