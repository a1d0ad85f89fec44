/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Machine commands and events for QMP. Replies build their objects in the
 * key order QEMU 7.2 prints them, so a byte-wise diff against QEMU is clean.
 */
#include "vireo/qmp-commands.h"
#include "vireo/virtio-balloon.h"

static JsonValue *cmd_query_status(const JsonValue *args, void *opaque, GError **error)
{
    Machine *m = opaque;
    RunState state = machine_run_state(m);
    JsonValue *info;

    if (!qmp_check_args(args, NULL, error))
        return NULL;
    info = json_new_object();
    json_object_set_string(info, "status", run_state_name(state));
    /* Kept by QEMU 7.2 for compatibility; we never single-step. */
    json_object_set_bool(info, "singlestep", FALSE);
    json_object_set_bool(info, "running", state == RUN_STATE_RUNNING);
    return info;
}

static JsonValue *cmd_stop(const JsonValue *args, void *opaque, GError **error)
{
    if (!qmp_check_args(args, NULL, error))
        return NULL;
    machine_stop(opaque);
    return json_new_object();
}

static JsonValue *cmd_cont(const JsonValue *args, void *opaque, GError **error)
{
    if (!qmp_check_args(args, NULL, error) || !machine_cont(opaque, error))
        return NULL;
    return json_new_object();
}

static JsonValue *cmd_system_powerdown(const JsonValue *args, void *opaque, GError **error)
{
    if (!qmp_check_args(args, NULL, error))
        return NULL;
    machine_powerdown(opaque);
    return json_new_object();
}

static JsonValue *cmd_system_reset(const JsonValue *args, void *opaque, GError **error)
{
    if (!qmp_check_args(args, NULL, error))
        return NULL;
    machine_system_reset(opaque);
    return json_new_object();
}

static JsonValue *cmd_quit(const JsonValue *args, void *opaque, GError **error)
{
    if (!qmp_check_args(args, NULL, error))
        return NULL;
    /* Ends the loop; main() flushes the reply and SHUTDOWN before exiting. */
    machine_quit(opaque, "host-qmp-quit");
    return json_new_object();
}

static JsonValue *cmd_query_cpus_fast(const JsonValue *args, void *opaque, GError **error)
{
    Machine *m = opaque;
    g_autoptr(JsonValue) list = NULL;

    if (!qmp_check_args(args, NULL, error))
        return NULL;
    list = json_new_array();
    for (unsigned i = 0; i < machine_nr_cpus(m); i++) {
        JsonValue *cpu = json_new_object();
        JsonValue *props = json_new_object();
        g_autofree char *qom_path = g_strdup_printf("/machine/unattached/device[%u]", i);

        /* One socket, one thread per core: a vCPU is a core, as with -smp N. */
        json_object_set_int(props, "core-id", i);
        json_object_set_int(props, "thread-id", 0);
        json_object_set_int(props, "socket-id", 0);
        json_object_set_int(cpu, "thread-id", machine_vcpu_thread_id(m, i));
        json_object_set(cpu, "props", props);
        json_object_set_string(cpu, "qom-path", qom_path);
        json_object_set_int(cpu, "cpu-index", i);
        json_object_set_string(cpu, "target", "x86_64");
        json_array_append(list, cpu);
    }
    return g_steal_pointer(&list);
}

static JsonValue *cmd_query_version(const JsonValue *args, void *opaque, GError **error)
{
    if (!qmp_check_args(args, NULL, error))
        return NULL;
    return qmp_build_version_info();
}

static JsonValue *cmd_query_name(const JsonValue *args, void *opaque, GError **error)
{
    const char *name = machine_name(opaque);
    JsonValue *info;

    if (!qmp_check_args(args, NULL, error))
        return NULL;
    info = json_new_object();
    /* QEMU leaves "name" out when the VM has none. */
    if (name)
        json_object_set_string(info, "name", name);
    return info;
}

/* The balloon, or QEMU's DeviceNotActive error. */
static Device *balloon_device(Machine *m, GError **error)
{
    Device *dev = machine_find_device(m, VIRTIO_BALLOON_TYPE_NAME);

    if (!dev)
        g_set_error(error, QMP_ERROR, QMP_ERROR_DEVICE_NOT_ACTIVE,
                    "No balloon device has been activated");
    return dev;
}

