/* SPDX-License-Identifier: ISC */
/* classify.c - see classify.h */
#include "cmd/detour/classify.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cmd/detour/detour.h"
#include "lib/util.h"

#define NAME_MAX_LEN 256

const char *classify_result_name(enum probe_result r)
{
	switch (r) {
	case PROBE_OK:
		return "ok";
	case PROBE_REFUSED:
		return "refused";
	case PROBE_BLOCKED:
		return "blocked";
	case PROBE_INTERCEPTED:
		return "intercepted";
	case PROBE_THROTTLED:
		return "throttled";
	}
	return "?";
}

bool classify_masked(const char *text)
{
	size_t stars = 0, run = 0, longest = 0, visible = 0;
	for (const char *p = text; *p != '\0'; p++) {
		if (*p == '*') {
			stars++;
			if (++run > longest)
				longest = run;
		} else {
			run = 0;
		}
		if (*p != ' ')
			visible++;
	}
	/* Cisco's "fixup smtp" / ESMTP inspection replaces the greeting's text
	 * with asterisks (keeping the digits of the code, sometimes a few
	 * zeros): a run of four, or a text that is mostly stars. */
	return longest >= 4 || (stars >= 3 && stars * 2 >= visible);
}

/* mangled - "XXXXXXXA": every octet but the last an 'X', at least four
 * long. Firewalls overwrite the keywords they do not allow (STARTTLS,
 * CHUNKING, ...) in place, keeping the length. */
static bool mangled(const char *kw, size_t len)
{
	if (len < 4)
		return false;
	for (size_t i = 0; i + 1 < len; i++)
		if (kw[i] != 'X' && kw[i] != 'x')
			return false;
	return true;
}

bool classify_mangled_keywords(const char *keywords, char *which, size_t size)
{
	const char *p = keywords;
	size_t off = 0;
	bool found = false;
	if (size > 0)
		which[0] = '\0';
	while (*p != '\0') {
		const char *end = strchr(p, '\n');
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
		size_t k = 0;
		while (k < len && p[k] != ' ' && p[k] != '=')
			k++;
		if (mangled(p, k) || memchr(p, '*', k) != NULL) {
			found = true;
			/* every one, ", " between, as much as fits */
			if (off + k + 3 <= size) {
				if (off > 0) {
					memcpy(which + off, ", ", 2);
					off += 2;
				}
				memcpy(which + off, p, k);
				off += k;
				which[off] = '\0';
			}
		}
		if (end == NULL)
			break;
		p = end + 1;
	}
	return found;
}

void classify_server_name(const char *text, char *name, size_t size)
{
	size_t n = 0;
	while (*text == ' ')
		text++;
	while (text[n] != '\0' && text[n] != ' ' && n + 1 < size)
		n++;
	memcpy(name, text, n);
	name[n] = '\0';
	/* A trailing dot is the same name (RFC 1034 3.1). */
	if (n > 1 && name[n - 1] == '.')
		name[n - 1] = '\0';
}

/* base_domain - where the registered domain starts in name: the last two
 * labels, or three when the last two look like a country's second level
 * ("example.co.uk": a two-letter top-level domain under a label of at most
 * three letters). A heuristic; without the Public Suffix List it errs
 * towards calling names related. */
static const char *base_domain(const char *name)
{
	size_t len = strlen(name);
	const char *dots[3] = {NULL, NULL, NULL};
	int ndots = 0;
	for (size_t i = len; i > 0 && ndots < 3; i--)
		if (name[i - 1] == '.')
			dots[ndots++] = name + i - 1;
	if (ndots < 1)
		return NULL;
	if (ndots < 2)
		return name;
	size_t tld = (size_t)(name + len - dots[0] - 1);
	size_t sld = (size_t)(dots[0] - dots[1] - 1);
	if (tld == 2 && sld <= 3)
		return ndots >= 3 ? dots[2] + 1 : name;
	return dots[1] + 1;
}

