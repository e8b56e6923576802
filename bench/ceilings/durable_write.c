/*
 * durable_write: the durable-write floor. Writes N small result files one at
 * a time the way the contract requires: a temp file in the same folder,
 * fsync, rename into place, fsync of the folder. With --plain it skips both
 * fsyncs (what the old Python design did), for comparison.
 *
 * Usage: durable_write DIR N [--plain]
 * Prints one JSON object with the rate and per-file latency percentiles (us).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

static int write_one(int dirfd, long i, const char *body, size_t len, int durable)
{
    char tmp[64], fin[64];
    snprintf(tmp, sizeof tmp, ".r%07ld.json.tmp", i);
    snprintf(fin, sizeof fin, "r%07ld.json", i);
    int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0 || write(fd, body, len) != (ssize_t)len)
        return -1;
    if (durable && fsync(fd) < 0)
        return -1;
    if (close(fd) < 0 || renameat(dirfd, tmp, dirfd, fin) < 0)
        return -1;
    return durable ? fsync(dirfd) : 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fputs("usage: durable_write DIR N [--plain]\n", stderr);
        return 2;
    }
    long n = strtol(argv[2], NULL, 10);
    int durable = !(argc > 3 && strcmp(argv[3], "--plain") == 0);
    int dirfd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    long long *lat = calloc((size_t)(n > 0 ? n : 1), sizeof *lat);
    if (n < 1 || dirfd < 0 || !lat) {
        perror("durable_write: setup");
        return 1;
    }
    /* About the size of a worker-watcher result for a no-op agent. */
    char body[700];
    memset(body, ' ', sizeof body);
    memcpy(body, "{\"status\":\"completed\"}", 22);
    body[sizeof body - 1] = '\n';

    long long t0 = now_ns();
    for (long i = 0; i < n; i++) {
        long long s = now_ns();
        if (write_one(dirfd, i, body, sizeof body, durable) < 0) {
            perror("durable_write");
            return 1;
        }
        lat[i] = now_ns() - s;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    qsort(lat, (size_t)n, sizeof *lat, cmp_ll);
    printf("{\"n\":%ld,\"durable\":%s,\"seconds\":%.6f,\"per_s\":%.1f,"
           "\"p50_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f}\n",
           n, durable ? "true" : "false", secs, (double)n / secs,
           lat[n / 2] / 1e3, lat[(n * 99) / 100] / 1e3, lat[n - 1] / 1e3);
    return 0;
}
