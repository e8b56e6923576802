/*
 * fileops: CPU time (user + system, getrusage) per file of the ways a daemon can put a small
 * record in a folder, N files each, in a fresh folder of DIR. CPU time, not wall time: on a
 * shared machine it is the figure that holds still, and the worker's throughput is bound by
 * CPU (see BENCHMARKS.md).
 *
 *   temp+rename         open(O_CREAT|O_EXCL) a dot-temp, write, close, rename to the name
 *   tmpfile+link        open(O_TMPFILE), write, linkat(/proc/self/fd/N) to the name, close
 *   in place            open(O_CREAT|O_EXCL) the name itself, write, close (not atomic)
 *   temp+fdatasync      temp+rename with fdatasync before the rename (a durable record)
 *   tmpfile+fdatasync   tmpfile+link with fdatasync before the link
 *   rename across       rename each file into a subfolder (the claim)
 *   unlink              unlink each file (the release)
 *
 * Usage: fileops DIR [N]
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static double cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static const char body[] = "{\"task_id\": \"t000001\", \"worker\": \"probe\", \"claimed_at\": "
                           "\"2026-12-01T00:00:00Z\", \"attempt\": 1, \"pid\": 1, \"agent_pid\": 2}\n";

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void put(const char *dir, int i, int how, int sync)
{
    char name[4096], tmp[4096];
    snprintf(name, sizeof name, "%s/t%06d.json", dir, i);
    if (how == 0 || how == 2) {
        snprintf(tmp, sizeof tmp, "%s/.ww-t%06d.json.tmp", dir, i);
        int fd = open(how == 2 ? name : tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
        if (fd < 0 || write(fd, body, sizeof body - 1) < 0)
            die("create");
        if (sync && fdatasync(fd))
            die("fdatasync");
        close(fd);
        if (how == 0 && rename(tmp, name))
            die("rename");
    } else {
        int fd = open(dir, O_WRONLY | O_TMPFILE | O_CLOEXEC, 0640);
        if (fd < 0 || write(fd, body, sizeof body - 1) < 0)
            die("tmpfile");
        if (sync && fdatasync(fd))
            die("fdatasync");
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
        if (linkat(AT_FDCWD, proc, AT_FDCWD, name, AT_SYMLINK_FOLLOW))
            die("linkat");
        close(fd);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    int n = argc > 2 ? atoi(argv[2]) : 2000;
    const char *labels[] = {"temp+rename", "tmpfile+link", "in place", "temp+fdatasync", "tmpfile+fdatasync"};
    int hows[] = {0, 1, 2, 0, 1}, syncs[] = {0, 0, 0, 1, 1};
    for (int k = 0; k < 5; k++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/fileops-%d-%d", argv[1], getpid(), k);
        if (mkdir(dir, 0750))
            die("mkdir");
        double t0 = cpu();
        for (int i = 0; i < n; i++)
            put(dir, i, hows[k], syncs[k]);
        double t1 = cpu();
        printf("%-18s %7.1f us/file\n", labels[k], (t1 - t0) * 1e6 / n);
        if (k == 0) {
            char sub[4096], from[4096], to[4096];
            snprintf(sub, sizeof sub, "%s/.inflight", dir);
            if (mkdir(sub, 0750))
                die("mkdir");
            t0 = cpu();
            for (int i = 0; i < n; i++) {
                snprintf(from, sizeof from, "%s/t%06d.json", dir, i);
                snprintf(to, sizeof to, "%s/t%06d.json", sub, i);
                if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE))
                    die("renameat2");
            }
            t1 = cpu();
            printf("%-18s %7.1f us/file\n", "rename across", (t1 - t0) * 1e6 / n);
            t0 = cpu();
            for (int i = 0; i < n; i++) {
                snprintf(to, sizeof to, "%s/t%06d.json", sub, i);
                if (unlink(to))
                    die("unlink");
            }
            t1 = cpu();
            printf("%-18s %7.1f us/file\n", "unlink", (t1 - t0) * 1e6 / n);
        }
    }
    return 0;
}
