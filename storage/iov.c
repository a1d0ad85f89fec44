/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Scatter-gather helpers: copies into and out of iovecs, and slices of them. */
#include <string.h>

#include "block-internal.h"

size_t iov_to_buf(const struct iovec *iov, int iovcnt, size_t skip, void *buf, size_t len)
{
    uint8_t *out = buf;
    size_t done = 0;

    for (int i = 0; i < iovcnt && done < len; i++) {
        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        size_t n = MIN(iov[i].iov_len - skip, len - done);
        memcpy(out + done, (uint8_t *)iov[i].iov_base + skip, n);
        done += n;
        skip = 0;
    }
    return done;
}

size_t iov_from_buf(const struct iovec *iov, int iovcnt, size_t skip, const void *buf,
                    size_t len)
{
    const uint8_t *in = buf;
    size_t done = 0;

    for (int i = 0; i < iovcnt && done < len; i++) {
        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        size_t n = MIN(iov[i].iov_len - skip, len - done);
        memcpy((uint8_t *)iov[i].iov_base + skip, in + done, n);
        done += n;
        skip = 0;
    }
    return done;
}

void iov_memset(const struct iovec *iov, int iovcnt, size_t skip, int c, size_t len)
{
    size_t done = 0;

    for (int i = 0; i < iovcnt && done < len; i++) {
        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        size_t n = MIN(iov[i].iov_len - skip, len - done);
        memset((uint8_t *)iov[i].iov_base + skip, c, n);
        done += n;
        skip = 0;
    }
}

int iov_slice(const struct iovec *iov, int iovcnt, size_t skip, size_t len,
              struct iovec *out, int max)
{
    int n = 0;

    for (int i = 0; i < iovcnt && len; i++) {
        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        if (n == max)
            return -1;
        size_t take = MIN(iov[i].iov_len - skip, len);
        out[n].iov_base = (uint8_t *)iov[i].iov_base + skip;
        out[n].iov_len = take;
        n++;
        len -= take;
        skip = 0;
    }
    return n;
}
