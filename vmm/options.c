/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Command-line parsing for vireo-vmm. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "vireo/device.h"
#include "vireo/layout.h"
#include "vireo/options.h"
#include "vireo/util.h"

const char vmm_usage[] =
    "Usage: vireo-vmm --kernel FILE [options]\n"
    "\n"
    "Runs one virtual machine on /dev/kvm.\n"
    "\n"
    "  --kernel FILE      kernel to boot directly: ELF64 (vmlinux) or bzImage\n"
    "  --initrd FILE      initial ramdisk\n"
    "  --cmdline STR      kernel command line\n"
    "  --memory SIZE      guest RAM in MiB, or with a suffix M or G (default 128)\n"
    "  --cpus N           number of vCPUs (default 1)\n"
    "  --serial SPEC      where the serial port (COM1) goes: stdio (default), pty,\n"
    "                     file:PATH, unix:PATH (a listening socket) or none\n"
    "  --console virtio|serial\n"
    "                     the guest console: COM1 (serial, default) or port 0 of the\n"
    "                     virtio-console device (hvc0), which then gets the --serial\n"
    "                     backend while COM1 gets none\n"
    "  --channel name=NAME,socket=PATH\n"
    "                     a named virtio-console port (e.g. org.qemu.guest_agent.0)\n"
    "                     on a listening UNIX socket (repeatable; all are ports of\n"
    "                     one virtio-console device: an earlier --device\n"
    "                     virtio-console if there is one)\n"
    "  --qmp unix:PATH    QMP control socket (QEMU's QMP protocol)\n"
    "  --incoming URI     wait for a migration stream instead of booting: unix:PATH,\n"
    "                     tcp:HOST:PORT, fd:N, file:PATH, or defer (QMP\n"
    "                     migrate-incoming gives the URI)\n"
    "  --object tls-creds-x509,id=ID,dir=DIR[,endpoint=server|client][,verify-peer=on|off]\n"
    "                     TLS credentials for migration, as QEMU's (DIR/ca-cert.pem,\n"
    "                     server-cert.pem and server-key.pem or client-cert.pem and\n"
    "                     client-key.pem); repeatable\n"
    "  --migrate-tls-creds ID\n"
    "                     migrate over TLS with the --object of that id from the start\n"
    "                     (QMP migrate-set-parameters tls-creds), e.g. for --incoming\n"
    "  --device TYPE[,id=ID][,key=value...]\n"
    "                     add a device (repeatable; PCI devices take slots 1, 2, ...\n"
    "                     in the order given); --device help lists the types\n"
    "  --rng[=OPTS]       virtio entropy source, as --device virtio-rng[,OPTS]\n"
    "  --balloon[=OPTS]   memory balloon, as --device virtio-balloon[,OPTS]\n"
    "  --vsock cid=N,socket=PATH\n"
    "                     virtio-vsock, host side on UNIX sockets PATH and PATH_PORT,\n"
    "                     as --device virtio-vsock,cid=N,socket=PATH\n"
    "  --net tap=NAME|fd=N|fds=N:M..[,mac=MAC][,queues=N]\n"
    "                     virtio network card on a tap (or open tap/socket fds), as\n"
    "                     --device virtio-net,OPTS (repeatable)\n"
    "  --disk path=FILE[,format=raw|qcow2][,readonly=on][,serial=S][,queues=N]\n"
    "                     virtio disk on a raw or qcow2 image (format probed when\n"
    "                     not given), as --device virtio-blk,OPTS (repeatable)\n"
    "  --name NAME        name of the VM (query-name, thread names)\n"
    "  --debug-exit       isa-debug-exit device at port 0x501: a write of V ends\n"
    "                     vireo-vmm with status (V << 1) | 1\n"
    "  --no-reboot        exit instead of rebooting when the guest resets\n"
    "  -S                 do not start the vCPUs until QMP \"cont\"\n"
    "  --help             this text\n"
    "  --version          print the version\n"
    "\n"
    "Exit status: 0 when the guest powers off or QMP \"quit\" is used, 1 on bad\n"
    "options or start-up errors, 2 when the guest crashes (triple fault or an\n"
    "exit KVM cannot handle; the vCPU registers are printed), and (V << 1) | 1\n"
    "after an isa-debug-exit write of V.\n";

