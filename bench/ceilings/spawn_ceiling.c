/*
 * spawn_ceiling: the throughput ceiling. Spawns an agent N times and waits
 * for it, at most CONCURRENCY at once, with no queue, no files and no
 * bookkeeping: the fastest any task runner can turn tasks on this machine.
 * Each child gets its task id ("t000001", ...) as its last argument.
 *
 * Usage: spawn_ceiling N CONCURRENCY AGENT [ARGS...]
 * Prints one JSON object: {"n":..,"concurrency":..,"seconds":..,"per_s":..,"failed":..}
 */
#define _GNU_SOURCE
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fputs("usage: spawn_ceiling N CONCURRENCY AGENT [ARGS...]\n", stderr);
        return 2;
    }
    long n = strtol(argv[1], NULL, 10), conc = strtol(argv[2], NULL, 10);
    if (n < 1 || conc < 1)
        return 2;
    int nfixed = argc - 3;
    char **av = calloc((size_t)nfixed + 2, sizeof *av);
    if (!av)
        return 1;
    memcpy(av, argv + 3, (size_t)nfixed * sizeof *av);
    char id[32];
    av[nfixed] = id;

    long started = 0, done = 0, running = 0, failed = 0;
    double t0 = now();
    while (done < n) {
        while (running < conc && started < n) {
            pid_t pid;
            snprintf(id, sizeof id, "t%06ld", started + 1);
            if (posix_spawn(&pid, av[0], NULL, NULL, av, environ) != 0) {
                failed++;
                done++;
            } else {
                running++;
            }
            started++;
        }
        int st;
        if (running > 0 && wait(&st) > 0) {
            running--;
            done++;
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                failed++;
        }
    }
    double secs = now() - t0;
    printf("{\"n\":%ld,\"concurrency\":%ld,\"seconds\":%.6f,\"per_s\":%.1f,\"failed\":%ld}\n",
           n, conc, secs, (double)n / secs, failed);
    return failed ? 1 : 0;
}
