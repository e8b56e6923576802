/*
 * inotify_floor: the detection floor. The least a spool watcher can do:
 * sleep in poll(2) on an inotify fd and a signalfd, and on IN_MOVED_TO of a
 * non-dot name posix_spawn the agent with that name as its last argument,
 * keeping at most CONCURRENCY children. No claim, no parsing, no result.
 *
 * Usage: inotify_floor QUEUE_DIR CONCURRENCY AGENT [ARGS...]
 * Prints "ready" on stdout once the watch is set. SIGTERM/SIGINT end it;
 * the counts (spawned, overflows) go to stderr on exit.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

struct fifo {
    char **names;
    size_t head, tail, cap;
};

static int fifo_push(struct fifo *q, const char *name)
{
    if (q->tail == q->cap) {
        if (q->head > 0) {
            memmove(q->names, q->names + q->head, (q->tail - q->head) * sizeof *q->names);
            q->tail -= q->head;
            q->head = 0;
        } else {
            size_t cap = q->cap ? q->cap * 2 : 1024;
            char **n = realloc(q->names, cap * sizeof *n);
            if (!n)
                return -1;
            q->names = n;
            q->cap = cap;
        }
    }
    q->names[q->tail] = strdup(name);
    if (!q->names[q->tail])
        return -1;
    q->tail++;
    return 0;
}

static char *fifo_pop(struct fifo *q)
{
    return q->head < q->tail ? q->names[q->head++] : NULL;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fputs("usage: inotify_floor QUEUE_DIR CONCURRENCY AGENT [ARGS...]\n", stderr);
        return 2;
    }
    long conc = strtol(argv[2], NULL, 10);
    if (conc < 1)
        conc = 1;
    int nfixed = argc - 3;
    char **agent_argv = calloc((size_t)nfixed + 2, sizeof *agent_argv);
    if (!agent_argv)
        return 1;
    memcpy(agent_argv, argv + 3, (size_t)nfixed * sizeof *agent_argv);

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    int ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (sfd < 0 || ifd < 0 || inotify_add_watch(ifd, argv[1], IN_MOVED_TO) < 0) {
        perror("inotify_floor: setup");
        return 1;
    }
    /* The children must not inherit the blocked signal mask. */
    sigset_t empty;
    sigemptyset(&empty);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setsigmask(&attr, &empty);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);

    puts("ready");
    fflush(stdout);

    struct fifo q = {0};
    long running = 0, spawned = 0, overflows = 0;
    int stop = 0;
    char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
    struct pollfd fds[2] = {{.fd = ifd, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};

    while (!stop) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            perror("poll");
            break;
        }
        for (;;) { /* drain inotify until EAGAIN */
            ssize_t len = read(ifd, buf, sizeof buf);
            if (len <= 0)
                break;
            for (char *p = buf; p < buf + len;) {
                struct inotify_event *ev = (struct inotify_event *)p;
                if (ev->mask & IN_Q_OVERFLOW)
                    overflows++;
                else if (ev->len && ev->name[0] != '.' && fifo_push(&q, ev->name) < 0)
                    stop = 1;
                p += sizeof *ev + ev->len;
            }
        }
        struct signalfd_siginfo si;
        while (read(sfd, &si, sizeof si) == sizeof si)
            if (si.ssi_signo != SIGCHLD)
                stop = 1;
        while (running > 0 && waitpid(-1, NULL, WNOHANG) > 0)
            running--;
        char *name;
        while (running < conc && (name = fifo_pop(&q))) {
            pid_t pid;
            agent_argv[nfixed] = name;
            agent_argv[nfixed + 1] = NULL;
            if (posix_spawn(&pid, agent_argv[0], NULL, &attr, agent_argv, environ) == 0) {
                running++;
                spawned++;
            }
            free(name);
        }
    }
    fprintf(stderr, "inotify_floor: spawned=%ld overflows=%ld\n", spawned, overflows);
    return 0;
}
