/* SPDX-License-Identifier: ISC */
/* probe.c - see probe.h */
#include "cmd/detour/probe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd/detour/classify.h"
#include "cmd/detour/client_config.h"
#include "cmd/detour/conn.h"
#include "cmd/detour/detour.h"
#include "cmd/detour/netid.h"
#include "cmd/detour/portmem.h"
#include "lib/json.h"
#include "lib/util.h"

/* A port that connects but stays silent this part of the timeout gets a
 * second connection trying implicit TLS (and an implicit-TLS port whose
 * handshake goes nowhere, one trying plaintext). */
#define PROBE_FALLBACK_DIVISOR 3

static const char probe_usage[] =
    "usage: detour probe HOST [--ports LIST] [--timeout SEC] [--ca-file FILE]\n"
    "                         [--repeat N] [--json] [-4 | -6]\n"
    "\n"
    "Finds out which of HOST's SMTP ports this network lets through, refuses,\n"
    "silently drops, or intercepts, and which one to put into a mail program.\n"
    "Only HOST is contacted; no message and no password is sent.\n"
    "\n"
    "  --ports LIST     ports to try, all at once (default 25,465,587,2525,1025,8025;\n"
    "                   PORT/implicit or PORT/starttls to say how TLS starts)\n"
    "  --timeout SEC    bound on each port (default 10)\n"
    "  --ca-file FILE   trust these CAs for HOST's certificate (default: the\n"
    "                   system's, or the ca_file of an account whose host is HOST)\n"
    "  --repeat N       try every port N times: a port that answers only some\n"
    "                   of them is 'throttled'\n"
    "  --json           one JSON object instead of the table\n"
    "  -4, -6           probe HOST's IPv4 or IPv6 address (default: the first\n"
    "                   address the system would use)\n"
    "Results: ok, refused, blocked (silently dropped), intercepted (something\n"
    "else answers), throttled. Exit status 0 when some port is usable (ok, with\n"
    "TLS), 69 when none is, 64 usage, 68 unknown host.\n";

struct port_run {
	struct client_port p;
	struct conn *primary, *fallback;
	int64_t deadline, fallback_at;
	bool done;
	struct probe_obs obs;
};

struct probe {
	const char *host;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char addr_text[INET6_ADDRSTRLEN];
	struct client_port ports[DETOUR_PORTS_MAX];
	size_t nports;
	unsigned timeout;
	unsigned repeat;
	bool json;
	SSL_CTX *ctx;
	struct probe_obs *obs;        /* [round][port] */
	struct probe_verdict *rounds; /* [round][port] */
	struct probe_verdict final[DETOUR_PORTS_MAX];
};

static void first_line(const char *text, char *out, size_t size)
{
	size_t n = strcspn(text, "\n");
	if (n >= size)
		n = size - 1;
	memcpy(out, text, n);
	out[n] = '\0';
}

/* auth_of - the mechanisms of an EHLO reply's AUTH line (RFC 4954 3). */
static void auth_of(const char *text, char *out, size_t size)
{
	out[0] = '\0';
	for (const char *p = text; p != NULL && *p != '\0';) {
		const char *nl = strchr(p, '\n');
		size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
		if (len > 5 && mem_istarts(p, len, "AUTH") && (p[4] == ' ' || p[4] == '=')) {
			size_t n = len - 5 < size - 1 ? len - 5 : size - 1;
			memcpy(out, p + 5, n);
			out[n] = '\0';
			return;
		}
		p = nl != NULL ? nl + 1 : NULL;
	}
}

