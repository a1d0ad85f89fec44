/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Supervision of one vireo-vmm (include/vireo/domain-process.h). */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <glib-unix.h>

#include "vireo/domain-process.h"
#include "vireo/util.h"

#define READY_RETRY_MS 5
/* How long QMP may take to reach EOF after the process is gone. */
#define VM_PROCESS_EXIT_DRAIN_MS 1000

struct VmProcess {
    GMainContext *ctx;
    VmProcessCallbacks cb;
    gpointer opaque;
    pid_t pid;
    gboolean is_child;
    int pidfd;
    GSource *pid_watch;
    gboolean exited;
    int wait_status;
    GSource *exit_delivery;  /* waits for QMP's EOF so the last events come first */
    char *qmp_path;
    char *console_path;
    QmpClient *qmp;

    /* wait_ready() */
    VmProcessReadyFunc ready_cb;
    gpointer ready_opaque;
    GSource *retry;
    gint64 deadline;
    gboolean ready;

    /* console */
    int con_fd;
    GSource *con_watch;
    GIOCondition con_cond;
    GByteArray *con_buf;     /* output waiting for a sink */
    GByteArray *con_out;     /* input waiting to be written */
    VmConsoleSink sink;
    gpointer sink_opaque;
};

static int sys_pidfd_open(pid_t pid)
{
    return syscall(SYS_pidfd_open, pid, 0);
}

static void console_close(VmProcess *vm)
{
    if (vm->con_watch) {
        g_source_destroy(vm->con_watch);
        g_clear_pointer(&vm->con_watch, g_source_unref);
    }
    if (vm->con_fd >= 0) {
        close(vm->con_fd);
        vm->con_fd = -1;
    }
}

static void ready_done(VmProcess *vm, const char *status, GError *error)
{
    g_autoptr(GError) err = error;
    VmProcessReadyFunc cb = vm->ready_cb;

    if (vm->retry) {
        g_source_destroy(vm->retry);
        g_clear_pointer(&vm->retry, g_source_unref);
    }
    vm->ready_cb = NULL;
    vm->ready = !err;
    if (cb)
        cb(vm, status, err, vm->ready_opaque);
}

static gboolean deliver_exit(gpointer data)
{
    VmProcess *vm = data;

    g_clear_pointer(&vm->exit_delivery, g_source_unref);
    if (vm->cb.exited)
        vm->cb.exited(vm, vm->wait_status, vm->opaque);   /* may free @vm */
    return G_SOURCE_REMOVE;
}

static gboolean on_pidfd(gint fd, GIOCondition cond, gpointer data)
{
    VmProcess *vm = data;

    g_clear_pointer(&vm->pid_watch, g_source_unref);
    vm->exited = TRUE;
    vm->wait_status = -1;
    if (vm->is_child) {
        int status;

        if (waitpid(vm->pid, &status, WNOHANG) == vm->pid)
            vm->wait_status = status;
    }
    if (vm->ready_cb) {
        g_autofree char *how = vm->wait_status < 0 ? g_strdup("exited") :
            WIFEXITED(vm->wait_status) ?
                g_strdup_printf("exited with status %d", WEXITSTATUS(vm->wait_status)) :
                g_strdup_printf("was killed by signal %d", WTERMSIG(vm->wait_status));

        ready_done(vm, NULL, g_error_new(VIREO_ERROR, VIREO_ERROR_FAILED,
                                         "vireo-vmm %s while the daemon was connecting to it",
                                         how));
        return G_SOURCE_REMOVE;
    }
    if (!vm->ready)
        return G_SOURCE_REMOVE;
    /*
     * The pidfd can win the race against the socket: read what vireo-vmm
     * said before dying (SHUTDOWN and its reason) before reporting the exit.
     */
    vm->exit_delivery = g_timeout_source_new(vm->qmp && !qmp_client_is_closed(vm->qmp) ?
                                             VM_PROCESS_EXIT_DRAIN_MS : 0);
    g_source_set_callback(vm->exit_delivery, deliver_exit, vm, NULL);
    g_source_attach(vm->exit_delivery, vm->ctx);
    return G_SOURCE_REMOVE;
}

