/* The targets vmexec can run programs for: what an ELF file of the target looks
 * like, where Debian keeps its kernel and libraries, and how qemu boots it.
 * The rows are in targets.def; this header only gives them a type. */
#ifndef VMEXEC_TARGETS_H
#define VMEXEC_TARGETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum virtio_transport { VIRTIO_CCW, VIRTIO_PCI, VIRTIO_MMIO };

struct target {
  const char *name;            /* what users type: "s390x" */
  const char *triplet;         /* cross compiler prefix and multiarch dir */
  const char *debian_arch;     /* for apt-get download pkg:ARCH */
  unsigned char elf_class;     /* ELFCLASS32 / ELFCLASS64 */
  unsigned char elf_data;      /* ELFDATA2LSB / ELFDATA2MSB */
  uint16_t e_machine;
  uint32_t e_flags_mask;       /* ABI flags that must match, e.g. ARM hard-float */
  uint32_t e_flags_value;
  const char *interp;          /* the target's dynamic loader */
  const char *kernel_package;  /* Debian metapackage naming the current kernel */
  const char *qemu_binary;
  const char *qemu_package;    /* Debian package that ships qemu_binary */
  const char *machine;
  const char *cpu;             /* NULL: qemu's default cpu for the machine */
  const char *tcg;             /* options of -accel tcg ("thread=multi,...") */
  const char *console;         /* kernel console device */
  enum virtio_transport transport;
  const char *virtio_bus;      /* the bus of qemu's virtio devices, NULL: the machine's default
                                  (sun4u's root bus has no free slot: "pciB", behind a bridge) */
  const char *qemu_extra;      /* further qemu arguments, space separated */
  unsigned page_kib;           /* the kernel's page size: the share's block size */
  const char *gdb_arch;        /* gdb's 'set architecture' name (vmexec --gdb) */
  const char *kernel_arch;     /* NULL: Debian's kernel (kernel_package); else make's ARCH for the
                                  kernel built from kernel_package, linux-source (image-kernel.c) */
  const char *kernel_file;     /* that build's file qemu boots ("vmlinux") */
  bool cross_userland;         /* libraries from libc6-DEBIAN_ARCH-cross (image-cross.c) */
  const char *cross_libs;      /* those packages, without "-DEBIAN_ARCH-cross", space separated */
  const char *no_snapshot;     /* NULL: cold starts restore a memory snapshot; else why they boot */
};

extern const struct target targets[];
extern const size_t n_targets;

/* The row named NAME (or its Debian architecture name), or NULL. */
const struct target *target_by_name(const char *name);

/* Suffix of qemu's virtio device names for this transport: "ccw", "pci", "device". */
const char *transport_suffix(enum virtio_transport t);

/* Kernel module that provides the transport, or NULL when it is built in. */
const char *transport_module(enum virtio_transport t);

/* "s390x, aarch64, ..." for error messages. */
const char *target_names(void);

#endif
