/* SPDX-License-Identifier: GPL-2.0-or-later */
/* DomainDef -> vireo-vmm argv (include/vireo/vmm-argv.h). */
#include <string.h>

#include "vireo/util.h"
#include "vireo/vmm-argv.h"

unsigned vmm_argv_caps_from_device_list(const char *device_help)
{
    static const struct {
        const char *type;
        unsigned cap;
    } map[] = {
        { "virtio-rng", DOMAIN_RUN_RNG },
        { "virtio-balloon", DOMAIN_RUN_MEMBALLOON },
    };
    g_auto(GStrv) lines = g_strsplit(device_help ? device_help : "", "\n", -1);
    unsigned caps = DOMAIN_RUN_CAPS_NONE;

    for (guint i = 0; lines[i]; i++) {
        g_auto(GStrv) words = g_strsplit_set(lines[i], " \t", 2);

        for (gsize j = 0; words[0] && j < G_N_ELEMENTS(map); j++)
            if (!strcmp(words[0], map[j].type))
                caps |= map[j].cap;
    }
    return caps;
}

gboolean vmm_argv_console_bridged(const DomainDef *def)
{
    const DomainChrDef *c = def->serials->len ? def->serials->pdata[0] : NULL;

    return c && c->type == DOMAIN_CHR_PTY;
}