static VmProcess *vm_new(GMainContext *ctx, pid_t pid, const char *qmp_path,
                         const char *console_path, const VmProcessCallbacks *cb,
                         gpointer opaque, GError **error)
{
    VmProcess *vm = g_new0(VmProcess, 1);

    vm->ctx = g_main_context_ref(ctx ? ctx : g_main_context_default());
    vm->cb = *cb;
    vm->opaque = opaque;
    vm->pid = pid;
    vm->con_fd = -1;
    vm->qmp_path = g_strdup(qmp_path);
    vm->console_path = g_strdup(console_path);
    vm->con_buf = g_byte_array_new();
    vm->con_out = g_byte_array_new();
    vm->pidfd = sys_pidfd_open(pid);
    if (vm->pidfd < 0) {
        int saved = errno;

        g_set_error(error, VIREO_ERROR, VIREO_ERROR_FAILED, "pidfd_open(%d): %s", pid,
                    g_strerror(saved));
        vm_process_free(vm);
        return NULL;
    }
    vm->pid_watch = g_unix_fd_source_new(vm->pidfd, G_IO_IN);
    g_source_set_callback(vm->pid_watch, (GSourceFunc)(void (*)(void))on_pidfd, vm, NULL);
    g_source_attach(vm->pid_watch, vm->ctx);
    return vm;
}

static void child_setup(gpointer data)
{
    /* Its own session: no SIGHUP or terminal signals meant for the daemon. */
    setsid();
}

VmProcess *vm_process_spawn(GMainContext *ctx, char **argv, int log_fd, const char *qmp_path,
                            const char *console_path, const VmProcessCallbacks *cb,
                            gpointer opaque, GError **error)
{
    GPid pid;
    VmProcess *vm;

    if (!g_spawn_async_with_pipes_and_fds(NULL, (const char *const *)argv, NULL,
                                          G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDIN_FROM_DEV_NULL,
                                          child_setup, NULL, -1, log_fd, log_fd, NULL, NULL, 0,
                                          &pid, NULL, NULL, NULL, error))
        return NULL;
    vm = vm_new(ctx, pid, qmp_path, console_path, cb, opaque, error);
    if (!vm) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return NULL;
    }
    vm->is_child = TRUE;
    return vm;
}

VmProcess *vm_process_adopt(GMainContext *ctx, pid_t pid, const char *qmp_path,
                            const char *console_path, const VmProcessCallbacks *cb,
                            gpointer opaque, GError **error)
{
    return vm_new(ctx, pid, qmp_path, console_path, cb, opaque, error);
}

void vm_process_free(VmProcess *vm)
{
    if (!vm)
        return;
    vm->ready_cb = NULL;
    if (vm->retry) {
        g_source_destroy(vm->retry);
        g_source_unref(vm->retry);
    }
    if (vm->pid_watch) {
        g_source_destroy(vm->pid_watch);
        g_source_unref(vm->pid_watch);
    }
    if (vm->exit_delivery) {
        g_source_destroy(vm->exit_delivery);
        g_source_unref(vm->exit_delivery);
    }
    if (vm->pidfd >= 0)
        close(vm->pidfd);
    /* A child that is gone but not reaped yet. */
    if (vm->is_child && vm->exited)
        waitpid(vm->pid, NULL, WNOHANG);
    console_close(vm);
    g_clear_pointer(&vm->qmp, qmp_client_free);
    g_byte_array_unref(vm->con_buf);
    g_byte_array_unref(vm->con_out);
    g_free(vm->qmp_path);
    g_free(vm->console_path);
    g_main_context_unref(vm->ctx);
    g_free(vm);
}

/* ---- console ---- */

static void console_update(VmProcess *vm);

