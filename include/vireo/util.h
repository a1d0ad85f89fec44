/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Small helpers shared by every module. */
#ifndef VIREO_UTIL_H
#define VIREO_UTIL_H

#include <glib.h>
#include <stdint.h>
#include <errno.h>
#include <unistd.h>

/*
 * GLib 2.74 (Debian 12) has no g_autofd, so owning file descriptor
 * locals use this attribute instead.
 */
static inline void vireo_close_fdp(int *fd)
{
    if (*fd >= 0) {
        int saved = errno;
        close(*fd);
        errno = saved;
    }
}
#define autoclose __attribute__((cleanup(vireo_close_fdp)))

static inline int vireo_steal_fd(int *fd)
{
    int ret = *fd;
    *fd = -1;
    return ret;
}

#define VIREO_CONTAINER_OF(ptr, type, member) \
    ((type *)((char *)(ptr) - G_STRUCT_OFFSET(type, member)))
#define VIREO_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define VIREO_ALIGN_UP(x, a) (((x) + (a) - 1) & ~((__typeof__(x))(a) - 1))
#define VIREO_ALIGN_DOWN(x, a) ((x) & ~((__typeof__(x))(a) - 1))

#define VIREO_ERROR vireo_error_quark()
static inline GQuark vireo_error_quark(void)
{
    return g_quark_from_static_string("vireo-error-quark");
}

typedef enum {
    VIREO_ERROR_FAILED,            /* generic */
    VIREO_ERROR_INVALID_ARGUMENT,  /* bad option or value from the user */
    VIREO_ERROR_INVALID_STATE,     /* saved state that does not fit */
    VIREO_ERROR_UNSUPPORTED,       /* valid request we do not implement */
    VIREO_ERROR_KVM,               /* an ioctl on /dev/kvm failed */
    VIREO_ERROR_IO,
} VireoErrorCode;

/*
 * Rate limiting for messages a guest can trigger: at most RATELIMIT_BURST
 * lines per RATELIMIT_INTERVAL_US per call site, then a count of what was
 * suppressed. Best effort under concurrency, never blocks.
 */
typedef struct RateLimit {
    gint64 window_start;
    gint printed;
    gint suppressed;
} RateLimit;

#define RATELIMIT_INTERVAL_US (5 * G_USEC_PER_SEC)
#define RATELIMIT_BURST 10

static inline gboolean ratelimit_allow(RateLimit *rl, int *suppressed)
{
    gint64 now = g_get_monotonic_time();

    *suppressed = 0;
    if (now - rl->window_start > RATELIMIT_INTERVAL_US) {
        *suppressed = g_atomic_int_exchange(&rl->suppressed, 0);
        rl->window_start = now;
        g_atomic_int_set(&rl->printed, 0);
    }
    if (g_atomic_int_add(&rl->printed, 1) < RATELIMIT_BURST)
        return TRUE;
    g_atomic_int_inc(&rl->suppressed);
    return FALSE;
}

/*
 * Log something the guest caused (bad register access, malformed ring).
 * Never fatal, never a GError: the guest must not be able to stop us.
 */
#define vireo_guest_warn(fmt, ...)                                          \
    do {                                                                    \
        static RateLimit vireo_rl_;                                         \
        int vireo_suppressed_;                                              \
        if (ratelimit_allow(&vireo_rl_, &vireo_suppressed_)) {              \
            if (vireo_suppressed_)                                          \
                g_warning("guest: " fmt " (%d similar messages suppressed)",\
                          ##__VA_ARGS__, vireo_suppressed_);                \
            else                                                            \
                g_warning("guest: " fmt, ##__VA_ARGS__);                    \
        }                                                                   \
    } while (0)

/* Little-endian access to byte buffers (guest structures, state streams). */
static inline uint64_t vireo_le_load(const void *p, size_t len)
{
    const uint8_t *b = p;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++)
        v |= (uint64_t)b[i] << (8 * i);
    return v;
}

static inline void vireo_le_store(void *p, size_t len, uint64_t v)
{
    uint8_t *b = p;
    for (size_t i = 0; i < len; i++)
        b[i] = v >> (8 * i);
}

/* Write all of buf to a blocking fd, retrying on EINTR and short writes. */
static inline gboolean vireo_write_all(int fd, const void *buf, size_t len, GError **error)
{
    const uint8_t *p = buf;

    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int saved = errno;
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "write failed: %s",
                        g_strerror(saved));
            return FALSE;
        }
        p += n;
        len -= n;
    }
    return TRUE;
}

#endif
