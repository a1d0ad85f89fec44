/* SPDX-License-Identifier: GPL-2.0-or-later */
/* TLS for the remote protocol with gnutls (include/vireo/rpc-tls.h). */
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <gio/gio.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "vireo/rpc-error.h"
#include "vireo/rpc-tls.h"

/*
 * gnutls is loaded with the first credentials, not at start: linked in,
 * its constructor and relocations cost every vireod and vireo about
 * 2.5 MiB of RSS whether or not TLS is configured. Only this file calls
 * it, through this table.
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
} tls;

static gpointer tls_load_once(gpointer unused)
{
    void *lib = dlopen(GNUTLS_SONAME, RTLD_NOW | RTLD_LOCAL);
    gnutls_free_function *free_fn;

    (void)unused;
    if (!lib)
        return g_strdup_printf("cannot load %s: %s", GNUTLS_SONAME, dlerror());
#define TLS_RESOLVE(f) \
    if (!(*(void **)&tls.f = dlsym(lib, #f))) \
        return g_strdup_printf("%s has no %s", GNUTLS_SONAME, #f);
    TLS_FUNCTIONS(TLS_RESOLVE)
#undef TLS_RESOLVE
    free_fn = dlsym(lib, "gnutls_free");
    if (!free_fn)
        return g_strdup_printf("%s has no gnutls_free", GNUTLS_SONAME);
    tls.free = *free_fn;
    return NULL;                    /* the library stays loaded for the process */
}

static gboolean tls_load(GError **error)
{
    static GOnce once = G_ONCE_INIT;
    const char *failure = g_once(&once, tls_load_once, NULL);

    if (failure)
        g_set_error(error, RPC_ERROR, RPC_ERROR_TLS, "TLS: %s", failure);
    return failure == NULL;
}

struct RpcTlsCreds {
    gint ref;                       /* atomic */
    RpcTlsRole role;                /* immutable, as the rest */
    gboolean verify_peer;
    gnutls_certificate_credentials_t x509;
};

struct RpcTlsSession {
    RpcTlsCreds *creds;             /* reference */
    gnutls_session_t session;
    char *hostname;
};

/* ------------------------------------------------------------------ files */

RpcTlsFiles *rpc_tls_files_new(RpcTlsRole role, const char *root, const char *dir)
{
    RpcTlsFiles *f = g_new0(RpcTlsFiles, 1);
    const char *who = role == RPC_TLS_SERVER ? "server" : "client";
    g_autofree char *cert = g_strdup_printf("%scert.pem", who);
    g_autofree char *key = g_strdup_printf("%skey.pem", who);

    if (dir) {
        f->cacert = g_build_filename(dir, "cacert.pem", NULL);
        f->cert = g_build_filename(dir, cert, NULL);
        f->key = g_build_filename(dir, key, NULL);
        return f;
    }
    if (!root || !*root)
        root = "/";
    f->cacert = g_build_filename(root, "etc/pki/CA/cacert.pem", NULL);
    f->cert = g_build_filename(root, "etc/pki/vireo", cert, NULL);
    f->key = g_build_filename(root, "etc/pki/vireo/private", key, NULL);
    return f;
}

RpcTlsFiles *rpc_tls_files_new_user(void)
{
    g_autofree char *dir = NULL;

    /* libvirt's rule: system-wide files for root, per-user ones otherwise. */
    if (geteuid() == 0)
        return rpc_tls_files_new(RPC_TLS_CLIENT, NULL, NULL);
    dir = g_build_filename(g_get_home_dir(), ".pki", "vireo", NULL);
    return rpc_tls_files_new(RPC_TLS_CLIENT, NULL, dir);
}

void rpc_tls_files_free(RpcTlsFiles *f)
{
    if (!f)
        return;
    g_free(f->cacert);
    g_free(f->cert);
    g_free(f->key);
    g_free(f);
}

/* ------------------------------------------------------------ credentials */

static gboolean check_readable(const char *what, const char *path, GError **error)
{
    if (access(path, R_OK) == 0)
        return TRUE;
    g_set_error(error, RPC_ERROR, RPC_ERROR_TLS, "cannot read %s '%s': %s", what, path,
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
    time_t not_before = tls.gnutls_x509_crt_get_activation_time(crt);
    time_t not_after = tls.gnutls_x509_crt_get_expiration_time(crt);

    if (not_after != (time_t)-1 && not_after < now) {
        g_autofree char *when = format_time(not_after);

        g_set_error(error, RPC_ERROR, RPC_ERROR_TLS, "%s '%s' expired on %s", what, path, when);
        return FALSE;
    }
    if (not_before != (time_t)-1 && not_before > now) {
        g_autofree char *when = format_time(not_before);

        g_set_error(error, RPC_ERROR, RPC_ERROR_TLS, "%s '%s' is not valid before %s",
                    what, path, when);
        return FALSE;
    }
    return TRUE;
}

static gboolean load_pem(const char *path, gnutls_datum_t *out, GError **error)
{
    int rc = tls.gnutls_load_file(path, out);

    if (rc < 0) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_TLS, "cannot load '%s': %s", path,
                    tls.gnutls_strerror(rc));
        return FALSE;
    }
    return TRUE;
}