static gboolean on_console(gint fd, GIOCondition cond, gpointer data)
{
    VmProcess *vm = data;
    guint8 buf[4096];

    if (cond & G_IO_OUT && vm->con_out->len) {
        ssize_t n = send(fd, vm->con_out->data, vm->con_out->len, MSG_NOSIGNAL);

        if (n > 0)
            g_byte_array_remove_range(vm->con_out, 0, n);
        else if (n < 0 && errno != EAGAIN && errno != EINTR)
            g_byte_array_set_size(vm->con_out, 0);
    }
    if (cond & (G_IO_IN | G_IO_HUP | G_IO_ERR)) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);

        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            g_clear_pointer(&vm->con_watch, g_source_unref);
            close(vm->con_fd);
            vm->con_fd = -1;
            return G_SOURCE_REMOVE;
        }
        if (n > 0) {
            if (vm->sink) {
                vm->sink(buf, n, vm->sink_opaque);
            } else {
                g_byte_array_append(vm->con_buf, buf, n);
                if (vm->con_buf->len > VM_PROCESS_CONSOLE_BUFFER)
                    g_byte_array_remove_range(vm->con_buf, 0,
                                              vm->con_buf->len - VM_PROCESS_CONSOLE_BUFFER);
            }
        }
    }
    console_update(vm);
    return G_SOURCE_CONTINUE;
}

static void console_update(VmProcess *vm)
{
    GIOCondition want = G_IO_IN | (vm->con_out->len ? G_IO_OUT : 0);

    if (vm->con_fd < 0 || (vm->con_watch && vm->con_cond == want))
        return;
    if (vm->con_watch) {
        g_source_destroy(vm->con_watch);
        g_source_unref(vm->con_watch);
    }
    vm->con_watch = g_unix_fd_source_new(vm->con_fd, want);
    vm->con_cond = want;
    g_source_set_callback(vm->con_watch, (GSourceFunc)(void (*)(void))on_console, vm, NULL);
    g_source_attach(vm->con_watch, vm->ctx);
}

static void console_connect(VmProcess *vm)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    autoclose int fd = -1;

    if (!vm->console_path || strlen(vm->console_path) >= sizeof(addr.sun_path))
        return;
    strcpy(addr.sun_path, vm->console_path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        g_warning("cannot connect to the console of vireo-vmm %d (%s): %s", vm->pid,
                  vm->console_path, g_strerror(errno));
        return;
    }
    vm->con_fd = vireo_steal_fd(&fd);
    console_update(vm);
}

gboolean vm_process_has_console(VmProcess *vm)
{
    return vm->con_fd >= 0;
}

void vm_process_console_attach(VmProcess *vm, VmConsoleSink sink, gpointer opaque)
{
    vm->sink = sink;
    vm->sink_opaque = opaque;
    if (sink && vm->con_buf->len) {
        g_autoptr(GByteArray) pending = vm->con_buf;

        vm->con_buf = g_byte_array_new();
        sink(pending->data, pending->len, opaque);
    }
}

void vm_process_console_detach(VmProcess *vm)
{
    vm->sink = NULL;
    vm->sink_opaque = NULL;
}

void vm_process_console_write(VmProcess *vm, const guint8 *data, gsize len)
{
    if (vm->con_fd < 0)
        return;
    /* A client typing faster than the guest reads: keep a bounded backlog. */
    if (vm->con_out->len + len > VM_PROCESS_CONSOLE_BUFFER)
        return;
    g_byte_array_append(vm->con_out, data, len);
    console_update(vm);
}

/* ---- QMP ---- */

static void on_qmp_event(QmpClient *c, const char *event, JsonValue *data, gpointer opaque)
{
    VmProcess *vm = opaque;

    if (vm->ready && vm->cb.event)
        vm->cb.event(vm, event, data, vm->opaque);
}

