/* SPDX-License-Identifier: ISC */
/* tlsinfo.c - see tlsinfo.h */
#include "cmd/detour/tlsinfo.h"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cmd/detour/detour.h"
#include "lib/util.h"

/* One name of a certificate, as shown. */
#define SAN_NAME_MAX 256

static void name_text(X509_NAME *name, char *buf, size_t size)
{
	buf[0] = '\0';
	BIO *bio = BIO_new(BIO_s_mem());
	if (bio == NULL)
		return;
	/* RFC 2253 order and escaping, UTF-8 kept. */
	X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
	char *data;
	long len = BIO_get_mem_data(bio, &data);
	if (len > 0) {
		char tmp[TLSINFO_TEXT_MAX];
		size_t n = (size_t)len < sizeof(tmp) - 1 ? (size_t)len : sizeof(tmp) - 1;
		memcpy(tmp, data, n);
		tmp[n] = '\0';
		detour_printable(buf, size, tmp);
	}
	BIO_free(bio);
}

static void time_text(const ASN1_TIME *t, char *buf, size_t size)
{
	struct tm tm;
	buf[0] = '\0';
	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return;
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void append_name(char *names, size_t size, const char *name, size_t len)
{
	size_t cur = strlen(names);
	char clean[SAN_NAME_MAX];
	size_t n = len < sizeof(clean) - 1 ? len : sizeof(clean) - 1;
	memcpy(clean, name, n);
	clean[n] = '\0';
	/* A name with a NUL inside or odd octets is shown, not trusted. */
	char shown[SAN_NAME_MAX];
	detour_printable(shown, sizeof(shown), clean);
	if (cur + (cur > 0) + strlen(shown) + 1 > size)
		return;
	if (cur > 0)
		names[cur++] = ' ';
	strcpy(names + cur, shown);
}

static void san_names(X509 *cert, char *names, size_t size)
{
	names[0] = '\0';
	GENERAL_NAMES *sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	if (sans != NULL) {
		for (int i = 0; i < sk_GENERAL_NAME_num(sans); i++) {
			const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
			if (g->type == GEN_DNS) {
				append_name(names, size,
				            (const char *)ASN1_STRING_get0_data(g->d.dNSName),
				            (size_t)ASN1_STRING_length(g->d.dNSName));
			} else if (g->type == GEN_IPADD) {
				char ip[64];
				int len = ASN1_STRING_length(g->d.iPAddress);
				const unsigned char *b = ASN1_STRING_get0_data(g->d.iPAddress);
				if (len == 4)
					snprintf(ip, sizeof(ip), "%u.%u.%u.%u", b[0], b[1], b[2],
					         b[3]);
				else if (len == 16)
					inet_ntop(AF_INET6, b, ip, sizeof(ip));
				else
					continue;
				append_name(names, size, ip, strlen(ip));
			}
		}
		GENERAL_NAMES_free(sans);
	}
	if (names[0] == '\0') {
		/* RFC 6125 6.4.4: the CN only when there is no DNS name. */
		char cn[TLSINFO_TEXT_MAX];
		int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn,
		                                  sizeof(cn));
		if (n > 0)
			append_name(names, size, cn, (size_t)n);
	}
}

void tlsinfo_fill(struct ssl_st *ssl, const char *host, struct tlsinfo *info)
{
	memset(info, 0, sizeof(*info));
	info->up = true;
	str_copy(info->version, SSL_get_version(ssl), sizeof(info->version));
	const char *cipher = SSL_get_cipher_name(ssl);
	str_copy(info->cipher, cipher != NULL ? cipher : "", sizeof(info->cipher));
	X509 *cert = SSL_get1_peer_certificate(ssl);
	if (cert == NULL) {
		str_copy(info->chain_error, "the server sent no certificate",
		         sizeof(info->chain_error));
		return;
	}
	info->has_cert = true;
	name_text(X509_get_subject_name(cert), info->subject, sizeof(info->subject));
	name_text(X509_get_issuer_name(cert), info->issuer, sizeof(info->issuer));
	san_names(cert, info->names, sizeof(info->names));
	time_text(X509_get0_notBefore(cert), info->not_before, sizeof(info->not_before));
	time_text(X509_get0_notAfter(cert), info->not_after, sizeof(info->not_after));
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	if (X509_digest(cert, EVP_sha256(), md, &mdlen) == 1) {
		size_t off = 0;
		for (unsigned i = 0; i < mdlen && off + 4 <= sizeof(info->sha256); i++)
			off += (size_t)snprintf(info->sha256 + off, sizeof(info->sha256) - off,
			                        i ? ":%02X" : "%02X", md[i]);
	}
	/* The chain was checked during the handshake (SSL_VERIFY_NONE still
	 * verifies, it only does not abort); the name is checked here, so
	 * both answers are known separately. */
	long v = SSL_get_verify_result(ssl);
	info->chain_ok = v == X509_V_OK;
	if (!info->chain_ok)
		str_copy(info->chain_error, X509_verify_cert_error_string(v),
		         sizeof(info->chain_error));
	if (detour_is_ip_literal(host))
		info->name_ok = X509_check_ip_asc(cert, host, 0) == 1;
	else
		info->name_ok = X509_check_host(cert, host, strlen(host), 0, NULL) == 1;
	X509_free(cert);
}

void tlsinfo_problem(const struct tlsinfo *info, const char *host, char *buf, unsigned size)
{
	buf[0] = '\0';
	if (!info->up)
		return;
	if (!info->has_cert)
		snprintf(buf, size, "the server sent no certificate");
	else if (!info->name_ok)
		snprintf(buf, size, "the certificate is for %s, not %s",
		         info->names[0] ? info->names : "(no name)", host);
	else if (!info->chain_ok)
		snprintf(buf, size, "the certificate is not trusted: %s (give the CA with ca_file)",
		         info->chain_error);
}
