/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Device and vCPU state sections: the unit of save/restore, snapshots and
 * migration.
 *
 * A stream is a sequence of sections. A section has a name, a version and
 * a list of named, typed fields. Names make a stream self-describing (it
 * can be dumped without the device code) and let a reader detect a field
 * it did not expect instead of silently misreading it. All integers are
 * little-endian.
 *
 *   section: 'S' u8 namelen name u32 version u32 bodylen body
 *   field:   u8 type u8 namelen name value
 *            (type U8/U16/U32/U64: the integer; BYTES: u32 len, data)
 */
#ifndef VIREO_STATE_H
#define VIREO_STATE_H

#include <glib.h>
#include <stdint.h>

typedef struct StateWriter StateWriter;
typedef struct StateReader StateReader;

typedef enum {
    STATE_FIELD_U8 = 1,
    STATE_FIELD_U16 = 2,
    STATE_FIELD_U32 = 3,
    STATE_FIELD_U64 = 4,
    STATE_FIELD_BYTES = 5,
} StateFieldType;

#define STATE_MAX_NAME 255

StateWriter *state_writer_new(void);
void state_writer_free(StateWriter *w);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(StateWriter, state_writer_free)

/* Sections may not nest. */
void state_writer_begin_section(StateWriter *w, const char *name, uint32_t version);
void state_writer_end_section(StateWriter *w);
void state_write_u8(StateWriter *w, const char *field, uint8_t v);
void state_write_u16(StateWriter *w, const char *field, uint16_t v);
void state_write_u32(StateWriter *w, const char *field, uint32_t v);
void state_write_u64(StateWriter *w, const char *field, uint64_t v);
void state_write_bytes(StateWriter *w, const char *field, const void *buf, size_t len);
const uint8_t *state_writer_data(const StateWriter *w, size_t *len);
/* Hands the buffer over; the writer is empty afterwards. */
GBytes *state_writer_steal_bytes(StateWriter *w);

/* The reader borrows data; it must outlive the reader. */
StateReader *state_reader_new(const void *data, size_t len);
void state_reader_free(StateReader *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(StateReader, state_reader_free)

gboolean state_reader_at_end(const StateReader *r);
/* Name of the next section without consuming it (NULL at the end or on garbage). */
char *state_reader_peek_section(const StateReader *r);
/*
 * Enters the next section, which must be called @name and have a version
 * in 1..@max_version (stored in *@version).
 */
gboolean state_reader_begin_section(StateReader *r, const char *name, uint32_t max_version,
                                    uint32_t *version, GError **error);
/* Fails if fields are left over: the stream has data this code does not know. */
gboolean state_reader_end_section(StateReader *r, GError **error);
/* Skips a whole section, e.g. one for a device this VM does not have. */
gboolean state_reader_skip_section(StateReader *r, GError **error);
gboolean state_read_u8(StateReader *r, const char *field, uint8_t *v, GError **error);
gboolean state_read_u16(StateReader *r, const char *field, uint16_t *v, GError **error);
gboolean state_read_u32(StateReader *r, const char *field, uint32_t *v, GError **error);
gboolean state_read_u64(StateReader *r, const char *field, uint64_t *v, GError **error);
/* The field must be exactly @len bytes long. */
gboolean state_read_bytes(StateReader *r, const char *field, void *buf, size_t len,
                          GError **error);
/* Any length up to @max; the length is stored in *@len. */
gboolean state_read_bytes_var(StateReader *r, const char *field, void *buf, size_t max,
                              size_t *len, GError **error);

#endif