/* observe - what one connection saw. */
static void observe(const struct port_run *run, const struct conn *c, struct probe_obs *o)
{
	memset(o, 0, sizeof(*o));
	o->port = run->p.port;
	o->implicit_expected = run->p.implicit;
	if (!conn_connected(c)) {
		o->connect = conn_connect_result(c);
		str_copy(o->connect_error, conn_error(c), sizeof(o->connect_error));
		return;
	}
	o->connect = PROBE_CONNECT_OK;
	size_t n;
	const struct conn_reply *rep = conn_replies(c, &n);
	size_t i = 0;
	/* the greeting, then EHLO, in the first phase (plaintext, or TLS for
	 * implicit TLS); then EHLO inside STARTTLS */
	if (i < n) {
		o->greeting_code = rep[i].code;
		first_line(rep[i].text, o->greeting, sizeof(o->greeting));
		i++;
	}
	if (i < n && rep[i].in_tls == rep[0].in_tls && rep[i].code / 100 == 2) {
		first_line(rep[i].text, o->ehlo, sizeof(o->ehlo));
		const char *rest = strchr(rep[i].text, '\n');
		if (rest != NULL)
			str_copy(o->keywords, rest + 1, sizeof(o->keywords));
		auth_of(rest, o->auth, sizeof(o->auth));
		i++;
	}
	for (; i < n; i++) {
		/* inside STARTTLS: the EHLO reply counts, the first one did not */
		if (!rep[i].in_tls || rep[0].in_tls || rep[i].code / 100 != 2)
			continue;
		first_line(rep[i].text, o->tls_ehlo, sizeof(o->tls_ehlo));
		auth_of(strchr(rep[i].text, '\n'), o->auth, sizeof(o->auth));
		break;
	}
	const struct smtp_client_info *info = conn_info(c);
	o->starttls_offered = info != NULL && info->starttls_offered;
	o->tls = *conn_tls(c);
	if (o->tls.up)
		o->tls_mode = conn_implicit(c) ? PROBE_TLS_IMPLICIT : PROBE_TLS_STARTTLS;
	else if (conn_tls_tried(c))
		str_copy(o->tls_error, conn_error(c), sizeof(o->tls_error));
	o->silent = n == 0 && !o->tls.up;
}

static struct conn *open_one(const struct probe *pr, const struct port_run *run, bool implicit)
{
	struct sockaddr_storage addr = pr->addr;
	if (addr.ss_family == AF_INET)
		((struct sockaddr_in *)&addr)->sin_port = htons((uint16_t)run->p.port);
	else
		((struct sockaddr_in6 *)&addr)->sin6_port = htons((uint16_t)run->p.port);
	struct conn_settings cs = {
	    .host = pr->host,
	    .addr = (const struct sockaddr *)&addr,
	    .addrlen = pr->addrlen,
	    .implicit_tls = implicit,
	    .ssl_ctx = pr->ctx,
	    .tls = SMTP_CLIENT_TLS_OPPORTUNISTIC, /* STARTTLS when offered */
	    .wait_ms = pr->timeout * 1000,
	    .deadline = run->deadline,
	};
	return conn_open(&cs);
}

static bool finished(const struct conn *c)
{
	enum conn_status st = conn_status(c);
	return st == CONN_DONE || st == CONN_FAILED;
}

/* progress - how far a connection got, to pick the better of two. */
static int progress(const struct conn *c)
{
	size_t n;
	conn_replies(c, &n);
	return (conn_status(c) == CONN_DONE ? 8 : 0) + (n > 0 ? 4 : 0) + (conn_tls(c)->up ? 2 : 0) +
	       (conn_connected(c) ? 1 : 0);
}

