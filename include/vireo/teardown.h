/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Destroying a KVM VM waits for SRCU grace periods in the host kernel:
 * 17-23 ms on the nested host we measured, longer than a short VM's whole
 * life, and nobody needs to wait for it. teardown_detach() hands the last
 * references to the KVM fds to a helper process that shares our address
 * space, so the kernel destroys the VM after vireo-vmm has exited and
 * whoever started it (the daemon, a test, a user) sees it end at once.
 */
#ifndef VIREO_TEARDOWN_H
#define VIREO_TEARDOWN_H

#include <glib.h>

/*
 * Call on the way out, before the fds are closed: @keep are the KVM fds
 * (VM, vCPUs, /dev/kvm). The helper closes every other fd at once, so
 * sockets and pipes see EOF when we exit, and ends when we are gone.
 * Returns FALSE (and does nothing) where it cannot help.
 */
gboolean teardown_detach(const int *keep, unsigned n);

#endif