/*
 * libvirt refuses to start with a certificate its peers would refuse, so
 * that the mistake shows at once and names the file, not as a failed
 * handshake on the other host.
 */
static gboolean check_own_cert(const RpcTlsFiles *files, const char *what, GError **error)
{
    gnutls_datum_t ca_pem = { 0 }, cert_pem = { 0 };
    gnutls_x509_crt_t *cas = NULL;
    gnutls_x509_crt_t crt = NULL;
    unsigned int ncas = 0, status = 0;
    gboolean ok = FALSE;
    int rc;

    if (!load_pem(files->cacert, &ca_pem, error) || !load_pem(files->cert, &cert_pem, error))
        goto out;
    rc = tls.gnutls_x509_crt_list_import2(&cas, &ncas, &ca_pem, GNUTLS_X509_FMT_PEM, 0);
    if (rc < 0 || ncas == 0) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_TLS, "no CA certificate in '%s': %s",
                    files->cacert, rc < 0 ? tls.gnutls_strerror(rc) : "empty file");
        goto out;
    }
    for (unsigned int i = 0; i < ncas; i++) {
        if (!check_times(cas[i], "CA certificate", files->cacert, error))
            goto out;
    }
    if ((rc = tls.gnutls_x509_crt_init(&crt)) < 0 ||
        (rc = tls.gnutls_x509_crt_import(crt, &cert_pem, GNUTLS_X509_FMT_PEM)) < 0) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_TLS, "invalid %s '%s': %s", what, files->cert,
                    tls.gnutls_strerror(rc));
        goto out;
    }
    if (!check_times(crt, what, files->cert, error))
        goto out;
    rc = tls.gnutls_x509_crt_verify(crt, cas, ncas, 0, &status);
    if (rc < 0 || status) {
        gnutls_datum_t text = { 0 };

        if (rc >= 0)
            tls.gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text, 0);
        g_set_error(error, RPC_ERROR, RPC_ERROR_TLS, "%s '%s' is not issued by the CA in '%s': %s",
                    what, files->cert, files->cacert,
                    rc < 0 ? tls.gnutls_strerror(rc) : (const char *)text.data);
        tls.free(text.data);
        goto out;
    }
    ok = TRUE;
out:
    if (crt)
        tls.gnutls_x509_crt_deinit(crt);
    for (unsigned int i = 0; i < ncas; i++)
        tls.gnutls_x509_crt_deinit(cas[i]);
    tls.free(cas);
    tls.free(ca_pem.data);
    tls.free(cert_pem.data);
    return ok;
}

RpcTlsCreds *rpc_tls_creds_new(RpcTlsRole role, const RpcTlsFiles *files,
                               gboolean verify_peer, GError **error)
{
    const char *what = role == RPC_TLS_SERVER ? "server certificate" : "client certificate";
    const char *kwhat = role == RPC_TLS_SERVER ? "server key" : "client key";
    g_autoptr(RpcTlsCreds) creds = NULL;
    int rc;

    if (!check_readable("CA certificate", files->cacert, error) ||
        !check_readable(what, files->cert, error) || !check_readable(kwhat, files->key, error) ||
        !tls_load(error))
        return NULL;
    creds = g_new0(RpcTlsCreds, 1);
    creds->ref = 1;
    creds->role = role;
    creds->verify_peer = verify_peer;
    rc = tls.gnutls_certificate_allocate_credentials(&creds->x509);
    if (rc < 0) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_TLS, "gnutls: %s", tls.gnutls_strerror(rc));
        return NULL;
    }
    rc = tls.gnutls_certificate_set_x509_trust_file(creds->x509, files->cacert, GNUTLS_X509_FMT_PEM);
    if (rc <= 0) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_TLS, "no CA certificate in '%s': %s",
                    files->cacert, rc < 0 ? tls.gnutls_strerror(rc) : "empty file");
        return NULL;
    }
    rc = tls.gnutls_certificate_set_x509_key_file(creds->x509, files->cert, files->key,
                                              GNUTLS_X509_FMT_PEM);
    if (rc < 0) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_TLS, "cannot use %s '%s' with key '%s': %s",
                    what, files->cert, files->key, tls.gnutls_strerror(rc));
        return NULL;
    }
    if (!check_own_cert(files, what, error))
        return NULL;
    return g_steal_pointer(&creds);
}