/* step - move one port along: QUIT when done, fallbacks, the result. */
static void step(const struct probe *pr, struct port_run *run, int64_t now)
{
	struct conn *conns[2] = {run->primary, run->fallback};
	for (int k = 0; k < 2; k++)
		if (conns[k] != NULL && conn_status(conns[k]) == CONN_IDLE)
			conn_quit(conns[k]);
	struct conn *p = run->primary;
	size_t nrep;
	conn_replies(p, &nrep);
	if (run->fallback == NULL && conn_connected(p)) {
		bool silent_plain = !run->p.implicit && nrep == 0 && !finished(p);
		bool tls_stuck = run->p.implicit && !conn_tls(p)->up &&
		                 (finished(p) ? conn_failure(p) == CONN_FAIL_TLS : true);
		if ((silent_plain || tls_stuck) &&
		    (now >= run->fallback_at || (run->p.implicit && finished(p))))
			run->fallback = open_one(pr, run, !run->p.implicit);
	}
	if (run->fallback != NULL && nrep > 0 && !run->p.implicit && !finished(run->fallback))
		conn_abort(run->fallback); /* the greeting came after all */
	if (run->fallback != NULL && !finished(p) && nrep == 0) {
		size_t nfb;
		conn_replies(run->fallback, &nfb);
		if (nfb > 0)
			conn_abort(p); /* the other mode is the one that works */
	}
	if (!finished(p) || (run->fallback != NULL && !finished(run->fallback)))
		return;
	const struct conn *best = p;
	if (run->fallback != NULL && progress(run->fallback) > progress(p))
		best = run->fallback;
	observe(run, best, &run->obs);
	run->done = true;
}

static void run_round(struct probe *pr, struct probe_obs *obs_r)
{
	struct port_run runs[DETOUR_PORTS_MAX];
	int64_t now = mono_ms();
	for (size_t i = 0; i < pr->nports; i++) {
		struct port_run *r = &runs[i];
		memset(r, 0, sizeof(*r));
		r->p = pr->ports[i];
		r->deadline = now + (int64_t)pr->timeout * 1000;
		r->fallback_at = now + (int64_t)pr->timeout * 1000 / PROBE_FALLBACK_DIVISOR;
		r->primary = open_one(pr, r, r->p.implicit);
	}
	for (;;) {
		struct conn *conns[2 * DETOUR_PORTS_MAX];
		size_t k = 0;
		int64_t until = 0;
		bool all = true;
		now = mono_ms();
		for (size_t i = 0; i < pr->nports; i++) {
			struct port_run *r = &runs[i];
			if (r->done)
				continue;
			step(pr, r, now);
			if (r->done)
				continue;
			all = false;
			conns[k++] = r->primary;
			if (r->fallback != NULL)
				conns[k++] = r->fallback;
			else if (r->fallback_at > now && (until == 0 || r->fallback_at < until))
				until = r->fallback_at;
		}
		if (all)
			break;
		conn_wait(conns, k, until);
	}
	for (size_t i = 0; i < pr->nports; i++) {
		obs_r[i] = runs[i].obs;
		conn_free(&runs[i].primary);
		conn_free(&runs[i].fallback);
	}
}

/* ---- output ---- */

static const char *tls_column(const struct probe_obs *o, char *buf, size_t size)
{
	if (!o->tls.up) {
		snprintf(buf, size, "%s",
		         o->connect == PROBE_CONNECT_OK && !o->silent ? "none" : "-");
		return buf;
	}
	snprintf(buf, size, "%s %s%s", o->tls_mode == PROBE_TLS_IMPLICIT ? "implicit" : "STARTTLS",
	         o->tls.version,
	         !o->tls.name_ok    ? " WRONG-CERT"
	         : !o->tls.chain_ok ? " UNTRUSTED"
	                            : "");
	return buf;
}

/* The observation shown for a port: the first round's, or the first
 * round where it answered. */
static const struct probe_obs *shown_obs(const struct probe *pr, size_t port)
{
	for (unsigned r = 0; r < pr->repeat; r++) {
		const struct probe_obs *o = &pr->obs[r * pr->nports + port];
		if (o->greeting_code != 0 || o->tls.up)
			return o;
	}
	return &pr->obs[port];
}

static bool better(const struct probe *pr, size_t a, size_t b)
{
	const struct client_port *pa = &pr->ports[a], *pb = &pr->ports[b];
	const struct probe_obs *oa = shown_obs(pr, a), *ob = shown_obs(pr, b);
	bool ia = oa->tls_mode == PROBE_TLS_IMPLICIT, ib = ob->tls_mode == PROBE_TLS_IMPLICIT;
	if (ia != ib)
		return ia; /* RFC 8314 3.3: implicit TLS preferred */
	bool va = oa->tls.chain_ok && oa->tls.name_ok, vb = ob->tls.chain_ok && ob->tls.name_ok;
	if (va != vb)
		return va;
	/* port 25 is for relaying between servers; submission ports first */
	if ((pa->port == 25) != (pb->port == 25))
		return pb->port == 25;
	return a < b;
}

