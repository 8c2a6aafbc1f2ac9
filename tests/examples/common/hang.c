/* Never ends: the harness's timeout kills it (and vmexec kills everything it
 * started in the guest). It forks a child so that the test also shows that
 * no process of the run is left behind. */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
  if (fork() == 0)
    for (;;)
      pause();
  puts("hanging until the harness's timeout");
  fflush(stdout);
  for (;;)
    pause();
}
