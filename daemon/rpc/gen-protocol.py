#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Generate the typed XDR codec of the remote protocol from protocol.def.

    gen-protocol.py protocol.def remote-procedures-9.0.0.txt OUT.h OUT.c
    gen-protocol.py --check protocol.def remote-procedures-9.0.0.txt OUT.h OUT.c

The outputs are committed (include/vireo/rpc-protocol-gen.h and
daemon/rpc/rpc-protocol-gen.c) so that readers, tools and the fuzz build see
plain C; the 'rpc' test suite runs --check, which fails when they differ
from what this script makes. The format of protocol.def is described at its
top; docs/rpc.md explains how to add a procedure.
"""
import re
import sys

HEADER_GUARD = 'VIREO_RPC_PROTOCOL_GEN_H'
SCALARS = {
    # name: (C type, write fn, read fn, min wire size)
    'int': ('gint32', 'xdr_write_int', 'xdr_read_int', 4),
    'uint': ('guint32', 'xdr_write_uint', 'xdr_read_uint', 4),
    'hyper': ('gint64', 'xdr_write_hyper', 'xdr_read_hyper', 8),
    'uhyper': ('guint64', 'xdr_write_uhyper', 'xdr_read_uhyper', 8),
    'double': ('gdouble', 'xdr_write_double', 'xdr_read_double', 8),
    'uchar': ('guint8', 'xdr_write_uint', 'xdr_read_uchar', 4),
    'ushort': ('guint16', 'xdr_write_uint', 'xdr_read_ushort', 4),
    'char': ('char', 'xdr_write_char', 'xdr_read_char', 4),
}
# Tokens of procedure names that libvirt's API names keep upper case.
API_UPPER = {'XML', 'URI', 'UUID', 'ID', 'CPU', 'OS', 'MAC', 'NMI', 'SCSI', 'WWN',
             'DHCP', 'PM', 'FD', 'SEV', 'SGX'}
API_SPECIAL = {'NWFILTER': 'NWFilter', 'IOTHREAD': 'IOThread', 'FSTRIM': 'FSTrim',
               'FSFREEZE': 'FSFreeze', 'FSTHAW': 'FSThaw', 'FSINFO': 'FSInfo'}
FLAGS = {'ro': 'RPC_PROC_RO', 'noauth': 'RPC_PROC_NOAUTH', 'noopen': 'RPC_PROC_NOOPEN',
         'event': 'RPC_PROC_EVENT', 'stream': 'RPC_PROC_STREAM'}


class DefError(Exception):
    pass


def camel(name):
    return ''.join(p[:1].upper() + p[1:] for p in name.split('_'))


def api_name(proc_name):
    words = []
    for w in proc_name.split('_'):
        if w in API_SPECIAL:
            words.append(API_SPECIAL[w])
        elif w in API_UPPER:
            words.append(w)
        else:
            words.append(w[:1] + w[1:].lower())
    return 'vir' + ''.join(words)


class Type:
    """kind: scalar, string, uuid, named, opaque, chararr, charfixed, optional, array"""

    def __init__(self, kind, name=None, inner=None, bound=None):
        self.kind, self.name, self.inner, self.bound = kind, name, inner, bound


class Field:
    def __init__(self, ftype, name):
        self.type, self.name = ftype, name


class Struct:
    def __init__(self, name, fields):
        self.name, self.fields = name, fields
        self.ctype = camel(name)


class Union:
    def __init__(self, name, disc, arms):
        self.name, self.disc, self.arms = name, disc, arms   # arms: [(value, Field)]
        self.ctype = camel(name)


class Proc:
    def __init__(self, prog, number, name, api, flags):
        self.prog, self.number, self.name, self.api, self.flags = prog, number, name, api, flags
        self.args = self.ret = None    # Struct name or None (void)


class Protocol:
    def __init__(self):
        self.consts = {}          # name -> int, in order
        self.enums = {}           # name -> (min, max)
        self.types = {}           # name -> Struct | Union
        self.order = []           # type names in definition order
        self.programs = {}        # name -> (id, version, prefix)
        self.procs = []

    def const_value(self, tok):
        if tok in self.consts:
            return self.consts[tok]
        try:
            return int(tok, 0)
        except ValueError:
            raise DefError('unknown constant %r' % tok)

    def parse_type(self, tok):
        if tok.endswith('?'):
            inner = self.parse_type(tok[:-1])
            if inner.kind not in ('string', 'named') or (
                    inner.kind == 'named' and inner.name in self.enums):
                raise DefError('only strings and structs can be optional: %r' % tok)
            return Type('optional', inner=inner)
        m = re.fullmatch(r'(\w+)<(\w+)>', tok)
        if m:
            base, bound = m.group(1), m.group(2)
            self.const_value(bound)
            if base == 'opaque':
                return Type('opaque', bound=bound)
            if base == 'char':
                return Type('chararr', bound=bound)
            return Type('array', inner=self.parse_type(base), bound=bound)
        m = re.fullmatch(r'char\[(\w+)\]', tok)
        if m:
            self.const_value(m.group(1))
            return Type('charfixed', bound=m.group(1))
        if tok in SCALARS:
            return Type('scalar', name=tok)
        if tok == 'string':
            return Type('string')
        if tok == 'uuid':
            return Type('uuid')
        if tok in self.types or tok in self.enums:
            return Type('named', name=tok)
        raise DefError('unknown type %r' % tok)

    def add_type(self, t):
        if t.name in self.types or t.name in self.enums:
            raise DefError('type %s defined twice' % t.name)
        self.types[t.name] = t
        self.order.append(t.name)


def parse(path):
    p = Protocol()
    lines = []
    for no, raw in enumerate(open(path), 1):
        line = raw.split('#', 1)[0].strip()
        if line:
            lines.append((no, line.split()))
    i = 0

    def fields_until(stop):
        nonlocal i
        out = []
        while i < len(lines) and lines[i][1][0].rstrip(':') not in stop:
            no, toks = lines[i]
            if len(toks) != 2:
                raise DefError('line %d: expected "TYPE NAME"' % no)
            out.append(Field(p.parse_type(toks[0]), toks[1]))
            i += 1
        return out

    try:
        while i < len(lines):
            no, toks = lines[i]
            i += 1
            kw = toks[0]
            if kw == 'const':
                p.consts[toks[1]] = int(toks[2], 0)
            elif kw == 'enum':
                p.enums[toks[1]] = (int(toks[2], 0), int(toks[3], 0))
            elif kw == 'program':
                p.programs[toks[1]] = (int(toks[2], 0), int(toks[3], 0), toks[4])
            elif kw == 'struct':
                fields = fields_until({'end'})
                i += 1
                p.add_type(Struct(toks[1], fields))
            elif kw == 'union':
                if toks[2:4] != ['switch', 'int']:
                    raise DefError('line %d: union NAME switch int DISC' % no)
                arms = []
                while lines[i][1][0] == 'case':
                    _, ct = lines[i]
                    arms.append((int(ct[1], 0), Field(p.parse_type(ct[2]), ct[3])))
                    i += 1
                if lines[i][1][0] != 'end':
                    raise DefError('line %d: union without end' % lines[i][0])
                i += 1
                p.add_type(Union(toks[1], toks[4], arms))
            elif kw == 'proc':
                prog, number, name, api = toks[1], int(toks[2], 0), toks[3], toks[4]
                if prog not in p.programs:
                    raise DefError('line %d: unknown program %s' % (no, prog))
                for f in toks[5:]:
                    if f not in FLAGS:
                        raise DefError('line %d: unknown flag %s' % (no, f))
                proc = Proc(prog, number, name, None if api == '-' else api, toks[5:])
                prefix = p.programs[prog][2]
                while lines[i][1][0] != 'end':
                    pno, pt = lines[i]
                    i += 1
                    slot = pt[0].rstrip(':')
                    if slot not in ('args', 'ret', 'msg'):
                        raise DefError('line %d: expected args, ret or msg' % pno)
                    if pt[0].endswith(':'):
                        sname = '%s_%s_%s' % (prefix, name.lower(), slot)
                        p.add_type(Struct(sname, fields_until({'args', 'ret', 'msg', 'end'})))
                    elif pt[1] == 'void':
                        sname = None
                    else:
                        if pt[1] not in p.types:
                            raise DefError('line %d: unknown struct %s' % (pno, pt[1]))
                        sname = pt[1]
                    if slot == 'ret':
                        proc.ret = sname
                    else:
                        proc.args = sname
                i += 1
                p.procs.append(proc)
            else:
                raise DefError('line %d: unknown keyword %s' % (no, kw))
    except IndexError:
        raise DefError('unexpected end of file')
    seen = set()
    for pr in p.procs:
        key = (pr.prog, pr.number)
        if key in seen:
            raise DefError('procedure %s %d defined twice' % key)
        seen.add(key)
    return p


class Gen:
    def __init__(self, proto, known):
        self.p = proto
        self.known = known       # [(number, name)] of REMOTE

    # ---- sizes and C declarations ----
    def min_size(self, t):
        k = t.kind
        if k == 'scalar':
            return SCALARS[t.name][3]
        if k in ('string', 'opaque', 'chararr', 'optional', 'array'):
            return 4
        if k == 'uuid':
            return self.p.consts['VIR_UUID_BUFLEN']
        if k == 'charfixed':
            return 4 * self.p.const_value(t.bound)
        if t.name in self.p.enums:
            return 4
        d = self.p.types[t.name]
        if isinstance(d, Union):
            return 4 + min(self.min_size(f.type) for _, f in d.arms)
        return sum(self.min_size(f.type) for f in d.fields)

    def needs_clear(self, t):
        k = t.kind
        if k in ('string', 'opaque', 'chararr', 'optional', 'array'):
            return True
        if k == 'named' and t.name in self.p.types:
            d = self.p.types[t.name]
            if isinstance(d, Union):
                return any(self.needs_clear(f.type) for _, f in d.arms)
            return any(self.needs_clear(f.type) for f in d.fields)
        return False

    def elem_ctype(self, t):
        k = t.kind
        if k == 'scalar':
            return SCALARS[t.name][0]
        if k == 'string':
            return 'char *'
        if k == 'named':
            return 'gint32' if t.name in self.p.enums else self.p.types[t.name].ctype
        raise DefError('unsupported array element kind %s' % k)

    def decl(self, f):
        t, n = f.type, f.name
        k = t.kind
        if k == 'scalar':
            return ['%s %s;' % (SCALARS[t.name][0], n)]
        if k == 'string':
            return ['char *%s;' % n]
        if k == 'uuid':
            return ['guint8 %s[VIR_UUID_BUFLEN];' % n]
        if k == 'named':
            return ['%s %s;' % (self.elem_ctype(t), n)]
        if k == 'opaque':
            return ['guint n_%s;' % n, 'guint8 *%s;' % n]
        if k == 'chararr':
            return ['guint n_%s;' % n, 'char *%s;            /* NUL-terminated after n_%s bytes */' % (n, n)]
        if k == 'charfixed':
            return ['char %s[%s];' % (n, t.bound)]
        if k == 'optional':
            if t.inner.kind == 'string':
                return ['char *%s;            /* NULL: absent */' % n]
            return ['%s *%s;    /* NULL: absent */' % (self.p.types[t.inner.name].ctype, n)]
        if k == 'array':
            et = self.elem_ctype(t.inner)
            return ['guint n_%s;' % n, '%s%s*%s;' % (et, '' if et.endswith('*') else ' ', n)]
        raise DefError(k)

    # ---- code for one value ----
    def enc_value(self, t, lv):
        """Statements encoding the value lv of type t (not optional/array)."""
        k = t.kind
        if k == 'scalar':
            return ['if (!%s(w, %s, error))' % (SCALARS[t.name][1], lv), '    return FALSE;']
        if k == 'string':
            return ['if (!xdr_write_string(w, %s, REMOTE_STRING_MAX, error))' % lv, '    return FALSE;']
        if k == 'uuid':
            return ['if (!xdr_write_opaque_fixed(w, %s, VIR_UUID_BUFLEN, error))' % lv, '    return FALSE;']
        if k == 'named':
            if t.name in self.p.enums:
                return ['if (!xdr_write_int(w, %s, error))' % lv, '    return FALSE;']
            return ['if (!%s_encode(w, &%s, error))' % (t.name, lv), '    return FALSE;']
        raise DefError(k)

    def dec_value(self, t, lv):
        k = t.kind
        if k == 'scalar':
            return ['if (!%s(r, &%s, error))' % (SCALARS[t.name][2], lv), '    goto fail;']
        if k == 'string':
            return ['if (!xdr_read_string(r, &%s, REMOTE_STRING_MAX, error))' % lv, '    goto fail;']
        if k == 'uuid':
            return ['if (!xdr_read_opaque_fixed(r, %s, VIR_UUID_BUFLEN, error))' % lv, '    goto fail;']
        if k == 'named':
            if t.name in self.p.enums:
                lo, hi = self.p.enums[t.name]
                return ['if (!xdr_read_enum(r, &%s, %d, %d, error))' % (lv, lo, hi), '    goto fail;']
            return ['if (!%s_decode(r, &%s, error))' % (t.name, lv), '    goto fail;']
        raise DefError(k)

    def clear_value(self, t, lv):
        if t.kind == 'string':
            return ['g_free(%s);' % lv]
        if t.kind == 'named' and self.needs_clear(t):
            return ['%s_clear(&%s);' % (t.name, lv)]
        return []

    # ---- code for one field ----
    def enc_field(self, f, v='v->'):
        t, lv = f.type, v + f.name
        k = t.kind
        if k in ('scalar', 'string', 'uuid', 'named'):
            return self.enc_value(t, lv)
        if k == 'opaque':
            return ['if (!xdr_write_opaque(w, %s, %sn_%s, %s, error))' % (lv, v, f.name, t.bound),
                    '    return FALSE;']
        if k == 'chararr':
            return ['if (!xdr_write_array_count(w, %sn_%s, %s, error))' % (v, f.name, t.bound),
                    '    return FALSE;',
                    'for (guint i = 0; i < %sn_%s; i++) {' % (v, f.name),
                    '    if (!xdr_write_char(w, %s[i], error))' % lv,
                    '        return FALSE;',
                    '}']
        if k == 'charfixed':
            return ['for (guint i = 0; i < %s; i++) {' % t.bound,
                    '    if (!xdr_write_char(w, %s[i], error))' % lv,
                    '        return FALSE;',
                    '}']
        if k == 'optional':
            inner = t.inner
            out = ['if (!xdr_write_optional(w, %s != NULL, error))' % lv, '    return FALSE;']
            if inner.kind == 'string':
                out += ['if (%s && !xdr_write_string(w, %s, REMOTE_STRING_MAX, error))' % (lv, lv),
                        '    return FALSE;']
            else:
                out += ['if (%s && !%s_encode(w, %s, error))' % (lv, inner.name, lv),
                        '    return FALSE;']
            return out
        if k == 'array':
            out = ['if (!xdr_write_array_count(w, %sn_%s, %s, error))' % (v, f.name, t.bound),
                   '    return FALSE;',
                   'for (guint i = 0; i < %sn_%s; i++) {' % (v, f.name)]
            out += ['    ' + s for s in self.enc_value(t.inner, lv + '[i]')]
            out += ['}']
            return out
        raise DefError(k)

    def dec_field(self, f, v='v->'):
        t, lv = f.type, v + f.name
        k = t.kind
        if k in ('scalar', 'string', 'uuid', 'named'):
            return self.dec_value(t, lv)
        if k == 'opaque':
            return ['if (!xdr_read_opaque(r, &%s, &%sn_%s, %s, error))' % (lv, v, f.name, t.bound),
                    '    goto fail;']
        if k == 'chararr':
            return ['if (!xdr_read_array_count(r, &%sn_%s, %s, 4, error))' % (v, f.name, t.bound),
                    '    goto fail;',
                    '%s = g_malloc0((gsize)%sn_%s + 1);' % (lv, v, f.name),
                    'for (guint i = 0; i < %sn_%s; i++) {' % (v, f.name),
                    '    if (!xdr_read_char(r, &%s[i], error))' % lv,
                    '        goto fail;',
                    '}']
        if k == 'charfixed':
            return ['for (guint i = 0; i < %s; i++) {' % t.bound,
                    '    if (!xdr_read_char(r, &%s[i], error))' % lv,
                    '        goto fail;',
                    '}']
        if k == 'optional':
            inner = t.inner
            out = ['if (!xdr_read_optional(r, &present, error))', '    goto fail;']
            if inner.kind == 'string':
                out += ['if (present && !xdr_read_string(r, &%s, REMOTE_STRING_MAX, error))' % lv,
                        '    goto fail;']
            else:
                ct = self.p.types[inner.name].ctype
                out += ['if (present) {',
                        '    %s = g_new0(%s, 1);' % (lv, ct),
                        '    if (!%s_decode(r, %s, error))' % (inner.name, lv),
                        '        goto fail;',
                        '}']
            return out
        if k == 'array':
            et = self.elem_ctype(t.inner)
            out = ['if (!xdr_read_array_count(r, &%sn_%s, %s, %d, error))'
                   % (v, f.name, t.bound, self.min_size(t.inner)),
                   '    goto fail;',
                   '%s = %sn_%s ? g_new0(%s, %sn_%s) : NULL;' % (lv, v, f.name, et.rstrip(' '), v, f.name),
                   'for (guint i = 0; i < %sn_%s; i++) {' % (v, f.name)]
            out += ['    ' + s for s in self.dec_value(t.inner, lv + '[i]')]
            out += ['}']
            return out
        raise DefError(k)

    def clear_field(self, f, v='v->'):
        t, lv = f.type, v + f.name
        k = t.kind
        if k in ('scalar', 'string', 'uuid', 'named'):
            return self.clear_value(t, lv)
        if k in ('opaque', 'chararr'):
            return ['g_free(%s);' % lv]
        if k == 'optional':
            if t.inner.kind == 'string':
                return ['g_free(%s);' % lv]
            out = ['if (%s) {' % lv]
            if self.needs_clear(t.inner):
                out += ['    %s_clear(%s);' % (t.inner.name, lv)]
            out += ['    g_free(%s);' % lv, '}']
            return out
        if k == 'array':
            out = []
            inner = self.clear_value(t.inner, lv + '[i]')
            if inner:
                out += ['for (guint i = 0; %s && i < %sn_%s; i++) {' % (lv, v, f.name)]
                out += ['    ' + s for s in inner] + ['}']
            out += ['g_free(%s);' % lv]
            return out
        return []

    # ---- whole types ----
    def struct_decl(self, s):
        out = ['typedef struct %s {' % s.ctype]
        for f in s.fields:
            out += ['    ' + d for d in self.decl(f)]
        out += ['} %s;' % s.ctype]
        return out

    def union_decl(self, u):
        out = ['typedef struct %s {' % u.ctype, '    gint32 %s;' % u.disc, '    union {']
        for _, f in u.arms:
            out += ['        ' + d for d in self.decl(f)]
        out += ['    } u;', '} %s;' % u.ctype]
        return out

    def protos(self, t):
        return ['gboolean %s_encode(XdrWriter *w, const %s *v, GError **error);' % (t.name, t.ctype),
                'gboolean %s_decode(XdrReader *r, %s *v, GError **error);' % (t.name, t.ctype),
                'void %s_clear(%s *v);' % (t.name, t.ctype),
                'G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(%s, %s_clear)' % (t.ctype, t.name)]

    def struct_code(self, s):
        out = ['gboolean %s_encode(XdrWriter *w, const %s *v, GError **error)' % (s.name, s.ctype), '{']
        for f in s.fields:
            out += ['    ' + l for l in self.enc_field(f)]
        out += ['    return TRUE;', '}', '']
        has_opt = any(f.type.kind == 'optional' for f in s.fields)
        out += ['gboolean %s_decode(XdrReader *r, %s *v, GError **error)' % (s.name, s.ctype), '{']
        if has_opt:
            out += ['    gboolean present;', '']
        out += ['    memset(v, 0, sizeof(*v));']
        for f in s.fields:
            out += ['    ' + l for l in self.dec_field(f)]
        out += ['    return TRUE;', '', 'fail:', '    %s_clear(v);' % s.name, '    return FALSE;', '}', '']
        out += ['void %s_clear(%s *v)' % (s.name, s.ctype), '{']
        for f in s.fields:
            out += ['    ' + l for l in self.clear_field(f)]
        out += ['    memset(v, 0, sizeof(*v));', '}', '']
        return out

    def union_code(self, u):
        d = u.disc
        out = ['gboolean %s_encode(XdrWriter *w, const %s *v, GError **error)' % (u.name, u.ctype), '{',
               '    if (!xdr_write_int(w, v->%s, error))' % d, '        return FALSE;',
               '    switch (v->%s) {' % d]
        for val, f in u.arms:
            out += ['    case %d:' % val]
            out += ['        ' + l for l in self.enc_field(f, 'v->u.')]
            out += ['        return TRUE;']
        out += ['    default:',
                '        g_set_error(error, RPC_ERROR, RPC_ERROR_INVALID,',
                '                    "%s: no arm for %s %%d", v->%s);' % (u.name, d, d),
                '        return FALSE;', '    }', '}', '']
        out += ['gboolean %s_decode(XdrReader *r, %s *v, GError **error)' % (u.name, u.ctype), '{',
                '    gsize at = r->pos;', '',
                '    memset(v, 0, sizeof(*v));',
                '    if (!xdr_read_int(r, &v->%s, error))' % d, '        goto fail;',
                '    switch (v->%s) {' % d]
        for val, f in u.arms:
            out += ['    case %d:' % val]
            out += ['        ' + l for l in self.dec_field(f, 'v->u.')]
            out += ['        return TRUE;']
        out += ['    default:',
                '        g_set_error(error, RPC_ERROR, RPC_ERROR_DECODE,',
                '                    "%s at offset %%zu: no arm for %s %%d", at, v->%s);' % (u.name, d, d),
                '        goto fail;', '    }', '', 'fail:', '    %s_clear(v);' % u.name,
                '    return FALSE;', '}', '']
        out += ['void %s_clear(%s *v)' % (u.name, u.ctype), '{', '    switch (v->%s) {' % d]
        for val, f in u.arms:
            c = self.clear_field(f, 'v->u.')
            if c:
                out += ['    case %d:' % val] + ['        ' + l for l in c] + ['        break;']
        out += ['    default:', '        break;', '    }', '    memset(v, 0, sizeof(*v));', '}', '']
        return out

    # ---- files ----
    def header(self):
        p = self.p
        out = ['/* SPDX-License-Identifier: GPL-2.0-or-later */',
               '/*',
               ' * Generated by daemon/rpc/gen-protocol.py from daemon/rpc/protocol.def',
               ' * and daemon/rpc/remote-procedures-9.0.0.txt. Do not edit: change the',
               ' * description and rerun the generator (docs/rpc.md).',
               ' *',
               ' * For every type T: T_encode() appends it, T_decode() reads it (zeroing *v',
               ' * first; on failure *v is left cleared), T_clear() frees what it owns.',
               ' * Variable arrays are (n_F, F); optional values are NULL when absent.',
               ' */',
               '#ifndef ' + HEADER_GUARD, '#define ' + HEADER_GUARD, '',
               '#include <glib.h>', '', '#include "vireo/xdr.h"', '']
        for n, v in p.consts.items():
            out.append('#define %s %d' % (n, v))
        out.append('')
        for n, (pid, ver, _) in p.programs.items():
            out += ['#define %s_PROGRAM 0x%08xu' % (n, pid), '#define %s_PROTOCOL_VERSION %d' % (n, ver)]
        out.append('')
        out.append('/* libvirt 9.0.0 REMOTE procedures (typed or not). */')
        out.append('enum {')
        for num, name in self.known:
            out.append('    REMOTE_PROC_%s = %d,' % (name, num))
        out.append('};')
        out.append('#define REMOTE_PROC_LAST %d' % max(n for n, _ in self.known))
        for prog in p.programs:
            if prog == 'REMOTE':
                continue
            out += ['', 'enum {']
            for pr in p.procs:
                if pr.prog == prog:
                    out.append('    %s_PROC_%s = %d,' % (prog, pr.name, pr.number))
            out.append('};')
        out.append('')
        for n, (lo, hi) in p.enums.items():
            out.append('typedef gint32 %s;    /* %d..%d */' % (camel(n), lo, hi))
        out.append('')
        for n in p.order:
            t = p.types[n]
            out += self.union_decl(t) if isinstance(t, Union) else self.struct_decl(t)
            out += self.protos(t) + ['']
        out += ['#endif /* %s */' % HEADER_GUARD]
        return '\n'.join(out) + '\n'

    def source(self):
        p = self.p
        out = ['/* SPDX-License-Identifier: GPL-2.0-or-later */',
               '/* Generated by daemon/rpc/gen-protocol.py from daemon/rpc/protocol.def. Do not edit. */',
               '#include <string.h>', '', '#include "vireo/rpc-protocol.h"', '']
        for n in p.order:
            t = p.types[n]
            out += self.union_code(t) if isinstance(t, Union) else self.struct_code(t)
        # type-erased thunks for the procedure table
        used = []
        for pr in p.procs:
            for s in (pr.args, pr.ret):
                if s and s not in used:
                    used.append(s)
        for s in used:
            t = p.types[s]
            out += ['static gboolean %s_encode_any(XdrWriter *w, const void *v, GError **error)' % s,
                    '{', '    return %s_encode(w, v, error);' % s, '}', '',
                    'static gboolean %s_decode_any(XdrReader *r, void *v, GError **error)' % s,
                    '{', '    return %s_decode(r, v, error);' % s, '}', '',
                    'static void %s_clear_any(void *v)' % s,
                    '{', '    %s_clear(v);' % s, '}', '']

        def payload(s):
            if not s:
                return '{ 0, NULL, NULL, NULL, NULL }'
            return '{ sizeof(%s), "%s", %s_encode_any, %s_decode_any, %s_clear_any }' % (
                p.types[s].ctype, s, s, s, s)

        procs = sorted(p.procs, key=lambda x: (p.programs[x.prog][0], x.number))
        out += ['/* Sorted by program, then procedure, for rpc_protocol_find(). */',
                'const RpcProcedure rpc_protocol_procedures[] = {']
        for pr in procs:
            flags = ' | '.join(FLAGS[f] for f in pr.flags) or '0'
            out += ['    { %s_PROGRAM, %s_PROTOCOL_VERSION, %d, "%s", %s, %s,'
                    % (pr.prog, pr.prog, pr.number, pr.name,
                       '"%s"' % pr.api if pr.api else 'NULL', flags),
                    '      %s,' % payload(pr.args),
                    '      %s },' % payload(pr.ret)]
        out += ['};', 'const gsize rpc_protocol_n_procedures = G_N_ELEMENTS(rpc_protocol_procedures);', '']
        last = max(n for n, _ in self.known)
        names = dict(self.known)
        apis = {pr.number: pr.api for pr in p.procs if pr.prog == 'REMOTE' and pr.api}
        out += ['const char *const rpc_remote_proc_names[REMOTE_PROC_LAST + 1] = {']
        for n in range(1, last + 1):
            if n in names:
                out.append('    [%d] = "%s",' % (n, names[n]))
        out += ['};', '', 'const char *const rpc_remote_proc_apis[REMOTE_PROC_LAST + 1] = {']
        for n in range(1, last + 1):
            if n in names:
                out.append('    [%d] = "%s",' % (n, apis.get(n, api_name(names[n]))))
        out += ['};']
        return '\n'.join(out) + '\n'


def read_known(path):
    known = []
    for raw in open(path):
        line = raw.split('#', 1)[0].strip()
        if line:
            num, name = line.split()
            known.append((int(num), name))
    return known


def main(argv):
    check = argv[1:2] == ['--check']
    args = argv[2:] if check else argv[1:]
    if len(args) != 4:
        sys.stderr.write(__doc__)
        return 2
    defpath, knownpath, outh, outc = args
    try:
        proto = parse(defpath)
    except DefError as e:
        sys.stderr.write('%s: %s\n' % (defpath, e))
        return 1
    known = read_known(knownpath)
    names = dict(known)
    for pr in proto.procs:
        if pr.prog == 'REMOTE' and names.get(pr.number) != pr.name:
            sys.stderr.write('%s: REMOTE %d is %s in libvirt 9.0.0, not %s\n'
                             % (defpath, pr.number, names.get(pr.number), pr.name))
            return 1
    gen = Gen(proto, known)
    outputs = [(outh, gen.header()), (outc, gen.source())]
    if check:
        stale = [path for path, text in outputs if open(path).read() != text]
        for path in stale:
            sys.stderr.write('%s is out of date: run daemon/rpc/gen-protocol.py (docs/rpc.md)\n' % path)
        return 1 if stale else 0
    for path, text in outputs:
        with open(path, 'w') as f:
            f.write(text)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
