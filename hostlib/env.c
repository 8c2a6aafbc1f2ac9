#include "env.h"

#include <stdlib.h>

#include "fail.h"

double env_number(const char *name, double dflt, double min, double max)
{
  const char *v = getenv(name);
  if (!v || !*v)
    return dflt;
  char *end;
  double x = strtod(v, &end);
  /* Written so that NaN fails too. */
  if (*end != '\0' || !(x >= min && x <= max)) {
    warning("ignoring %s=%s: not a number from %.15g to %.15g; using %.15g", name, v, min, max, dflt);
    return dflt;
  }
  return x;
}

double env_boot_timeout(void)
{
  return env_number("VMEXEC_BOOT_TIMEOUT", DEFAULT_BOOT_TIMEOUT, 1, 86400);
}