static gboolean unsupported(GError **error, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static gboolean unsupported(GError **error, const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(error, VIREO_ERROR, VIREO_ERROR_UNSUPPORTED, "unsupported configuration: %s",
                msg);
    return FALSE;
}

static gboolean add_serial(GPtrArray *argv, const DomainDef *def, const VmmArgvPaths *paths,
                           GError **error)
{
    const DomainChrDef *c = def->serials->len ? def->serials->pdata[0] : NULL;

    g_ptr_array_add(argv, g_strdup("--serial"));
    if (!c || c->type == DOMAIN_CHR_NULL) {
        g_ptr_array_add(argv, g_strdup("none"));
        return TRUE;
    }
    switch (c->type) {
    case DOMAIN_CHR_PTY:
        g_ptr_array_add(argv, g_strconcat("unix:", paths->console_socket, NULL));
        return TRUE;
    case DOMAIN_CHR_FILE:
        if (!c->path)
            return unsupported(error, "serial type 'file' needs a source path");
        if (c->append == CONF_OFF)
            return unsupported(error, "serial file with append='off' is not supported by "
                               "Vireo (output is always appended)");
        g_ptr_array_add(argv, g_strconcat("file:", c->path, NULL));
        return TRUE;
    case DOMAIN_CHR_UNIX:
        if (!c->path)
            return unsupported(error, "serial type 'unix' needs a source path");
        if (!c->listen)
            return unsupported(error, "serial type 'unix' with mode='connect' is not "
                               "supported by Vireo (only mode='bind')");
        g_ptr_array_add(argv, g_strconcat("unix:", c->path, NULL));
        return TRUE;
    default:
        return unsupported(error, "serial type '%s' is not supported by Vireo",
                           domain_chr_type_to_string(c->type));
    }
}

typedef struct PciArg {
    guint slot, function;
    const char *what;
    char *arg;
} PciArg;

static gint pci_arg_cmp(gconstpointer a, gconstpointer b)
{
    const PciArg *x = a, *y = b;

    return (int)x->slot - (int)y->slot;
}

static void add_pci(GArray *pci, const DomainDeviceInfo *info, const char *what, char *arg)
{
    PciArg p = { .what = what, .arg = arg };

    if (info->addr.type == DOMAIN_ADDR_PCI) {
        p.slot = info->addr.pci.slot;
        p.function = info->addr.pci.function;
    }
    g_array_append_val(pci, p);
}

char **vmm_argv_build(const DomainDef *def, const VmmArgvPaths *paths, unsigned caps,
                      GError **error)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GArray) pci = g_array_new(FALSE, TRUE, sizeof(PciArg));
    guint64 mib;
    gboolean ok = TRUE;

    if (!domain_def_check_runnable(def, caps, error))
        return NULL;
    g_ptr_array_add(argv, g_strdup(paths->vmm));
    g_ptr_array_add(argv, g_strdup("--name"));
    g_ptr_array_add(argv, g_strdup(def->name));
    g_ptr_array_add(argv, g_strdup("--kernel"));
    g_ptr_array_add(argv, g_strdup(def->os.kernel));
    if (def->os.initrd) {
        g_ptr_array_add(argv, g_strdup("--initrd"));
        g_ptr_array_add(argv, g_strdup(def->os.initrd));
    }
    if (def->os.cmdline) {
        g_ptr_array_add(argv, g_strdup("--cmdline"));
        g_ptr_array_add(argv, g_strdup(def->os.cmdline));
    }
    /* vireo-vmm takes MiB; libvirt's KiB are rounded up, as QEMU's -m does. */
    mib = (def->memory_kib + 1023) / 1024;
    g_ptr_array_add(argv, g_strdup("--memory"));
    g_ptr_array_add(argv, g_strdup_printf("%" G_GUINT64_FORMAT, mib));
    g_ptr_array_add(argv, g_strdup("--cpus"));
    g_ptr_array_add(argv, g_strdup_printf("%u", def->vcpus));
    if (!add_serial(argv, def, paths, error))
        return NULL;
    g_ptr_array_add(argv, g_strdup("--qmp"));
    g_ptr_array_add(argv, g_strconcat("unix:", paths->qmp_socket, NULL));
    if (!strcmp(def->on_reboot, "destroy"))
        g_ptr_array_add(argv, g_strdup("--no-reboot"));
    g_ptr_array_add(argv, g_strdup("-S"));

    for (guint i = 0; i < def->rngs->len; i++) {
        const DomainRngDef *r = def->rngs->pdata[i];
        GString *arg = g_string_new("virtio-rng");

        if (r->has_rate) {
            g_string_append_printf(arg, ",max-bytes=%" G_GUINT64_FORMAT, r->rate_bytes);
            if (r->rate_period)
                g_string_append_printf(arg, ",period=%" G_GUINT64_FORMAT, r->rate_period);
        }
        add_pci(pci, &r->info, "rng", g_string_free(arg, FALSE));
    }
    if (def->memballoon && strcmp(def->memballoon->model, "none") != 0) {
        const DomainMemballoonDef *b = def->memballoon;
        GString *arg = g_string_new("virtio-balloon");

        if (b->has_stats && b->stats_period)
            g_string_append_printf(arg, ",stats-interval=%" G_GUINT64_FORMAT, b->stats_period);
        if (b->autodeflate == CONF_ON)
            g_string_append(arg, ",deflate-on-oom=on");
        add_pci(pci, &b->info, "memballoon", g_string_free(arg, FALSE));
    }
    g_array_sort(pci, pci_arg_cmp);
    for (guint i = 0; i < pci->len; i++) {
        PciArg *p = &g_array_index(pci, PciArg, i);

        if (ok && (p->slot != i + 1 || p->function != 0))
            ok = unsupported(error, "%s at PCI slot %u function %u cannot be placed by "
                             "vireo-vmm, which gives slots 1, 2, ... in order (slot %u "
                             "expected)", p->what, p->slot, p->function, i + 1);
        g_ptr_array_add(argv, g_strdup("--device"));
        g_ptr_array_add(argv, g_steal_pointer(&p->arg));
    }
    for (guint i = 0; i < pci->len; i++)
        g_free(g_array_index(pci, PciArg, i).arg);
    if (!ok)
        return NULL;
    g_ptr_array_add(argv, NULL);
    return (char **)g_ptr_array_free(g_steal_pointer(&argv), FALSE);
}
