/* SPDX-License-Identifier: GPL-2.0-or-later */
/* AML term encoding: names, integers, packages, scopes and devices. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "vireo/aml.h"

#define AML_ZERO_OP 0x00
#define AML_ONE_OP 0x01
#define AML_NAME_OP 0x08
#define AML_BYTE_PREFIX 0x0a
#define AML_WORD_PREFIX 0x0b
#define AML_DWORD_PREFIX 0x0c
#define AML_STRING_PREFIX 0x0d
#define AML_QWORD_PREFIX 0x0e
#define AML_SCOPE_OP 0x10
#define AML_BUFFER_OP 0x11
#define AML_PACKAGE_OP 0x12
#define AML_DUAL_NAME_PREFIX 0x2e
#define AML_MULTI_NAME_PREFIX 0x2f
#define AML_EXT_OP_PREFIX 0x5b
#define AML_DEVICE_OP 0x82
#define AML_ONES_OP 0xff

Aml *aml_new(void)
{
    return g_byte_array_new();
}

Aml *aml_append(Aml *parent, Aml *child)
{
    g_byte_array_append(parent, child->data, child->len);
    g_byte_array_unref(child);
    return parent;
}

static void put_byte(Aml *a, uint8_t b)
{
    g_byte_array_append(a, &b, 1);
}

static void put_le(Aml *a, uint64_t v, unsigned len)
{
    for (unsigned i = 0; i < len; i++)
        put_byte(a, v >> (8 * i));
}

Aml *aml_int(uint64_t v)
{
    Aml *a = aml_new();

    if (v == 0) {
        put_byte(a, AML_ZERO_OP);
    } else if (v == 1) {
        put_byte(a, AML_ONE_OP);
    } else if (v == UINT64_MAX) {
        put_byte(a, AML_ONES_OP);
    } else if (v <= 0xff) {
        put_byte(a, AML_BYTE_PREFIX);
        put_le(a, v, 1);
    } else if (v <= 0xffff) {
        put_byte(a, AML_WORD_PREFIX);
        put_le(a, v, 2);
    } else if (v <= 0xffffffff) {
        put_byte(a, AML_DWORD_PREFIX);
        put_le(a, v, 4);
    } else {
        put_byte(a, AML_QWORD_PREFIX);
        put_le(a, v, 8);
    }
    return a;
}

Aml *aml_string(const char *s)
{
    Aml *a = aml_new();

    put_byte(a, AML_STRING_PREFIX);
    g_byte_array_append(a, (const guint8 *)s, strlen(s) + 1);
    return a;
}

/* A NameSeg is exactly four characters, padded with '_'. */
static void put_nameseg(Aml *a, const char *seg, size_t len)
{
    g_assert(len >= 1 && len <= 4);
    for (size_t i = 0; i < 4; i++)
        put_byte(a, i < len ? seg[i] : '_');
}

Aml *aml_namestring(const char *name)
{
    Aml *a = aml_new();
    g_auto(GStrv) segs = NULL;
    guint n;

    while (*name == '\\' || *name == '^')
        put_byte(a, *name++);
    if (!*name) {
        put_byte(a, 0x00);      /* NullName */
        return a;
    }
    segs = g_strsplit(name, ".", -1);
    n = g_strv_length(segs);
    if (n == 2) {
        put_byte(a, AML_DUAL_NAME_PREFIX);
    } else if (n > 2) {
        put_byte(a, AML_MULTI_NAME_PREFIX);
        put_byte(a, n);
    }
    for (guint i = 0; i < n; i++)
        put_nameseg(a, segs[i], strlen(segs[i]));
    return a;
}

/* PkgLength (20.2.4): 1 to 4 bytes, counting itself. */
static void put_pkglength(Aml *a, size_t body_len)
{
    size_t total;

    if (body_len + 1 <= 0x3f) {
        put_byte(a, body_len + 1);
        return;
    }
    for (unsigned extra = 1; extra <= 3; extra++) {
        total = body_len + 1 + extra;
        if (total < (1u << (4 + 8 * extra))) {
            put_byte(a, (extra << 6) | (total & 0xf));
            for (unsigned i = 0; i < extra; i++)
                put_byte(a, total >> (4 + 8 * i));
            return;
        }
    }
    g_assert_not_reached();
}

/* Opcode(s), PkgLength, then @body (consumed). */
static Aml *package_like(const uint8_t *op, size_t op_len, Aml *body)
{
    Aml *a = aml_new();

    g_byte_array_append(a, op, op_len);
    put_pkglength(a, body->len);
    return aml_append(a, body);
}

Aml *aml_name_decl(const char *name, Aml *value)
{
    Aml *a = aml_new();

    put_byte(a, AML_NAME_OP);
    aml_append(a, aml_namestring(name));
    return aml_append(a, value);
}

Aml *aml_package(unsigned n, ...)
{
    static const uint8_t op = AML_PACKAGE_OP;
    Aml *body = aml_new();
    va_list ap;

    g_assert(n <= 0xff);
    put_byte(body, n);
    va_start(ap, n);
    for (unsigned i = 0; i < n; i++)
        aml_append(body, va_arg(ap, Aml *));
    va_end(ap);
    return package_like(&op, 1, body);
}

