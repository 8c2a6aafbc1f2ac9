/* Growing arrays: the one doubling rule of the tables nbd-share builds. */
#ifndef NBD_SHARE_GROW_H
#define NBD_SHARE_GROW_H

#include <stddef.h>
#include <stdlib.h>

/* ARR (room for *CAP elements of SIZE bytes) with room for NEED: ARR itself
 * when it has, else ARR reallocated to *CAP doubled (from FIRST when 0) until
 * NEED fits, *CAP updated. NULL if memory ran out; ARR is then untouched. */
static inline void *grow(void *arr, size_t *cap, size_t need, size_t size, size_t first)
{
  if (arr && need <= *cap)
    return arr;
  size_t c = *cap ? *cap : first;
  while (c < need)
    c *= 2;
  void *p = realloc(arr, c * size);
  if (p)
    *cap = c;
  return p;
}

#endif