static void advice(const struct probe *pr, char *adv, size_t asize, char *note, size_t nsize)
{
	adv[0] = note[0] = '\0';
	size_t best = pr->nports;
	for (size_t i = 0; i < pr->nports; i++)
		if (pr->final[i].usable && (best == pr->nports || better(pr, i, best)))
			best = i;
	char host[300];
	detour_printable(host, sizeof(host), pr->host);
	if (best < pr->nports) {
		const struct probe_obs *o = shown_obs(pr, best);
		size_t off = (size_t)snprintf(
		    adv, asize,
		    "In your mail program, set the outgoing (SMTP) server %s, port %u, %s, with "
		    "password authentication.",
		    host, pr->ports[best].port,
		    o->tls_mode == PROBE_TLS_IMPLICIT ? "SSL/TLS (implicit TLS)" : "STARTTLS");
		if (!o->tls.chain_ok && off < asize)
			off += (size_t)snprintf(
			    adv + off, asize - off,
			    " Its certificate is not trusted by this computer (%s): "
			    "check it, and give its CA with --ca-file or ca_file.",
			    o->tls.chain_error);
		bool first = true;
		for (size_t i = 0; i < pr->nports && off < asize; i++) {
			if (i == best || !pr->final[i].usable)
				continue;
			const struct probe_obs *x = shown_obs(pr, i);
			off += (size_t)snprintf(adv + off, asize - off, "%s%u (%s)",
			                        first ? " Also usable: " : ", ", pr->ports[i].port,
			                        x->tls_mode == PROBE_TLS_IMPLICIT ? "SSL/TLS"
			                                                          : "STARTTLS");
			first = false;
		}
		if (!first && off < asize)
			snprintf(adv + off, asize - off, ".");
		return;
	}
	/* Nothing usable. Say why, and what to ask the provider. */
	char refused[128] = "", blocked[128] = "", intercepted[128] = "", throttled[128] = "",
	     plain[128] = "";
	for (size_t i = 0; i < pr->nports; i++) {
		char *list;
		switch (pr->final[i].result) {
		case PROBE_REFUSED:
			list = refused;
			break;
		case PROBE_BLOCKED:
			list = blocked;
			break;
		case PROBE_INTERCEPTED:
			list = intercepted;
			break;
		case PROBE_THROTTLED:
			list = throttled;
			break;
		default:
			list = plain;
			break;
		}
		size_t l = strlen(list);
		snprintf(list + l, 128 - l, "%s%u", l ? ", " : "", pr->ports[i].port);
	}
	if (plain[0] != '\0')
		snprintf(
		    adv, asize,
		    "No port can carry a password safely: port %s reaches %s but without TLS. "
		    "Do not send your password over it; ask the server's administrator for TLS.",
		    plain, host);
	else
		snprintf(
		    adv, asize,
		    "No port gets through to %s from this network. Try another network (mobile "
		    "data, say) or webmail meanwhile, and send your provider the message below.",
		    host);
	size_t off = (size_t)snprintf(note, nsize,
	                              "Hello, from my connection I cannot send mail through my "
	                              "own mail server %s (%s):",
	                              host, pr->addr_text);
	struct {
		const char *list, *what;
	} parts[] = {
	    {refused, "refused"},
	    {blocked, "silently dropped"},
	    {intercepted, "answered by another server than mine (intercepted)"},
	    {throttled, "only let through now and then"},
	};
	bool first = true;
	for (size_t i = 0; i < ARRAY_SIZE(parts) && off < nsize; i++) {
		if (parts[i].list[0] == '\0')
			continue;
		off += (size_t)snprintf(note + off, nsize - off,
		                        "%s outgoing connections to port%s %s "
		                        "are %s",
		                        first ? "" : ";", strchr(parts[i].list, ',') ? "s" : "",
		                        parts[i].list, parts[i].what);
		first = false;
	}
	if (off < nsize)
		snprintf(
		    note + off, nsize - off,
		    ". Please allow outgoing TCP connections to %s on port 587 (mail submission, "
		    "RFC 6409) or 465 (submission over TLS, RFC 8314), or tell me which port your "
		    "network lets me use to send mail through my own provider's server. Thank "
		    "you.",
		    host);
}