static JsonValue *cmd_balloon(const JsonValue *args, void *opaque, GError **error)
{
    static const char *const allowed[] = { "value", NULL };
    int64_t value = 0;
    Device *dev;

    if (!qmp_check_args(args, allowed, error) ||
        !qmp_get_int_arg(args, "value", TRUE, &value, error))
        return NULL;
    if (value <= 0) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "Parameter 'target' expects a size");
        return NULL;
    }
    dev = balloon_device(opaque, error);
    if (!dev)
        return NULL;
    virtio_balloon_set_target(dev, value);
    return json_new_object();
}

/*
 * QEMU's {"actual": bytes}, plus "guest-stats": what QEMU gives through
 * qom-get of the balloon's guest-stats property, in its shape (-1 for a
 * statistic the guest does not report, "last-update" 0 before any).
 */
static JsonValue *cmd_query_balloon(const JsonValue *args, void *opaque, GError **error)
{
    VirtioBalloonInfo bi;
    JsonValue *info, *guest_stats, *stats;
    Device *dev;

    if (!qmp_check_args(args, NULL, error))
        return NULL;
    dev = balloon_device(opaque, error);
    if (!dev)
        return NULL;
    virtio_balloon_get_info(dev, &bi);
    stats = json_new_object();
    for (unsigned i = 0; i < VIRTIO_BALLOON_S_NR; i++)
        json_object_set_int(stats, virtio_balloon_stat_name(i),
                            bi.stats[i] > G_MAXINT64 ? -1 : (int64_t)bi.stats[i]);
    guest_stats = json_new_object();
    json_object_set(guest_stats, "stats", stats);
    json_object_set_int(guest_stats, "last-update", bi.stats_updated);
    info = json_new_object();
    json_object_set_int(info, "actual", bi.actual);
    json_object_set(info, "guest-stats", guest_stats);
    return info;
}

static const struct {
    const char *name;
    QmpCommandFn fn;
} qmp_machine_commands[] = {
    { "query-status", cmd_query_status },
    { "stop", cmd_stop },
    { "cont", cmd_cont },
    { "system_powerdown", cmd_system_powerdown },
    { "system_reset", cmd_system_reset },
    { "quit", cmd_quit },
    { "query-cpus-fast", cmd_query_cpus_fast },
    { "query-version", cmd_query_version },
    { "query-name", cmd_query_name },
    { "balloon", cmd_balloon },
    { "query-balloon", cmd_query_balloon },
};

static const struct {
    const char *name;
    gboolean has_cause;         /* data: {"guest": bool, "reason": ShutdownCause} */
} qmp_machine_events[] = {
    [MACHINE_EVENT_SHUTDOWN] = { "SHUTDOWN", TRUE },
    [MACHINE_EVENT_POWERDOWN] = { "POWERDOWN", FALSE },
    [MACHINE_EVENT_RESET] = { "RESET", TRUE },
    [MACHINE_EVENT_STOP] = { "STOP", FALSE },
    [MACHINE_EVENT_RESUME] = { "RESUME", FALSE },
};

static void on_machine_event(const MachineEvent *ev, void *opaque)
{
    QmpServer *server = opaque;
    JsonValue *data = NULL;

    g_assert((unsigned)ev->kind < G_N_ELEMENTS(qmp_machine_events));
    if (qmp_machine_events[ev->kind].has_cause) {
        data = json_new_object();
        json_object_set_bool(data, "guest", ev->guest);
        json_object_set_string(data, "reason", ev->reason ? ev->reason : "none");
    }
    qmp_server_emit_event(server, qmp_machine_events[ev->kind].name, data);
}

static void on_balloon_change(uint64_t actual, void *opaque)
{
    JsonValue *data = json_new_object();

    json_object_set_int(data, "actual", actual);
    qmp_server_emit_event(opaque, "BALLOON_CHANGE", data);
}

void qmp_commands_register(QmpServer *server, Machine *m)
{
    Device *balloon = machine_find_device(m, VIRTIO_BALLOON_TYPE_NAME);

    for (size_t i = 0; i < G_N_ELEMENTS(qmp_machine_commands); i++)
        qmp_server_register(server, qmp_machine_commands[i].name, qmp_machine_commands[i].fn, m);
    machine_add_listener(m, on_machine_event, server);
    if (balloon)
        virtio_balloon_set_change_fn(balloon, on_balloon_change, server);
}
