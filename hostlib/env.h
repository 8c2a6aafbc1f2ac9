/* Numbers from the environment (VMEXEC_BOOT_TIMEOUT, VMEXEC_CPUS, ...), all
 * read by one rule: unset or empty gives the default; a value that is not a
 * number in [min, max] gives a one-line warning on stderr naming the variable
 * and the range, then the default. A bad setting never stops a call. */
#ifndef VMEXEC_ENV_H
#define VMEXEC_ENV_H

/* Seconds to wait for a guest's agent to say hello, for calls and for
 * `vmexec image test` alike (s390x needs ~5 s, ppc64el ~13 s under TCG). */
#define DEFAULT_BOOT_TIMEOUT 180

/* The value of NAME as a number in [MIN, MAX], or DFLT. */
double env_number(const char *name, double dflt, double min, double max);

/* VMEXEC_BOOT_TIMEOUT in seconds (1 to 86400, default DEFAULT_BOOT_TIMEOUT). */
double env_boot_timeout(void);

#endif