bool classify_name_related(const char *name, const char *host)
{
	char n[NAME_MAX_LEN], h[NAME_MAX_LEN];
	classify_server_name(name, n, sizeof(n));
	classify_server_name(host, h, sizeof(h));
	if (n[0] == '\0' || h[0] == '\0')
		return false;
	if (str_ieq(n, h))
		return true;
	if (detour_is_ip_literal(h)) {
		/* RFC 5321 4.1.3: "[192.0.2.1]", "[IPv6:2001:db8::1]" */
		size_t len = strlen(n);
		if (len > 2 && n[0] == '[' && n[len - 1] == ']') {
			const char *inner = n + 1;
			if (mem_istarts(inner, len - 2, "IPv6:"))
				inner += 5;
			return strncmp(inner, h, strlen(h)) == 0 && inner[strlen(h)] == ']';
		}
		return false;
	}
	const char *bn = base_domain(n), *bh = base_domain(h);
	return bn != NULL && bh != NULL && str_ieq(bn, bh);
}

static void detail_set(struct probe_verdict *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void detail_set(struct probe_verdict *v, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(v->detail, sizeof(v->detail), fmt, ap);
	va_end(ap);
}

/* What the other ports of the round say, for comparisons. */
struct round_facts {
	const char *host;
	bool host_is_ip;
	const struct probe_obs *obs;
	size_t n;
	char consensus_fp[TLSINFO_FP_MAX]; /* the certificate most ports show */
	size_t consensus_fp_count;
	char consensus_name[NAME_MAX_LEN]; /* the name most answering ports give */
	size_t consensus_name_count;
};

static bool answered(const struct probe_obs *o)
{
	return o->connect == PROBE_CONNECT_OK && !o->silent && (o->greeting_code != 0 || o->tls.up);
}

/* trusted - the port's TLS certificate is verified and the host's, and it
 * is not the odd one out: what it says comes from the host's server. */
static bool trusted(const struct round_facts *f, const struct probe_obs *o)
{
	return o->tls.up && o->tls.has_cert && o->tls.chain_ok && o->tls.name_ok &&
	       (f->consensus_fp_count < 2 || strcmp(o->tls.sha256, f->consensus_fp) == 0);
}

static void facts_gather(struct round_facts *f)
{
	f->consensus_fp[0] = '\0';
	f->consensus_fp_count = 0;
	f->consensus_name[0] = '\0';
	f->consensus_name_count = 0;
	bool fp_tie = false, name_tie = false;
	for (size_t i = 0; i < f->n; i++) {
		const struct probe_obs *o = &f->obs[i];
		if (answered(o) && o->tls.has_cert && o->tls.sha256[0] != '\0') {
			size_t count = 0;
			for (size_t j = 0; j < f->n; j++)
				if (answered(&f->obs[j]) && f->obs[j].tls.has_cert &&
				    strcmp(f->obs[j].tls.sha256, o->tls.sha256) == 0)
					count++;
			if (count > f->consensus_fp_count) {
				f->consensus_fp_count = count;
				str_copy(f->consensus_fp, o->tls.sha256, sizeof(f->consensus_fp));
				fp_tie = false;
			} else if (count == f->consensus_fp_count &&
			           strcmp(o->tls.sha256, f->consensus_fp) != 0) {
				fp_tie = true;
			}
		}
		if (answered(o) && o->greeting_code / 100 == 2 && !classify_masked(o->greeting)) {
			char name[NAME_MAX_LEN];
			classify_server_name(o->greeting, name, sizeof(name));
			size_t count = 0;
			for (size_t j = 0; j < f->n; j++) {
				char other[NAME_MAX_LEN];
				if (!answered(&f->obs[j]) || f->obs[j].greeting_code / 100 != 2)
					continue;
				classify_server_name(f->obs[j].greeting, other, sizeof(other));
				if (str_ieq(name, other))
					count++;
			}
			if (count > f->consensus_name_count) {
				f->consensus_name_count = count;
				str_copy(f->consensus_name, name, sizeof(f->consensus_name));
				name_tie = false;
			} else if (count == f->consensus_name_count &&
			           !str_ieq(name, f->consensus_name)) {
				name_tie = true;
			}
		}
	}
	/* No majority, no consensus: two ports that disagree say nothing
	 * about which of them is right. */
	if (fp_tie)
		f->consensus_fp_count = 1;
	if (name_tie)
		f->consensus_name_count = 1;
}

/* ports_with - "587, 8025": the other ports for which pred holds. */
static void ports_with(const struct round_facts *f, const struct probe_obs *self,
                       bool (*pred)(const struct round_facts *, const struct probe_obs *),
                       char *buf, size_t size)
{
	size_t off = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < f->n; i++) {
		const struct probe_obs *o = &f->obs[i];
		if (o == self || !pred(f, o))
			continue;
		int w = snprintf(buf + off, size - off, "%s%u", off ? ", " : "", o->port);
		if (w < 0 || (size_t)w >= size - off)
			break;
		off += (size_t)w;
	}
}