RpcTlsCreds *rpc_tls_creds_ref(RpcTlsCreds *creds)
{
    g_atomic_int_inc(&creds->ref);
    return creds;
}

void rpc_tls_creds_unref(RpcTlsCreds *creds)
{
    if (!creds || !g_atomic_int_dec_and_test(&creds->ref))
        return;
    if (creds->x509)
        tls.gnutls_certificate_free_credentials(creds->x509);
    g_free(creds);
}

/* --------------------------------------------------------------- sessions */

RpcTlsSession *rpc_tls_session_new(RpcTlsCreds *creds, int fd, const char *hostname,
                                   GError **error)
{
    g_autoptr(RpcTlsSession) s = g_new0(RpcTlsSession, 1);
    gboolean server = creds->role == RPC_TLS_SERVER;
    /* GNUTLS_NO_SIGNAL: a peer gone mid-write must not SIGPIPE the CLI. */
    int rc = tls.gnutls_init(&s->session, (server ? GNUTLS_SERVER : GNUTLS_CLIENT) |
                         GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);

    s->creds = rpc_tls_creds_ref(creds);
    if (rc < 0)
        goto fail;
    s->hostname = g_strdup(hostname);
    if ((rc = tls.gnutls_set_default_priority(s->session)) < 0 ||
        (rc = tls.gnutls_credentials_set(s->session, GNUTLS_CRD_CERTIFICATE, creds->x509)) < 0)
        goto fail;
    if (server) {
        tls.gnutls_certificate_server_set_request(s->session, creds->verify_peer ?
                                              GNUTLS_CERT_REQUIRE : GNUTLS_CERT_REQUEST);
        /*
         * Without our CA's name in the request, a client with a certificate
         * of another CA still sends it, and the log says "not issued by our
         * CA" rather than "no certificate".
         */
        tls.gnutls_certificate_send_x509_rdn_sequence(s->session, 1);
    } else if (hostname && !g_hostname_is_ip_address(hostname)) {
        /* SNI carries names only, never address literals (RFC 6066). */
        tls.gnutls_server_name_set(s->session, GNUTLS_NAME_DNS, hostname, strlen(hostname));
    }
    tls.gnutls_transport_set_int(s->session, fd);
    return g_steal_pointer(&s);

fail:
    g_set_error(error, RPC_ERROR, RPC_ERROR_TLS, "cannot create a TLS session: %s",
                tls.gnutls_strerror(rc));
    return NULL;
}

void rpc_tls_session_free(RpcTlsSession *s)
{
    if (!s)
        return;
    if (s->session)
        tls.gnutls_deinit(s->session);
    rpc_tls_creds_unref(s->creds);
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

static gboolean verify_peer(RpcTlsSession *s, GError **error)
{
    gboolean server = s->creds->role == RPC_TLS_SERVER;
    gnutls_alert_description_t alert = GNUTLS_A_BAD_CERTIFICATE;
    gnutls_datum_t text = { 0 };
    const char *reason;
    unsigned int status = 0;
    int rc;

    if (!s->creds->verify_peer)
        return TRUE;
    rc = server ? tls.gnutls_certificate_verify_peers2(s->session, &status)
                : tls.gnutls_certificate_verify_peers3(s->session, s->hostname, &status);
    if (rc == GNUTLS_E_NO_CERTIFICATE_FOUND) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_TLS, "the %s sent no certificate",
                    server ? "client" : "server");
        goto refuse;
    }
    if (rc < 0) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_TLS, "cannot verify the %s's certificate: %s",
                    server ? "client" : "server", tls.gnutls_strerror(rc));
        goto refuse;
    }
    if (!status)
        return TRUE;
    reason = verify_reason(status, &alert);
    /* A name mismatch alone gets its own words; a wrong CA is worse and said first. */
    if (!(status & ~(GNUTLS_CERT_INVALID | GNUTLS_CERT_UNEXPECTED_OWNER))) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_TLS,
                    "the server's certificate does not match the host name '%s' "
                    "(host name mismatch)", s->hostname);
        goto refuse;
    }
    tls.gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text, 0);
    g_set_error(error, RPC_ERROR, RPC_ERROR_TLS, "the %s's certificate is refused%s%s: %s",
                server ? "client" : "server", reason ? ", " : "", reason ? reason : "",
                text.data ? (const char *)text.data : "invalid");
    tls.free(text.data);
refuse:
    /* Best effort: the peer learns why, if the socket takes the alert now. */
    tls.gnutls_alert_send(s->session, GNUTLS_AL_FATAL, alert);
    return FALSE;
}

