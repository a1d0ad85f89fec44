/* SPDX-License-Identifier: GPL-2.0-or-later */
/* TLS with gnutls on a connected socket (include/vireo/tls.h). */
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "vireo/tls.h"

/*
 * gnutls is loaded with the first credentials, not at start (see tls.h).
 * Only this file calls it, through this table.
 */
#define GNUTLS_SONAME "libgnutls.so.30"
#define TLS_FUNCTIONS(X) \
    X(gnutls_alert_get) \
    X(gnutls_alert_get_name) \
    X(gnutls_alert_send) \
    X(gnutls_certificate_allocate_credentials) \
    X(gnutls_certificate_free_credentials) \
    X(gnutls_certificate_send_x509_rdn_sequence) \
    X(gnutls_certificate_server_set_request) \
    X(gnutls_certificate_set_x509_key_file) \
    X(gnutls_certificate_set_x509_trust_file) \
    X(gnutls_certificate_verification_status_print) \
    X(gnutls_certificate_verify_peers2) \
    X(gnutls_certificate_verify_peers3) \
    X(gnutls_credentials_set) \
    X(gnutls_deinit) \
    X(gnutls_error_is_fatal) \
    X(gnutls_handshake) \
    X(gnutls_init) \
    X(gnutls_load_file) \
    X(gnutls_record_check_pending) \
    X(gnutls_record_get_direction) \
    X(gnutls_record_recv) \
    X(gnutls_record_send) \
    X(gnutls_server_name_set) \
    X(gnutls_session_get_desc) \
    X(gnutls_set_default_priority) \
    X(gnutls_strerror) \
    X(gnutls_transport_set_int2) \
    X(gnutls_x509_crt_deinit) \
    X(gnutls_x509_crt_get_activation_time) \
    X(gnutls_x509_crt_get_expiration_time) \
    X(gnutls_x509_crt_import) \
    X(gnutls_x509_crt_init) \
    X(gnutls_x509_crt_list_import2) \
    X(gnutls_x509_crt_verify)

static struct {
#define TLS_FIELD(f) __typeof__(&f) f;
    TLS_FUNCTIONS(TLS_FIELD)
#undef TLS_FIELD
    gnutls_free_function free;      /* a variable in gnutls, not a function */
} gt;

G_DEFINE_QUARK(vireo-tls-error-quark, tls_error)

