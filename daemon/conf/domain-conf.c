/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The domain definition: top-level elements of libvirt's domain XML
 * (name ... pm), the public parse/format entry points and the check of
 * what Vireo can start. Devices are in domain-device.c, defaults and
 * cross-element validation in domain-post.c.
 */
#include <stdarg.h>
#include <string.h>

#include <libxml/xmlsave.h>

#include "vireo/conf-value.h"
#include "vireo/util.h"
#include "domain-internal.h"
#include "xml-lib.h"

#define DOMAIN_MAX_VCPUS 4096

static const char *const virt_types[] = { "kvm", "qemu", NULL };
static const char *const virt_types_other[] = {
    "kqemu", "xen", "lxc", "uml", "openvz", "test", "vmware", "hyperv", "vbox", "phyp",
    "parallels", "bhyve", "vz", NULL,
};
static const char *const placements[] = { "static", "auto", NULL };
static const char *const boot_devs[] = { "fd", "hd", "cdrom", "network", NULL };
static const char *const firmwares[] = { "bios", "efi", NULL };
static const char *const loader_types[] = { "rom", "pflash", NULL };
static const char *const lifecycle_actions[] = {
    "destroy", "restart", "rename-restart", "preserve", NULL,
};
static const char *const crash_actions[] = {
    "destroy", "restart", "rename-restart", "preserve", "coredump-destroy",
    "coredump-restart", NULL,
};
static const char *const cpu_modes[] = {
    "custom", "host-model", "host-passthrough", "maximum", NULL,
};
static const char *const cpu_matches[] = { "minimum", "exact", "strict", NULL };
static const char *const cpu_checks[] = { "none", "partial", "full", NULL };
static const char *const cpu_fallbacks[] = { "allow", "forbid", NULL };
static const char *const cpu_policies[] = {
    "force", "require", "optional", "disable", "forbid", NULL,
};
static const char *const clock_offsets[] = { "utc", "localtime", "timezone", "variable", NULL };
static const char *const clock_bases[] = { "utc", "localtime", NULL };
static const char *const timer_names[] = {
    "platform", "pit", "rtc", "hpet", "tsc", "kvmclock", "hypervclock", "armvtimer", NULL,
};
static const char *const timer_tickpolicies[] = { "delay", "catchup", "merge", "discard", NULL };
static const char *const timer_tracks[] = { "boot", "guest", "wall", "realtime", NULL };
static const char *const timer_modes[] = {
    "auto", "native", "emulate", "paravirt", "smpsafe", NULL,
};

/*
 * Top-level elements in the order libvirt 9.0.0 formats them. Those
 * without a parser here are libvirt settings Vireo keeps verbatim.
 */
static const char *const top_order[] = {
    "name", "uuid", "genid", "title", "description", "metadata", "maxMemory", "memory",
    "currentMemory", "blkiotune", "memtune", "memoryBacking", "vcpu", "vcpus", "iothreads",
    "iothreadids", "defaultiothread", "cputune", "numatune", "resource", "sysinfo",
    "bootloader", "bootloader_args", "os", "idmap", "features", "cpu", "clock",
    "on_poweroff", "on_reboot", "on_crash", "on_lockfailure", "pm", "perf", "devices",
    "seclabel", "keywrap", "launchSecurity", NULL,
};
static const char *const top_typed[] = {
    "name", "uuid", "title", "description", "metadata", "maxMemory", "memory",
    "currentMemory", "vcpu", "os", "features", "cpu", "clock", "on_poweroff", "on_reboot",
    "on_crash", "pm", "devices", NULL,
};

/* <features> children in libvirt's order; acpi, apic and pae are typed. */
static const char *const feature_order[] = {
    "acpi", "apic", "pae", "hap", "viridian", "privnet", "hyperv", "kvm", "pvspinlock",
    "capabilities", "pmu", "vmport", "gic", "smm", "ioapic", "hpt", "vmcoreinfo", "htm",
    "nested-hv", "msrs", "ccf-assist", "xen", "cfpc", "sbbc", "ibs", "tcg",
    "async-teardown", NULL,
};

/* ---- life cycle of a DomainDef ---- */

static void cpu_feature_free(gpointer p)
{
    DomainCpuFeature *f = p;

    g_free(f->policy);
    g_free(f->name);
    g_free(f);
}

static void timer_free(gpointer p)
{
    DomainTimerDef *t = p;

    g_free(t->name);
    g_free(t->tickpolicy);
    g_free(t->track);
    g_free(t->mode);
    g_free(t);
}

void domain_raw_free(gpointer p)
{
    DomainRawDef *r = p;

    g_free(r->name);
    g_free(r->what);
    g_free(r);
}

DomainDef *domain_def_new(void)
{
    DomainDef *def = g_new0(DomainDef, 1);

    def->id = -1;
    def->raw_features = g_ptr_array_new_with_free_func(domain_raw_free);
    def->cpu.features = g_ptr_array_new_with_free_func(cpu_feature_free);
    def->clock.timers = g_ptr_array_new_with_free_func(timer_free);
    def->disks = g_ptr_array_new_with_free_func(domain_device_disk_free);
    def->controllers = g_ptr_array_new_with_free_func(domain_device_controller_free);
    def->nets = g_ptr_array_new_with_free_func(domain_device_net_free);
    def->serials = g_ptr_array_new_with_free_func(domain_device_chr_free);
    def->consoles = g_ptr_array_new_with_free_func(domain_device_chr_free);
    def->channels = g_ptr_array_new_with_free_func(domain_device_chr_free);
    def->inputs = g_ptr_array_new_with_free_func(domain_device_input_free);
    def->rngs = g_ptr_array_new_with_free_func(domain_device_rng_free);
    def->raw_devices = g_ptr_array_new_with_free_func(domain_raw_free);
    def->raw_elements = g_ptr_array_new_with_free_func(domain_raw_free);
    return def;
}

void domain_def_free(DomainDef *def)
{
    if (!def)
        return;
    g_free(def->name);
    g_free(def->title);
    g_free(def->description);
    g_free(def->vcpu_placement);
    g_free(def->vcpu_cpuset);
    g_free(def->os.type);
    g_free(def->os.arch);
    g_free(def->os.machine);
    g_free(def->os.firmware);
    g_free(def->os.loader);
    g_free(def->os.loader_type);
    g_free(def->os.nvram);
    g_free(def->os.nvram_template);
    g_free(def->os.kernel);
    g_free(def->os.initrd);
    g_free(def->os.cmdline);
    g_free(def->os.dtb);
    for (guint i = 0; i < G_N_ELEMENTS(def->os.boot); i++)
        g_free(def->os.boot[i]);
    g_ptr_array_unref(def->raw_features);
    g_free(def->cpu.mode);
    g_free(def->cpu.match);
    g_free(def->cpu.check);
    g_free(def->cpu.model);
    g_free(def->cpu.fallback);
    g_free(def->cpu.vendor_id);
    g_free(def->cpu.vendor);
    g_ptr_array_unref(def->cpu.features);
    g_free(def->clock.offset);
    g_free(def->clock.timezone);
    g_free(def->clock.adjustment);
    g_free(def->clock.basis);
    g_ptr_array_unref(def->clock.timers);
    g_free(def->on_poweroff);
    g_free(def->on_reboot);
    g_free(def->on_crash);
    g_free(def->emulator);
    g_ptr_array_unref(def->disks);
    g_ptr_array_unref(def->controllers);
    g_ptr_array_unref(def->nets);
    g_ptr_array_unref(def->serials);
    g_ptr_array_unref(def->consoles);
    g_ptr_array_unref(def->channels);
    g_ptr_array_unref(def->inputs);
    domain_device_memballoon_free(def->memballoon);
    g_ptr_array_unref(def->rngs);
    domain_device_watchdog_free(def->watchdog);
    g_ptr_array_unref(def->raw_devices);
    g_ptr_array_unref(def->raw_elements);
    if (def->raw_doc)
        xml_lib.xmlFreeDoc(def->raw_doc);
    g_free(def);
}

