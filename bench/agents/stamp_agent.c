/*
 * stamp_agent: the benchmark's no-op agent that records when it started.
 *
 * Usage: stamp_agent [LOG [ID]]
 *   LOG defaults to $BENCH_STAMP_LOG, ID to $WATCHER_TASK_ID; a trailing
 *   ".json" on ID is dropped, so a queue file name can be passed as is.
 *
 * The first thing it does is read CLOCK_REALTIME; it then appends one line,
 * "ID NANOSECONDS\n", to LOG with a single O_APPEND write (atomic on a local
 * filesystem, so concurrent agents never interleave). No file is created per
 * task: on ext4 without a journal, creating files soon after others were
 * deleted is slow, and that cost must not be the agent's. No fsync: the stamp
 * is a measurement, not a result.
 *
 * It reads whatever is already waiting on stdin without blocking, as a real
 * agent reads its prompt, but never waits for EOF: some peers (pueue) keep
 * the child's stdin open.
 *
 * The line is written when the agent is done, so the log doubles as the
 * completion record for peers that write no result file of their own.
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

    const char *log = argc > 1 ? argv[1] : getenv("BENCH_STAMP_LOG");
    const char *id = argc > 2 ? argv[2] : getenv("WATCHER_TASK_ID");
    if (!log || !id || !*id) {
        fputs("stamp_agent: need LOG and ID (args or BENCH_STAMP_LOG, WATCHER_TASK_ID)\n", stderr);
        return 2;
    }
    size_t idlen = strlen(id);
    if (idlen > 5 && strcmp(id + idlen - 5, ".json") == 0)
        idlen -= 5;

    drain_stdin();
    char line[256];
    int len = snprintf(line, sizeof line, "%.*s %lld\n", (int)(idlen > 200 ? 200 : idlen), id,
                       (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
    int fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, line, (size_t)len) != len) {
        perror(log);
        return 1;
    }
    close(fd);
    return 0;
}
