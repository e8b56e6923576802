/* hang_agent: an agent that does not finish on its own (it sleeps for an
 * hour), so that tasks stay queued while memory and start-up are measured.
 * The harness finds leftovers by this binary's path and ends them by pid. */
#include <unistd.h>

int main(void)
{
    sleep(3600);
    return 0;
}