xmlNodePtr domain_raw_keep(DomainDef *def, xmlNodePtr node)
{
    xmlNodePtr copy;

    if (!def->raw_doc) {
        def->raw_doc = xml_lib.xmlNewDoc(BAD_CAST "1.0");
        xml_lib.xmlDocSetRootElement(def->raw_doc,
                                     xml_lib.xmlNewDocNode(def->raw_doc, NULL,
                                                           BAD_CAST "kept", NULL));
    }
    copy = xml_lib.xmlDocCopyNode(node, def->raw_doc, 1);
    g_assert(copy);
    xml_lib.xmlAddChild(xml_lib.xmlDocGetRootElement(def->raw_doc), copy);
    return copy;
}

DomainRawDef *domain_raw_new(DomainDef *def, xmlNodePtr node, const char *what)
{
    DomainRawDef *r = g_new0(DomainRawDef, 1);

    r->name = g_strdup((const char *)node->name);
    r->what = g_strdup(what);
    r->node = domain_raw_keep(def, node);
    return r;
}

xmlNodePtr domain_parse_node(DomainParseCtx *ctx, gconstpointer dev)
{
    xmlNodePtr n = g_hash_table_lookup(ctx->nodes, dev);

    return n ? n : ctx->devices ? ctx->devices : ctx->root;
}

/* ---- parsing the top level ---- */

static gboolean parse_text(xmlNodePtr n, char **out, GError **error)
{
    if (!conf_xml_check(n, NULL, NULL, TRUE, error))
        return FALSE;
    *out = conf_xml_text(n);
    return TRUE;
}

static gboolean parse_memory(xmlNodePtr n, gboolean max, guint64 *kib, guint64 *slots,
                             GError **error)
{
    static const char *const attrs[] = { "unit", NULL };
    static const char *const max_attrs[] = { "unit", "slots", NULL };
    g_autofree char *unit = NULL, *text = NULL;
    guint64 bytes;

    if (!conf_xml_check(n, max ? max_attrs : attrs, NULL, TRUE, error))
        return FALSE;
    unit = conf_xml_prop(n, "unit");
    text = conf_xml_text(n);
    g_strstrip(text);
    if (!conf_size_to_bytes(text, unit, 1024, &bytes))
        return conf_xml_error(error, n, "'%s %s' is not a valid size", text,
                              unit ? unit : "KiB");
    /* libvirt rounds up to whole KiB */
    *kib = bytes / 1024 + (bytes % 1024 ? 1 : 0);
    if (max) {
        gboolean has = FALSE;
        if (!conf_xml_prop_uint(n, "slots", 255, slots, &has, error))
            return FALSE;
        if (!has)
            return conf_xml_error(error, n, "attribute 'slots' is required");
    }
    return TRUE;
}

static gboolean parse_vcpu(DomainDef *def, xmlNodePtr n, GError **error)
{
    static const char *const attrs[] = { "placement", "cpuset", "current", NULL };
    g_autofree char *text = NULL, *cpuset = NULL;
    guint64 v, cur = 0;
    gboolean has_cur = FALSE;

    if (!conf_xml_check(n, attrs, NULL, TRUE, error) ||
        !conf_xml_prop_choice(n, "placement", placements, &def->vcpu_placement, error) ||
        !conf_xml_prop_uint(n, "current", DOMAIN_MAX_VCPUS, &cur, &has_cur, error))
        return FALSE;
    text = g_strstrip(conf_xml_text(n));
    if (!conf_parse_uint(text, 10, DOMAIN_MAX_VCPUS, &v) || v == 0)
        return conf_xml_error(error, n, "vcpu count '%s' must be from 1 to %d", text,
                              DOMAIN_MAX_VCPUS);
    def->vcpus = (guint)v;
    if (has_cur) {
        if (cur == 0)
            return conf_xml_error(error, n, "attribute 'current' must be at least 1");
        if (cur > v)
            return conf_xml_error(error, n, "current vcpus (%u) exceed the maximum (%u)",
                                  (guint)cur, (guint)v);
        def->vcpus_current = (guint)cur;
    }
    if ((cpuset = conf_xml_prop(n, "cpuset"))) {
        def->vcpu_cpuset = conf_cpuset_normalize(cpuset, DOMAIN_MAX_VCPUS * 4);
        if (!def->vcpu_cpuset)
            return conf_xml_error(error, n, "invalid cpuset '%s'", cpuset);
    }
    return TRUE;
}

static gboolean machine_name_valid(const char *m)
{
    static const char *const exact[] = { "vireo", "pc", "q35", NULL };
    const char *rest = NULL;

    if (conf_enum_from_string(exact, m) >= 0)
        return TRUE;
    if (g_str_has_prefix(m, "pc-i440fx-"))
        rest = m + strlen("pc-i440fx-");
    else if (g_str_has_prefix(m, "pc-q35-"))
        rest = m + strlen("pc-q35-");
    if (!rest || !*rest)
        return FALSE;
    for (; *rest; rest++)
        if (!g_ascii_isalnum(*rest) && *rest != '.' && *rest != '-' && *rest != '_')
            return FALSE;
    return TRUE;
}

static gboolean parse_os(DomainDef *def, xmlNodePtr n, GError **error)
{
    static const char *const attrs[] = { "firmware", NULL };
    static const char *const children[] = {
        "type", "loader", "nvram", "kernel", "initrd", "cmdline", "dtb", "*boot",
        "bootmenu", NULL,
    };
    xmlNodePtr type = conf_xml_child(n, "type");

    if (!conf_xml_check(n, attrs, children, FALSE, error) ||
        !conf_xml_prop_choice(n, "firmware", firmwares, &def->os.firmware, error))
        return FALSE;
    if (!type)
        return conf_xml_error(error, n, "element 'type' is required");
    for (xmlNodePtr c = n->children; c; c = c->next) {
        const char *name = (const char *)c->name;

        if (c->type != XML_ELEMENT_NODE)
            continue;
        if (strcmp(name, "type") == 0) {
            static const char *const ta[] = { "arch", "machine", NULL };
            if (!conf_xml_check(c, ta, NULL, TRUE, error))
                return FALSE;
            def->os.type = g_strstrip(conf_xml_text(c));
            def->os.arch = conf_xml_prop(c, "arch");
            def->os.machine = conf_xml_prop(c, "machine");
            if (strcmp(def->os.type, "hvm") != 0)
                return conf_xml_error(error, c, "OS type '%s' is not supported "
                                      "(Vireo runs 'hvm' guests)", def->os.type);
            if (def->os.arch && strcmp(def->os.arch, "x86_64") != 0)
                return conf_xml_error(error, c, "architecture '%s' is not supported "
                                      "(Vireo runs 'x86_64' guests)", def->os.arch);
            if (def->os.machine && !machine_name_valid(def->os.machine))
                return conf_xml_error(error, c, "unknown machine type '%s' (Vireo runs "
                                      "'vireo' and accepts 'pc', 'q35', 'pc-i440fx-*' "
                                      "and 'pc-q35-*' for it)", def->os.machine);
        } else if (strcmp(name, "loader") == 0) {
            static const char *const la[] = { "readonly", "secure", "type", NULL };
            if (!conf_xml_check(c, la, NULL, TRUE, error) ||
                !conf_xml_prop_tristate(c, "readonly", FALSE, &def->os.loader_readonly, error) ||
                !conf_xml_prop_tristate(c, "secure", FALSE, &def->os.loader_secure, error) ||
                !conf_xml_prop_choice(c, "type", loader_types, &def->os.loader_type, error))
                return FALSE;
            def->os.loader = g_strstrip(conf_xml_text(c));
            if (!*def->os.loader)
                g_clear_pointer(&def->os.loader, g_free);
        } else if (strcmp(name, "nvram") == 0) {
            static const char *const na[] = { "template", NULL };
            if (!conf_xml_check(c, na, NULL, TRUE, error))
                return FALSE;
            def->os.nvram_template = conf_xml_prop(c, "template");
            def->os.nvram = g_strstrip(conf_xml_text(c));
            if (!*def->os.nvram)
                g_clear_pointer(&def->os.nvram, g_free);
        } else if (strcmp(name, "kernel") == 0) {
            if (!parse_text(c, &def->os.kernel, error))
                return FALSE;
        } else if (strcmp(name, "initrd") == 0) {
            if (!parse_text(c, &def->os.initrd, error))
                return FALSE;
        } else if (strcmp(name, "cmdline") == 0) {
            if (!parse_text(c, &def->os.cmdline, error))
                return FALSE;
        } else if (strcmp(name, "dtb") == 0) {
            if (!parse_text(c, &def->os.dtb, error))
                return FALSE;
        } else if (strcmp(name, "boot") == 0) {
            static const char *const ba[] = { "dev", NULL };
            g_autofree char *dev = NULL;
            if (!conf_xml_check(c, ba, NULL, FALSE, error) ||
                !(dev = conf_xml_prop_required(c, "dev", error)))
                return FALSE;
            if (conf_enum_from_string(boot_devs, dev) < 0)
                return conf_xml_error(error, c, "unknown boot device '%s' (expected one of "
                                      "'hd', 'cdrom', 'network', 'fd')", dev);
            if (def->os.nboot == G_N_ELEMENTS(def->os.boot))
                return conf_xml_error(error, c, "at most %u boot devices may be given",
                                      (guint)G_N_ELEMENTS(def->os.boot));
            def->os.boot[def->os.nboot++] = g_steal_pointer(&dev);
        } else if (strcmp(name, "bootmenu") == 0) {
            static const char *const ba[] = { "enable", "timeout", NULL };
            if (!conf_xml_check(c, ba, NULL, FALSE, error) ||
                !conf_xml_prop_tristate(c, "enable", FALSE, &def->os.bootmenu, error) ||
                !conf_xml_prop_uint(c, "timeout", 65535, &def->os.bootmenu_timeout,
                                    &def->os.has_bootmenu_timeout, error))
                return FALSE;
            if (!def->os.bootmenu)
                return conf_xml_error(error, c, "attribute 'enable' is required");
        }
    }
    if (def->os.nvram_template && !def->os.loader && !def->os.firmware)
        return conf_xml_error(error, n, "an nvram template needs a loader");
    return TRUE;
}

