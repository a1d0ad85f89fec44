/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vireo-install's command line: virt-install's option names and its
 * sub-option syntax ("--disk path=/x.qcow2,size=10,bus=virtio"; a first
 * item without '=' is the option's main value, "--disk /x.qcow2"; values
 * may be quoted to hold commas). Then install_config_finish() fills the
 * defaults and checks the whole.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "vireo/cli-cmd.h"
#include "vireo/install-config.h"
#include "vireo/util.h"

static void disk_free(gpointer p)
{
    InstallDisk *d = p;

    g_free(d->path);
    g_free(d->format);
    g_free(d->bus);
    g_free(d->device);
    g_free(d);
}

static void net_free(gpointer p)
{
    InstallNet *n = p;

    g_free(n->network);
    g_free(n->bridge);
    g_free(n->model);
    g_free(n->mac);
    g_free(n);
}

InstallConfig *install_config_new(void)
{
    InstallConfig *cfg = g_new0(InstallConfig, 1);

    cfg->disks = g_ptr_array_new_with_free_func(disk_free);
    cfg->nets = g_ptr_array_new_with_free_func(net_free);
    cfg->boot_devs = g_ptr_array_new_with_free_func(g_free);
    cfg->console = TRUE;
    return cfg;
}

void install_config_free(InstallConfig *cfg)
{
    if (!cfg)
        return;
    g_free(cfg->connect);
    g_free(cfg->name);
    g_free(cfg->uuid);
    g_free(cfg->cpu);
    g_free(cfg->osinfo);
    g_ptr_array_unref(cfg->disks);
    g_ptr_array_unref(cfg->nets);
    g_ptr_array_unref(cfg->boot_devs);
    g_free(cfg->cdrom);
    g_free(cfg->kernel);
    g_free(cfg->initrd);
    g_free(cfg->kernel_args);
    g_free(cfg->machine);
    g_free(cfg);
}

