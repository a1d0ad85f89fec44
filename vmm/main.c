/* SPDX-License-Identifier: GPL-2.0-or-later */
/* vireo-vmm: one process per virtual machine. */
#include <signal.h>
#include <stdio.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "vireo/device.h"
#include "vireo/layout.h"
#include "vireo/loop.h"
#include "vireo/machine.h"
#include "vireo/migrate.h"
#include "vireo/options.h"
#include "vireo/qmp-commands.h"
#include "vireo/qmp.h"
#include "vireo/teardown.h"
#include "vireo/util.h"
#include "vireo/vcpu.h"

#define EXIT_STARTUP_ERROR 1

typedef struct Vmm {
    Loop *loop;
    Machine *machine;
    int signal_fd;
} Vmm;

/* SIGINT/SIGTERM/SIGHUP end the VM like QEMU does: SHUTDOWN "host-signal", status 0. */
static void on_signal(int fd, uint32_t events, void *opaque)
{
    Vmm *vmm = opaque;
    struct signalfd_siginfo si;

    if (read(fd, &si, sizeof(si)) != sizeof(si))
        return;
    g_info("terminating on signal %u", si.ssi_signo);
    machine_quit(vmm->machine, "host-signal");
}

static int setup_signals(GError **error)
{
    sigset_t set;
    int fd;

    /* vCPU threads unblock the kick signal for themselves; nobody else takes it. */
    sigemptyset(&set);
    sigaddset(&set, VCPU_KICK_SIGNAL);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigdelset(&set, VCPU_KICK_SIGNAL);
    fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (fd < 0) {
        int saved = errno;
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "signalfd: %s", g_strerror(saved));
    }
    return fd;
}

static int run(VmmOptions *opts)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(Loop) loop = NULL;
    g_autoptr(Machine) machine = NULL;
    Migrate *migrate = NULL;
    LoopSource *sig_src = NULL;
    QmpServer *qmp = NULL;
    Vmm vmm = { .signal_fd = -1 };
    int status = EXIT_STARTUP_ERROR;

    vmm.signal_fd = setup_signals(&err);
    if (vmm.signal_fd < 0)
        goto out;
    loop = loop_new(&err);
    if (!loop)
        goto out;
    vmm.loop = loop;
    machine = machine_new(opts->machine, loop, &err);
    if (!machine)
        goto out;
    vmm.machine = machine;
    migrate = migrate_new(machine, loop);
    /* TLS credentials are checked before anything runs: a bad file stops us here. */
    for (guint i = 0; i < opts->tls_creds->len; i++) {
        const VmmTlsCreds *c = g_ptr_array_index(opts->tls_creds, i);

        if (!migrate_add_tls_creds(migrate, c->id, c->dir, c->server, c->verify_peer, &err)) {
            g_prefix_error(&err, "--object: ");
            goto out;
        }
    }
    if (opts->migrate_tls_creds && !migrate_set_tls_creds(migrate, opts->migrate_tls_creds, &err))
        goto out;
    /* Before the start, so clients can connect to a VM waiting in -S. */
    if (opts->qmp) {
        qmp = qmp_server_new(opts->qmp, loop, &err);
        if (!qmp)
            goto out;
        qmp_commands_register(qmp, machine);
        migrate_qmp_register(migrate, qmp);
    }
    sig_src = loop_add_fd(loop, vmm.signal_fd, EPOLLIN, on_signal, &vmm, &err);
    if (!sig_src || !machine_start(machine, &err))
        goto out;
    if (opts->incoming &&
        !migrate_incoming(migrate, opts->incoming, !opts->machine->start_paused, &err))
        goto out;
    status = loop_run(loop);

out:
    if (err)
        fprintf(stderr, "vireo-vmm: %s\n", err->message);
    loop_source_remove(sig_src);
    /* The reply to "quit" and the SHUTDOWN event must reach the clients. */
    if (qmp)
        qmp_server_flush(qmp, 1000);
    /* Its threads may still use the machine. */
    g_clear_pointer(&migrate, migrate_free);
    if (machine) {
        int fds[LAYOUT_MAX_CPUS + 2];
        teardown_detach(fds, machine_kvm_fds(machine, fds, G_N_ELEMENTS(fds)));
    }
    g_clear_pointer(&machine, machine_free);
    /* The server owns loop sources: free it before the loop. */
    g_clear_pointer(&qmp, qmp_server_free);
    if (vmm.signal_fd >= 0)
        close(vmm.signal_fd);
    return status;
}

int main(int argc, char **argv)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(VmmOptions) opts = vmm_options_parse(argc, argv, &err);

    if (!opts) {
        fprintf(stderr, "vireo-vmm: %s\n", err->message);
        return EXIT_STARTUP_ERROR;
    }
    if (opts->help) {
        fputs(vmm_usage, stdout);
        return 0;
    }
    if (opts->list_devices) {
        g_autoptr(GPtrArray) types = device_type_list();
        for (guint i = 0; i < types->len; i++) {
            const DeviceType *t = g_ptr_array_index(types, i);
            if (t->create)
                printf("%-16s %s\n", t->name, t->description ? t->description : "");
        }
        return 0;
    }
    if (opts->version) {
        printf("vireo-vmm %s\n", VIREO_VERSION);
        return 0;
    }
    return run(opts);
}