static gboolean parse_features(DomainDef *def, xmlNodePtr n, GError **error)
{
    if (!conf_xml_check(n, NULL, conf_xml_any_child, FALSE, error))
        return FALSE;
    for (xmlNodePtr c = n->children; c; c = c->next) {
        const char *name = (const char *)c->name;

        if (c->type != XML_ELEMENT_NODE)
            continue;
        if (c->ns || conf_enum_from_string(feature_order, name) < 0)
            return conf_xml_error(error, n, "unknown element '%s'", name);
        for (xmlNodePtr p = n->children; p != c; p = p->next)
            if (p->type == XML_ELEMENT_NODE && strcmp((const char *)p->name, name) == 0)
                return conf_xml_error(error, n, "element '%s' may appear only once", name);
        if (strcmp(name, "acpi") == 0 || strcmp(name, "pae") == 0) {
            if (!conf_xml_check(c, NULL, NULL, FALSE, error))
                return FALSE;
            *(name[0] == 'a' ? &def->acpi : &def->pae) = TRUE;
        } else if (strcmp(name, "apic") == 0) {
            static const char *const aa[] = { "eoi", NULL };
            if (!conf_xml_check(c, aa, NULL, FALSE, error) ||
                !conf_xml_prop_tristate(c, "eoi", TRUE, &def->apic_eoi, error))
                return FALSE;
            def->apic = TRUE;
        } else {
            g_autofree char *what = g_strdup_printf("feature '%s'", name);
            g_ptr_array_add(def->raw_features, domain_raw_new(def, c, what));
        }
    }
    return TRUE;
}

static gboolean parse_cpu(DomainDef *def, xmlNodePtr n, GError **error)
{
    static const char *const attrs[] = { "mode", "match", "check", "migratable", NULL };
    static const char *const children[] = { "model", "vendor", "topology", "*feature", NULL };
    xmlNodePtr model = conf_xml_child(n, "model");

    if (!conf_xml_check(n, attrs, children, FALSE, error) ||
        !conf_xml_prop_choice(n, "mode", cpu_modes, &def->cpu.mode, error) ||
        !conf_xml_prop_choice(n, "match", cpu_matches, &def->cpu.match, error) ||
        !conf_xml_prop_choice(n, "check", cpu_checks, &def->cpu.check, error) ||
        !conf_xml_prop_tristate(n, "migratable", TRUE, &def->cpu.migratable, error))
        return FALSE;
    def->cpu.present = TRUE;
    if (!def->cpu.mode)
        def->cpu.mode = g_strdup("custom");
    if (def->cpu.migratable && strcmp(def->cpu.mode, "host-passthrough") != 0 &&
        strcmp(def->cpu.mode, "maximum") != 0)
        return conf_xml_error(error, n, "attribute 'migratable' is only valid with mode "
                              "'host-passthrough' or 'maximum'");
    if (def->cpu.match && strcmp(def->cpu.mode, "custom") != 0)
        return conf_xml_error(error, n, "attribute 'match' is only valid with mode 'custom'");
    for (xmlNodePtr c = n->children; c; c = c->next) {
        const char *name = (const char *)c->name;

        if (c->type != XML_ELEMENT_NODE)
            continue;
        if (strcmp(name, "model") == 0) {
            static const char *const ma[] = { "fallback", "vendor_id", NULL };
            if (!conf_xml_check(c, ma, NULL, TRUE, error) ||
                !conf_xml_prop_choice(c, "fallback", cpu_fallbacks, &def->cpu.fallback, error))
                return FALSE;
            def->cpu.vendor_id = conf_xml_prop(c, "vendor_id");
            def->cpu.model = g_strstrip(conf_xml_text(c));
            if (!*def->cpu.model)
                g_clear_pointer(&def->cpu.model, g_free);
            if (def->cpu.vendor_id && strlen(def->cpu.vendor_id) != 12)
                return conf_xml_error(error, c, "vendor_id '%s' must be 12 characters",
                                      def->cpu.vendor_id);
        } else if (strcmp(name, "vendor") == 0) {
            if (!parse_text(c, &def->cpu.vendor, error))
                return FALSE;
        } else if (strcmp(name, "topology") == 0) {
            static const char *const ta[] = { "sockets", "dies", "cores", "threads", NULL };
            gboolean hs, hd, hc, ht;
            if (!conf_xml_check(c, ta, NULL, FALSE, error) ||
                !conf_xml_prop_uint(c, "sockets", G_MAXUINT16, &def->cpu.sockets, &hs, error) ||
                !conf_xml_prop_uint(c, "dies", G_MAXUINT16, &def->cpu.dies, &hd, error) ||
                !conf_xml_prop_uint(c, "cores", G_MAXUINT16, &def->cpu.cores, &hc, error) ||
                !conf_xml_prop_uint(c, "threads", G_MAXUINT16, &def->cpu.threads, &ht, error))
                return FALSE;
            if (!hs || !hc || !ht)
                return conf_xml_error(error, c, "attributes 'sockets', 'cores' and "
                                      "'threads' are required");
            if (!hd)
                def->cpu.dies = 1;
            if (!def->cpu.sockets || !def->cpu.dies || !def->cpu.cores || !def->cpu.threads)
                return conf_xml_error(error, c, "topology values must be at least 1");
            def->cpu.has_topology = TRUE;
        } else if (strcmp(name, "feature") == 0) {
            static const char *const fa[] = { "policy", "name", NULL };
            DomainCpuFeature *f = g_new0(DomainCpuFeature, 1);
            g_ptr_array_add(def->cpu.features, f);
            if (!conf_xml_check(c, fa, NULL, FALSE, error) ||
                !conf_xml_prop_choice(c, "policy", cpu_policies, &f->policy, error) ||
                !(f->name = conf_xml_prop_required(c, "name", error)))
                return FALSE;
            if (!f->policy)
                f->policy = g_strdup("require");
            for (guint i = 0; i + 1 < def->cpu.features->len; i++)
                if (strcmp(((DomainCpuFeature *)def->cpu.features->pdata[i])->name,
                           f->name) == 0)
                    return conf_xml_error(error, c, "CPU feature '%s' is given twice", f->name);
        }
    }
    /* libvirt: a custom CPU with a model matches exactly unless told otherwise */
    if (strcmp(def->cpu.mode, "custom") == 0 && model && def->cpu.model && !def->cpu.match)
        def->cpu.match = g_strdup("exact");
    if (def->cpu.model && !def->cpu.fallback &&
        (strcmp(def->cpu.mode, "custom") == 0 || strcmp(def->cpu.mode, "host-model") == 0))
        def->cpu.fallback = g_strdup("allow");
    return TRUE;
}

