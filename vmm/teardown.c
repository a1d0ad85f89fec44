/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Lets the kernel destroy the KVM VM after vireo-vmm has exited (teardown.h). */
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "vireo/teardown.h"

#define TEARDOWN_MAX_FDS 256
#define TEARDOWN_WAIT_MS 10000

typedef struct TeardownArgs {
    pid_t parent;
    unsigned nr_keep;
    int keep[TEARDOWN_MAX_FDS];
} TeardownArgs;

/* Static: the helper runs on these while our heap is being freed. */
static TeardownArgs teardown_args;
static char teardown_stack[64 * 1024] __attribute__((aligned(16)));

static gboolean kept(const TeardownArgs *a, int fd)
{
    for (unsigned i = 0; i < a->nr_keep; i++) {
        if (a->keep[i] == fd)
            return TRUE;
    }
    return FALSE;
}

/*
 * The helper: raw system calls only, on its own stack, in our address
 * space (CLONE_VM) with its own copy of the fd table.
 */
static int teardown_helper(void *opaque)
{
    const TeardownArgs *a = opaque;
    int next = 0;
    int pidfd;
    struct pollfd p;

    /* Close all but the KVM fds: ranges between the kept ones. */
    for (int fd = 0; fd < 65536 && next < 65536; fd++) {
        if (kept(a, fd)) {
            if (fd > next)
                syscall(SYS_close_range, next, fd - 1, 0);
            next = fd + 1;
        }
    }
    syscall(SYS_close_range, next, ~0U, 0);

    /* Wait for vireo-vmm to be gone, then drop the VM (bounded, just in case). */
    pidfd = syscall(SYS_pidfd_open, a->parent, 0);
    if (pidfd >= 0) {
        p.fd = pidfd;
        p.events = POLLIN;
        syscall(SYS_poll, &p, 1, TEARDOWN_WAIT_MS);
    }
    syscall(SYS_exit, 0);
    return 0;
}

gboolean teardown_detach(const int *keep, unsigned n)
{
#if defined(__SANITIZE_ADDRESS__)
    /* A second task in our address space confuses the leak checker at exit. */
    return FALSE;
#else
    if (n > TEARDOWN_MAX_FDS)
        return FALSE;
    teardown_args.parent = getpid();
    teardown_args.nr_keep = n;
    for (unsigned i = 0; i < n; i++)
        teardown_args.keep[i] = keep[i];
    /*
     * CLONE_VM: our mm stays alive after we exit, so exit_mmap (and its own
     * SRCU wait for KVM's MMU notifier) happens in the helper too. No
     * CLONE_FILES: its copy of the fd table holds the KVM files open.
     */
    return clone(teardown_helper, teardown_stack + sizeof(teardown_stack),
                 CLONE_VM | SIGCHLD, &teardown_args) > 0;
#endif
}
