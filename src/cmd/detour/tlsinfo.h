/* SPDX-License-Identifier: ISC */
/*
 * tlsinfo.h - what a TLS session showed: protocol, cipher and the server's
 * certificate (names, validity, SHA-256 fingerprint), and whether it checks
 * out: a chain to a trusted CA (the system's store or a ca_file), and a name
 * that is the host we meant (RFC 6125 via OpenSSL's X509_check_host /
 * X509_check_ip_asc).
 *
 * Owns: turning an OpenSSL session into plain text fields, so that the
 * classification (classify.c) and the output stay free of OpenSSL.
 * Does not own: the handshake (conn.c) or what a mismatch means.
 * Any thread.
 */
#ifndef DETOUR_CMD_TLSINFO_H
#define DETOUR_CMD_TLSINFO_H

#include <stdbool.h>

#define TLSINFO_TEXT_MAX  256
#define TLSINFO_NAMES_MAX 512 /* the subjectAltNames, space-separated */
#define TLSINFO_FP_MAX    96  /* 32 octets as "AB:CD:..." */

struct tlsinfo {
	bool up;          /* a handshake finished */
	char version[16]; /* "TLSv1.3" */
	char cipher[64];  /* "TLS_AES_256_GCM_SHA384" */
	bool has_cert;    /* the server sent one */
	char subject[TLSINFO_TEXT_MAX];
	char issuer[TLSINFO_TEXT_MAX];
	char names[TLSINFO_NAMES_MAX]; /* DNS names and IP addresses, or the CN */
	char not_before[32];           /* "2026-11-28T06:00:00Z" */
	char not_after[32];
	char sha256[TLSINFO_FP_MAX];
	bool chain_ok;                      /* verified to a trusted CA, in date */
	char chain_error[TLSINFO_TEXT_MAX]; /* why not, from OpenSSL */
	bool name_ok;                       /* the certificate is the host's */
};

struct ssl_st;

/* tlsinfo_fill - read a finished handshake. host is what the user named
 * (a name, or an IP address literal). */
void tlsinfo_fill(struct ssl_st *ssl, const char *host, struct tlsinfo *info_r);

/* tlsinfo_problem - one sentence on why the certificate is not acceptable
 * for host ("certificate is for other.example, not relay.example"), or ""
 * when it is. */
void tlsinfo_problem(const struct tlsinfo *info, const char *host, char *buf, unsigned size);

#endif