static gboolean parse_clock(DomainDef *def, xmlNodePtr n, GError **error)
{
    static const char *const attrs[] = { "offset", "timezone", "adjustment", "basis", NULL };
    static const char *const children[] = { "*timer", NULL };

    if (!conf_xml_check(n, attrs, children, FALSE, error) ||
        !conf_xml_prop_choice(n, "offset", clock_offsets, &def->clock.offset, error) ||
        !conf_xml_prop_choice(n, "basis", clock_bases, &def->clock.basis, error))
        return FALSE;
    if (!def->clock.offset)
        def->clock.offset = g_strdup("utc");
    def->clock.timezone = conf_xml_prop(n, "timezone");
    def->clock.adjustment = conf_xml_prop(n, "adjustment");
    if (strcmp(def->clock.offset, "timezone") == 0) {
        if (!def->clock.timezone)
            return conf_xml_error(error, n, "attribute 'timezone' is required with offset "
                                  "'timezone'");
    } else if (def->clock.timezone) {
        return conf_xml_error(error, n, "attribute 'timezone' is only valid with offset "
                              "'timezone'");
    }
    if (strcmp(def->clock.offset, "variable") == 0) {
        gint64 adj = 0;
        if (def->clock.adjustment &&
            !g_ascii_string_to_signed(def->clock.adjustment, 10, G_MININT64, G_MAXINT64,
                                      &adj, NULL))
            return conf_xml_error(error, n, "invalid clock adjustment '%s'",
                                  def->clock.adjustment);
        g_free(def->clock.adjustment);
        def->clock.adjustment = g_strdup_printf("%" G_GINT64_FORMAT, adj);
        if (!def->clock.basis)
            def->clock.basis = g_strdup("utc");
    } else {
        if (def->clock.basis)
            return conf_xml_error(error, n, "attribute 'basis' is only valid with offset "
                                  "'variable'");
        if (def->clock.adjustment && (strcmp(def->clock.adjustment, "reset") != 0 ||
                                      strcmp(def->clock.offset, "timezone") == 0))
            return conf_xml_error(error, n, "clock adjustment '%s' is only valid with "
                                  "offset 'variable'", def->clock.adjustment);
    }
    for (xmlNodePtr c = n->children; c; c = c->next) {
        static const char *const ta[] = {
            "name", "present", "tickpolicy", "track", "frequency", "mode", NULL,
        };
        DomainTimerDef *t;

        if (c->type != XML_ELEMENT_NODE)
            continue;
        t = g_new0(DomainTimerDef, 1);
        g_ptr_array_add(def->clock.timers, t);
        if (!conf_xml_check(c, ta, NULL, FALSE, error) ||
            !conf_xml_prop_choice(c, "name", timer_names, &t->name, error) ||
            !conf_xml_prop_tristate(c, "present", FALSE, &t->present, error) ||
            !conf_xml_prop_choice(c, "tickpolicy", timer_tickpolicies, &t->tickpolicy, error) ||
            !conf_xml_prop_choice(c, "track", timer_tracks, &t->track, error) ||
            !conf_xml_prop_uint(c, "frequency", G_MAXUINT64, &t->frequency, NULL, error) ||
            !conf_xml_prop_choice(c, "mode", timer_modes, &t->mode, error))
            return FALSE;
        if (!t->name)
            return conf_xml_error(error, c, "attribute 'name' is required");
        for (guint i = 0; i + 1 < def->clock.timers->len; i++)
            if (strcmp(((DomainTimerDef *)def->clock.timers->pdata[i])->name, t->name) == 0)
                return conf_xml_error(error, c, "timer '%s' is given twice", t->name);
        if (t->track && strcmp(t->name, "rtc") != 0 && strcmp(t->name, "platform") != 0)
            return conf_xml_error(error, c, "attribute 'track' is only valid for the 'rtc' "
                                  "and 'platform' timers");
        if ((t->frequency || t->mode) && strcmp(t->name, "tsc") != 0)
            return conf_xml_error(error, c, "attributes 'frequency' and 'mode' are only "
                                  "valid for the 'tsc' timer");
    }
    return TRUE;
}

static gboolean parse_lifecycle(xmlNodePtr n, const char *const *table, char **out,
                                GError **error)
{
    g_autofree char *v = NULL;

    if (!parse_text(n, &v, error))
        return FALSE;
    g_strstrip(v);
    if (conf_enum_from_string(table, v) < 0)
        return conf_xml_error(error, n, "invalid action '%s'", v);
    *out = g_steal_pointer(&v);
    return TRUE;
}

static gboolean parse_pm(DomainDef *def, xmlNodePtr n, GError **error)
{
    static const char *const children[] = { "suspend-to-mem", "suspend-to-disk", NULL };
    static const char *const attrs[] = { "enabled", NULL };

    if (!conf_xml_check(n, NULL, children, FALSE, error))
        return FALSE;
    for (xmlNodePtr c = n->children; c; c = c->next) {
        ConfTristate *t;

        if (c->type != XML_ELEMENT_NODE)
            continue;
        t = strcmp((const char *)c->name, "suspend-to-mem") == 0 ?
            &def->pm_suspend_to_mem : &def->pm_suspend_to_disk;
        if (!conf_xml_check(c, attrs, NULL, FALSE, error) ||
            !conf_xml_prop_tristate(c, "enabled", FALSE, t, error))
            return FALSE;
        if (!*t)
            return conf_xml_error(error, c, "attribute 'enabled' is required");
    }
    return TRUE;
}

/*
 * As libvirt (virXMLNodeSanitizeNamespaces): <metadata> keeps only child
 * elements in a namespace, the first one per namespace URI.
 */
static void sanitize_metadata(xmlNodePtr md)
{
    g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);
    xmlNodePtr next;

    for (xmlNodePtr c = md->children; c; c = next) {
        next = c->next;
        if (c->type == XML_ELEMENT_NODE && c->ns && c->ns->href &&
            !g_hash_table_contains(seen, c->ns->href)) {
            g_hash_table_add(seen, (gpointer)c->ns->href);
            continue;
        }
        xml_lib.xmlUnlinkNode(c);
        xml_lib.xmlFreeNode(c);
    }
}

static gboolean parse_name(DomainDef *def, xmlNodePtr n, GError **error)
{
    if (!parse_text(n, &def->name, error))
        return FALSE;
    if (!*def->name)
        return conf_xml_error(error, n, "domain name must not be empty");
    if (strchr(def->name, '/'))
        return conf_xml_error(error, n, "domain name '%s' must not contain '/'", def->name);
    if (strchr(def->name, '\n'))
        return conf_xml_error(error, n, "domain name must not contain a newline");
    return TRUE;
}

