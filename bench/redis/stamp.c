/* The benchmark's no-op agent: writes the time it started (CLOCK_REALTIME, ns) to
 * $WW_STAMP_DIR/$WATCHER_TASK_ID when WW_STAMP_DIR is set, sleeps WW_STAMP_SLEEP seconds when
 * set, and exits 0 with no output. Built by bench/redis/run.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    const char *dir = getenv("WW_STAMP_DIR"), *id = getenv("WATCHER_TASK_ID");
    if (dir && id) {
        char path[4096], tmp[4200];
        snprintf(path, sizeof path, "%s/%s", dir, id);
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        FILE *f = fopen(tmp, "w");
        if (f) {
            fprintf(f, "%lld\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
            fclose(f);
            rename(tmp, path);
        }
    }
    const char *s = getenv("WW_STAMP_SLEEP");
    if (s) sleep((unsigned)atoi(s));
    return 0;
}
