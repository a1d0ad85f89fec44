/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Save, restore and managed save (docs/daemon.md, "Save and restore").
 *
 * A save image is include/vireo/save-image.h's header (the domain XML)
 * followed by vireo-vmm's migration stream: the daemon writes the header
 * into a temporary file next to the target, vireo-vmm migrates into
 * "file:TMP,offset=N", and the file is renamed over the target only when
 * the stream is complete, so a failed or aborted save leaves no image and
 * a running domain. A restore checks the header, then starts vireo-vmm
 * with "--incoming file:PATH,offset=N" through the driver's normal start.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "domain-driver-priv.h"
#include "vireo/rpc-error.h"
#include "vireo/save-image.h"
#include "vireo/util.h"

/* virDomainSaveRestoreFlags */
enum { SAVE_BYPASS_CACHE = 1, SAVE_RUNNING = 2, SAVE_PAUSED = 4, SAVE_RESET_NVRAM = 8 };
enum { SAVE_IMAGE_XML_SECURE = 1 };

char *domain_save_managed_path(DomainDriver *drv, const char *name)
{
    g_autofree char *file = g_strconcat(name, ".save", NULL);

    return g_build_filename(drv->paths->state_dir, "save", file, NULL);
}

gboolean domain_save_has_managed(DomainDriver *drv, const char *name)
{
    g_autofree char *path = domain_save_managed_path(drv, name);

    return g_file_test(path, G_FILE_TEST_IS_REGULAR);
}

static char *image_uri(const char *path, guint64 offset)
{
    return g_strdup_printf("file:%s,offset=%" G_GUINT64_FORMAT, path, offset);
}

/* A bad image is libvirt's OPERATION_FAILED; a missing one its SYSTEM_ERROR. */
static void fail_image(RpcCall *call, const GError *err)
{
    if (err->domain == G_FILE_ERROR)
        rpc_call_fail(call, RPC_ERR_SYSTEM_ERROR, "%s", err->message);
    else
        rpc_call_fail(call, RPC_ERR_OPERATION_FAILED, "%s", err->message);
}

static gboolean check_save_flags(RpcCall *call, guint flags, guint known, const char *fn)
{
    if (!domain_driver_check_flags(call, flags, known, fn))
        return FALSE;
    if ((flags & SAVE_RUNNING) && (flags & SAVE_PAUSED)) {
        rpc_call_fail(call, RPC_ERR_INVALID_ARG, "%s",
                      "running and paused flags are mutually exclusive");
        return FALSE;
    }
    return TRUE;
}

/* ------------------------------------------------------------ save */

typedef struct SaveCtx {
    RpcCall *call;
    Domain *dom;
    char *target;
    char *tmp;
    gboolean managed;
} SaveCtx;

static void save_ctx_free(SaveCtx *sc)
{
    domain_driver_unref(sc->dom);
    g_free(sc->target);
    g_free(sc->tmp);
    g_free(sc);
}

static gboolean fsync_dir_of(const char *path)
{
    g_autofree char *dir = g_path_get_dirname(path);
    autoclose int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    return fd >= 0 && fsync(fd) == 0;
}

static gboolean on_save_kill_timer(gpointer opaque)
{
    Domain *dom = opaque;

    if (dom->vm && dom->stop_intent == STOP_SAVED) {
        domain_driver_log(dom, "vireo-vmm did not end after the save; sending SIGKILL");
        vm_process_kill(dom->vm, SIGKILL, NULL);
    }
    return G_SOURCE_REMOVE;
}