static gboolean parse_top(DomainParseCtx *ctx, GError **error)
{
    static const char *const attrs[] = { "type", "id", NULL };
    DomainDef *def = ctx->def;
    xmlNodePtr root = ctx->root;
    g_autofree char *type = NULL;
    gboolean has_uuid = FALSE;
    int vt = -1;

    if (!conf_xml_check(root, attrs, conf_xml_any_child, FALSE, error))
        return FALSE;
    if (!(type = conf_xml_prop_required(root, "type", error)))
        return FALSE;
    if (conf_enum_from_string(virt_types_other, type) >= 0)
        return conf_xml_error(error, root, "domain type '%s' is not supported "
                              "(Vireo runs 'kvm')", type);
    if (!conf_xml_prop_enum(root, "type", virt_types, &vt, error))
        return FALSE;
    def->virt_type = vt;
    if (!(ctx->flags & DOMAIN_DEF_PARSE_INACTIVE)) {
        g_autofree char *id = conf_xml_prop(root, "id");
        guint64 v;
        if (id && strcmp(id, "-1") != 0) {
            if (!conf_parse_uint(id, 10, G_MAXINT, &v))
                return conf_xml_error(error, root, "invalid domain id '%s'", id);
            def->id = (int)v;
        }
    }

    for (xmlNodePtr c = root->children; c; c = c->next) {
        const char *name = (const char *)c->name;

        if (c->type != XML_ELEMENT_NODE)
            continue;
        if (c->ns || conf_enum_from_string(top_order, name) < 0)
            return conf_xml_error(error, root, "unknown element '%s%s%s'",
                                  c->ns && c->ns->prefix ? (const char *)c->ns->prefix : "",
                                  c->ns && c->ns->prefix ? ":" : "", name);
        for (xmlNodePtr p = root->children; p != c; p = p->next)
            if (p->type == XML_ELEMENT_NODE && !p->ns &&
                strcmp((const char *)p->name, name) == 0)
                return conf_xml_error(error, root, "element '%s' may appear only once", name);
        if (conf_enum_from_string(top_typed, name) < 0) {
            g_autofree char *what = g_strdup_printf("element <%s>", name);
            g_ptr_array_add(def->raw_elements, domain_raw_new(def, c, what));
            continue;
        }
        if (strcmp(name, "name") == 0) {
            if (!parse_name(def, c, error))
                return FALSE;
        } else if (strcmp(name, "uuid") == 0) {
            g_autofree char *v = NULL;
            if (!parse_text(c, &v, error))
                return FALSE;
            if (!conf_uuid_parse(v, def->uuid))
                return conf_xml_error(error, c, "invalid UUID '%s'", v);
            has_uuid = TRUE;
        } else if (strcmp(name, "title") == 0) {
            if (!parse_text(c, &def->title, error))
                return FALSE;
            if (strchr(def->title, '\n'))
                return conf_xml_error(error, c, "a title must not contain a newline");
        } else if (strcmp(name, "description") == 0) {
            if (!parse_text(c, &def->description, error))
                return FALSE;
        } else if (strcmp(name, "metadata") == 0) {
            if (c->properties)
                return conf_xml_error(error, c, "unknown attribute '%s'",
                                      (const char *)c->properties->name);
            def->metadata = domain_raw_keep(def, c);
            sanitize_metadata(def->metadata);
        } else if (strcmp(name, "memory") == 0) {
            if (!parse_memory(c, FALSE, &def->memory_kib, NULL, error))
                return FALSE;
            if (def->memory_kib == 0)
                return conf_xml_error(error, c, "memory size must be greater than 0");
        } else if (strcmp(name, "currentMemory") == 0) {
            if (!parse_memory(c, FALSE, &def->current_memory_kib, NULL, error))
                return FALSE;
        } else if (strcmp(name, "maxMemory") == 0) {
            if (!parse_memory(c, TRUE, &def->max_memory_kib, &def->max_memory_slots, error))
                return FALSE;
        } else if (strcmp(name, "vcpu") == 0) {
            if (!parse_vcpu(def, c, error))
                return FALSE;
        } else if (strcmp(name, "os") == 0) {
            ctx->os_node = c;
            if (!parse_os(def, c, error))
                return FALSE;
        } else if (strcmp(name, "features") == 0) {
            if (!parse_features(def, c, error))
                return FALSE;
        } else if (strcmp(name, "cpu") == 0) {
            if (!parse_cpu(def, c, error))
                return FALSE;
        } else if (strcmp(name, "clock") == 0) {
            if (!parse_clock(def, c, error))
                return FALSE;
        } else if (strcmp(name, "on_poweroff") == 0) {
            if (!parse_lifecycle(c, lifecycle_actions, &def->on_poweroff, error))
                return FALSE;
        } else if (strcmp(name, "on_reboot") == 0) {
            if (!parse_lifecycle(c, lifecycle_actions, &def->on_reboot, error))
                return FALSE;
        } else if (strcmp(name, "on_crash") == 0) {
            if (!parse_lifecycle(c, crash_actions, &def->on_crash, error))
                return FALSE;
        } else if (strcmp(name, "pm") == 0) {
            if (!parse_pm(def, c, error))
                return FALSE;
        } else if (strcmp(name, "devices") == 0) {
            ctx->devices = c;
            if (!domain_device_parse_all(ctx, c, error))
                return FALSE;
        }
    }
    if (!def->name)
        return conf_xml_error(error, root, "element 'name' is required");
    if (!def->memory_kib)
        return conf_xml_error(error, root, "element 'memory' is required");
    if (!ctx->os_node)
        return conf_xml_error(error, root, "element 'os' is required");
    if (!has_uuid)
        conf_uuid_generate(def->uuid);
    return TRUE;
}

static DomainDef *parse_doc(xmlDocPtr doc, unsigned flags, GError **error)
{
    g_autoptr(DomainDef) def = domain_def_new();
    g_autoptr(GHashTable) nodes = g_hash_table_new(g_direct_hash, g_direct_equal);
    DomainParseCtx ctx = {
        .def = def, .flags = flags, .nodes = nodes,
        .root = xml_lib.xmlDocGetRootElement(doc),
    };

    if (!parse_top(&ctx, error) || !domain_post_parse(&ctx, error))
        return NULL;
    return g_steal_pointer(&def);
}

DomainDef *domain_def_parse_string(const char *xml, unsigned flags, GError **error)
{
    xmlDocPtr doc;
    DomainDef *def;

    g_return_val_if_fail(xml != NULL, NULL);
    doc = conf_xml_read(xml, strlen(xml), "domain", error);
    if (!doc)
        return NULL;
    def = parse_doc(doc, flags, error);
    xml_lib.xmlFreeDoc(doc);
    return def;
}

DomainDef *domain_def_parse_file(const char *path, unsigned flags, GError **error)
{
    g_autofree char *xml = NULL;
    g_autoptr(GError) err = NULL;
    DomainDef *def;

    if (!g_file_get_contents(path, &xml, NULL, &err)) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "cannot read '%s': %s", path,
                    err->message);
        return NULL;
    }
    def = domain_def_parse_string(xml, flags, error);
    if (!def)
        g_prefix_error(error, "%s: ", path);
    return def;
}

/* ---- formatting ---- */

static void format_metadata(GString *b, const DomainDef *def)
{
    xmlBufferPtr xb = xml_lib.xmlBufferCreate();
    int *indent = xml_lib.__xmlIndentTreeOutput();
    int old_indent = *indent;

    /* libvirt prints metadata with libxml2's own serializer, indented */
    *indent = 1;
    if (xml_lib.xmlNodeDump(xb, def->raw_doc, def->metadata, 1, 1) >= 0) {
        conf_buf_indent(b, 2);
        g_string_append(b, (const char *)xml_lib.xmlBufferContent(xb));
        g_string_append_c(b, '\n');
    }
    *indent = old_indent;
    xml_lib.xmlBufferFree(xb);
}