enum {
    OPT_KERNEL = 256,
    OPT_INITRD,
    OPT_CMDLINE,
    OPT_MEMORY,
    OPT_CPUS,
    OPT_SERIAL,
    OPT_CONSOLE,
    OPT_CHANNEL,
    OPT_QMP,
    OPT_INCOMING,
    OPT_NAME,
    OPT_DEVICE,
    OPT_DEBUG_EXIT,
    OPT_NO_REBOOT,
    OPT_RNG,
    OPT_BALLOON,
    OPT_VSOCK,
    OPT_NET,
    OPT_DISK,
    OPT_OBJECT,
    OPT_MIGRATE_TLS_CREDS,
    OPT_HELP,
    OPT_VERSION,
};

static const struct option long_options[] = {
    { "kernel", required_argument, NULL, OPT_KERNEL },
    { "initrd", required_argument, NULL, OPT_INITRD },
    { "cmdline", required_argument, NULL, OPT_CMDLINE },
    { "memory", required_argument, NULL, OPT_MEMORY },
    { "cpus", required_argument, NULL, OPT_CPUS },
    { "serial", required_argument, NULL, OPT_SERIAL },
    { "console", required_argument, NULL, OPT_CONSOLE },
    { "channel", required_argument, NULL, OPT_CHANNEL },
    { "qmp", required_argument, NULL, OPT_QMP },
    { "incoming", required_argument, NULL, OPT_INCOMING },
    { "name", required_argument, NULL, OPT_NAME },
    { "device", required_argument, NULL, OPT_DEVICE },
    { "debug-exit", no_argument, NULL, OPT_DEBUG_EXIT },
    { "no-reboot", no_argument, NULL, OPT_NO_REBOOT },
    { "rng", optional_argument, NULL, OPT_RNG },
    { "balloon", optional_argument, NULL, OPT_BALLOON },
    { "vsock", required_argument, NULL, OPT_VSOCK },
    { "net", required_argument, NULL, OPT_NET },
    { "disk", required_argument, NULL, OPT_DISK },
    { "object", required_argument, NULL, OPT_OBJECT },
    { "migrate-tls-creds", required_argument, NULL, OPT_MIGRATE_TLS_CREDS },
    { "help", no_argument, NULL, OPT_HELP },
    { "version", no_argument, NULL, OPT_VERSION },
    { NULL, 0, NULL, 0 },
};

void vmm_options_free(VmmOptions *opts)
{
    if (!opts)
        return;
    machine_config_free(opts->machine);
    g_free(opts->qmp);
    g_free(opts->incoming);
    g_ptr_array_unref(opts->tls_creds);
    g_free(opts->migrate_tls_creds);
    g_free(opts);
}

gboolean vmm_parse_memory(const char *s, uint64_t *bytes, GError **error)
{
    char *end;
    guint64 v;
    uint64_t unit = LAYOUT_MIB;

    errno = 0;
    v = g_ascii_strtoull(s, &end, 10);
    if (end == s || errno) {
        goto bad;
    }
    if (g_ascii_strcasecmp(end, "G") == 0 || g_ascii_strcasecmp(end, "GiB") == 0)
        unit = LAYOUT_GIB;
    else if (*end && g_ascii_strcasecmp(end, "M") != 0 && g_ascii_strcasecmp(end, "MiB") != 0)
        goto bad;
    if (v == 0 || v > LAYOUT_MAX_MEMORY / unit)
        goto bad;
    *bytes = v * unit;
    return TRUE;

bad:
    g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                "--memory '%s': expected a size in MiB such as 512, 512M or 2G", s);
    return FALSE;
}