static void on_qmp_closed(QmpClient *c, const GError *error, gpointer opaque)
{
    VmProcess *vm = opaque;

    /* The pidfd tells when the process is gone; an EOF alone proves nothing. */
    g_debug("QMP of vireo-vmm %d closed: %s", vm->pid, error ? error->message : "EOF");
    if (vm->exit_delivery) {
        /* Everything it said has been read: report the exit now. */
        g_source_destroy(vm->exit_delivery);
        g_source_unref(vm->exit_delivery);
        vm->exit_delivery = g_idle_source_new();
        g_source_set_callback(vm->exit_delivery, deliver_exit, vm, NULL);
        g_source_attach(vm->exit_delivery, vm->ctx);
    }
}

static void on_query_status(QmpClient *c, JsonValue *ret, const GError *error, gpointer opaque)
{
    VmProcess *vm = opaque;
    const char *status = ret && json_get_type(ret) == JSON_OBJECT ?
                         json_object_get_string(ret, "status") : NULL;

    if (!vm->ready_cb)
        return;
    if (error || !status) {
        ready_done(vm, NULL, g_error_new(VIREO_ERROR, VIREO_ERROR_FAILED,
                                         "vireo-vmm %d: query-status: %s", vm->pid,
                                         error ? error->message : "no status"));
        return;
    }
    console_connect(vm);
    ready_done(vm, status, NULL);
}

static gboolean try_connect(gpointer data)
{
    VmProcess *vm = data;
    g_autoptr(GError) err = NULL;
    guint remaining;

    if (vm->exited)
        return G_SOURCE_CONTINUE;       /* on_pidfd() reports it */
    if (!vm->qmp)
        vm->qmp = qmp_client_new(vm->ctx, on_qmp_event, on_qmp_closed, vm);
    if (!qmp_client_connect(vm->qmp, vm->qmp_path, &err)) {
        if (g_get_monotonic_time() < vm->deadline)
            return G_SOURCE_CONTINUE;
        ready_done(vm, NULL, g_error_new(VIREO_ERROR, VIREO_ERROR_FAILED,
                                         "vireo-vmm %d: %s", vm->pid, err->message));
        return G_SOURCE_REMOVE;
    }
    g_clear_pointer(&vm->retry, g_source_unref);
    remaining = MAX((vm->deadline - g_get_monotonic_time()) / 1000, 1);
    qmp_client_execute(vm->qmp, "query-status", NULL, remaining, on_query_status, vm);
    return G_SOURCE_REMOVE;
}

void vm_process_wait_ready(VmProcess *vm, guint timeout_ms, VmProcessReadyFunc cb,
                           gpointer opaque)
{
    g_return_if_fail(!vm->ready_cb && !vm->ready);
    vm->ready_cb = cb;
    vm->ready_opaque = opaque;
    vm->deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    if (vm->exited) {
        ready_done(vm, NULL, g_error_new(VIREO_ERROR, VIREO_ERROR_FAILED,
                                         "vireo-vmm %d is gone", vm->pid));
        return;
    }
    if (try_connect(vm) == G_SOURCE_REMOVE)
        return;
    vm->retry = g_timeout_source_new(READY_RETRY_MS);
    g_source_set_callback(vm->retry, try_connect, vm, NULL);
    g_source_attach(vm->retry, vm->ctx);
}

pid_t vm_process_get_pid(VmProcess *vm)
{
    return vm->pid;
}

QmpClient *vm_process_get_qmp(VmProcess *vm)
{
    return vm->qmp;
}

gboolean vm_process_has_exited(VmProcess *vm)
{
    return vm->exited;
}

gboolean vm_process_kill(VmProcess *vm, int sig, GError **error)
{
    int saved;

    if (vm->exited)
        return TRUE;
    /* Through the pidfd: never a reused pid. */
    if (syscall(SYS_pidfd_send_signal, vm->pidfd, sig, NULL, 0) == 0 || errno == ESRCH)
        return TRUE;
    saved = errno;
    g_set_error(error, VIREO_ERROR, VIREO_ERROR_FAILED, "cannot send signal %d to vireo-vmm %d: %s",
                sig, vm->pid, g_strerror(saved));
    return FALSE;
}
