/* tls_config.h — what both ends of a TLS connection share: the process's
 * random generator, the protocol policy, and the server's certificate set.
 *
 * Policy, for the daemon and the CLI alike: TLS 1.2 only (mbedTLS 2.28's
 * TLS 1.3 is experimental), ECDHE key exchange with AEAD ciphers only
 * (AES-GCM, ChaCha20-Poly1305), no renegotiation.  Only the tls_*.c files
 * include this header. */
#ifndef WSJOBD_TLS_CONFIG_H
#define WSJOBD_TLS_CONFIG_H

#include <mbedtls/ssl.h>
#include <stddef.h>

/* Sets up conf, initialised by the caller, for endpoint
 * (MBEDTLS_SSL_IS_SERVER or MBEDTLS_SSL_IS_CLIENT) with the policy above and
 * the process's random generator, seeded on first use in each process.
 * 0, or -1 with a reason. */
int tls_policy_apply(mbedtls_ssl_config *conf, int endpoint, char *err, size_t errlen);

/* A certificate chain, its private key and the server config that serves
 * them.  Immutable once loaded and shared by reference: whoever holds a
 * pointer holds a reference.  Counted without atomics: only the front's
 * loop thread takes and drops references (its handshake threads use a
 * connection's config through the reference the loop holds for it). */
struct tls_creds;

/* Reads the PEM chain (leaf first) and key and checks they belong together;
 * one reference.  NULL with a reason naming the file and mbedTLS's words. */
struct tls_creds *tls_creds_load(const char *cert_file, const char *key_file,
                                 char *err, size_t errlen);
struct tls_creds *tls_creds_ref(struct tls_creds *c);
void tls_creds_unref(struct tls_creds *c);   /* NULL is fine */

/* Lives as long as the reference it came from. */
const mbedtls_ssl_config *tls_creds_conf(const struct tls_creds *c);

/* "subject, valid until date" of the leaf, for the log. */
void tls_creds_describe(const struct tls_creds *c, char *buf, size_t len);

/* mbedTLS's text for an error code, with the code ("... (-0x7780)"). */
void tls_strerror(int rc, char *buf, size_t len);

#endif
