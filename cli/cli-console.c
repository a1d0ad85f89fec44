/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * `vireo console`: the domain's console stream (DOMAIN_OPEN_CONSOLE)
 * relayed to and from the controlling terminal in raw mode, until the
 * escape character (^] unless -e says otherwise), the end of the stream
 * or a signal. Output and wording as virsh's.
 *
 * Stream data arrives on the client's callback context, this thread's
 * default main context, which the loop below iterates.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <glib-unix.h>

#include "vireo/cli-commands.h"
#include "vireo/cli-out.h"

typedef struct Console {
    GMainLoop *loop;
    RpcClientStream *st;
    guint8 escape;
    gboolean server_eof;
    gboolean done;             /* the session is over: ignore late callbacks */
    GError *error;
} Console;

static gboolean write_all(int fd, const guint8 *data, gsize len)
{
    while (len) {
        ssize_t n = write(fd, data, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}

static void on_data(RpcClientStream *st, const guint8 *data, gsize len, gpointer opaque)
{
    Console *c = opaque;

    if (c->done)
        return;
    if (len == 0) {
        c->server_eof = TRUE;
        g_main_loop_quit(c->loop);
        return;
    }
    if (!write_all(STDOUT_FILENO, data, len))
        g_main_loop_quit(c->loop);
}

static void on_error(RpcClientStream *st, const GError *error, gpointer opaque)
{
    Console *c = opaque;

    if (c->done)
        return;
    if (!c->error)
        c->error = g_error_copy(error);
    g_main_loop_quit(c->loop);
}

static gboolean on_stdin(int fd, GIOCondition cond, gpointer opaque)
{
    Console *c = opaque;
    guint8 buf[4096];
    guint8 *esc;
    ssize_t n = read(fd, buf, sizeof(buf));

    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return G_SOURCE_CONTINUE;
    if (n <= 0) {
        g_main_loop_quit(c->loop);
        return G_SOURCE_CONTINUE;       /* removed when the loop ends */
    }
    esc = memchr(buf, c->escape, n);
    if (esc)
        n = esc - buf;
    if ((n > 0 && !rpc_client_stream_send(c->st, buf, n, c->error ? NULL : &c->error)) || esc)
        g_main_loop_quit(c->loop);
    return G_SOURCE_CONTINUE;
}

static gboolean on_signal(gpointer opaque)
{
    Console *c = opaque;

    g_main_loop_quit(c->loop);
    return G_SOURCE_CONTINUE;
}

gboolean cli_console_run(CliCtl *ctl, const RemoteNonnullDomain *dom, const char *devname,
                         gboolean resume, guint flags)
{
    static const RpcClientStreamCallbacks cb = { .data = on_data, .error = on_error };
    RemoteDomainOpenConsoleArgs a = { .dom = *dom, .dev_name = (char *)devname, .flags = flags };
    Console c = { .escape = ctl->escape_char };
    struct termios saved, raw;
    GError *error = NULL;
    guint src[4];
    int state;

    state = cli_domain_state(ctl, dom, NULL);
    if (state < 0) {
        cli_error("Unable to get domain status");
        return FALSE;
    }
    if (state == RPC_DOMAIN_SHUTOFF) {
        cli_error("The domain is not running");
        return FALSE;
    }
    if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved) < 0) {
        cli_error("Cannot run interactive console without a controlling TTY");
        return FALSE;
    }
    cli_print_extra(ctl, "Connected to domain '%s'\n", dom->name);
    cli_print_extra(ctl, "Escape character is %s", ctl->escape_str);
    if (ctl->escape_str[0] == '^')
        cli_print_extra(ctl, " (Ctrl + %c)", ctl->escape_str[1]);
    cli_print_extra(ctl, "\n");
    fflush(stdout);

    c.loop = g_main_loop_new(NULL, FALSE);
    c.st = rpc_client_stream_open(ctl->client, REMOTE_PROGRAM, REMOTE_PROC_DOMAIN_OPEN_CONSOLE,
                                  &a, &cb, &c, &error);
    if (!c.st) {
        cli_ctl_set_error(ctl, error);
        g_main_loop_unref(c.loop);
        return FALSE;
    }
    if (resume) {
        RemoteDomainResumeArgs ra = { .dom = *dom };

        if (!cli_call(ctl, REMOTE_PROC_DOMAIN_RESUME, &ra, NULL)) {
            cli_error("Failed to resume domain '%s'", dom->name);
            rpc_client_stream_abort(c.st, NULL);
            rpc_client_stream_free(c.st);
            g_main_loop_unref(c.loop);
            return FALSE;
        }
    }

    raw = saved;
    cfmakeraw(&raw);
    /* TCSADRAIN, not TCSAFLUSH: what was typed ahead (an early ^]) still counts. */
    tcsetattr(STDIN_FILENO, TCSADRAIN, &raw);
    src[0] = g_unix_fd_add(STDIN_FILENO, G_IO_IN | G_IO_HUP | G_IO_ERR, on_stdin, &c);
    src[1] = g_unix_signal_add(SIGTERM, on_signal, &c);
    src[2] = g_unix_signal_add(SIGHUP, on_signal, &c);
    src[3] = g_unix_signal_add(SIGINT, on_signal, &c);
    g_main_loop_run(c.loop);
    for (guint i = 0; i < G_N_ELEMENTS(src); i++)
        g_source_remove(src[i]);
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
    c.done = TRUE;

    /* Our end of the stream: a finish, unless the server already failed it. */
    if (!c.error)
        rpc_client_stream_finish(c.st, NULL);
    rpc_client_stream_free(c.st);
    /* Callbacks that raced with the end are dropped (c.done). */
    while (g_main_context_iteration(NULL, FALSE))
        ;
    g_main_loop_unref(c.loop);
    if (c.error) {
        cli_ctl_set_error(ctl, c.error);
        return FALSE;
    }
    return TRUE;
}