static void format_memory(GString *b, const char *name, guint64 kib)
{
    g_string_append_printf(b, "  <%s unit='KiB'>%" G_GUINT64_FORMAT "</%s>\n", name, kib, name);
}

static void format_os(GString *b, const DomainDef *def)
{
    g_string_append(b, "  <os");
    conf_buf_attr(b, "firmware", def->os.firmware);
    g_string_append(b, ">\n    <type");
    conf_buf_attr(b, "arch", def->os.arch);
    conf_buf_attr(b, "machine", def->os.machine);
    g_string_append_c(b, '>');
    conf_buf_escape(b, def->os.type);
    g_string_append(b, "</type>\n");
    if (def->os.loader || def->os.loader_readonly || def->os.loader_secure ||
        def->os.loader_type) {
        g_string_append(b, "    <loader");
        conf_buf_attr(b, "readonly", conf_tristate_str(def->os.loader_readonly, FALSE));
        conf_buf_attr(b, "secure", conf_tristate_str(def->os.loader_secure, FALSE));
        conf_buf_attr(b, "type", def->os.loader_type);
        if (def->os.loader) {
            g_string_append_c(b, '>');
            conf_buf_escape(b, def->os.loader);
            g_string_append(b, "</loader>\n");
        } else {
            g_string_append(b, "/>\n");
        }
    }
    if (def->os.nvram || def->os.nvram_template) {
        g_string_append(b, "    <nvram");
        conf_buf_attr(b, "template", def->os.nvram_template);
        if (def->os.nvram) {
            g_string_append_c(b, '>');
            conf_buf_escape(b, def->os.nvram);
            g_string_append(b, "</nvram>\n");
        } else {
            g_string_append(b, "/>\n");
        }
    }
    conf_buf_text_element(b, 4, "kernel", def->os.kernel);
    conf_buf_text_element(b, 4, "initrd", def->os.initrd);
    conf_buf_text_element(b, 4, "cmdline", def->os.cmdline);
    conf_buf_text_element(b, 4, "dtb", def->os.dtb);
    for (guint i = 0; i < def->os.nboot; i++)
        g_string_append_printf(b, "    <boot dev='%s'/>\n", def->os.boot[i]);
    if (def->os.bootmenu) {
        g_string_append(b, "    <bootmenu");
        conf_buf_attr(b, "enable", conf_tristate_str(def->os.bootmenu, FALSE));
        if (def->os.has_bootmenu_timeout)
            g_string_append_printf(b, " timeout='%u'", (guint)def->os.bootmenu_timeout);
        g_string_append(b, "/>\n");
    }
    g_string_append(b, "  </os>\n");
}

static void format_features(GString *b, const DomainDef *def)
{
    if (!def->acpi && !def->apic && !def->pae && !def->raw_features->len)
        return;
    g_string_append(b, "  <features>\n");
    for (int i = 0; feature_order[i]; i++) {
        const char *f = feature_order[i];

        if (strcmp(f, "acpi") == 0 && def->acpi)
            g_string_append(b, "    <acpi/>\n");
        if (strcmp(f, "apic") == 0 && def->apic) {
            g_string_append(b, "    <apic");
            conf_buf_attr(b, "eoi", conf_tristate_str(def->apic_eoi, TRUE));
            g_string_append(b, "/>\n");
        }
        if (strcmp(f, "pae") == 0 && def->pae)
            g_string_append(b, "    <pae/>\n");
        for (guint j = 0; j < def->raw_features->len; j++) {
            const DomainRawDef *r = def->raw_features->pdata[j];
            if (strcmp(r->name, f) == 0)
                conf_xml_format_node(b, 4, r->node, NULL);
        }
    }
    g_string_append(b, "  </features>\n");
}

static void format_cpu(GString *b, const DomainDef *def)
{
    gboolean custom, attrs, children;

    if (!def->cpu.present)
        return;
    custom = strcmp(def->cpu.mode, "custom") == 0;
    /* libvirt prints no attributes for a CPU that only has a topology */
    attrs = !custom || def->cpu.model;
    children = def->cpu.model || def->cpu.vendor || def->cpu.has_topology ||
        def->cpu.features->len;
    if (!attrs && !children)
        return;
    g_string_append(b, "  <cpu");
    if (attrs) {
        conf_buf_attr(b, "mode", def->cpu.mode);
        if (custom)
            conf_buf_attr(b, "match", def->cpu.match);
        conf_buf_attr(b, "check", def->cpu.check);
        conf_buf_attr(b, "migratable", conf_tristate_str(def->cpu.migratable, TRUE));
    }
    if (!children) {
        g_string_append(b, "/>\n");
        return;
    }
    g_string_append(b, ">\n");
    if (def->cpu.model) {
        g_string_append(b, "    <model");
        conf_buf_attr(b, "fallback", def->cpu.fallback);
        conf_buf_attr(b, "vendor_id", def->cpu.vendor_id);
        g_string_append_c(b, '>');
        conf_buf_escape(b, def->cpu.model);
        g_string_append(b, "</model>\n");
    }
    conf_buf_text_element(b, 4, "vendor", def->cpu.vendor);
    if (def->cpu.has_topology)
        g_string_append_printf(b, "    <topology sockets='%u' dies='%u' cores='%u' "
                               "threads='%u'/>\n", (guint)def->cpu.sockets,
                               (guint)def->cpu.dies, (guint)def->cpu.cores,
                               (guint)def->cpu.threads);
    for (guint i = 0; i < def->cpu.features->len; i++) {
        const DomainCpuFeature *f = def->cpu.features->pdata[i];
        g_string_append(b, "    <feature");
        conf_buf_attr(b, "policy", f->policy);
        conf_buf_attr(b, "name", f->name);
        g_string_append(b, "/>\n");
    }
    g_string_append(b, "  </cpu>\n");
}

static void format_clock(GString *b, const DomainDef *def)
{
    g_string_append(b, "  <clock");
    conf_buf_attr(b, "offset", def->clock.offset);
    conf_buf_attr(b, "adjustment", def->clock.adjustment);
    conf_buf_attr(b, "basis", def->clock.basis);
    conf_buf_attr(b, "timezone", def->clock.timezone);
    if (!def->clock.timers->len) {
        g_string_append(b, "/>\n");
        return;
    }
    g_string_append(b, ">\n");
    for (guint i = 0; i < def->clock.timers->len; i++) {
        const DomainTimerDef *t = def->clock.timers->pdata[i];
        g_string_append(b, "    <timer");
        conf_buf_attr(b, "name", t->name);
        conf_buf_attr(b, "present", conf_tristate_str(t->present, FALSE));
        conf_buf_attr(b, "tickpolicy", t->tickpolicy);
        conf_buf_attr(b, "track", t->track);
        if (t->frequency)
            g_string_append_printf(b, " frequency='%" G_GUINT64_FORMAT "'", t->frequency);
        conf_buf_attr(b, "mode", t->mode);
        g_string_append(b, "/>\n");
    }
    g_string_append(b, "  </clock>\n");
}