Aml *aml_package_from(GPtrArray *elements)
{
    static const uint8_t op = AML_PACKAGE_OP;
    Aml *body = aml_new();

    g_assert(elements->len <= 0xff);
    put_byte(body, elements->len);
    for (guint i = 0; i < elements->len; i++)
        aml_append(body, g_ptr_array_index(elements, i));
    g_ptr_array_set_size(elements, 0);
    return package_like(&op, 1, body);
}

static Aml *named_block(const uint8_t *op, size_t op_len, const char *name, Aml *body)
{
    Aml *inner = aml_namestring(name);

    aml_append(inner, body);
    return package_like(op, op_len, inner);
}

Aml *aml_scope(const char *name, Aml *body)
{
    static const uint8_t op = AML_SCOPE_OP;
    return named_block(&op, 1, name, body);
}

Aml *aml_device(const char *name, Aml *body)
{
    static const uint8_t op[] = { AML_EXT_OP_PREFIX, AML_DEVICE_OP };
    return named_block(op, sizeof(op), name, body);
}

Aml *aml_eisaid(const char *id)
{
    uint32_t v;

    g_assert(strlen(id) == 7);
    /* Three 5-bit letters, then four hex digits, stored big-endian. */
    v = ((uint32_t)(id[0] - 0x40) << 26) | ((uint32_t)(id[1] - 0x40) << 21) |
        ((uint32_t)(id[2] - 0x40) << 16) | (uint32_t)strtoul(id + 3, NULL, 16);
    return aml_int(GUINT32_SWAP_LE_BE(v));
}

#define AML_RES_IO 0x47           /* small item 0x08, length 7 */
#define AML_RES_IRQ_NO_FLAGS 0x22 /* small item 0x04, length 2 */
#define AML_RES_END_TAG 0x79      /* small item 0x0f, length 1 */

Aml *aml_io(uint16_t min, uint16_t max, uint8_t align, uint8_t len)
{
    Aml *a = aml_new();

    put_byte(a, AML_RES_IO);
    put_byte(a, 1);             /* decodes 16 address bits */
    put_le(a, min, 2);
    put_le(a, max, 2);
    put_byte(a, align);
    put_byte(a, len);
    return a;
}

Aml *aml_irq_no_flags(unsigned irq)
{
    Aml *a = aml_new();

    g_assert(irq < 16);
    put_byte(a, AML_RES_IRQ_NO_FLAGS);
    put_le(a, 1u << irq, 2);
    return a;
}

Aml *aml_resource_template(Aml *descriptors)
{
    static const uint8_t op = AML_BUFFER_OP;
    Aml *body = aml_int(descriptors->len + 2);

    put_byte(descriptors, AML_RES_END_TAG);
    put_byte(descriptors, 0);   /* checksum 0: "treat as correct" */
    aml_append(body, descriptors);
    return package_like(&op, 1, body);
}

#define AML_RES_DWORD_ADDRESS 0x87
#define AML_RES_WORD_ADDRESS 0x88
#define AML_RES_QWORD_ADDRESS 0x8a
#define AML_ADDR_MEMORY 0
#define AML_ADDR_IO 1
#define AML_ADDR_BUS 2
/* General flags: producer, positive decode, MinFixed, MaxFixed. */
#define AML_ADDR_FIXED_PRODUCER 0x0c
#define AML_MEM_READ_WRITE 0x01         /* non-cacheable */
#define AML_IO_ENTIRE_RANGE 0x03

/* Large address space descriptor: granularity 0, no translation. */
static Aml *address_space(uint8_t tag, unsigned width, uint8_t type, uint8_t type_flags,
                          uint64_t min, uint64_t max)
{
    Aml *a = aml_new();

    put_byte(a, tag);
    put_le(a, 3 + 5 * width, 2);
    put_byte(a, type);
    put_byte(a, AML_ADDR_FIXED_PRODUCER);
    put_byte(a, type_flags);
    put_le(a, 0, width);                /* granularity */
    put_le(a, min, width);
    put_le(a, max, width);
    put_le(a, 0, width);                /* translation offset */
    put_le(a, max - min + 1, width);    /* length */
    return a;
}

Aml *aml_word_bus_number(uint16_t min, uint16_t max)
{
    return address_space(AML_RES_WORD_ADDRESS, 2, AML_ADDR_BUS, 0, min, max);
}

Aml *aml_word_io(uint16_t min, uint16_t max)
{
    return address_space(AML_RES_WORD_ADDRESS, 2, AML_ADDR_IO, AML_IO_ENTIRE_RANGE, min, max);
}

Aml *aml_dword_memory(uint32_t min, uint32_t max)
{
    return address_space(AML_RES_DWORD_ADDRESS, 4, AML_ADDR_MEMORY, AML_MEM_READ_WRITE, min,
                         max);
}

Aml *aml_qword_memory(uint64_t min, uint64_t max)
{
    return address_space(AML_RES_QWORD_ADDRESS, 8, AML_ADDR_MEMORY, AML_MEM_READ_WRITE, min,
                         max);
}
