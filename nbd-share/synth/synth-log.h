/* How the pure modules of nbd-share report things worth a log line (a skipped
 * socket, a file that vanished) without knowing nbdkit: the plugin passes a
 * function that calls nbdkit_debug, tests pass one that prints or counts. */
#ifndef NBD_SHARE_SYNTH_LOG_H
#define NBD_SHARE_SYNTH_LOG_H

typedef void (*synth_log_fn)(void *opaque, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
