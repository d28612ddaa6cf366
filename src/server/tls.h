/* SPDX-License-Identifier: ISC */
/*
 * tls.h - the server's TLS context: OpenSSL 3 set up once per configuration
 * (SPEC.md [tls]), shared by every STARTTLS and implicit-TLS session.
 *
 * Owns: protocol versions (TLS 1.2 and 1.3 only), the cipher list (forward
 * secret AEAD suites only), no renegotiation, no compression, the
 * certificate chain and key. A reload builds a new context; sessions keep
 * the one they started with (each SSL holds a reference to its context).
 * Threads: event-loop thread.
 */
#ifndef DETOUR_TLS_H
#define DETOUR_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

/* tls_server_ctx_new - a context serving certificate (a PEM chain, leaf
 * first) with private_key. Returns NULL with a message in *error_r naming
 * the file and OpenSSL's reason. */
SSL_CTX *tls_server_ctx_new(const char *certificate, const char *private_key, const char **error_r);

/* tls_describe - "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)"
 * for the Received: header and logs. */
void tls_describe(SSL *ssl, char *out, size_t size);

/* tls_short - "TLSv1.3 TLS_AES_256_GCM_SHA384" for the envelope. */
void tls_short(SSL *ssl, char *out, size_t size);

/* tls_last_error - OpenSSL's most recent error on this thread, as text
 * (the error queue is emptied). */
const char *tls_last_error(unsigned long err);

#endif