static gboolean parse_cpus(const char *s, unsigned *cpus, GError **error)
{
    char *end;
    guint64 v;

    errno = 0;
    v = g_ascii_strtoull(s, &end, 10);
    if (end == s || *end || errno || v < 1 || v > LAYOUT_MAX_CPUS) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "--cpus '%s': expected a number from 1 to %d", s, LAYOUT_MAX_CPUS);
        return FALSE;
    }
    *cpus = v;
    return TRUE;
}

/*
 * "TYPE[,id=ID][,key=value...]": the type and id are ours, the rest goes
 * to the device, which checks it.
 */
static gboolean parse_device(MachineConfig *cfg, const char *arg, GError **error)
{
    g_auto(GStrv) parts = g_strsplit(arg, ",", 2);
    g_autoptr(GString) rest = g_string_new(NULL);
    g_autofree char *id = NULL;

    if (!parts[0] || !*parts[0]) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "--device '%s': expected TYPE[,key=value...]", arg);
        return FALSE;
    }
    if (parts[1]) {
        g_auto(GStrv) opts = g_strsplit(parts[1], ",", -1);
        for (char **o = opts; *o; o++) {
            if (g_str_has_prefix(*o, "id=")) {
                g_free(id);
                id = g_strdup(*o + 3);
                continue;
            }
            if (rest->len)
                g_string_append_c(rest, ',');
            g_string_append(rest, *o);
        }
    }
    if (id && (!*id || strchr(id, '/'))) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "--device '%s': id must be a non-empty name without '/'", arg);
        return FALSE;
    }
    machine_config_add_device(cfg, parts[0], id, rest->len ? rest->str : NULL);
    return TRUE;
}

/* The virtio-console device --channel and --console virtio use: the first one, or a new one. */
static MachineDeviceSpec *console_device(MachineConfig *cfg)
{
    for (guint i = 0; i < cfg->devices->len; i++) {
        MachineDeviceSpec *spec = g_ptr_array_index(cfg->devices, i);

        if (strcmp(spec->type, "virtio-console") == 0)
            return spec;
    }
    return machine_config_add_device(cfg, "virtio-console", NULL, NULL);
}

/* A value inside "key=value,...": a comma is doubled. */
static char *escape_option_value(const char *value)
{
    g_auto(GStrv) parts = g_strsplit(value, ",", -1);

    return g_strjoinv(",,", parts);
}

/*
 * "name=NAME,socket=PATH": the console device's next free port N gets
 * nameN and socketN (the device checks them).
 */
static gboolean parse_channel(MachineConfig *cfg, const char *arg, GError **error)
{
    static const char *const known[] = { "name", "socket", NULL };
    g_autoptr(GHashTable) opts = device_options_parse(arg, error);
    g_autoptr(GHashTable) have = NULL;
    g_autofree char *name = NULL, *path = NULL;
    MachineDeviceSpec *spec;
    unsigned port = 1;
    char *options;

    if (!opts || !device_options_check_known(opts, known, "--channel", error) ||
        !g_hash_table_contains(opts, "name") || !g_hash_table_contains(opts, "socket")) {
        if (error && !*error)
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                        "--channel '%s': expected name=NAME,socket=PATH", arg);
        else
            g_prefix_error(error, "--channel '%s': ", arg);
        return FALSE;
    }
    spec = console_device(cfg);
    have = device_options_parse(spec->options, error);
    if (!have) {
        g_prefix_error(error, "--device virtio-console: ");
        return FALSE;
    }
    for (;; port++) {
        g_autofree char *n = g_strdup_printf("name%u", port);
        g_autofree char *s = g_strdup_printf("socket%u", port);

        if (!g_hash_table_contains(have, n) && !g_hash_table_contains(have, s))
            break;
    }
    name = escape_option_value(g_hash_table_lookup(opts, "name"));
    path = escape_option_value(g_hash_table_lookup(opts, "socket"));
    options = g_strdup_printf("%s%sname%u=%s,socket%u=%s", spec->options ? spec->options : "",
                              spec->options ? "," : "", port, name, port, path);
    g_free(spec->options);
    spec->options = options;
    return TRUE;
}

