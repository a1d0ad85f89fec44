/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The QMP commands and events of a Machine, in QEMU 7.2's shapes:
 * query-status, stop, cont, system_powerdown, system_reset, quit,
 * query-cpus-fast, query-version and query-name (qmp_capabilities and
 * query-commands are built into the server), balloon and query-balloon
 * (with "guest-stats" added, see vmm/qmp-commands.c), and the events
 * SHUTDOWN, POWERDOWN, RESET, STOP, RESUME and BALLOON_CHANGE.
 */
#ifndef VIREO_QMP_COMMANDS_H
#define VIREO_QMP_COMMANDS_H

#include "vireo/machine.h"
#include "vireo/qmp.h"

/*
 * Registers the commands on @server and a listener on @m that turns its
 * events into QMP events. Both keep pointers to the other: the machine
 * must not emit events (run its loop) after @server is freed.
 */
void qmp_commands_register(QmpServer *server, Machine *m);

#endif