static bool has_tls(const struct round_facts *f, const struct probe_obs *o)
{
	(void)f;
	return answered(o) && (o->tls.up || o->starttls_offered);
}

static bool shows_consensus_cert(const struct round_facts *f, const struct probe_obs *o)
{
	return answered(o) && o->tls.has_cert && strcmp(o->tls.sha256, f->consensus_fp) == 0;
}

/* genuine_name - a name the host's server gives on a trusted port. */
static bool genuine_name(const struct round_facts *f, const char *name, unsigned *port_r)
{
	for (size_t i = 0; i < f->n; i++) {
		const struct probe_obs *o = &f->obs[i];
		if (!trusted(f, o))
			continue;
		const char *texts[3] = {o->greeting, o->ehlo, o->tls_ehlo};
		for (size_t t = 0; t < 3; t++) {
			char other[NAME_MAX_LEN];
			classify_server_name(texts[t], other, sizeof(other));
			if (other[0] != '\0') {
				if (port_r != NULL && *port_r == 0)
					*port_r = o->port;
				if (str_ieq(other, name))
					return true;
			}
		}
	}
	return false;
}

/* name_check - is this name (from the greeting or EHLO) the host's
 * server's? On "no", explain in why. */
static bool name_check(const struct round_facts *f, const char *text, const char *what, char *why,
                       size_t size)
{
	char name[NAME_MAX_LEN];
	classify_server_name(text, name, sizeof(name));
	if (name[0] == '\0')
		return true;
	if (classify_name_related(name, f->host))
		return true;
	unsigned genuine_port = 0;
	if (genuine_name(f, name, &genuine_port))
		return true;
	if (genuine_port == 0 && f->consensus_name_count >= 2 && str_ieq(name, f->consensus_name))
		return true;
	if (genuine_port == 0 && f->consensus_name_count < 2 && f->host_is_ip)
		return true; /* nothing to compare an address's server name with */
	char shown[NAME_MAX_LEN], host[NAME_MAX_LEN];
	detour_printable(shown, sizeof(shown), name);
	detour_printable(host, sizeof(host), f->host);
	if (genuine_port != 0 || f->consensus_name_count >= 2) {
		char ref[NAME_MAX_LEN] = "";
		if (genuine_port != 0) {
			for (size_t i = 0; i < f->n; i++)
				if (f->obs[i].port == genuine_port)
					classify_server_name(f->obs[i].greeting, ref, sizeof(ref));
		} else {
			str_copy(ref, f->consensus_name, sizeof(ref));
		}
		char refshown[NAME_MAX_LEN];
		detour_printable(refshown, sizeof(refshown), ref);
		snprintf(why, size, "the %s names another server (%.80s) than %.80s's (%.80s)",
		         what, shown, host, refshown);
	} else {
		snprintf(why, size, "the %s names another server (%.80s), not %.80s", what, shown,
		         host);
	}
	return false;
}

static void ok_detail(const struct probe_obs *o, struct probe_verdict *v)
{
	char name[NAME_MAX_LEN], shown[NAME_MAX_LEN], auth[256];
	classify_server_name(o->tls_ehlo[0] ? o->tls_ehlo : o->greeting, name, sizeof(name));
	detour_printable(shown, sizeof(shown), name);
	detour_printable(auth, sizeof(auth), o->auth);
	char tls[200];
	if (o->tls.up)
		snprintf(tls, sizeof(tls), "%s %s, %s",
		         o->tls_mode == PROBE_TLS_IMPLICIT ? "implicit TLS" : "STARTTLS",
		         o->tls.version,
		         o->tls.chain_ok ? "certificate verified" : "certificate NOT trusted");
	else if (o->starttls_offered)
		snprintf(tls, sizeof(tls), "STARTTLS offered but the handshake failed (%s)",
		         o->tls_error[0] ? o->tls_error : "?");
	else
		snprintf(tls, sizeof(tls), "no TLS: a password would travel in clear");
	detail_set(v, "%s; %s; %s%s", shown[0] ? shown : "(no name)", tls,
	           auth[0] ? "AUTH " : "no AUTH offered", auth);
	if (o->tls.up && !o->tls.chain_ok) {
		size_t len = strlen(v->detail);
		snprintf(v->detail + len, sizeof(v->detail) - len, " (%s)", o->tls.chain_error);
	}
}