static void save_done(Domain *dom, const GError *error, gpointer opaque)
{
    SaveCtx *sc = opaque;
    g_autoptr(GError) err = NULL;
    GSource *timer;

    if (!error && rename(sc->tmp, sc->target) < 0) {
        int saved = errno;

        err = g_error_new(RPC_REMOTE_ERROR, RPC_ERR_SYSTEM_ERROR,
                          "cannot rename '%s' to '%s': %s", sc->tmp, sc->target,
                          g_strerror(saved));
        error = err;
        if (dom->vm && vm_process_get_qmp(dom->vm)) {
            /* The stream is whole but unusable: the domain carries on. */
            qmp_client_execute(vm_process_get_qmp(dom->vm), "cont", NULL, 30000, NULL, NULL);
            domain_driver_set_state(dom, RPC_DOMAIN_RUNNING, RUNNING_SAVE_CANCELED);
            domain_driver_emit(dom, RPC_DOMAIN_EVENT_RESUMED, EV_RESUMED_UNPAUSED);
        }
    }
    if (error) {
        unlink(sc->tmp);
        domain_driver_log(dom, "save to '%s' failed: %s", sc->target, error->message);
        domain_driver_fail(sc->call, error);
        domain_driver_job_end(dom);
        save_ctx_free(sc);
        return;
    }
    fsync_dir_of(sc->target);
    domain_driver_log(dom, "saved to '%s'; stopping vireo-vmm", sc->target);
    if (!dom->vm) {
        /* Gone already (cannot happen before the job ended, but be safe). */
        rpc_call_reply(sc->call, NULL);
        domain_driver_job_end(dom);
        save_ctx_free(sc);
        return;
    }
    /* on_vm_exited() answers the call, marks it shut off (saved), ends the job. */
    dom->stop_intent = STOP_SAVED;
    g_ptr_array_add(dom->stop_calls, sc->call);
    vm_process_kill(dom->vm, SIGTERM, NULL);
    timer = g_timeout_source_new(dom->drv->destroy_timeout_ms);
    g_source_set_callback(timer, on_save_kill_timer, domain_driver_ref(dom),
                          (GDestroyNotify)domain_driver_unref);
    g_source_attach(timer, dom->drv->ctx);
    g_source_unref(timer);
    save_ctx_free(sc);
}

static void save_common(RpcCall *call, gpointer args, DomainDriver *drv,
                        const RemoteNonnullDomain *w, const char *to, const char *dxml,
                        guint flags, gboolean managed, RpcHandlerFunc self)
{
    Domain *dom = domain_driver_lookup(drv, call, w);
    g_autoptr(GError) err = NULL;
    g_autofree char *xml = NULL;
    g_autofree char *target = NULL;
    g_autofree char *dir = NULL;
    g_autofree char *base = NULL;
    g_autofree char *tmp = NULL;
    g_autofree char *uri = NULL;
    autoclose int fd = -1;
    gboolean running;
    guint64 offset;
    SaveCtx *sc;

    if (!dom || domain_driver_defer(dom, call, self, args))
        return;
    if (!check_save_flags(call, flags, SAVE_BYPASS_CACHE | SAVE_RUNNING | SAVE_PAUSED,
                          managed ? "vireoDomainManagedSave" : "vireoDomainSaveFlags"))
        return;
    if (dxml) {
        rpc_call_fail(call, RPC_ERR_OPERATION_UNSUPPORTED, "%s",
                      "changing the domain XML in a save image is not supported by Vireo");
        return;
    }
    if (!domain_driver_check_active(call, dom))
        return;
    if (managed && !dom->def) {
        rpc_call_fail(call, RPC_ERR_OPERATION_INVALID, "%s",
                      "cannot do managed save for transient domain");
        return;
    }
    if (managed) {
        target = domain_save_managed_path(drv, dom->name);
    } else if (!g_path_is_absolute(to)) {
        rpc_call_fail(call, RPC_ERR_INVALID_ARG, "save file '%s' is not an absolute path", to);
        return;
    } else {
        target = g_strdup(to);
    }
    dir = g_path_get_dirname(target);
    base = g_path_get_basename(target);
    if (managed && g_mkdir_with_parents(dir, 0700) < 0) {
        rpc_call_fail(call, RPC_ERR_SYSTEM_ERROR, "cannot create directory '%s': %s", dir,
                      g_strerror(errno));
        return;
    }
    /* Next to the target, so the final rename is atomic. */
    tmp = g_strdup_printf("%s/.%s.vireo-XXXXXX", dir, base);
    fd = g_mkstemp_full(tmp, O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        rpc_call_fail(call, RPC_ERR_SYSTEM_ERROR, "Failed to create file '%s': %s", target,
                      g_strerror(errno));
        return;
    }
    running = flags & SAVE_RUNNING ? TRUE : flags & SAVE_PAUSED ? FALSE :
              dom->state == RPC_DOMAIN_RUNNING;
    xml = domain_def_format(dom->live, DOMAIN_DEF_FORMAT_INACTIVE | DOMAIN_DEF_FORMAT_SECURE);
    if (!save_image_write_header(fd, xml, running, &offset, &err)) {
        unlink(tmp);
        rpc_call_fail(call, RPC_ERR_SYSTEM_ERROR, "%s", err->message);
        return;
    }
    uri = image_uri(tmp, offset);
    sc = g_new0(SaveCtx, 1);
    sc->call = call;
    sc->dom = domain_driver_ref(dom);
    sc->target = g_steal_pointer(&target);
    sc->tmp = g_steal_pointer(&tmp);
    sc->managed = managed;
    domain_driver_log(dom, "%s to '%s' requested", managed ? "managed save" : "save",
                      sc->target);
    domain_driver_job_begin(dom);
    domain_job_start_save(dom, uri, save_done, sc);
}

