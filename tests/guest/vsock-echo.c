/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vsock-echo: a Linux user-space program for the Linux test guest's
 * vireo.test=vsock mode (tests/guest/linux/init, tests/integration/
 * linux_test.py), which make-initramfs.sh puts in the initramfs' /bin.
 * Unlike the other programs here it is no guest kernel: busybox has no
 * vsock tool, so this is one. It is freestanding all the same (raw x86-64
 * system calls, no libc), so any host compiler builds it without a static
 * libc, and it stays a few KiB.
 *
 *   vsock-echo PORT HOSTPORT COUNT
 *
 * 1. Listens on vsock port PORT and prints "VIREO-VSOCK: listening PORT".
 * 2. Accepts one connection (the host's "CONNECT PORT") and echoes every
 *    byte back until EOF: "VIREO-VSOCK: echoed N bytes".
 * 3. Connects to the host (CID 2) port HOSTPORT, which vireo-vmm connects
 *    to the UNIX socket PATH_HOSTPORT; sends COUNT bytes of a pattern,
 *    shuts its sending side down and reads until EOF, expecting the same
 *    pattern back: "VIREO-VSOCK: host echoed N bytes".
 * 4. "VIREO-VSOCK: PASS", status 0; or "VIREO-VSOCK: FAIL <step> <errno>",
 *    status 1.
 */
#include <stddef.h>
#include <stdint.h>

#include "linux-user.h"

#define SYS_read 0
#define SYS_write 1
#define SYS_close 3
#define SYS_socket 41
#define SYS_connect 42
#define SYS_accept 43
#define SYS_shutdown 48
#define SYS_bind 49
#define SYS_listen 50
#define SYS_exit_group 231

#define AF_VSOCK 40
#define SOCK_STREAM 1
#define SHUT_WR 1
#define VMADDR_CID_ANY 0xffffffffu
#define VMADDR_CID_HOST 2
#define EINTR 4

struct sockaddr_vm {
    uint16_t svm_family;
    uint16_t svm_reserved1;
    uint32_t svm_port;
    uint32_t svm_cid;
    uint8_t svm_zero[4];
};

static uint8_t buf[65536];

static size_t str_len(const char *s)
{
    size_t n = 0;

    while (s[n])
        n++;
    return n;
}

static char *fmt_u(char *p, unsigned long v)
{
    char tmp[24];
    int n = 0;

    do {
        tmp[n++] = '0' + v % 10;
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* "VIREO-VSOCK: <what> <n>\n" (n < 0: none) on stdout, the console. */
static void say(const char *what, long n)
{
    char line[128], *p = line;
    const char *prefix = "VIREO-VSOCK: ";

    for (size_t i = 0; prefix[i]; i++)
        *p++ = prefix[i];
    for (size_t i = 0; what[i] && p < line + 100; i++)
        *p++ = what[i];
    if (n >= 0) {
        *p++ = ' ';
        p = fmt_u(p, n);
    }
    *p++ = '\n';
    sys(SYS_write, 1, (long)line, p - line);
}

static long parse_u(const char *s)
{
    long v = 0;

    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > 0xffffffffL)
            return -1;
        v = v * 10 + (*s - '0');
    }
    return v;
}

/* "FAIL <step> <n>": n is an errno (system calls return -errno) or a byte offset. */
static int fail(const char *step, long n)
{
    say(step, n < 0 ? -n : n);
    return 1;
}

/* Writes all of @len bytes; returns 0 or -errno. */
static long write_all(int fd, const uint8_t *p, size_t len)
{
    while (len) {
        long n = sys(SYS_write, fd, (long)p, len);

        if (n == -EINTR)
            continue;
        if (n <= 0)
            return n ? n : -1;
        p += n;
        len -= n;
    }
    return 0;
}

static uint8_t pattern(unsigned long i)
{
    return (uint8_t)(i * 131 + (i >> 11) + 7);
}

/* What was echoed to the host, for the report. */
static unsigned long total_echoed;

static int run(long port, long host_port, long count)
{
    struct sockaddr_vm addr = { .svm_family = AF_VSOCK, .svm_port = port,
                                .svm_cid = VMADDR_CID_ANY };
    long lfd, fd, n;
    unsigned long sent = 0, got = 0;

    lfd = sys(SYS_socket, AF_VSOCK, SOCK_STREAM, 0);
    if (lfd < 0)
        return fail("FAIL socket", lfd);
    if ((n = sys(SYS_bind, lfd, (long)&addr, sizeof(addr))) < 0)
        return fail("FAIL bind", n);
    if ((n = sys(SYS_listen, lfd, 4, 0)) < 0)
        return fail("FAIL listen", n);
    say("listening", port);

    /* 2. The host's connection: an echo until EOF. */
    do {
        fd = sys(SYS_accept, lfd, 0, 0);
    } while (fd == -EINTR);
    if (fd < 0)
        return fail("FAIL accept", fd);
    for (;;) {
        n = sys(SYS_read, fd, (long)buf, sizeof(buf));
        if (n == -EINTR)
            continue;
        if (n < 0)
            return fail("FAIL echo read", n);
        if (n == 0)
            break;
        total_echoed += n;
        if ((n = write_all(fd, buf, n)) < 0)
            return fail("FAIL echo write", n);
    }
    sys(SYS_close, fd, 0, 0);
    sys(SYS_close, lfd, 0, 0);
    say("echoed", total_echoed);

    /* 3. To the host: the pattern out, then the host's echo of it back. */
    fd = sys(SYS_socket, AF_VSOCK, SOCK_STREAM, 0);
    if (fd < 0)
        return fail("FAIL socket", fd);
    addr.svm_port = host_port;
    addr.svm_cid = VMADDR_CID_HOST;
    do {
        n = sys(SYS_connect, fd, (long)&addr, sizeof(addr));
    } while (n == -EINTR);
    if (n < 0)
        return fail("FAIL connect", n);
    while (sent < (unsigned long)count) {
        size_t chunk = count - sent < sizeof(buf) ? count - sent : sizeof(buf);

        for (size_t i = 0; i < chunk; i++)
            buf[i] = pattern(sent + i);
        if ((n = write_all(fd, buf, chunk)) < 0)
            return fail("FAIL send", n);
        sent += chunk;
    }
    if ((n = sys(SYS_shutdown, fd, SHUT_WR, 0)) < 0)
        return fail("FAIL shutdown", n);
    for (;;) {
        n = sys(SYS_read, fd, (long)buf, sizeof(buf));
        if (n == -EINTR)
            continue;
        if (n < 0)
            return fail("FAIL receive", n);
        if (n == 0)
            break;
        for (long i = 0; i < n; i++) {
            if (buf[i] != pattern(got + i))
                return fail("FAIL wrong byte at", got + i);
        }
        got += n;
    }
    sys(SYS_close, fd, 0, 0);
    say("host echoed", got);
    if (got != sent)
        return fail("FAIL short echo", got);
    say("PASS", -1);
    return 0;
}

int start_c(long *sp);

int start_c(long *sp)
{
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    long port, host_port, count;

    if (argc != 4 || (port = parse_u(argv[1])) < 0 || (host_port = parse_u(argv[2])) < 0 ||
        (count = parse_u(argv[3])) < 0) {
        static const char usage[] = "usage: vsock-echo PORT HOSTPORT COUNT\n";

        sys(SYS_write, 2, (long)usage, str_len(usage));
        return 2;
    }
    return run(port, host_port, count);
}

/* The entry point: the stack holds argc, argv[], NULL, envp[]. */
__asm__(".globl _start\n"
        "_start:\n"
        "    xor %rbp, %rbp\n"
        "    mov %rsp, %rdi\n"
        "    and $-16, %rsp\n"
        "    call start_c\n"
        "    mov %eax, %edi\n"
        "    mov $231, %eax\n"          /* exit_group */
        "    syscall\n"
        "    hlt\n");