/* A growing "; "-separated list of the reasons a port is intercepted. */
struct reasons {
	char buf[PROBE_DETAIL_MAX];
	size_t len;
	size_t count;
};

static void reason_add(struct reasons *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void reason_add(struct reasons *r, const char *fmt, ...)
{
	va_list ap;
	if (r->len + 3 >= sizeof(r->buf))
		return;
	if (r->count > 0) {
		memcpy(r->buf + r->len, "; ", 3);
		r->len += 2;
	}
	va_start(ap, fmt);
	int w = vsnprintf(r->buf + r->len, sizeof(r->buf) - r->len, fmt, ap);
	va_end(ap);
	if (w > 0)
		r->len +=
		    (size_t)w < sizeof(r->buf) - r->len ? (size_t)w : sizeof(r->buf) - r->len - 1;
	r->count++;
}

static void classify_one(const struct round_facts *f, unsigned timeout, const struct probe_obs *o,
                         struct probe_verdict *v)
{
	char a[PROBE_TEXT_MAX], b[160], why[PROBE_DETAIL_MAX / 2];
	struct reasons r = {.len = 0};
	v->usable = false;
	v->result = PROBE_INTERCEPTED;
	switch (o->connect) {
	case PROBE_CONNECT_REFUSED:
		v->result = PROBE_REFUSED;
		detail_set(v, "connection refused (a reset or ICMP port unreachable): a firewall "
		              "rejects it, or nothing listens");
		return;
	case PROBE_CONNECT_UNREACHABLE:
		v->result = PROBE_REFUSED;
		detail_set(v, "%s: the network turns it away (ICMP)", o->connect_error);
		return;
	case PROBE_CONNECT_TIMEOUT:
		v->result = PROBE_BLOCKED;
		detail_set(v, "no answer within %us: the connection is silently dropped", timeout);
		return;
	case PROBE_CONNECT_ERROR:
		v->result = PROBE_BLOCKED;
		detail_set(v, "cannot connect: %s", o->connect_error);
		return;
	case PROBE_CONNECT_OK:
		break;
	}
	if (!answered(o)) {
		v->result = PROBE_BLOCKED;
		detail_set(v,
		           "the connection opens but nothing answers within %us (no greeting, "
		           "no TLS)",
		           timeout);
		return;
	}
	if (o->greeting_code != 0 && classify_masked(o->greeting))
		reason_add(&r,
		           "the greeting is masked (\"%d %s\"): a firewall's SMTP inspection "
		           "(Cisco ASA/PIX style) rewrites the dialogue",
		           o->greeting_code, detour_printable(a, 40, o->greeting));
	bool ehlo_masked = classify_masked(o->ehlo);
	bool keywords_rewritten =
	    ehlo_masked || classify_mangled_keywords(o->keywords, b, sizeof(b));
	if (keywords_rewritten) {
		if (ehlo_masked)
			detour_printable(b, sizeof(b), o->ehlo);
		reason_add(&r,
		           "EHLO keywords are rewritten (\"%s\"): a firewall's SMTP inspection "
		           "removes STARTTLS and other extensions",
		           detour_printable(a, 80, b));
	}
	if (r.count == 0 && (o->greeting_code / 100 == 4 || o->greeting_code / 100 == 5)) {
		v->result = PROBE_REFUSED;
		detail_set(v, "the server refuses service: %d %s", o->greeting_code,
		           detour_printable(a, 200, o->greeting));
		return;
	}
	if (o->tls.up && o->tls.has_cert && !o->tls.name_ok) {
		tlsinfo_problem(&o->tls, f->host, a, sizeof(a));
		reason_add(&r, "%s: someone else's server answers, or TLS is inspected",
		           detour_printable(why, sizeof(why), a));
	} else if (o->tls.up && o->tls.has_cert && f->consensus_fp_count >= 2 &&
	           strcmp(o->tls.sha256, f->consensus_fp) != 0) {
		ports_with(f, o, shows_consensus_cert, b, sizeof(b));
		reason_add(&r,
		           "the TLS certificate (SHA-256 %.23s...) differs from the one on port%s "
		           "%s: TLS is being inspected",
		           o->tls.sha256, strchr(b, ',') ? "s" : "", b);
	}
	if (!o->tls.up) {
		ports_with(f, o, has_tls, b, sizeof(b));
		if (b[0] != '\0') {
			const char *plural = strchr(b, ',') ? "s" : "";
			if (o->starttls_offered)
				reason_add(&r,
				           "STARTTLS is offered but the TLS handshake fails (%s), "
				           "while it works on port%s %s",
				           o->tls_error[0] ? o->tls_error : "?", plural, b);
			else if (o->implicit_expected)
				reason_add(&r,
				           "a plaintext server answers where TLS is expected "
				           "(implicit TLS), while port%s %s ha%s TLS",
				           plural, b, plural[0] ? "ve" : "s");
			else if (!keywords_rewritten) /* already the reason */
				reason_add(
				    &r,
				    "no STARTTLS here, but port%s %s offer%s it: something on "
				    "the path removes it",
				    plural, b, plural[0] ? "" : "s");
		}
	}
	if (!trusted(f, o)) {
		if (o->greeting_code != 0 && !classify_masked(o->greeting) &&
		    !name_check(f, o->greeting, "greeting", why, sizeof(why)))
			reason_add(&r, "%s", why);
		else if (!name_check(f, o->ehlo, "EHLO reply", why, sizeof(why)) ||
		         !name_check(f, o->tls_ehlo, "EHLO reply", why, sizeof(why)))
			reason_add(&r, "%s", why);
	}
	if (r.count > 0) {
		detail_set(v, "%s", r.buf);
		return;
	}
	v->result = PROBE_OK;
	v->usable = o->tls.up;
	ok_detail(o, v);
}

void classify_ports(const char *host, unsigned timeout, const struct probe_obs *obs, size_t n,
                    struct probe_verdict *verdicts_r)
{
	struct round_facts f = {
	    .host = host, .host_is_ip = detour_is_ip_literal(host), .obs = obs, .n = n};
	facts_gather(&f);
	for (size_t i = 0; i < n; i++)
		classify_one(&f, timeout, &obs[i], &verdicts_r[i]);
}

static bool is_answer(enum probe_result r)
{
	return r == PROBE_OK || r == PROBE_INTERCEPTED;
}

void classify_repeat(const struct probe_verdict *rounds, size_t nrounds, struct probe_verdict *v)
{
	size_t answers = 0, intercepted = 0, first_silent = nrounds, first_intercepted = nrounds;
	for (size_t i = 0; i < nrounds; i++) {
		if (is_answer(rounds[i].result))
			answers++;
		else if (first_silent == nrounds)
			first_silent = i;
		if (rounds[i].result == PROBE_INTERCEPTED) {
			intercepted++;
			if (first_intercepted == nrounds)
				first_intercepted = i;
		}
	}
	*v = rounds[0];
	if (answers > 0 && answers < nrounds) {
		const struct probe_verdict *s = &rounds[first_silent];
		v->result = PROBE_THROTTLED;
		v->usable = false;
		detail_set(v,
		           "answered %zu of %zu attempts; the others were %s (%s): the network "
		           "lets a few connections through, then blocks",
		           answers, nrounds, classify_result_name(s->result), s->detail);
		return;
	}
	if (intercepted > 0 && intercepted < nrounds) {
		char inner[PROBE_DETAIL_MAX];
		str_copy(inner, rounds[first_intercepted].detail, sizeof(inner));
		v->result = PROBE_INTERCEPTED;
		v->usable = false;
		detail_set(v, "intercepted in %zu of %zu attempts: %s", intercepted, nrounds,
		           inner);
		return;
	}
	/* Every round agrees; usable only if it was every time. */
	for (size_t i = 0; i < nrounds; i++)
		if (!rounds[i].usable)
			v->usable = false;
}
