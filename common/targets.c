#include "targets.h"

#include <elf.h>
#include <stdbool.h>
#include <string.h>

/* elf.h of older glibc lacks these ARM e_flags names. */
#ifndef EF_ARM_ABI_FLOAT_HARD
#define EF_ARM_ABI_FLOAT_HARD 0x400
#endif

/* The transport column: the enum, then the PCI bus qemu puts the virtio
 * devices on (NULL: the machine's default bus). Each name expands to both;
 * a macro does not expand itself again, so the inner name is the enum's. */
enum { PCI_BEHIND_BRIDGE = VIRTIO_PCI };
#define VIRTIO_CCW VIRTIO_CCW, NULL
#define VIRTIO_PCI VIRTIO_PCI, NULL
#define VIRTIO_MMIO VIRTIO_MMIO, NULL
#define VIRTIO_PCI_BUS(bus) (enum virtio_transport)PCI_BEHIND_BRIDGE, bus

const struct target targets[] = {
#define DEBIAN_KERNEL NULL, NULL
#define KERNEL_FROM_SOURCE(arch, file) arch, file
#define DEBIAN_USERLAND false, NULL
#define CROSS_USERLAND true, "libc6 libgcc-s1 libstdc++6"
#define CROSS_USERLAND_LIBS(libs) true, libs
#define SNAPSHOT NULL
#define NO_SNAPSHOT(why) why
#define TARGET(name, triplet, deb, cls, data, mach, fmask, fval, interp, kpkg, qbin, qpkg, machine, cpu, tcg, console, transport, extra, page, gdb, kernel, userland, snapshot) \
  { name, triplet, deb, cls, data, mach, fmask, fval, interp, kpkg, qbin, qpkg, machine, cpu, tcg, console, transport, extra, page, gdb, kernel, userland, snapshot },
#include "targets.def"
#undef TARGET
};
#undef VIRTIO_CCW
#undef VIRTIO_PCI
#undef VIRTIO_MMIO

const size_t n_targets = sizeof targets / sizeof targets[0];

const struct target *target_by_name(const char *name)
{
  for (size_t i = 0; i < n_targets; i++)
    if (strcmp(targets[i].name, name) == 0 || strcmp(targets[i].debian_arch, name) == 0)
      return &targets[i];
  return NULL;
}

const char *transport_suffix(enum virtio_transport t)
{
  switch (t) {
  case VIRTIO_CCW: return "ccw";
  case VIRTIO_PCI: return "pci";
  case VIRTIO_MMIO: return "device";
  }
  return "pci";
}

const char *transport_module(enum virtio_transport t)
{
  switch (t) {
  case VIRTIO_CCW: return NULL; /* CONFIG_S390_GUEST=y builds virtio-ccw in */
  case VIRTIO_PCI: return "virtio_pci";
  case VIRTIO_MMIO: return "virtio_mmio";
  }
  return NULL;
}

const char *target_names(void)
{
  static char buf[256];
  if (buf[0] == '\0') {
    for (size_t i = 0; i < n_targets; i++) {
      if (i > 0)
        strncat(buf, ", ", sizeof buf - strlen(buf) - 1);
      strncat(buf, targets[i].name, sizeof buf - strlen(buf) - 1);
    }
  }
  return buf;
}