static void json_obs_tls(FILE *out, const struct probe_obs *o)
{
	if (!o->tls.up) {
		fputs("null", out);
		return;
	}
	const struct tlsinfo *t = &o->tls;
	fputs("{\"mode\":", out);
	json_str(out, o->tls_mode == PROBE_TLS_IMPLICIT ? "implicit" : "starttls");
	fputs(",\"version\":", out);
	json_str(out, t->version);
	fputs(",\"cipher\":", out);
	json_str(out, t->cipher);
	fprintf(out, ",\"verified\":%s,\"name_match\":%s,\"verify_error\":",
	        t->chain_ok && t->name_ok ? "true" : "false", t->name_ok ? "true" : "false");
	json_str(out, t->chain_ok ? NULL : t->chain_error);
	fputs(",\"subject\":", out);
	json_str(out, t->has_cert ? t->subject : NULL);
	fputs(",\"issuer\":", out);
	json_str(out, t->has_cert ? t->issuer : NULL);
	fputs(",\"names\":[", out);
	char names[TLSINFO_NAMES_MAX];
	str_copy(names, t->names, sizeof(names));
	bool first = true;
	for (char *save = NULL, *w = strtok_r(names, " ", &save); w != NULL;
	     w = strtok_r(NULL, " ", &save)) {
		if (!first)
			fputc(',', out);
		json_str(out, w);
		first = false;
	}
	fputs("],\"not_before\":", out);
	json_str(out, t->has_cert ? t->not_before : NULL);
	fputs(",\"not_after\":", out);
	json_str(out, t->has_cert ? t->not_after : NULL);
	fputs(",\"sha256\":", out);
	json_str(out, t->has_cert ? t->sha256 : NULL);
	fputc('}', out);
}

static void json_auth(FILE *out, const char *auth)
{
	char copy[256];
	str_copy(copy, auth, sizeof(copy));
	fputc('[', out);
	bool first = true;
	for (char *save = NULL, *w = strtok_r(copy, " ", &save); w != NULL;
	     w = strtok_r(NULL, " ", &save)) {
		if (!first)
			fputc(',', out);
		json_str(out, w);
		first = false;
	}
	fputc(']', out);
}

static void print_json(const struct probe *pr, const char *adv, const char *note)
{
	FILE *out = stdout;
	fputs("{\"host\":", out);
	json_str(out, pr->host);
	fputs(",\"address\":", out);
	json_str(out, pr->addr_text);
	fprintf(out, ",\"timeout\":%u,\"repeat\":%u,\"ports\":[", pr->timeout, pr->repeat);
	for (size_t i = 0; i < pr->nports; i++) {
		const struct probe_obs *o = shown_obs(pr, i);
		const struct probe_verdict *v = &pr->final[i];
		fprintf(out, "%s{\"port\":%u,\"result\":", i ? "," : "", pr->ports[i].port);
		json_str(out, classify_result_name(v->result));
		fprintf(out, ",\"usable\":%s,\"detail\":", v->usable ? "true" : "false");
		json_str(out, v->detail);
		fputs(",\"tls\":", out);
		json_obs_tls(out, o);
		fputs(",\"auth\":", out);
		json_auth(out, o->auth);
		fputs(",\"greeting\":", out);
		json_str(out, o->greeting_code ? o->greeting : NULL);
		fputs(",\"ehlo\":", out);
		json_str(out, o->ehlo[0] ? o->ehlo : NULL);
		fputs(",\"attempts\":[", out);
		for (unsigned r = 0; r < pr->repeat; r++) {
			if (r > 0)
				fputc(',', out);
			json_str(out, classify_result_name(pr->rounds[r * pr->nports + i].result));
		}
		fputs("]}", out);
	}
	fputs("],\"usable\":[", out);
	bool first = true;
	for (size_t i = 0; i < pr->nports; i++) {
		if (!pr->final[i].usable)
			continue;
		fprintf(out, "%s%u", first ? "" : ",", pr->ports[i].port);
		first = false;
	}
	fputs("],\"advice\":", out);
	json_str(out, adv);
	fputs(",\"provider_message\":", out);
	json_str(out, note[0] ? note : NULL);
	fputs("}\n", out);
}