/*
 * --console virtio: port 0 of the console device gets the --serial
 * backend and COM1 none, as a backend (stdio above all) has a single
 * frontend. A console beside the serial port, as libvirt's <console>
 * with <target type='virtio'/> next to a <serial>, is --device
 * virtio-console,socket0=PATH instead.
 */
static void use_virtio_console(MachineConfig *cfg)
{
    MachineDeviceSpec *spec = console_device(cfg);

    g_free(spec->chardev);
    spec->chardev = g_steal_pointer(&cfg->serial);
    cfg->serial = g_strdup("none");
}

static void tls_creds_free(gpointer p)
{
    VmmTlsCreds *c = p;

    g_free(c->id);
    g_free(c->dir);
    g_free(c);
}

static gboolean parse_on_off(const char *value, gboolean *out)
{
    if (!strcmp(value, "on") || !strcmp(value, "yes") || !strcmp(value, "true"))
        *out = TRUE;
    else if (!strcmp(value, "off") || !strcmp(value, "no") || !strcmp(value, "false"))
        *out = FALSE;
    else
        return FALSE;
    return TRUE;
}

/* "tls-creds-x509,id=ID,dir=DIR[,endpoint=server|client][,verify-peer=on|off]", QEMU's spelling. */
static gboolean parse_object(VmmOptions *opts, const char *arg, GError **error)
{
    static const char *const known[] = { "id", "dir", "endpoint", "verify-peer", NULL };
    g_auto(GStrv) parts = g_strsplit(arg, ",", 2);
    g_autoptr(GHashTable) kv = NULL;
    const char *id, *dir, *endpoint, *verify;
    VmmTlsCreds *c;

    if (!parts[0] || strcmp(parts[0], "tls-creds-x509") != 0) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "--object '%s': the only type is tls-creds-x509", arg);
        return FALSE;
    }
    kv = device_options_parse(parts[1], error);
    if (!kv || !device_options_check_known(kv, known, "tls-creds-x509", error)) {
        g_prefix_error(error, "--object '%s': ", arg);
        return FALSE;
    }
    id = g_hash_table_lookup(kv, "id");
    dir = g_hash_table_lookup(kv, "dir");
    endpoint = g_hash_table_lookup(kv, "endpoint");
    verify = g_hash_table_lookup(kv, "verify-peer");
    if (!id || !*id || !dir || !*dir) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "--object '%s': id= and dir= are required", arg);
        return FALSE;
    }
    if (endpoint && strcmp(endpoint, "server") != 0 && strcmp(endpoint, "client") != 0) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "--object '%s': endpoint must be server or client", arg);
        return FALSE;
    }
    c = g_new0(VmmTlsCreds, 1);
    c->verify_peer = TRUE;
    if (verify && !parse_on_off(verify, &c->verify_peer)) {
        g_free(c);
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "--object '%s': verify-peer must be on or off", arg);
        return FALSE;
    }
    c->id = g_strdup(id);
    c->dir = g_strdup(dir);
    c->server = endpoint && strcmp(endpoint, "server") == 0;
    g_ptr_array_add(opts->tls_creds, c);
    return TRUE;
}

static void set_string(char **dst, const char *value)
{
    g_free(*dst);
    *dst = g_strdup(value);
}

