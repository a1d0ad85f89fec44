/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A small ACPI Machine Language encoder for the DSDT (ACPI 6.4, chapter 20).
 * Terms are byte arrays; constructors that take children consume them, so
 * a tree is built bottom-up without leaks:
 *
 *   aml_append(dsdt, aml_name_decl("_S5_", aml_package(4, ...)));
 */
#ifndef VIREO_AML_H
#define VIREO_AML_H

#include <glib.h>
#include <stdint.h>

typedef GByteArray Aml;

Aml *aml_new(void);
/* Appends @child to @parent and frees @child. Returns @parent. */
Aml *aml_append(Aml *parent, Aml *child);

Aml *aml_int(uint64_t v);
Aml *aml_string(const char *s);
/* A NameString: up to four characters per segment, dots between, optional '\\' or '^'. */
Aml *aml_namestring(const char *name);
/* Name(name, value) */
Aml *aml_name_decl(const char *name, Aml *value);
/* Package(n) { elements... }: @n elements, each an Aml* consumed. */
Aml *aml_package(unsigned n, ...);
/* Package { elements... } from an array of Aml* (consumed, at most 255). */
Aml *aml_package_from(GPtrArray *elements);
/* Scope(name) { body } and Device(name) { body }; @body consumed. */
Aml *aml_scope(const char *name, Aml *body);
Aml *aml_device(const char *name, Aml *body);
/* EISA id such as "PNP0A08" as the 32-bit integer ACPI uses. */
Aml *aml_eisaid(const char *id);

/*
 * Resource templates (ACPI 6.4, 6.4.2): small descriptors concatenated and
 * wrapped by aml_resource_template(), which adds the end tag and makes the
 * Buffer. @descriptors is consumed.
 */
Aml *aml_resource_template(Aml *descriptors);
/* IO(Decode16, min, max, align, len) */
Aml *aml_io(uint16_t min, uint16_t max, uint8_t align, uint8_t len);
/* IRQNoFlags() { irq } */
Aml *aml_irq_no_flags(unsigned irq);
/*
 * Address space descriptors a host bridge produces for its children
 * (ResourceProducer, MinFixed, MaxFixed, PosDecode): bus numbers, an I/O
 * range (EntireRange), and non-cacheable read-write memory. [min, max]
 * are inclusive.
 */
Aml *aml_word_bus_number(uint16_t min, uint16_t max);
Aml *aml_word_io(uint16_t min, uint16_t max);
Aml *aml_dword_memory(uint32_t min, uint32_t max);
Aml *aml_qword_memory(uint64_t min, uint64_t max);

#endif
