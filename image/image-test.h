/* Starting a guest: the qemu command line of a target row, and a boot check. */
#ifndef VMEXEC_IMAGE_TEST_H
#define VMEXEC_IMAGE_TEST_H

#include "targets.h"

/* Boot the image in DIR under qemu, wait for the agent's hello on the
 * virtio-serial port, print the time from qemu start to hello, stop the guest.
 * Returns 0, or prints one line (with the last console lines) and returns 125. */
int image_test(const struct target *t, const char *dir);

#endif
