/* The check of the C unit tests: a failed condition is reported with its
 * place and counted; the test's main returns failures != 0 at the end. */
#ifndef VMEXEC_UNIT_CHECK_H
#define VMEXEC_UNIT_CHECK_H

#include <stdio.h>

static int failures;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                              \
    }                                                                          \
  } while (0)

#endif
