/* Dies of SIGSEGV (a real fault, not raise()): the build system marks it as
 * expected to fail. */
#include <stdio.h>
#include <stddef.h>

int main(void)
{
  /* Both volatile: the compiler can neither know that p is null nor drop the store. */
  volatile int *volatile p = NULL;
  puts("writing through a null pointer");
  fflush(stdout);
  *p = 42;
  return 0;
}