static void h_save(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainSaveArgs *a = args;

    save_common(call, args, opaque, &a->dom, a->to, NULL, 0, FALSE, h_save);
}

static void h_save_flags(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainSaveFlagsArgs *a = args;

    save_common(call, args, opaque, &a->dom, a->to, a->dxml, a->flags, FALSE, h_save_flags);
}

static void h_managed_save(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainManagedSaveArgs *a = args;

    save_common(call, args, opaque, &a->dom, NULL, NULL, a->flags, TRUE, h_managed_save);
}

static void h_managed_save_remove(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainManagedSaveRemoveArgs *a = args;
    DomainDriver *drv = opaque;
    Domain *dom = domain_driver_lookup(drv, call, &a->dom);
    g_autofree char *path = NULL;

    if (!dom || domain_driver_defer(dom, call, h_managed_save_remove, args) ||
        !domain_driver_check_flags(call, a->flags, 0, "vireoDomainManagedSaveRemove"))
        return;
    path = domain_save_managed_path(drv, dom->name);
    if (unlink(path) < 0 && errno != ENOENT) {
        rpc_call_fail(call, RPC_ERR_SYSTEM_ERROR,
                      "Failed to remove managed save file '%s': %s", path, g_strerror(errno));
        return;
    }
    rpc_call_reply(call, NULL);
}

/* ------------------------------------------------------------ restore */

static void restore_common(RpcCall *call, gpointer args, DomainDriver *drv, const char *from,
                           const char *dxml, guint flags, RpcHandlerFunc self)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(SaveImageHeader) h = NULL;
    g_autoptr(DomainDef) def = NULL;
    Domain *dom = NULL;
    gboolean paused;

    if (!check_save_flags(call, flags, SAVE_BYPASS_CACHE | SAVE_RUNNING | SAVE_PAUSED |
                          SAVE_RESET_NVRAM, "vireoDomainRestoreFlags"))
        return;
    if (dxml) {
        rpc_call_fail(call, RPC_ERR_OPERATION_UNSUPPORTED, "%s",
                      "changing the domain XML in a save image is not supported by Vireo");
        return;
    }
    h = save_image_read_header(from, &err);
    if (!h) {
        fail_image(call, err);
        return;
    }
    def = domain_def_parse_string(h->xml, DOMAIN_DEF_PARSE_INACTIVE, &err);
    if (!def) {
        rpc_call_fail(call, RPC_ERR_XML_ERROR, "%s", err->message);
        return;
    }
    if (!domain_driver_check_identity(drv, call, def, &dom))
        return;
    if (dom && domain_driver_defer(dom, call, self, args))
        return;
    if (dom && domain_driver_is_active(dom)) {
        rpc_call_fail(call, RPC_ERR_OPERATION_INVALID, "domain '%s' is already active",
                      dom->name);
        return;
    }
    if (!dom)
        dom = domain_driver_add(drv, def);      /* transient until defined */
    paused = flags & SAVE_PAUSED ? TRUE : flags & SAVE_RUNNING ? FALSE : !h->running;
    g_free(dom->incoming);
    dom->incoming = image_uri(from, h->data_offset);
    domain_driver_log(dom, "restore from '%s' requested", from);
    domain_driver_start(dom, g_steal_pointer(&def), START_RESTORE | (paused ? START_PAUSED : 0),
                        call, domain_driver_done_void);
}

