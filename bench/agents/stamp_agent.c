/*
 * stamp_agent: the benchmark's no-op agent that records when it started.
 *
 * Usage: stamp_agent [DIR [ID]]
 *   DIR defaults to $BENCH_STAMP_DIR, ID to $WATCHER_TASK_ID; a trailing
 *   ".json" on ID is dropped, so a queue file name can be passed as is.
 *
 * The first thing it does is read CLOCK_REALTIME; it then writes that time
 * in nanoseconds, as decimal text, to DIR/ID (no fsync: the stamp is a
 * measurement, not a result). It reads whatever is already waiting on stdin
 * without blocking, as a real agent would read its prompt, but never waits
 * for EOF: some peers (pueue) keep the child's stdin open.
 *
 * The file appears when the agent is done, so it doubles as the completion
 * marker for peers that write no result file of their own.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void drain_stdin(void)
{
    char buf[4096];
    int fl = fcntl(0, F_GETFL);
    if (fl < 0 || fcntl(0, F_SETFL, fl | O_NONBLOCK) < 0)
        return;
    for (int i = 0; i < 256 && read(0, buf, sizeof buf) > 0; i++)
        ;
}

int main(int argc, char **argv)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);

    const char *dir = argc > 1 ? argv[1] : getenv("BENCH_STAMP_DIR");
    const char *id = argc > 2 ? argv[2] : getenv("WATCHER_TASK_ID");
    if (!dir || !id || !*id) {
        fputs("stamp_agent: need DIR and ID (args or BENCH_STAMP_DIR, WATCHER_TASK_ID)\n", stderr);
        return 2;
    }
    size_t idlen = strlen(id);
    if (idlen > 5 && strcmp(id + idlen - 5, ".json") == 0)
        idlen -= 5;

    char path[4096];
    int n = snprintf(path, sizeof path, "%s/%.*s", dir, (int)idlen, id);
    if (n < 0 || (size_t)n >= sizeof path)
        return 2;

    char line[32];
    int len = snprintf(line, sizeof line, "%lld\n",
                       (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, line, (size_t)len) != len) {
        perror(path);
        return 1;
    }
    close(fd);
    drain_stdin();
    return 0;
}
