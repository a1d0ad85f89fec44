/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What a device may ask of the machine as a whole: reset it, power it off,
 * end the VMM with a status (isa-debug-exit). Requests are asynchronous: the
 * machine stops the vCPUs and acts from its event loop, so a device can
 * make one from a vCPU thread with its lock held.
 */
#ifndef VIREO_MACHINE_CONTROL_H
#define VIREO_MACHINE_CONTROL_H

typedef enum {
    MACHINE_REQUEST_RESET,
    MACHINE_REQUEST_POWEROFF,
    MACHINE_REQUEST_EXIT,       /* with an exit status */
} MachineRequest;

typedef struct MachineControl MachineControl;
struct MachineControl {
    void (*request)(MachineControl *mc, MachineRequest req, int status);
};

static inline void machine_control_request(MachineControl *mc, MachineRequest req, int status)
{
    if (mc)
        mc->request(mc, req, status);
}

#endif