static gboolean fail(GError **error, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static gboolean fail(GError **error, const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error_literal(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT, msg);
    return FALSE;
}

/* ---------------------------------------------------------- sub-options */

typedef struct SubOpt {
    char *key;               /* NULL for the leading bare value */
    char *value;
    gboolean used;
} SubOpt;

static void subopt_free(gpointer p)
{
    SubOpt *s = p;

    g_free(s->key);
    g_free(s->value);
    g_free(s);
}

/* Splits "a,b=c,d='e,f'" at commas outside quotes; quotes are removed. */
static GPtrArray *subopts_split(const char *str)
{
    GPtrArray *out = g_ptr_array_new_with_free_func(subopt_free);
    g_autoptr(GString) cur = g_string_new(NULL);
    char quote = 0;

    for (const char *p = str;; p++) {
        if (*p && quote) {
            if (*p == quote)
                quote = 0;
            else
                g_string_append_c(cur, *p);
            continue;
        }
        if (*p == '"' || *p == '\'') {
            quote = *p;
            continue;
        }
        if (*p && *p != ',') {
            g_string_append_c(cur, *p);
            continue;
        }
        if (cur->len) {
            SubOpt *s = g_new0(SubOpt, 1);
            const char *eq = strchr(cur->str, '=');

            if (eq) {
                s->key = g_strndup(cur->str, eq - cur->str);
                s->value = g_strdup(eq + 1);
            } else {
                s->value = g_strdup(cur->str);
            }
            g_ptr_array_add(out, s);
            g_string_truncate(cur, 0);
        }
        if (!*p)
            break;
    }
    return out;
}

/* The value of @key (or of any of its aliases, '|'-separated), marked used. */
static const char *sub_get(GPtrArray *subs, const char *keys)
{
    g_auto(GStrv) names = g_strsplit(keys, "|", -1);
    const char *v = NULL;

    for (guint i = 0; i < subs->len; i++) {
        SubOpt *s = g_ptr_array_index(subs, i);

        for (guint j = 0; s->key && names[j]; j++) {
            if (!strcmp(s->key, names[j])) {
                s->used = TRUE;
                v = s->value;
            }
        }
    }
    return v;
}

/* The leading bare value (no '='), if it is the first item. */
static const char *sub_bare(GPtrArray *subs)
{
    SubOpt *s = subs->len ? g_ptr_array_index(subs, 0) : NULL;

    if (!s || s->key)
        return NULL;
    s->used = TRUE;
    return s->value;
}

/* Bare words among the items (e.g. --boot cdrom,hd,uefi), marked used. */
static gboolean sub_flag(GPtrArray *subs, const char *word)
{
    for (guint i = 0; i < subs->len; i++) {
        SubOpt *s = g_ptr_array_index(subs, i);

        if (!s->key && !strcmp(s->value, word)) {
            s->used = TRUE;
            return TRUE;
        }
    }
    return FALSE;
}

/* virt-install's wording for what nobody asked for. */
static gboolean sub_check_used(GPtrArray *subs, const char *opt, GError **error)
{
    g_autoptr(GString) bad = g_string_new(NULL);

    for (guint i = 0; i < subs->len; i++) {
        SubOpt *s = g_ptr_array_index(subs, i);

        if (!s->used)
            g_string_append_printf(bad, "%s'%s'", bad->len ? ", " : "", s->key ? s->key : s->value);
    }
    if (bad->len)
        return fail(error, "Unknown %s options: [%s]", opt, bad->str);
    return TRUE;
}

static gboolean parse_bool(const char *v, gboolean *out)
{
    static const char *const yes[] = { "yes", "on", "true", "1" };
    static const char *const no[] = { "no", "off", "false", "0" };

    for (guint i = 0; i < G_N_ELEMENTS(yes); i++) {
        if (!g_ascii_strcasecmp(v, yes[i]))
            return *out = TRUE, TRUE;
        if (!g_ascii_strcasecmp(v, no[i]))
            return *out = FALSE, TRUE;
    }
    return FALSE;
}

static gboolean parse_uint(const char *opt, const char *v, guint64 max, guint64 *out,
                           GError **error)
{
    char *end = NULL;
    guint64 n;

    if (!v || !g_ascii_isdigit(*v))
        return fail(error, "%s: '%s' is not a number", opt, v ? v : "");
    n = g_ascii_strtoull(v, &end, 10);
    if (*end || n > max)
        return fail(error, "%s: '%s' is not a number", opt, v);
    *out = n;
    return TRUE;
}

static gboolean parse_memory(InstallConfig *cfg, const char *arg, GError **error)
{
    g_autoptr(GPtrArray) subs = subopts_split(arg);
    const char *mem = sub_bare(subs), *cur;

    if (!mem)
        mem = sub_get(subs, "memory");
    cur = sub_get(subs, "currentMemory");
    if (mem && !parse_uint("--memory", mem, G_MAXUINT32, &cfg->memory_mib, error))
        return FALSE;
    if (cur && !parse_uint("--memory", cur, G_MAXUINT32, &cfg->current_memory_mib, error))
        return FALSE;
    return sub_check_used(subs, "--memory", error);
}

static gboolean parse_vcpus(InstallConfig *cfg, const char *arg, GError **error)
{
    g_autoptr(GPtrArray) subs = subopts_split(arg);
    const struct { const char *key; guint *field; } keys[] = {
        { "vcpus", &cfg->vcpus }, { "maxvcpus", &cfg->max_vcpus }, { "sockets", &cfg->sockets },
        { "cores", &cfg->cores }, { "threads", &cfg->threads },
    };
    const char *bare = sub_bare(subs);
    guint64 n;

    if (bare) {
        if (!parse_uint("--vcpus", bare, 4096, &n, error))
            return FALSE;
        cfg->vcpus = (guint)n;
    }
    for (guint i = 0; i < G_N_ELEMENTS(keys); i++) {
        const char *v = sub_get(subs, keys[i].key);

        if (!v)
            continue;
        if (!parse_uint("--vcpus", v, 4096, &n, error))
            return FALSE;
        *keys[i].field = (guint)n;
    }
    return sub_check_used(subs, "--vcpus", error);
}

static gboolean parse_cpu(InstallConfig *cfg, const char *arg, GError **error)
{
    g_autoptr(GPtrArray) subs = subopts_split(arg);
    const char *v = sub_bare(subs);

    if (!v)
        v = sub_get(subs, "mode|model");
    if (!v)
        return fail(error, "--cpu needs a model or a mode");
    g_free(cfg->cpu);
    /* virt-install's "host" is host-model. */
    cfg->cpu = g_strdup(!strcmp(v, "host") ? "host-model" : v);
    return sub_check_used(subs, "--cpu", error);
}

static gboolean parse_disk(InstallConfig *cfg, const char *arg, GError **error)
{
    g_autoptr(GPtrArray) subs = subopts_split(arg);
    g_autofree InstallDisk *d = g_new0(InstallDisk, 1);
    const char *path = sub_bare(subs), *v;

    if (path && !strcmp(path, "none") && subs->len == 1)
        return TRUE;
    if (!path)
        path = sub_get(subs, "path");
    if (path)
        d->path = g_canonicalize_filename(path, NULL);
    if ((v = sub_get(subs, "size"))) {
        char *end = NULL;
        double gib = g_ascii_strtod(v, &end);

        if (!*v || *end || !(gib > 0) || gib > 1024.0 * 1024)
            return fail(error, "--disk: size '%s' is not a positive number of GiB", v);
        d->size_bytes = (guint64)(gib * 1024 * 1024 * 1024);
    }
    d->format = g_strdup(sub_get(subs, "format|driver.type"));
    d->bus = g_strdup(sub_get(subs, "bus|target.bus"));
    d->device = g_strdup(sub_get(subs, "device"));
    if ((v = sub_get(subs, "readonly")) && !parse_bool(v, &d->readonly))
        return fail(error, "--disk: readonly='%s' is not yes or no", v);
    if ((v = sub_get(subs, "boot_order|boot.order"))) {
        guint64 n;

        if (!parse_uint("--disk boot_order", v, 1000, &n, error) || n == 0)
            return n == 0 ? fail(error, "--disk: boot_order must be 1 or more") : FALSE;
        d->boot_order = (guint)n;
    }
    if (!sub_check_used(subs, "--disk", error))
        return FALSE;
    if (d->device && strcmp(d->device, "disk") && strcmp(d->device, "cdrom"))
        return fail(error, "--disk: device='%s' is not supported: disk or cdrom", d->device);
    if (d->format && strcmp(d->format, "qcow2") && strcmp(d->format, "raw"))
        return fail(error, "--disk: format='%s' is not supported: qcow2 or raw", d->format);
    if (d->bus && strcmp(d->bus, "virtio") && strcmp(d->bus, "sata") && strcmp(d->bus, "scsi") &&
        strcmp(d->bus, "ide"))
        return fail(error, "--disk: bus='%s' is not supported: virtio, sata, scsi or ide", d->bus);
    g_ptr_array_add(cfg->disks, g_steal_pointer(&d));
    return TRUE;
}

static gboolean parse_network(InstallConfig *cfg, const char *arg, GError **error)
{
    g_autoptr(GPtrArray) subs = subopts_split(arg);
    g_autofree InstallNet *n = g_new0(InstallNet, 1);
    const char *bare = sub_bare(subs);

    if (bare && !strcmp(bare, "none") && subs->len == 1) {
        cfg->no_network = TRUE;
        return TRUE;
    }
    /* virt-install's old forms "network:NAME" and "bridge:NAME" */
    if (bare && g_str_has_prefix(bare, "network:"))
        n->network = g_strdup(bare + 8);
    else if (bare && g_str_has_prefix(bare, "bridge:"))
        n->bridge = g_strdup(bare + 7);
    else if (bare)
        return fail(error, "Unknown --network options: ['%s']", bare);
    if (!n->network)
        n->network = g_strdup(sub_get(subs, "network|source"));
    if (!n->bridge)
        n->bridge = g_strdup(sub_get(subs, "bridge"));
    n->model = g_strdup(sub_get(subs, "model|model.type"));
    n->mac = g_strdup(sub_get(subs, "mac|mac.address"));
    if (!sub_check_used(subs, "--network", error))
        return FALSE;
    if (n->network && n->bridge)
        return fail(error, "--network: network= and bridge= cannot be used together");
    if (!n->network && !n->bridge)
        n->network = g_strdup("default");
    if (n->mac) {
        guint b[6];
        char tail;

        if (sscanf(n->mac, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
                   &tail) != 6 || strlen(n->mac) != 17)
            return fail(error, "--network: '%s' is not a MAC address", n->mac);
    }
    g_ptr_array_add(cfg->nets, g_steal_pointer(&n));
    return TRUE;
}

static gboolean parse_boot(InstallConfig *cfg, const char *arg, GError **error)
{
    g_autoptr(GPtrArray) subs = subopts_split(arg);
    static const char *const devs[] = { "hd", "cdrom", "network", "fd" };
    const char *v;

    for (guint i = 0; i < subs->len; i++) {
        SubOpt *s = g_ptr_array_index(subs, i);

        for (guint j = 0; !s->key && j < G_N_ELEMENTS(devs); j++) {
            if (!strcmp(s->value, devs[j])) {
                s->used = TRUE;
                g_ptr_array_add(cfg->boot_devs, g_strdup(devs[j]));
            }
        }
    }
    if (sub_flag(subs, "uefi"))
        cfg->uefi = TRUE;
    if ((v = sub_get(subs, "firmware")) && !strcmp(v, "efi"))
        cfg->uefi = TRUE;
    else if (v)
        return fail(error, "--boot: firmware='%s' is not supported: efi", v);
    if ((v = sub_get(subs, "kernel")))
        cfg->kernel = g_canonicalize_filename(v, NULL);
    if ((v = sub_get(subs, "initrd")))
        cfg->initrd = g_canonicalize_filename(v, NULL);
    if ((v = sub_get(subs, "kernel_args|cmdline")))
        cfg->kernel_args = g_strdup(v);
    return sub_check_used(subs, "--boot", error);
}

static gboolean parse_osinfo(InstallConfig *cfg, const char *arg, GError **error)
{
    g_autoptr(GPtrArray) subs = subopts_split(arg);
    const char *v = sub_bare(subs);

    if (!v)
        v = sub_get(subs, "name|short-id|id");
    /* detect=/require= are about libosinfo's guessing, which we do not do. */
    sub_get(subs, "detect|require");
    if (!v)
        return fail(error, "--osinfo needs an OS name; see --osinfo list");
    if (!strcmp(v, "list")) {
        cfg->list_osinfo = TRUE;
    } else {
        g_free(cfg->osinfo);
        cfg->osinfo = g_strdup(v);
    }
    return sub_check_used(subs, "--osinfo", error);
}

static void usage(void)
{
    printf("usage: vireo-install --name NAME --memory MB STORAGE INSTALL [options]\n"
           "\n"
           "Create a new virtual machine from specified install media.\n"
           "\n"
           "options:\n"
           "  -h, --help            show this help message and exit\n"
           "  --version             show program's version number and exit\n"
           "  --connect URI         Connect to the hypervisor (default vireo:///system)\n"
           "\n"
           "General Options:\n"
           "  -n NAME, --name NAME  Name of the guest instance\n"
           "  --memory MEMORY       --memory 1024 (in MiB), --memory memory=1024,currentMemory=512\n"
           "  --vcpus VCPUS         --vcpus 2, --vcpus 4,maxvcpus=4,sockets=1,cores=2,threads=2\n"
           "  --cpu CPU             --cpu host-passthrough, --cpu host-model, --cpu qemu64\n"
           "  -u UUID, --uuid UUID  UUID for the guest\n"
           "\n"
           "Installation Method Options:\n"
           "  --cdrom CDROM         CD-ROM installation media\n"
           "  --import              Build guest around an existing disk image\n"
           "  --pxe                 Boot from the network\n"
           "  --boot BOOT           --boot hd,cdrom, --boot uefi,\n"
           "                        --boot kernel=KERNEL,initrd=INITRD,kernel_args=\"console=ttyS0\"\n"
           "\n"
           "OS options:\n"
           "  --osinfo OS, --os-variant OS\n"
           "                        debian12, fedora39, ubuntu22.04, linux2022, win11,\n"
           "                        generic; '--osinfo list' to see them all\n"
           "\n"
           "Device Options:\n"
           "  --disk DISK           --disk size=10 (new 10 GiB qcow2 image),\n"
           "                        --disk /my/existing/disk.qcow2,bus=virtio\n"
           "                        --disk path=/x.qcow2,size=20,format=qcow2,bus=sata,boot_order=1\n"
           "                        --disk path=/x.iso,device=cdrom,readonly=on\n"
           "  -w NETWORK, --network NETWORK\n"
           "                        --network network=default,model=virtio,mac=52:54:00:..\n"
           "                        --network bridge=br0, --network none\n"
           "  --graphics none       Vireo has no display: the serial console only\n"
           "  --console pty         A serial console on a pty (the default)\n"
           "\n"
           "Guest Configuration Options:\n"
           "  --machine MACHINE     Machine type (vireo, pc, q35)\n"
           "  --virt-type kvm       Hypervisor (kvm only)\n"
           "  --arch x86_64         CPU architecture (x86_64 only)\n"
           "\n"
           "Miscellaneous Options:\n"
           "  --autostart           Start the domain when the host boots\n"
           "  --transient           Create a transient domain (no definition kept)\n"
           "  --noautoconsole       Don't connect to the guest console\n"
           "  --print-xml           Print the domain XML instead of creating the domain\n"
           "  --dry-run             Run through the steps without creating anything\n");
}

enum {
    OPT_CONNECT = 1000, OPT_MEMORY, OPT_VCPUS, OPT_CPU, OPT_DISK, OPT_CDROM, OPT_BOOT,
    OPT_IMPORT, OPT_PXE, OPT_OSINFO, OPT_GRAPHICS, OPT_CONSOLE, OPT_NOAUTOCONSOLE,
    OPT_PRINT_XML, OPT_DRY_RUN, OPT_TRANSIENT, OPT_AUTOSTART, OPT_MACHINE, OPT_VIRT_TYPE,
    OPT_ARCH, OPT_LOCATION, OPT_VERSION, OPT_NOREBOOT, OPT_WAIT,
};

InstallConfig *install_opts_parse(int argc, char **argv, gboolean *exit_now, GError **error)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, OPT_VERSION },
        { "connect", required_argument, NULL, OPT_CONNECT },
        { "name", required_argument, NULL, 'n' },
        { "uuid", required_argument, NULL, 'u' },
        { "memory", required_argument, NULL, OPT_MEMORY },
        { "ram", required_argument, NULL, OPT_MEMORY },
        { "vcpus", required_argument, NULL, OPT_VCPUS },
        { "cpu", required_argument, NULL, OPT_CPU },
        { "disk", required_argument, NULL, OPT_DISK },
        { "cdrom", required_argument, NULL, OPT_CDROM },
        { "boot", required_argument, NULL, OPT_BOOT },
        { "import", no_argument, NULL, OPT_IMPORT },
        { "pxe", no_argument, NULL, OPT_PXE },
        { "location", required_argument, NULL, OPT_LOCATION },
        { "osinfo", required_argument, NULL, OPT_OSINFO },
        { "os-variant", required_argument, NULL, OPT_OSINFO },
        { "network", required_argument, NULL, 'w' },
        { "graphics", required_argument, NULL, OPT_GRAPHICS },
        { "console", required_argument, NULL, OPT_CONSOLE },
        { "noautoconsole", no_argument, NULL, OPT_NOAUTOCONSOLE },
        { "print-xml", no_argument, NULL, OPT_PRINT_XML },
        { "dry-run", no_argument, NULL, OPT_DRY_RUN },
        { "transient", no_argument, NULL, OPT_TRANSIENT },
        { "autostart", no_argument, NULL, OPT_AUTOSTART },
        { "machine", required_argument, NULL, OPT_MACHINE },
        { "virt-type", required_argument, NULL, OPT_VIRT_TYPE },
        { "arch", required_argument, NULL, OPT_ARCH },
        { "noreboot", no_argument, NULL, OPT_NOREBOOT },
        { "wait", required_argument, NULL, OPT_WAIT },
        { NULL, 0, NULL, 0 },
    };
    g_autoptr(InstallConfig) cfg = install_config_new();
    gboolean ok = TRUE;
    int c;

    *exit_now = FALSE;
    opterr = 0;
    optind = 1;
    while (ok && (c = getopt_long(argc, argv, ":hn:u:w:", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            usage();
            *exit_now = TRUE;
            return g_steal_pointer(&cfg);
        case OPT_VERSION:
            printf("%s\n", VIREO_VERSION);
            *exit_now = TRUE;
            return g_steal_pointer(&cfg);
        case OPT_CONNECT:
            g_free(cfg->connect);
            cfg->connect = g_strdup(optarg);
            break;
        case 'n':
            g_free(cfg->name);
            cfg->name = g_strdup(optarg);
            break;
        case 'u':
            g_free(cfg->uuid);
            cfg->uuid = g_strdup(optarg);
            break;
        case OPT_MEMORY:
            ok = parse_memory(cfg, optarg, error);
            break;
        case OPT_VCPUS:
            ok = parse_vcpus(cfg, optarg, error);
            break;
        case OPT_CPU:
            ok = parse_cpu(cfg, optarg, error);
            break;
        case OPT_DISK:
            ok = parse_disk(cfg, optarg, error);
            break;
        case OPT_CDROM:
            g_free(cfg->cdrom);
            cfg->cdrom = g_canonicalize_filename(optarg, NULL);
            break;
        case OPT_BOOT:
            ok = parse_boot(cfg, optarg, error);
            break;
        case OPT_IMPORT:
            cfg->import = TRUE;
            break;
        case OPT_PXE:
            g_ptr_array_add(cfg->boot_devs, g_strdup("network"));
            break;
        case OPT_LOCATION:
            ok = fail(error, "--location is not supported: use --cdrom, or --boot "
                      "kernel=,initrd= with the distribution's installer kernel");
            break;
        case OPT_OSINFO:
            ok = parse_osinfo(cfg, optarg, error);
            break;
        case 'w':
            ok = parse_network(cfg, optarg, error);
            break;
        case OPT_GRAPHICS:
            if (strcmp(optarg, "none"))
                ok = fail(error, "--graphics %s: Vireo has no display devices; use --graphics "
                          "none and the serial console", optarg);
            break;
        case OPT_CONSOLE:
            if (strcmp(optarg, "pty") && strcmp(optarg, "pty,target.type=serial") &&
                strcmp(optarg, "pty,target_type=serial"))
                ok = fail(error, "--console %s: only a serial console on a pty is supported "
                          "(--console pty)", optarg);
            break;
        case OPT_NOAUTOCONSOLE:
            cfg->noautoconsole = TRUE;
            break;
        case OPT_PRINT_XML:
            cfg->print_xml = TRUE;
            break;
        case OPT_DRY_RUN:
            cfg->dry_run = TRUE;
            break;
        case OPT_TRANSIENT:
            cfg->transient = TRUE;
            break;
        case OPT_AUTOSTART:
            cfg->autostart = TRUE;
            break;
        case OPT_MACHINE:
            g_free(cfg->machine);
            cfg->machine = g_strdup(optarg);
            break;
        case OPT_VIRT_TYPE:
            if (strcmp(optarg, "kvm"))
                ok = fail(error, "--virt-type %s is not supported: kvm only", optarg);
            break;
        case OPT_ARCH:
            if (strcmp(optarg, "x86_64"))
                ok = fail(error, "--arch %s is not supported: x86_64 only", optarg);
            break;
        case OPT_NOREBOOT:
        case OPT_WAIT:
            /* Accepted: we never wait for the installation nor reboot by ourselves. */
            break;
        case ':':
            ok = fail(error, "argument %s: expected one argument", argv[optind - 1]);
            break;
        default:
            ok = fail(error, "unrecognized arguments: %s", argv[optind - 1]);
            break;
        }
    }
    if (ok && optind < argc)
        ok = fail(error, "unrecognized arguments: %s", argv[optind]);
    return ok ? g_steal_pointer(&cfg) : NULL;
}