VmmOptions *vmm_options_parse(int argc, char **argv, GError **error)
{
    g_autoptr(VmmOptions) opts = g_new0(VmmOptions, 1);
    g_auto(GStrv) args = g_new0(char *, argc + 1);
    gboolean console_virtio = FALSE;
    int c;

    opts->machine = machine_config_new();
    opts->tls_creds = g_ptr_array_new_with_free_func(tls_creds_free);
    /* getopt permutes argv; work on a copy so the caller's stays intact. */
    for (int i = 0; i < argc; i++)
        args[i] = g_strdup(argv[i]);
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, args, "S", long_options, NULL)) != -1) {
        switch (c) {
        case OPT_KERNEL:
            set_string(&opts->machine->kernel, optarg);
            break;
        case OPT_INITRD:
            set_string(&opts->machine->initrd, optarg);
            break;
        case OPT_CMDLINE:
            set_string(&opts->machine->cmdline, optarg);
            break;
        case OPT_MEMORY:
            if (!vmm_parse_memory(optarg, &opts->machine->memory, error))
                return NULL;
            break;
        case OPT_CPUS:
            if (!parse_cpus(optarg, &opts->machine->cpus, error))
                return NULL;
            break;
        case OPT_SERIAL:
            set_string(&opts->machine->serial, optarg);
            break;
        case OPT_CONSOLE:
            if (strcmp(optarg, "virtio") != 0 && strcmp(optarg, "serial") != 0) {
                g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                            "--console '%s': expected virtio or serial", optarg);
                return NULL;
            }
            console_virtio = strcmp(optarg, "virtio") == 0;
            break;
        case OPT_CHANNEL:
            if (!parse_channel(opts->machine, optarg, error))
                return NULL;
            break;
        case OPT_QMP:
            set_string(&opts->qmp, optarg);
            break;
        case OPT_INCOMING:
            set_string(&opts->incoming, optarg);
            opts->machine->incoming = TRUE;
            break;
        case OPT_NAME:
            set_string(&opts->machine->name, optarg);
            break;
        case OPT_DEVICE:
            if (strcmp(optarg, "help") == 0)
                opts->list_devices = TRUE;
            else if (!parse_device(opts->machine, optarg, error))
                return NULL;
            break;
        case OPT_DEBUG_EXIT:
            opts->machine->debug_exit = TRUE;
            break;
        case OPT_NO_REBOOT:
            opts->machine->no_reboot = TRUE;
            break;
        case OPT_RNG:
            machine_config_add_device(opts->machine, "virtio-rng", NULL, optarg);
            break;
        case OPT_BALLOON:
            machine_config_add_device(opts->machine, "virtio-balloon", NULL, optarg);
            break;
        case OPT_VSOCK:
            machine_config_add_device(opts->machine, "virtio-vsock", NULL, optarg);
            break;
        case OPT_NET:
            machine_config_add_device(opts->machine, "virtio-net", NULL, optarg);
            break;
        case OPT_DISK:
            machine_config_add_device(opts->machine, "virtio-blk", NULL, optarg);
            break;
        case OPT_OBJECT:
            if (!parse_object(opts, optarg, error))
                return NULL;
            break;
        case OPT_MIGRATE_TLS_CREDS:
            set_string(&opts->migrate_tls_creds, optarg);
            break;
        case 'S':
            opts->machine->start_paused = TRUE;
            break;
        case OPT_HELP:
            opts->help = TRUE;
            break;
        case OPT_VERSION:
            opts->version = TRUE;
            break;
        default:
            if (optopt >= OPT_KERNEL && optopt <= OPT_VERSION)
                g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                            "option '%s' needs a value", args[optind - 1]);
            else
                g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                            "unknown option '%s' (see --help)", args[optind - 1]);
            return NULL;
        }
    }
    if (optind < argc) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "unexpected argument '%s' (see --help)", args[optind]);
        return NULL;
    }
    if (!opts->help && !opts->version && !opts->list_devices && !opts->machine->kernel) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "--kernel FILE is required (see --help)");
        return NULL;
    }
    if (opts->qmp && !g_str_has_prefix(opts->qmp, "unix:")) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "--qmp '%s': expected unix:PATH", opts->qmp);
        return NULL;
    }
    if (opts->migrate_tls_creds) {
        gboolean found = FALSE;

        for (guint i = 0; i < opts->tls_creds->len; i++) {
            const VmmTlsCreds *spec = g_ptr_array_index(opts->tls_creds, i);
            found = found || strcmp(spec->id, opts->migrate_tls_creds) == 0;
        }
        if (!found) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                        "--migrate-tls-creds '%s': no --object tls-creds-x509 with that id",
                        opts->migrate_tls_creds);
            return NULL;
        }
    }
    if (console_virtio)
        use_virtio_console(opts->machine);
    if (!opts->machine->name)
        opts->machine->name = g_strdup("vireo");
    return g_steal_pointer(&opts);
}