static gpointer load_once(gpointer unused)
{
    void *lib = dlopen(GNUTLS_SONAME, RTLD_NOW | RTLD_LOCAL);
    gnutls_free_function *free_fn;

    (void)unused;
    if (!lib)
        return g_strdup_printf("cannot load %s: %s", GNUTLS_SONAME, dlerror());
#define TLS_RESOLVE(f) \
    if (!(*(void **)&gt.f = dlsym(lib, #f))) \
        return g_strdup_printf("%s has no %s", GNUTLS_SONAME, #f);
    TLS_FUNCTIONS(TLS_RESOLVE)
#undef TLS_RESOLVE
    free_fn = dlsym(lib, "gnutls_free");
    if (!free_fn)
        return g_strdup_printf("%s has no gnutls_free", GNUTLS_SONAME);
    gt.free = *free_fn;
    return NULL;                    /* the library stays loaded for the process */
}

static gboolean load(GError **error)
{
    static GOnce once = G_ONCE_INIT;
    const char *failure = g_once(&once, load_once, NULL);

    if (failure)
        g_set_error(error, TLS_ERROR, TLS_ERROR_FAILED, "TLS: %s", failure);
    return failure == NULL;
}

struct TlsCreds {
    gint ref;                       /* atomic */
    TlsEndpoint endpoint;           /* immutable, as the rest */
    gboolean verify_peer;
    gnutls_certificate_credentials_t x509;
};

struct TlsSession {
    TlsCreds *creds;                /* reference */
    gnutls_session_t session;
    int fd;
    char *hostname;
};

/* ------------------------------------------------------------ credentials */

static gboolean check_readable(const char *what, const char *path, GError **error)
{
    if (access(path, R_OK) == 0)
        return TRUE;
    g_set_error(error, TLS_ERROR, TLS_ERROR_FAILED, "cannot read %s '%s': %s", what, path,
                errno == ENOENT ? "the file is missing" : g_strerror(errno));
    return FALSE;
}

static char *format_time(time_t t)
{
    g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc(t);

    return dt ? g_date_time_format(dt, "%Y-%m-%d %H:%M:%S UTC") : g_strdup("?");
}

/* Our own certificate (or the CA's) must be valid now, not only at the peer. */
static gboolean check_times(gnutls_x509_crt_t crt, const char *what, const char *path,
                            GError **error)
{
    time_t now = time(NULL);
    time_t not_before = gt.gnutls_x509_crt_get_activation_time(crt);
    time_t not_after = gt.gnutls_x509_crt_get_expiration_time(crt);

    if (not_after != (time_t)-1 && not_after < now) {
        g_autofree char *when = format_time(not_after);

        g_set_error(error, TLS_ERROR, TLS_ERROR_FAILED, "%s '%s' expired on %s", what, path,
                    when);
        return FALSE;
    }
    if (not_before != (time_t)-1 && not_before > now) {
        g_autofree char *when = format_time(not_before);

        g_set_error(error, TLS_ERROR, TLS_ERROR_FAILED, "%s '%s' is not valid before %s",
                    what, path, when);
        return FALSE;
    }
    return TRUE;
}

static gboolean load_pem(const char *path, gnutls_datum_t *out, GError **error)
{
    int rc = gt.gnutls_load_file(path, out);

    if (rc < 0) {
        g_set_error(error, TLS_ERROR, TLS_ERROR_FAILED, "cannot load '%s': %s", path,
                    gt.gnutls_strerror(rc));
        return FALSE;
    }
    return TRUE;
}

/*
 * As libvirt does, refuse to start with a certificate the peers would
 * refuse, so that the mistake shows at once and names the file, not as a
 * failed handshake on the other host. @cert NULL: the CA only.
 */
static gboolean check_own_cert(const char *cacert, const char *cert, const char *what,
                               GError **error)
{
    gnutls_datum_t ca_pem = { 0 }, cert_pem = { 0 };
    gnutls_x509_crt_t *cas = NULL;
    gnutls_x509_crt_t crt = NULL;
    unsigned int ncas = 0, status = 0;
    gboolean ok = FALSE;
    int rc;

    if (!load_pem(cacert, &ca_pem, error) || (cert && !load_pem(cert, &cert_pem, error)))
        goto out;
    rc = gt.gnutls_x509_crt_list_import2(&cas, &ncas, &ca_pem, GNUTLS_X509_FMT_PEM, 0);
    if (rc < 0 || ncas == 0) {
        g_set_error(error, TLS_ERROR, TLS_ERROR_FAILED, "no CA certificate in '%s': %s",
                    cacert, rc < 0 ? gt.gnutls_strerror(rc) : "empty file");
        goto out;
    }
    for (unsigned int i = 0; i < ncas; i++) {
        if (!check_times(cas[i], "CA certificate", cacert, error))
            goto out;
    }
    if (!cert) {
        ok = TRUE;
        goto out;
    }
    if ((rc = gt.gnutls_x509_crt_init(&crt)) < 0 ||
        (rc = gt.gnutls_x509_crt_import(crt, &cert_pem, GNUTLS_X509_FMT_PEM)) < 0) {
        g_set_error(error, TLS_ERROR, TLS_ERROR_FAILED, "invalid %s '%s': %s", what, cert,
                    gt.gnutls_strerror(rc));
        goto out;
    }
    if (!check_times(crt, what, cert, error))
        goto out;
    rc = gt.gnutls_x509_crt_verify(crt, cas, ncas, 0, &status);
    if (rc < 0 || status) {
        gnutls_datum_t text = { 0 };

        if (rc >= 0)
            gt.gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text, 0);
        g_set_error(error, TLS_ERROR, TLS_ERROR_FAILED,
                    "%s '%s' is not issued by the CA in '%s': %s", what, cert, cacert,
                    rc < 0 ? gt.gnutls_strerror(rc) : (const char *)text.data);
        gt.free(text.data);
        goto out;
    }
    ok = TRUE;
out:
    if (crt)
        gt.gnutls_x509_crt_deinit(crt);
    for (unsigned int i = 0; i < ncas; i++)
        gt.gnutls_x509_crt_deinit(cas[i]);
    gt.free(cas);
    gt.free(ca_pem.data);
    gt.free(cert_pem.data);
    return ok;
}

TlsCreds *tls_creds_new(TlsEndpoint endpoint, const char *cacert, const char *cert,
                        const char *key, gboolean verify_peer, GError **error)
{
    gboolean server = endpoint == TLS_ENDPOINT_SERVER;
    const char *what = server ? "server certificate" : "client certificate";
    const char *kwhat = server ? "server key" : "client key";
    g_autoptr(TlsCreds) creds = NULL;
    int rc;

    g_assert(!cert == !key && (cert || !server));
    if (!check_readable("CA certificate", cacert, error) ||
        (cert && !check_readable(what, cert, error)) ||
        (key && !check_readable(kwhat, key, error)) || !load(error))
        return NULL;
    creds = g_new0(TlsCreds, 1);
    creds->ref = 1;
    creds->endpoint = endpoint;
    creds->verify_peer = verify_peer;
    rc = gt.gnutls_certificate_allocate_credentials(&creds->x509);
    if (rc < 0) {
        g_set_error(error, TLS_ERROR, TLS_ERROR_FAILED, "gnutls: %s", gt.gnutls_strerror(rc));
        return NULL;
    }
    rc = gt.gnutls_certificate_set_x509_trust_file(creds->x509, cacert, GNUTLS_X509_FMT_PEM);
    if (rc <= 0) {
        g_set_error(error, TLS_ERROR, TLS_ERROR_FAILED, "no CA certificate in '%s': %s",
                    cacert, rc < 0 ? gt.gnutls_strerror(rc) : "empty file");
        return NULL;
    }
    if (cert) {
        rc = gt.gnutls_certificate_set_x509_key_file(creds->x509, cert, key,
                                                     GNUTLS_X509_FMT_PEM);
        if (rc < 0) {
            g_set_error(error, TLS_ERROR, TLS_ERROR_FAILED,
                        "cannot use %s '%s' with key '%s': %s", what, cert, key,
                        gt.gnutls_strerror(rc));
            return NULL;
        }
    }
    if (!check_own_cert(cacert, cert, what, error))
        return NULL;
    return g_steal_pointer(&creds);
}

TlsCreds *tls_creds_ref(TlsCreds *creds)
{
    g_atomic_int_inc(&creds->ref);
    return creds;
}

void tls_creds_unref(TlsCreds *creds)
{
    if (!creds || !g_atomic_int_dec_and_test(&creds->ref))
        return;
    if (creds->x509)
        gt.gnutls_certificate_free_credentials(creds->x509);
    g_free(creds);
}

TlsEndpoint tls_creds_get_endpoint(const TlsCreds *creds)
{
    return creds->endpoint;
}

gboolean tls_creds_get_verify_peer(const TlsCreds *creds)
{
    return creds->verify_peer;
}

/* --------------------------------------------------------------- sessions */

TlsSession *tls_session_new(TlsCreds *creds, int fd, const char *hostname, GError **error)
{
    g_autoptr(TlsSession) s = g_new0(TlsSession, 1);
    gboolean server = creds->endpoint == TLS_ENDPOINT_SERVER;
    /* GNUTLS_NO_SIGNAL: a peer gone mid-write must not SIGPIPE the process. */
    int rc = gt.gnutls_init(&s->session, (server ? GNUTLS_SERVER : GNUTLS_CLIENT) |
                            GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);

    s->creds = tls_creds_ref(creds);
    s->fd = fd;
    if (rc < 0)
        goto fail;
    s->hostname = g_strdup(hostname);
    if ((rc = gt.gnutls_set_default_priority(s->session)) < 0 ||
        (rc = gt.gnutls_credentials_set(s->session, GNUTLS_CRD_CERTIFICATE, creds->x509)) < 0)
        goto fail;
    if (server) {
        gt.gnutls_certificate_server_set_request(s->session, creds->verify_peer ?
                                                 GNUTLS_CERT_REQUIRE : GNUTLS_CERT_REQUEST);
        /*
         * Without our CA's name in the request, a client with a certificate
         * of another CA still sends it, and the log says "not issued by our
         * CA" rather than "no certificate".
         */
        gt.gnutls_certificate_send_x509_rdn_sequence(s->session, 1);
    } else if (hostname && !g_hostname_is_ip_address(hostname)) {
        /* SNI carries names only, never address literals (RFC 6066). */
        gt.gnutls_server_name_set(s->session, GNUTLS_NAME_DNS, hostname, strlen(hostname));
    }
    gt.gnutls_transport_set_int(s->session, fd);
    return g_steal_pointer(&s);

fail:
    g_set_error(error, TLS_ERROR, TLS_ERROR_FAILED, "cannot create a TLS session: %s",
                gt.gnutls_strerror(rc));
    return NULL;
}

void tls_session_free(TlsSession *s)
{
    if (!s)
        return;
    if (s->session)
        gt.gnutls_deinit(s->session);
    tls_creds_unref(s->creds);
    g_free(s->hostname);
    g_free(s);
}

/* The most telling reason first; the alert tells the peer roughly the same. */
static const char *verify_reason(unsigned int status, gnutls_alert_description_t *alert)
{
    *alert = GNUTLS_A_BAD_CERTIFICATE;
    if (status & GNUTLS_CERT_EXPIRED) {
        *alert = GNUTLS_A_CERTIFICATE_EXPIRED;
        return "it has expired";
    }
    if (status & GNUTLS_CERT_NOT_ACTIVATED)
        return "it is not valid yet";
    if (status & GNUTLS_CERT_SIGNER_NOT_FOUND) {
        *alert = GNUTLS_A_UNKNOWN_CA;
        return "it is not issued by our CA";
    }
    if (status & GNUTLS_CERT_REVOKED) {
        *alert = GNUTLS_A_CERTIFICATE_REVOKED;
        return "it is revoked";
    }
    if (status & GNUTLS_CERT_UNEXPECTED_OWNER)
        return "host name mismatch";
    return NULL;
}

static gboolean verify_peer(TlsSession *s, GError **error)
{
    gboolean server = s->creds->endpoint == TLS_ENDPOINT_SERVER;
    gnutls_alert_description_t alert = GNUTLS_A_BAD_CERTIFICATE;
    gnutls_datum_t text = { 0 };
    const char *reason;
    unsigned int status = 0;
    int rc;

    if (!s->creds->verify_peer)
        return TRUE;
    rc = server ? gt.gnutls_certificate_verify_peers2(s->session, &status)
                : gt.gnutls_certificate_verify_peers3(s->session, s->hostname, &status);
    if (rc == GNUTLS_E_NO_CERTIFICATE_FOUND) {
        g_set_error(error, TLS_ERROR, TLS_ERROR_FAILED, "the %s sent no certificate",
                    server ? "client" : "server");
        goto refuse;
    }
    if (rc < 0) {
        g_set_error(error, TLS_ERROR, TLS_ERROR_FAILED, "cannot verify the %s's certificate: %s",
                    server ? "client" : "server", gt.gnutls_strerror(rc));
        goto refuse;
    }
    if (!status)
        return TRUE;
    reason = verify_reason(status, &alert);
    /* A name mismatch alone gets its own words; a wrong CA is worse and said first. */
    if (!(status & ~(GNUTLS_CERT_INVALID | GNUTLS_CERT_UNEXPECTED_OWNER))) {
        g_set_error(error, TLS_ERROR, TLS_ERROR_FAILED,
                    "the server's certificate does not match the host name '%s' "
                    "(host name mismatch)", s->hostname);
        goto refuse;
    }
    gt.gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text, 0);
    g_set_error(error, TLS_ERROR, TLS_ERROR_FAILED, "the %s's certificate is refused%s%s: %s",
                server ? "client" : "server", reason ? ", " : "", reason ? reason : "",
                text.data ? (const char *)text.data : "invalid");
    gt.free(text.data);
refuse:
    /* Best effort: the peer learns why, if the socket takes the alert now. */
    gt.gnutls_alert_send(s->session, GNUTLS_AL_FATAL, alert);
    return FALSE;
}

static void set_gnutls_error(TlsSession *s, int rc, const char *what, GError **error)
{
    /* An invalidated session: the other direction's thread saw the connection end. */
    if (rc == GNUTLS_E_PREMATURE_TERMINATION || rc == GNUTLS_E_PULL_ERROR ||
        rc == GNUTLS_E_PUSH_ERROR || rc == GNUTLS_E_INVALID_SESSION)
        g_set_error(error, TLS_ERROR, TLS_ERROR_CLOSED, "%s: %s", what, gt.gnutls_strerror(rc));
    else if (rc == GNUTLS_E_FATAL_ALERT_RECEIVED)
        g_set_error(error, TLS_ERROR, TLS_ERROR_FAILED, "%s: the peer refused: %s", what,
                    gt.gnutls_alert_get_name(gt.gnutls_alert_get(s->session)));
    else
        g_set_error(error, TLS_ERROR, TLS_ERROR_FAILED, "%s: %s", what, gt.gnutls_strerror(rc));
}

TlsStatus tls_session_handshake(TlsSession *s, GError **error)
{
    int rc;

    do {
        rc = gt.gnutls_handshake(s->session);
        /* Warning alerts are not fatal: carry on. */
    } while (rc < 0 && !gt.gnutls_error_is_fatal(rc) && rc != GNUTLS_E_AGAIN &&
             rc != GNUTLS_E_INTERRUPTED);
    if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED)
        return gt.gnutls_record_get_direction(s->session) ? TLS_WANT_WRITE : TLS_WANT_READ;
    if (rc < 0) {
        set_gnutls_error(s, rc, "TLS handshake failed", error);
        return TLS_FAILED;
    }
    return verify_peer(s, error) ? TLS_DONE : TLS_FAILED;
}

gboolean tls_session_handshake_sync(TlsSession *s, gint64 deadline, GError **error)
{
    TlsStatus st;

    while ((st = tls_session_handshake(s, error)) != TLS_DONE) {
        if (st == TLS_FAILED ||
            !tls_wait_fd(s->fd, st == TLS_WANT_WRITE, deadline, "TLS handshake", error))
            return FALSE;
    }
    return TRUE;
}

char *tls_session_get_desc(TlsSession *s)
{
    char *desc = gt.gnutls_session_get_desc(s->session);
    char *copy = g_strdup(desc ? desc : "?");

    gt.free(desc);
    return copy;
}

gssize tls_session_recv(TlsSession *s, void *buf, gsize len, GError **error)
{
    ssize_t rc;

    do {
        rc = gt.gnutls_record_recv(s->session, buf, len);
    } while (rc < 0 && !gt.gnutls_error_is_fatal(rc) && rc != GNUTLS_E_AGAIN &&
             rc != GNUTLS_E_INTERRUPTED);
    if (rc >= 0)
        return rc;
    if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED)
        return TLS_AGAIN;
    /*
     * Peers may close without close_notify (libvirt does); the protocols
     * on top know where their messages end, and see a truncation.
     */
    if (rc == GNUTLS_E_PREMATURE_TERMINATION)
        return 0;
    set_gnutls_error(s, (int)rc, "TLS read failed", error);
    return -1;
}

gssize tls_session_send(TlsSession *s, const void *buf, gsize len, GError **error)
{
    ssize_t rc = gt.gnutls_record_send(s->session, buf, len);

    if (rc >= 0)
        return rc;
    if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED)
        return TLS_AGAIN;
    set_gnutls_error(s, (int)rc, "TLS write failed", error);
    return -1;
}

gsize tls_session_pending(TlsSession *s)
{
    return gt.gnutls_record_check_pending(s->session);
}

gboolean tls_wait_fd(int fd, gboolean for_write, gint64 deadline, const char *what,
                     GError **error)
{
    struct pollfd pfd = { .fd = fd, .events = for_write ? POLLOUT : POLLIN };
    gint64 left = (deadline - g_get_monotonic_time()) / 1000;
    int rc;

    do {
        rc = left > 0 ? poll(&pfd, 1, (int)MIN(left, G_MAXINT)) : 0;
    } while (rc < 0 && errno == EINTR);
    if (rc > 0)
        return TRUE;
    g_set_error(error, TLS_ERROR, rc == 0 ? TLS_ERROR_TIMEOUT : TLS_ERROR_IO, "%s: %s", what,
                rc == 0 ? "timed out" : g_strerror(errno));
    return FALSE;
}
