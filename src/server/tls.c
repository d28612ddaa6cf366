/* SPDX-License-Identifier: ISC */
/* tls.c - see tls.h */
#include "server/tls.h"

#include <openssl/err.h>
#include <stdio.h>
#include <string.h>

/* Forward-secret AEAD suites for TLS 1.2, strongest key exchange first
 * (the "intermediate" profile most mail and web servers use). TLS 1.3
 * suites are all AEAD and keep OpenSSL's defaults. */
static const char cipher_list[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                  "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                  "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
                                  "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384";

static char error_buf[512];

const char *tls_last_error(unsigned long err)
{
	static __thread char buf[256];
	if (err == 0)
		err = ERR_get_error();
	if (err == 0) {
		snprintf(buf, sizeof(buf), "unknown TLS error");
	} else {
		ERR_error_string_n(err, buf, sizeof(buf));
	}
	ERR_clear_error();
	return buf;
}

SSL_CTX *tls_server_ctx_new(const char *certificate, const char *private_key, const char **error_r)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		snprintf(error_buf, sizeof(error_buf), "TLS: %s", tls_last_error(0));
		*error_r = error_buf;
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* RFC 7457: compression (CRIME) and renegotiation attacks. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
	                             SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* OpenSSL 3 refuses client-initiated renegotiation unless this is set. */
	SSL_CTX_clear_options(ctx, SSL_OP_ALLOW_CLIENT_RENEGOTIATION);
	SSL_CTX_set_dh_auto(ctx, 1);
	if (SSL_CTX_set_cipher_list(ctx, cipher_list) != 1)
		goto fail_openssl;
	static const unsigned char sid_ctx[] = "detourd";
	SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);

	if (SSL_CTX_use_certificate_chain_file(ctx, certificate) != 1) {
		snprintf(error_buf, sizeof(error_buf), "[tls] certificate %s: %s", certificate,
		         tls_last_error(0));
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, private_key, SSL_FILETYPE_PEM) != 1) {
		snprintf(error_buf, sizeof(error_buf), "[tls] private_key %s: %s", private_key,
		         tls_last_error(0));
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(error_buf, sizeof(error_buf),
		         "[tls] private_key %s does not belong to certificate %s", private_key,
		         certificate);
		goto fail;
	}
	return ctx;
fail_openssl:
	snprintf(error_buf, sizeof(error_buf), "TLS: %s", tls_last_error(0));
fail:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	*error_r = error_buf;
	return NULL;
}

void tls_describe(SSL *ssl, char *out, size_t size)
{
	int alg_bits = 0;
	int bits = SSL_get_cipher_bits(ssl, &alg_bits);
	snprintf(out, size, "%s with cipher %s (%d/%d bits)", SSL_get_version(ssl),
	         SSL_get_cipher_name(ssl), bits, alg_bits);
}

void tls_short(SSL *ssl, char *out, size_t size)
{
	snprintf(out, size, "%s %s", SSL_get_version(ssl), SSL_get_cipher_name(ssl));
}