static void set_gnutls_error(RpcTlsSession *s, int rc, const char *what, GError **error)
{
    if (rc == GNUTLS_E_FATAL_ALERT_RECEIVED)
        g_set_error(error, RPC_ERROR, RPC_ERROR_TLS, "%s: the peer refused: %s", what,
                    tls.gnutls_alert_get_name(tls.gnutls_alert_get(s->session)));
    else
        g_set_error(error, RPC_ERROR, RPC_ERROR_TLS, "%s: %s", what, tls.gnutls_strerror(rc));
}

RpcTlsStatus rpc_tls_session_handshake(RpcTlsSession *s, GError **error)
{
    int rc;

    do {
        rc = tls.gnutls_handshake(s->session);
        /* Warning alerts are not fatal: carry on. */
    } while (rc < 0 && !tls.gnutls_error_is_fatal(rc) && rc != GNUTLS_E_AGAIN &&
             rc != GNUTLS_E_INTERRUPTED);
    if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED)
        return tls.gnutls_record_get_direction(s->session) ? RPC_TLS_WANT_WRITE : RPC_TLS_WANT_READ;
    if (rc < 0) {
        set_gnutls_error(s, rc, "TLS handshake failed", error);
        return RPC_TLS_FAILED;
    }
    return verify_peer(s, error) ? RPC_TLS_DONE : RPC_TLS_FAILED;
}

gssize rpc_tls_session_recv(RpcTlsSession *s, void *buf, gsize len, GError **error)
{
    ssize_t rc;

    do {
        rc = tls.gnutls_record_recv(s->session, buf, len);
    } while (rc < 0 && !tls.gnutls_error_is_fatal(rc) && rc != GNUTLS_E_AGAIN &&
             rc != GNUTLS_E_INTERRUPTED);
    if (rc >= 0)
        return rc;
    if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED)
        return RPC_TLS_AGAIN;
    /* libvirt closes without close_notify; our framing knows where packets end. */
    if (rc == GNUTLS_E_PREMATURE_TERMINATION)
        return 0;
    set_gnutls_error(s, (int)rc, "TLS read failed", error);
    return -1;
}

gssize rpc_tls_session_send(RpcTlsSession *s, const void *buf, gsize len, GError **error)
{
    ssize_t rc = tls.gnutls_record_send(s->session, buf, len);

    if (rc >= 0)
        return rc;
    if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED)
        return RPC_TLS_AGAIN;
    set_gnutls_error(s, (int)rc, "TLS write failed", error);
    return -1;
}

gsize rpc_tls_session_pending(RpcTlsSession *s)
{
    return tls.gnutls_record_check_pending(s->session);
}

/* ----------------------------------------------------- blocking client side */

static gboolean wait_fd(int fd, gboolean for_write, gint64 deadline, const char *what,
                        GError **error)
{
    struct pollfd pfd = { .fd = fd, .events = for_write ? POLLOUT : POLLIN };
    gint64 left = (deadline - g_get_monotonic_time()) / 1000;
    int rc;

    do {
        rc = left > 0 ? poll(&pfd, 1, (int)left) : 0;
    } while (rc < 0 && errno == EINTR);
    if (rc > 0)
        return TRUE;
    g_set_error(error, RPC_ERROR, rc == 0 ? RPC_ERROR_TIMEOUT : RPC_ERROR_IO, "%s: %s", what,
                rc == 0 ? "timed out" : g_strerror(errno));
    return FALSE;
}

RpcTlsSession *rpc_tls_client_handshake(RpcTlsCreds *creds, int fd, const char *hostname,
                                        guint timeout_ms, GError **error)
{
    g_autoptr(RpcTlsSession) s = rpc_tls_session_new(creds, fd, hostname, error);
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    RpcTlsStatus st;
    guint8 confirm = 0;
    gssize n;

    if (!s)
        return NULL;
    while ((st = rpc_tls_session_handshake(s, error)) != RPC_TLS_DONE) {
        if (st == RPC_TLS_FAILED ||
            !wait_fd(fd, st == RPC_TLS_WANT_WRITE, deadline, "TLS handshake", error))
            return NULL;
    }
    /* The server's verdict on our certificate: one byte 1, or the connection closed. */
    while ((n = rpc_tls_session_recv(s, &confirm, 1, error)) == RPC_TLS_AGAIN) {
        if (!wait_fd(fd, FALSE, deadline, "waiting for the server's TLS confirmation", error))
            return NULL;
    }
    if (n < 0) {
        g_prefix_error(error, "the server refused our certificate: ");
        return NULL;
    }
    if (n != 1 || confirm != 1) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_TLS, "the server refused the connection after "
                    "the TLS handshake (our certificate, or our address)");
        return NULL;
    }
    return g_steal_pointer(&s);
}