static void format_typed(GString *b, const DomainDef *def, const char *name, unsigned flags)
{
    char uuid[CONF_UUID_STRING_LEN];

    if (strcmp(name, "name") == 0) {
        conf_buf_text_element(b, 2, "name", def->name);
    } else if (strcmp(name, "uuid") == 0) {
        conf_uuid_format(def->uuid, uuid);
        conf_buf_text_element(b, 2, "uuid", uuid);
    } else if (strcmp(name, "title") == 0) {
        conf_buf_text_element(b, 2, "title", def->title);
    } else if (strcmp(name, "description") == 0) {
        conf_buf_text_element(b, 2, "description", def->description);
    } else if (strcmp(name, "metadata") == 0) {
        if (def->metadata)
            format_metadata(b, def);
    } else if (strcmp(name, "maxMemory") == 0) {
        if (def->max_memory_kib)
            g_string_append_printf(b, "  <maxMemory slots='%u' unit='KiB'>%" G_GUINT64_FORMAT
                                   "</maxMemory>\n", (guint)def->max_memory_slots,
                                   def->max_memory_kib);
    } else if (strcmp(name, "memory") == 0) {
        format_memory(b, "memory", def->memory_kib);
    } else if (strcmp(name, "currentMemory") == 0) {
        format_memory(b, "currentMemory", def->current_memory_kib);
    } else if (strcmp(name, "vcpu") == 0) {
        g_string_append(b, "  <vcpu");
        conf_buf_attr(b, "placement", def->vcpu_placement);
        if (strcmp(def->vcpu_placement, "auto") != 0)
            conf_buf_attr(b, "cpuset", def->vcpu_cpuset);
        if (def->vcpus_current != def->vcpus)
            g_string_append_printf(b, " current='%u'", def->vcpus_current);
        g_string_append_printf(b, ">%u</vcpu>\n", def->vcpus);
    } else if (strcmp(name, "os") == 0) {
        format_os(b, def);
    } else if (strcmp(name, "features") == 0) {
        format_features(b, def);
    } else if (strcmp(name, "cpu") == 0) {
        format_cpu(b, def);
    } else if (strcmp(name, "clock") == 0) {
        format_clock(b, def);
    } else if (strcmp(name, "on_poweroff") == 0) {
        conf_buf_text_element(b, 2, "on_poweroff", def->on_poweroff);
    } else if (strcmp(name, "on_reboot") == 0) {
        conf_buf_text_element(b, 2, "on_reboot", def->on_reboot);
    } else if (strcmp(name, "on_crash") == 0) {
        conf_buf_text_element(b, 2, "on_crash", def->on_crash);
    } else if (strcmp(name, "pm") == 0) {
        if (def->pm_suspend_to_mem || def->pm_suspend_to_disk) {
            g_string_append(b, "  <pm>\n");
            if (def->pm_suspend_to_mem)
                g_string_append_printf(b, "    <suspend-to-mem enabled='%s'/>\n",
                                       conf_tristate_str(def->pm_suspend_to_mem, FALSE));
            if (def->pm_suspend_to_disk)
                g_string_append_printf(b, "    <suspend-to-disk enabled='%s'/>\n",
                                       conf_tristate_str(def->pm_suspend_to_disk, FALSE));
            g_string_append(b, "  </pm>\n");
        }
    } else if (strcmp(name, "devices") == 0) {
        g_string_append(b, "  <devices>\n");
        domain_device_format_all(def, b, 4, flags);
        g_string_append(b, "  </devices>\n");
    }
}

char *domain_def_format(const DomainDef *def, unsigned flags)
{
    GString *b = g_string_new(NULL);

    g_return_val_if_fail(def != NULL, NULL);
    g_string_append_printf(b, "<domain type='%s'", virt_types[def->virt_type]);
    if (!(flags & DOMAIN_DEF_FORMAT_INACTIVE) && def->id >= 0)
        g_string_append_printf(b, " id='%d'", def->id);
    g_string_append(b, ">\n");
    for (int i = 0; top_order[i]; i++) {
        if (conf_enum_from_string(top_typed, top_order[i]) >= 0) {
            format_typed(b, def, top_order[i], flags);
            continue;
        }
        for (guint j = 0; j < def->raw_elements->len; j++) {
            const DomainRawDef *r = def->raw_elements->pdata[j];
            if (strcmp(r->name, top_order[i]) == 0)
                conf_xml_format_node(b, 2, r->node, NULL);
        }
    }
    g_string_append(b, "</domain>\n");
    return g_string_free(b, FALSE);
}

DomainDef *domain_def_copy(const DomainDef *def, GError **error)
{
    g_autofree char *xml = domain_def_format(def, DOMAIN_DEF_FORMAT_SECURE);

    return domain_def_parse_string(xml, 0, error);
}

DomainDiskDef *domain_def_find_disk(const DomainDef *def, const char *dst)
{
    for (guint i = 0; i < def->disks->len; i++) {
        DomainDiskDef *d = def->disks->pdata[i];
        if (d->dst && strcmp(d->dst, dst) == 0)
            return d;
    }
    return NULL;
}

DomainNetDef *domain_def_find_net(const DomainDef *def, const uint8_t mac[6])
{
    for (guint i = 0; i < def->nets->len; i++) {
        DomainNetDef *n = def->nets->pdata[i];
        if (!n->raw && memcmp(n->mac, mac, 6) == 0)
            return n;
    }
    return NULL;
}

/* ---- what Vireo can start ---- */