static void print_table(const struct probe *pr, const char *adv, const char *note)
{
	char host[300];
	detour_printable(host, sizeof(host), pr->host);
	printf("detour probe %s (%s): %zu port%s, at most %us each%s\n\n", host, pr->addr_text,
	       pr->nports, pr->nports == 1 ? "" : "s", pr->timeout,
	       pr->repeat > 1 ? ", several attempts" : "");
	printf("%-6s %-12s %-24s %s\n", "PORT", "RESULT", "TLS", "AUTH");
	for (size_t i = 0; i < pr->nports; i++) {
		const struct probe_obs *o = shown_obs(pr, i);
		const struct probe_verdict *v = &pr->final[i];
		char tls[64], auth[256];
		detour_printable(auth, sizeof(auth), o->auth);
		printf("%-6u %-12s %-24s %s\n", pr->ports[i].port, classify_result_name(v->result),
		       tls_column(o, tls, sizeof(tls)), auth[0] ? auth : "-");
		printf("       %s\n", v->detail);
	}
	/* each distinct certificate once */
	bool header = false;
	for (size_t i = 0; i < pr->nports; i++) {
		const struct probe_obs *o = shown_obs(pr, i);
		if (!o->tls.up || !o->tls.has_cert)
			continue;
		bool seen = false;
		for (size_t j = 0; j < i; j++) {
			const struct probe_obs *x = shown_obs(pr, j);
			if (x->tls.has_cert && strcmp(x->tls.sha256, o->tls.sha256) == 0)
				seen = true;
		}
		if (seen)
			continue;
		if (!header) {
			printf("\nCertificates:\n");
			header = true;
		}
		char ports[128] = "";
		for (size_t j = 0; j < pr->nports; j++) {
			const struct probe_obs *x = shown_obs(pr, j);
			if (x->tls.has_cert && strcmp(x->tls.sha256, o->tls.sha256) == 0) {
				size_t l = strlen(ports);
				snprintf(ports + l, sizeof(ports) - l, "%s%u", l ? ", " : "",
				         pr->ports[j].port);
			}
		}
		printf("  port %s: %s\n    names %s; issuer %s\n    valid %s to %s; SHA-256 %s\n"
		       "    %s\n",
		       ports, o->tls.subject, o->tls.names, o->tls.issuer, o->tls.not_before,
		       o->tls.not_after, o->tls.sha256,
		       !o->tls.name_ok   ? "NOT the host's certificate"
		       : o->tls.chain_ok ? "verified"
		                         : o->tls.chain_error);
	}
	printf("\n%s\n", adv);
	if (note[0] != '\0')
		printf("\n%s\n", note);
}

/* ---- the user's own accounts ---- */

/* own_accounts - what probe needs from the client configuration, read
 * once: whether one of its accounts relays through host (then what was
 * intercepted is remembered for `detour send`), and the first such
 * account's ca_file (a copy, or NULL). A missing or broken configuration
 * is no error here: probe works for any host. */
static bool own_accounts(const char *host, const char *config_option, char **ca_r)
{
	char *path = client_config_path(config_option), *errors = NULL;
	struct client_config *cfg = NULL;
	bool ours = false;
	*ca_r = NULL;
	if (path != NULL && access(path, R_OK) == 0 &&
	    client_config_load(path, &cfg, &errors) == 0) {
		for (size_t i = 0; i < cfg->naccounts; i++) {
			if (!str_ieq(cfg->accounts[i].host, host))
				continue;
			ours = true;
			if (*ca_r == NULL && cfg->accounts[i].ca_file != NULL)
				*ca_r = xstrdup(cfg->accounts[i].ca_file);
		}
		client_config_free(&cfg);
	}
	free(errors);
	free(path);
	return ours;
}