/* ------------------------------------------------------------- finishing */

static gboolean is_qcow2_or_raw(const char *fmt)
{
    return !strcmp(fmt, "qcow2") || !strcmp(fmt, "raw");
}

/* NAME.qcow2, or NAME-1.qcow2 ... when taken on disk or by another --disk. */
static char *default_path(const InstallConfig *cfg, const char *dir, const char *fmt)
{
    for (guint n = 0;; n++) {
        g_autofree char *base = n ? g_strdup_printf("%s-%u.%s", cfg->name, n, fmt) :
                                    g_strdup_printf("%s.%s", cfg->name, fmt);
        g_autofree char *path = g_build_filename(dir, base, NULL);
        gboolean used = g_file_test(path, G_FILE_TEST_EXISTS);

        for (guint i = 0; !used && i < cfg->disks->len; i++) {
            const InstallDisk *d = g_ptr_array_index(cfg->disks, i);

            used = d->path && !strcmp(d->path, path);
        }
        if (!used)
            return g_steal_pointer(&path);
    }
}

gboolean install_config_finish(InstallConfig *cfg, const char *image_dir, GError **error)
{
    const InstallOsInfo *os;
    guint methods = 0;

    if (!cfg->name || !*cfg->name)
        return fail(error, "--name is required");
    if (strchr(cfg->name, '/'))
        return fail(error, "--name: '%s' must not contain '/'", cfg->name);
    os = install_osinfo_find(cfg->osinfo ? cfg->osinfo : "generic");
    if (!os)
        return fail(error, "Unknown OS name '%s'. See `--osinfo list` for valid values.",
                    cfg->osinfo);
    if (!cfg->osinfo)
        cfg->osinfo = g_strdup("generic");
    if (!cfg->memory_mib)
        cfg->memory_mib = os->memory_mib;
    if (cfg->current_memory_mib > cfg->memory_mib)
        return fail(error, "--memory: currentMemory must not exceed memory");
    if (cfg->sockets || cfg->cores || cfg->threads) {
        guint product = MAX(cfg->sockets, 1) * MAX(cfg->cores, 1) * MAX(cfg->threads, 1);

        cfg->sockets = MAX(cfg->sockets, 1);
        cfg->cores = MAX(cfg->cores, 1);
        cfg->threads = MAX(cfg->threads, 1);
        if (!cfg->max_vcpus)
            cfg->max_vcpus = MAX(product, cfg->vcpus);
        if (!cfg->vcpus)
            cfg->vcpus = cfg->max_vcpus;
        if (product != cfg->max_vcpus)
            return fail(error, "--vcpus: sockets*cores*threads (%u) must equal the maximum "
                        "vCPU count (%u)", product, cfg->max_vcpus);
    }
    if (!cfg->vcpus)
        cfg->vcpus = cfg->max_vcpus ? cfg->max_vcpus : os->vcpus;
    if (!cfg->max_vcpus)
        cfg->max_vcpus = cfg->vcpus;
    if (cfg->vcpus > cfg->max_vcpus)
        return fail(error, "--vcpus: %u vCPUs is more than maxvcpus=%u", cfg->vcpus,
                    cfg->max_vcpus);
    if (!cfg->cpu)
        cfg->cpu = g_strdup("host-passthrough");
    if (os->uefi)
        cfg->uefi = TRUE;

    methods = !!cfg->cdrom + !!cfg->import + !!cfg->kernel;
    if (methods == 0 && !cfg->boot_devs->len)
        return fail(error, "\nAn install method must be specified\n(--cdrom CD/ISO, --pxe, "
                    "--import, --boot hd|cdrom|..., --boot kernel=KERNEL)");
    if (methods > 1)
        return fail(error, "Only one install method can be used (--cdrom, --import, "
                    "--boot kernel=)");
    if (cfg->initrd && !cfg->kernel)
        return fail(error, "--boot initrd= needs kernel=");
    if (cfg->transient && cfg->autostart)
        return fail(error, "--transient and --autostart cannot be used together: a transient "
                    "domain has no definition to start at boot");

    if (cfg->cdrom) {
        InstallDisk *d = g_new0(InstallDisk, 1);

        d->path = g_strdup(cfg->cdrom);
        d->device = g_strdup("cdrom");
        g_ptr_array_insert(cfg->disks, 0, d);
        if (!cfg->boot_devs->len) {
            g_ptr_array_add(cfg->boot_devs, g_strdup("cdrom"));
            g_ptr_array_add(cfg->boot_devs, g_strdup("hd"));
        }
    }
    if (cfg->import && !cfg->disks->len)
        return fail(error, "--import needs a --disk to boot from");

    for (guint i = 0; i < cfg->disks->len; i++) {
        InstallDisk *d = g_ptr_array_index(cfg->disks, i);
        gboolean cdrom;

        if (!d->device)
            d->device = g_strdup("disk");
        cdrom = !strcmp(d->device, "cdrom");
        if (cdrom)
            d->readonly = TRUE;
        if (!d->bus)
            d->bus = g_strdup(cdrom ? "sata" : os->disk_bus);
        if (cdrom && !strcmp(d->bus, "virtio"))
            return fail(error, "--disk: a cdrom cannot be on the virtio bus");
        if (!d->path && cdrom)
            return fail(error, "--disk: a cdrom needs path=");
        /* Neither path nor size: a new image of the OS's recommended size. */
        if (!d->path && !d->size_bytes)
            d->size_bytes = (guint64)os->disk_gib << 30;
        if (!d->path) {
            d->path = default_path(cfg, image_dir, d->format ? d->format : "qcow2");
            if (!d->format)
                d->format = g_strdup("qcow2");
        }
        if (g_file_test(d->path, G_FILE_TEST_EXISTS)) {
            if (!d->format) {
                d->format = install_disk_detect_format(d->path, error);
                if (!d->format)
                    return FALSE;
            }
        } else if (cdrom) {
            return fail(error, "Path '%s' does not exist", d->path);
        } else if (!d->size_bytes) {
            return fail(error, "Size must be specified for non existent volume '%s'", d->path);
        } else {
            d->create = TRUE;
            if (!d->format)
                d->format = g_strdup("qcow2");
        }
        g_assert(is_qcow2_or_raw(d->format));
    }
    if (!cfg->no_network && !cfg->nets->len) {
        InstallNet *n = g_new0(InstallNet, 1);

        n->network = g_strdup("default");
        g_ptr_array_add(cfg->nets, n);
    }
    for (guint i = 0; i < cfg->nets->len; i++) {
        InstallNet *n = g_ptr_array_index(cfg->nets, i);

        if (!n->model)
            n->model = g_strdup(os->net_model);
    }
    if (cfg->no_network)
        g_ptr_array_set_size(cfg->nets, 0);
    return TRUE;
}