static gboolean unsupported(GError **error, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static gboolean unsupported(GError **error, const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(error, VIREO_ERROR, VIREO_ERROR_UNSUPPORTED,
                "unsupported configuration: %s", msg);
    return FALSE;
}

static gboolean runnable_info(const DomainDeviceInfo *info, const char *what, GError **error)
{
    if (info->addr.type == DOMAIN_ADDR_PCI &&
        (info->addr.pci.domain != 0 || info->addr.pci.bus != 0))
        return unsupported(error, "%s is on PCI bus %04x:%02x, but Vireo's machine has only "
                           "bus 0000:00", what, info->addr.pci.domain, info->addr.pci.bus);
    return TRUE;
}

static gboolean is_virtio_model(const char *m)
{
    return m && g_str_has_prefix(m, "virtio");
}

gboolean domain_def_check_runnable(const DomainDef *def, unsigned caps, GError **error)
{
    if (def->virt_type != DOMAIN_VIRT_KVM)
        return unsupported(error, "domain type 'qemu' (emulation without KVM) is not "
                           "supported by Vireo");
    if (def->raw_elements->len)
        return unsupported(error, "%s is not supported by Vireo",
                           ((DomainRawDef *)def->raw_elements->pdata[0])->what);
    for (guint i = 0; i < def->raw_features->len; i++) {
        const DomainRawDef *r = def->raw_features->pdata[i];
        g_autofree char *state = conf_xml_prop(r->node, "state");

        /* turning off something Vireo's machine does not have is fine */
        if (state && strcmp(state, "off") == 0 && !r->node->children &&
            (strcmp(r->name, "vmport") == 0 || strcmp(r->name, "smm") == 0 ||
             strcmp(r->name, "pmu") == 0))
            continue;
        return unsupported(error, "%s is not supported by Vireo", r->what);
    }
    if (!def->os.kernel && !(caps & DOMAIN_RUN_FIRMWARE))
        return unsupported(error, "Vireo boots guests only from a kernel given in "
                           "<os><kernel> (no BIOS or UEFI firmware)");
    if ((def->os.loader || def->os.nvram || def->os.firmware) && !(caps & DOMAIN_RUN_FIRMWARE))
        return unsupported(error, "firmware (<loader>, <nvram>, firmware='%s') is not "
                           "supported by Vireo", def->os.firmware ? def->os.firmware : "");
    if (def->os.dtb)
        return unsupported(error, "a device tree (<dtb>) is not supported by Vireo");
    if (def->max_memory_kib)
        return unsupported(error, "memory hotplug (<maxMemory>) is not supported by Vireo");
    if (def->vcpus_current != def->vcpus)
        return unsupported(error, "vCPU hotplug (current='%u' of %u) is not supported by Vireo",
                           def->vcpus_current, def->vcpus);
    if (def->vcpu_cpuset || strcmp(def->vcpu_placement, "static") != 0)
        return unsupported(error, "vCPU pinning (cpuset or placement='auto') is not "
                           "supported by Vireo");
    if (def->cpu.present && strcmp(def->cpu.mode, "custom") == 0 && def->cpu.model)
        return unsupported(error, "CPU model '%s' is not supported by Vireo (use "
                           "mode='host-passthrough')", def->cpu.model);
    if (def->cpu.features->len)
        return unsupported(error, "CPU feature '%s' is not supported by Vireo",
                           ((DomainCpuFeature *)def->cpu.features->pdata[0])->name);
    if (strcmp(def->clock.offset, "utc") != 0)
        return unsupported(error, "clock offset '%s' is not supported by Vireo (only 'utc')",
                           def->clock.offset);
    if (def->clock.timers->len)
        return unsupported(error, "clock timer '%s' is not supported by Vireo",
                           ((DomainTimerDef *)def->clock.timers->pdata[0])->name);
    if (g_str_has_prefix(def->on_crash, "coredump") ||
        strcmp(def->on_crash, "preserve") == 0 || strcmp(def->on_poweroff, "preserve") == 0 ||
        strcmp(def->on_reboot, "preserve") == 0)
        return unsupported(error, "life cycle action 'preserve' or 'coredump-*' is not "
                           "supported by Vireo");
    if (def->pm_suspend_to_mem == CONF_ON || def->pm_suspend_to_disk == CONF_ON)
        return unsupported(error, "guest suspend (<pm>) is not supported by Vireo");

    for (guint i = 0; i < def->raw_devices->len; i++) {
        const DomainRawDef *r = def->raw_devices->pdata[i];
        if (strcmp(r->name, "audio") == 0)
            continue;     /* a host audio backend without a sound device does nothing */
        return unsupported(error, "%s is not supported by Vireo", r->what);
    }
    for (guint i = 0; i < def->disks->len; i++) {
        const DomainDiskDef *d = def->disks->pdata[i];
        g_autofree char *what = g_strdup_printf("disk '%s'", d->dst);

        if (d->raw)
            return unsupported(error, "%s is not supported by Vireo", d->raw_what);
        if (d->bus != DOMAIN_DISK_BUS_VIRTIO || !(caps & DOMAIN_RUN_DISK_VIRTIO))
            return unsupported(error, "disk bus '%s' (disk '%s') is not supported by Vireo",
                               domain_disk_bus_names[d->bus], d->dst);
        if (d->device != DOMAIN_DISK_DEVICE_DISK)
            return unsupported(error, "disk device 'cdrom'/'floppy'/'lun' (disk '%s') is not "
                               "supported by Vireo", d->dst);
        if (d->type == DOMAIN_DISK_TYPE_VOLUME && !(caps & DOMAIN_RUN_DISK_VOLUME))
            return unsupported(error, "disk type 'volume' (disk '%s') is not supported by "
                               "Vireo", d->dst);
        if (d->driver.format && strcmp(d->driver.format, "raw") != 0 &&
            !(strcmp(d->driver.format, "qcow2") == 0 && (caps & DOMAIN_RUN_DISK_QCOW2)))
            return unsupported(error, "disk format '%s' (disk '%s') is not supported by Vireo",
                               d->driver.format, d->dst);
        if (!runnable_info(&d->info, what, error))
            return FALSE;
    }
    for (guint i = 0; i < def->controllers->len; i++) {
        const DomainControllerDef *c = def->controllers->pdata[i];
        const char *type = domain_controller_type_names[c->type];

        if (c->type == DOMAIN_CONTROLLER_PCI && c->index == 0 && c->model &&
            (strcmp(c->model, "pci-root") == 0 || strcmp(c->model, "pcie-root") == 0))
            continue;
        if (c->type == DOMAIN_CONTROLLER_USB && c->model && strcmp(c->model, "none") == 0)
            continue;
        if (c->type == DOMAIN_CONTROLLER_VIRTIO_SERIAL && (caps & DOMAIN_RUN_VIRTIO_SERIAL)) {
            if (!runnable_info(&c->info, "the virtio-serial controller", error))
                return FALSE;
            continue;
        }
        if (c->model)
            return unsupported(error, "controller '%s' model '%s' is not supported by Vireo",
                               type, c->model);
        return unsupported(error, "controller '%s' is not supported by Vireo", type);
    }
    for (guint i = 0; i < def->nets->len; i++) {
        const DomainNetDef *n = def->nets->pdata[i];
        char mac[CONF_MAC_STRING_LEN];
        g_autofree char *what = NULL;

        if (n->raw)
            return unsupported(error, "%s is not supported by Vireo", n->raw_what);
        conf_mac_format(n->mac, mac);
        what = g_strdup_printf("interface '%s'", mac);
        if (strcmp(n->model, "virtio") != 0 || !(caps & DOMAIN_RUN_NET_VIRTIO))
            return unsupported(error, "interface model '%s' (interface '%s') is not "
                               "supported by Vireo", n->model, mac);
        if (!runnable_info(&n->info, what, error))
            return FALSE;
    }
    for (guint i = 0; i < def->serials->len; i++) {
        const DomainChrDef *c = def->serials->pdata[i];

        if (c->raw)
            return unsupported(error, "%s is not supported by Vireo", c->raw_what);
        if (strcmp(c->target_type, "isa-serial") != 0)
            return unsupported(error, "serial target type '%s' is not supported by Vireo",
                               c->target_type);
        if (c->target_port != 0 && !(caps & DOMAIN_RUN_SERIAL_EXTRA))
            return unsupported(error, "serial port %d is not supported by Vireo (only port 0, "
                               "COM1)", c->target_port);
    }
    for (guint i = 0; i < def->consoles->len; i++) {
        const DomainChrDef *c = def->consoles->pdata[i];
        gboolean alias = (!c->target_type || strcmp(c->target_type, "serial") == 0) &&
            i < def->serials->len;

        if (c->raw)
            return unsupported(error, "%s is not supported by Vireo", c->raw_what);
        if (alias)
            continue;
        if (strcmp(c->target_type, "virtio") != 0 || !(caps & DOMAIN_RUN_VIRTIO_SERIAL))
            return unsupported(error, "console target type '%s' is not supported by Vireo",
                               c->target_type);
    }
    for (guint i = 0; i < def->channels->len; i++) {
        const DomainChrDef *c = def->channels->pdata[i];

        if (c->raw)
            return unsupported(error, "%s is not supported by Vireo", c->raw_what);
        if (!(caps & DOMAIN_RUN_VIRTIO_SERIAL))
            return unsupported(error, "channel '%s' (virtio-serial) is not supported by Vireo",
                               c->target_name ? c->target_name : "");
    }
    for (guint i = 0; i < def->inputs->len; i++) {
        const DomainInputDef *in = def->inputs->pdata[i];

        if (in->raw)
            return unsupported(error, "%s is not supported by Vireo", in->raw_what);
        if (strcmp(in->bus, "ps2") == 0 && strcmp(in->type, "tablet") != 0)
            continue;    /* the machine's i8042 */
        if (strcmp(in->bus, "virtio") == 0 && (caps & DOMAIN_RUN_INPUT_VIRTIO))
            continue;
        return unsupported(error, "input device '%s' on bus '%s' is not supported by Vireo",
                           in->type, in->bus);
    }
    if (def->memballoon && strcmp(def->memballoon->model, "none") != 0 &&
        (!is_virtio_model(def->memballoon->model) || !(caps & DOMAIN_RUN_MEMBALLOON)))
        return unsupported(error, "memballoon model '%s' is not supported by Vireo",
                           def->memballoon->model);
    for (guint i = 0; i < def->rngs->len; i++) {
        const DomainRngDef *r = def->rngs->pdata[i];

        if (r->raw)
            return unsupported(error, "%s is not supported by Vireo", r->raw_what);
        if (!(caps & DOMAIN_RUN_RNG))
            return unsupported(error, "rng device '%s' is not supported by Vireo", r->model);
    }
    if (def->watchdog && (strcmp(def->watchdog->model, "i6300esb") != 0 ||
                          !(caps & DOMAIN_RUN_WATCHDOG)))
        return unsupported(error, "watchdog model '%s' is not supported by Vireo",
                           def->watchdog->model);
    return TRUE;
}