/* remember - record which ports were intercepted on this network. */
static void remember(const struct probe *pr)
{
	char *state = detour_state_dir();
	if (state == NULL)
		return;
	char *file = xasprintf("%s/networks", state);
	struct portmem pm;
	if (portmem_load(file, &pm) == 0) {
		struct netid id;
		int64_t now = (int64_t)time(NULL);
		netid_get((const struct sockaddr *)&pr->addr, pr->addrlen, &id);
		struct portmem_entry *e = portmem_touch(&pm, &id, pr->host, now);
		for (size_t i = 0; i < pr->nports; i++) {
			if (pr->final[i].result == PROBE_INTERCEPTED)
				portmem_mark_intercepted(e, pr->ports[i].port, now);
			else if (pr->final[i].usable)
				portmem_clear_intercepted(e, pr->ports[i].port);
		}
		if (detour_mkdirs(state, 0700) == 0)
			portmem_save(file, &pm);
	}
	portmem_free(&pm);
	free(file);
	free(state);
}

int probe_main(int argc, char **argv, const char *config_option)
{
	enum { OPT_PORTS = 256, OPT_TIMEOUT, OPT_CA, OPT_JSON, OPT_REPEAT, OPT_HELP, OPT_CONFIG };
	static const struct option longopts[] = {
	    {"ports", required_argument, NULL, OPT_PORTS},
	    {"timeout", required_argument, NULL, OPT_TIMEOUT},
	    {"ca-file", required_argument, NULL, OPT_CA},
	    {"json", no_argument, NULL, OPT_JSON},
	    {"repeat", required_argument, NULL, OPT_REPEAT},
	    {"config", required_argument, NULL, OPT_CONFIG},
	    {"help", no_argument, NULL, OPT_HELP},
	    {"ipv4", no_argument, NULL, '4'},
	    {"ipv6", no_argument, NULL, '6'},
	    {NULL, 0, NULL, 0},
	};
	int family = AF_UNSPEC;
	struct probe pr = {.timeout = DETOUR_PROBE_TIMEOUT_DEFAULT, .repeat = 1};
	const char *ca_file = NULL, *err = NULL;
	client_config_parse_ports("25 465 587 2525 1025 8025", pr.ports, DETOUR_PORTS_MAX,
	                          &pr.nports, &err);
	optind = 1;
	opterr = 0;
	int ch;
	while ((ch = getopt_long(argc, argv, ":46", longopts, NULL)) != -1) {
		char *end;
		unsigned long v;
		switch (ch) {
		case '4':
		case '6':
			if (family != AF_UNSPEC && family != (ch == '4' ? AF_INET : AF_INET6)) {
				fputs("detour probe: -4 and -6 exclude each other\n", stderr);
				return EX_USAGE;
			}
			family = ch == '4' ? AF_INET : AF_INET6;
			break;
		case OPT_PORTS:
			if (client_config_parse_ports(optarg, pr.ports, DETOUR_PORTS_MAX,
			                              &pr.nports, &err) < 0) {
				fprintf(stderr, "detour probe: --ports %s: %s\n", optarg, err);
				return EX_USAGE;
			}
			break;
		case OPT_TIMEOUT:
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || v < 1 || v > DETOUR_TIMEOUT_MAX) {
				fprintf(stderr, "detour probe: --timeout: seconds from 1 to %d\n",
				        DETOUR_TIMEOUT_MAX);
				return EX_USAGE;
			}
			pr.timeout = (unsigned)v;
			break;
		case OPT_REPEAT:
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || v < 1 || v > DETOUR_REPEAT_MAX) {
				fprintf(stderr, "detour probe: --repeat: from 1 to %d\n",
				        DETOUR_REPEAT_MAX);
				return EX_USAGE;
			}
			pr.repeat = (unsigned)v;
			break;
		case OPT_CA:
			ca_file = optarg;
			break;
		case OPT_JSON:
			pr.json = true;
			break;
		case OPT_CONFIG:
			config_option = optarg;
			break;
		case OPT_HELP:
			fputs(probe_usage, stdout);
			return EX_OK;
		default:
			fprintf(stderr, "detour probe: unknown or incomplete option %s\n%s",
			        argv[optind - 1], probe_usage);
			return EX_USAGE;
		}
	}
	if (optind != argc - 1) {
		fputs(probe_usage, stderr);
		return EX_USAGE;
	}
	pr.host = argv[optind];
	/* AI_ADDRCONFIG only without -4/-6: the user who asks for a family
	 * wants to hear that this machine has no such address, not another
	 * family's result. */
	struct addrinfo hints = {.ai_family = family,
	                         .ai_socktype = SOCK_STREAM,
	                         .ai_flags = family == AF_UNSPEC ? AI_ADDRCONFIG : 0};
	struct addrinfo *res = NULL;
	int e = getaddrinfo(pr.host, NULL, &hints, &res);
	if (e != 0 || res == NULL || res->ai_addrlen > sizeof(pr.addr)) {
		fprintf(stderr, "detour probe: cannot find the %saddress of %s: %s\n",
		        family == AF_INET    ? "IPv4 "
		        : family == AF_INET6 ? "IPv6 "
		                             : "",
		        pr.host, e != 0 ? gai_strerror(e) : "no address");
		if (res != NULL)
			freeaddrinfo(res);
		return EX_NOHOST;
	}
	memcpy(&pr.addr, res->ai_addr, res->ai_addrlen);
	pr.addrlen = res->ai_addrlen;
	freeaddrinfo(res);
	if (pr.addr.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&pr.addr)->sin_addr, pr.addr_text,
		          sizeof(pr.addr_text));
	else
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&pr.addr)->sin6_addr, pr.addr_text,
		          sizeof(pr.addr_text));

	char *account_ca = NULL;
	bool ours = own_accounts(pr.host, config_option, &account_ca);
	char errbuf[512];
	pr.ctx = conn_ssl_ctx(ca_file != NULL ? ca_file : account_ca, errbuf, sizeof(errbuf));
	free(account_ca);
	if (pr.ctx == NULL) {
		fprintf(stderr, "detour probe: %s\n", errbuf);
		return EX_CONFIG;
	}
	pr.obs = xcalloc((size_t)pr.repeat * pr.nports, sizeof(*pr.obs));
	pr.rounds = xcalloc((size_t)pr.repeat * pr.nports, sizeof(*pr.rounds));
	for (unsigned r = 0; r < pr.repeat; r++) {
		run_round(&pr, &pr.obs[r * pr.nports]);
		classify_ports(pr.host, pr.timeout, &pr.obs[r * pr.nports], pr.nports,
		               &pr.rounds[r * pr.nports]);
	}
	struct probe_verdict *col = xcalloc(pr.repeat, sizeof(*col));
	for (size_t i = 0; i < pr.nports; i++) {
		for (unsigned r = 0; r < pr.repeat; r++)
			col[r] = pr.rounds[r * pr.nports + i];
		classify_repeat(col, pr.repeat, &pr.final[i]);
	}
	free(col);
	char adv[2048], note[2048];
	advice(&pr, adv, sizeof(adv), note, sizeof(note));
	if (pr.json)
		print_json(&pr, adv, note);
	else
		print_table(&pr, adv, note);
	fflush(stdout);
	if (ours)
		remember(&pr);
	int rc = EX_UNAVAILABLE;
	for (size_t i = 0; i < pr.nports; i++)
		if (pr.final[i].usable)
			rc = EX_OK;
	SSL_CTX_free(pr.ctx);
	free(pr.obs);
	free(pr.rounds);
	return rc;
}