static void h_restore(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainRestoreArgs *a = args;

    restore_common(call, args, opaque, a->from, NULL, 0, h_restore);
}

static void h_restore_flags(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainRestoreFlagsArgs *a = args;

    restore_common(call, args, opaque, a->from, a->dxml, a->flags, h_restore_flags);
}

static void h_save_image_get_xml_desc(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteDomainSaveImageGetXmlDescArgs *a = args;
    g_autoptr(GError) err = NULL;
    g_autoptr(SaveImageHeader) h = NULL;
    RemoteDomainSaveImageGetXmlDescRet ret;

    if (!domain_driver_check_flags(call, a->flags, SAVE_IMAGE_XML_SECURE,
                                   "vireoDomainSaveImageGetXMLDesc"))
        return;
    if ((a->flags & SAVE_IMAGE_XML_SECURE) && rpc_server_client_is_readonly(rpc_call_get_client(call))) {
        rpc_call_fail(call, RPC_ERR_OPERATION_DENIED, "%s",
                      "virDomainSaveImageGetXMLDesc with secure flag");
        return;
    }
    h = save_image_read_header(a->file, &err);
    if (!h) {
        fail_image(call, err);
        return;
    }
    ret.xml = h->xml;
    rpc_call_reply(call, &ret);
}

/* ------------------------------------------------------------ start with a managed save */

gboolean domain_save_prepare_managed_start(Domain *dom, RpcCall *call, DomainDef **def,
                                           guint *flags)
{
    DomainDriver *drv = dom->drv;
    g_autofree char *path = domain_save_managed_path(drv, dom->name);
    g_autoptr(GError) err = NULL;
    g_autoptr(SaveImageHeader) h = NULL;
    DomainDef *saved;

    if (!g_file_test(path, G_FILE_TEST_IS_REGULAR))
        return TRUE;
    if (*flags & START_FORCE_BOOT) {
        /* libvirt: --force-boot discards the image. */
        domain_driver_log(dom, "discarding the managed save image (force boot)");
        unlink(path);
        return TRUE;
    }
    h = save_image_read_header(path, &err);
    if (!h) {
        fail_image(call, err);
        return FALSE;
    }
    saved = domain_def_parse_string(h->xml, DOMAIN_DEF_PARSE_INACTIVE, &err);
    if (!saved) {
        rpc_call_fail(call, RPC_ERR_XML_ERROR, "%s", err->message);
        return FALSE;
    }
    domain_def_free(*def);
    *def = saved;
    g_free(dom->incoming);
    dom->incoming = image_uri(path, h->data_offset);
    *flags |= START_RESTORE | START_MANAGED_SAVE | (h->running ? 0 : START_PAUSED);
    domain_driver_log(dom, "starting from the managed save image");
    return TRUE;
}

void domain_save_managed_started(Domain *dom)
{
    g_autofree char *path = domain_save_managed_path(dom->drv, dom->name);

    /* Its guest runs now: booting that state twice would corrupt its disks. */
    if (unlink(path) < 0 && errno != ENOENT)
        g_warning("domain '%s': cannot remove %s: %s", dom->name, path, g_strerror(errno));
}

void domain_save_register(DomainDriver *drv, RpcServer *srv)
{
    static const struct {
        gint32 proc;
        RpcHandlerFunc fn;
    } procs[] = {
        { REMOTE_PROC_DOMAIN_SAVE, h_save },
        { REMOTE_PROC_DOMAIN_SAVE_FLAGS, h_save_flags },
        { REMOTE_PROC_DOMAIN_RESTORE, h_restore },
        { REMOTE_PROC_DOMAIN_RESTORE_FLAGS, h_restore_flags },
        { REMOTE_PROC_DOMAIN_SAVE_IMAGE_GET_XML_DESC, h_save_image_get_xml_desc },
        { REMOTE_PROC_DOMAIN_MANAGED_SAVE, h_managed_save },
        { REMOTE_PROC_DOMAIN_MANAGED_SAVE_REMOVE, h_managed_save_remove },
    };

    for (gsize i = 0; i < G_N_ELEMENTS(procs); i++)
        rpc_server_set_handler(srv, REMOTE_PROGRAM, procs[i].proc, procs[i].fn, drv);
}
