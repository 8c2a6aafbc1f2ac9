/* The guest agent: PID 1 of a vmexec guest. Each job lives in its own small
 * file with one entry point; main.c ties them together in one event loop. */
#ifndef VMEXEC_AGENT_H
#define VMEXEC_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdnoreturn.h>
#include <sys/types.h>

/* log.c: lines on /dev/console, prefixed "vmexec-agent: ". */
void log_open_console(void);
void agent_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Log the line, then power the guest off (PID 1 must never exit: the kernel
 * would panic and the console would not say why). */
noreturn void agent_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Seconds since boot (CLOCK_BOOTTIME), and a monotonic clock in ms. */
double uptime_seconds(void);
long long now_ms(void);

/* mounts.c: /proc, /sys, /dev, /dev/pts, /dev/shm, /tmp, /run. Fatal when one
 * of /proc, /sys, /dev cannot be mounted. */
void mount_all(void);

/* loopback.c: lo up (127.0.0.1, ::1). */
void loopback_up(void);

/* modules.c: load the modules listed in /etc/vmexec/modules, in order. */
void load_modules(void);

/* port.c: the virtio-serial port named WIRE_PORT_NAME, opened O_RDWR |
 * O_NONBLOCK. Waits (25 ms steps) until it appears or TIMEOUT_MS passes;
 * returns -1 then. */
int port_open(int timeout_ms);
/* True while the host side of the port is connected. */
bool port_host_connected(int fd);

/* boot-jobs.c: start the work done once per boot (busybox's applet links,
 * the dynamic loader's cache) as children of PID 1. */
void boot_jobs_start(void);
/* PID exited: true if it was a boot job (its time is logged). */
bool boot_jobs_reaped(pid_t pid, int status);
/* Wait until the boot jobs are done: before the hello, and before a command
 * is looked up in /bin (vmexec --target TARGET -- COMMAND). */
void boot_jobs_wait(void);

/* pty.c: pseudo-terminals for WIRE_RUN_PTY runs. */
/* A new pseudo-terminal: returns its master (non-blocking, close-on-exec)
 * and puts the slave's path into SLAVE; -1 with errno. */
int pty_open_master(char *slave, size_t cap);
/* In the child, a new session leader: open SLAVE as the controlling terminal,
 * owned by UID and GID, as fds 0, 1 and 2. -1 with errno. */
int pty_attach(const char *slave, uid_t uid, gid_t gid);
/* Window size (the guest kernel sends SIGWINCH to the foreground group). */
void pty_resize(int master, uint32_t rows, uint32_t cols);
/* Type the terminal's end-of-file key (VEOF, after its kill-line key VKILL
 * when KILL_LINE), as a user at a terminal whose input ended would; true if
 * the terminal was in canonical (line) mode then. */
bool pty_type_eof(int master, bool kill_line);
/* True while the terminal is in canonical mode (ICANON). */
bool pty_canonical(int master);

/* command.c: WIRE_RUN_SEARCH_PATH. In the child: execute FILE as execvpe
 * would, on the PATH of ENVP (WIRE_DEFAULT_PATH if it has none); a file the
 * kernel cannot execute runs with /bin/sh. Returns only on failure, with
 * errno set and *FOUND false when no such command exists at all. */
void exec_command(const char *file, char *const argv[], char *const envp[], bool *found);
/* The target the image was built for ("s390x"), for messages. */
const char *guest_target_name(void);

/* resume.c: WIRE_RESUME (after a restore from a snapshot): set the clock,
 * reseed the random generator, answer WIRE_RESUME. */
void resume_guest(const uint8_t *p, size_t n);

/* conn.c: the connection to the host over the port. */
struct conn;
/* Open the port (fatal if it never appears) and start waiting for the host. */
struct conn *conn_start(void);
/* The fd to poll and the events to poll it for; -1 while waiting for the host
 * to connect (the caller then polls with conn_timeout_ms and calls conn_tick). */
int conn_fd(const struct conn *c, short *events);
int conn_timeout_ms(const struct conn *c);
/* Called when the fd is ready (REVENTS) or the timeout passed (REVENTS 0). */
void conn_tick(struct conn *c, short revents);

/* Queue a frame for the host (dropped while no host is connected: the runs it
 * belongs to are cancelled then). */
void agent_send(uint16_t type, uint32_t run, const void *payload, size_t len);

/* Bytes queued for the host and not yet written to the port. */
size_t agent_backlog(void);

#define RUN_DIR "/run/vmexec"
/* The cgroup2 hierarchy the agent mounts, with a cgroup per run (runs.c). */
#define CGROUP_ROOT "/sys/fs/cgroup"
#define SHARE_DIR RUN_DIR "/share"

/* share.c: the host's trees at their own paths, from generations of the share
 * disk (WIRE_SHARE). A generation is mounted once at SHARE_DIR/GEN and shared
 * by the runs that use it; writable roots get a per-run overlay. */
struct share_gen;
struct share_root {
  char *path;          /* absolute, clean; the roots are sorted by length */
  bool writable;
  mode_t lower_mode;   /* the root directory in the generation */
  uid_t lower_uid;
  gid_t lower_gid;
};
struct share {
  uint32_t gen;
  uint64_t offset, size;  /* of the generation's image on the share disk */
  struct share_root *roots;
  size_t nroots;
  struct share_gen *g;    /* the generation held, once prepared */
  char rw[96];            /* the run's tmpfs: upper/I and work/I per writable root I */
  bool rw_mounted;
  char run_dir[64];       /* the directory of the run that prepared it, which holds rw */
  int ns_fd, mounts_fd;   /* its mount namespace and mountinfo (share-spare.c), or -1 */
  int root_fd;            /* its root directory (O_PATH), where paths are looked up in it, or -1 */
  char cgroup[24];        /* the cgroup of the last run in it, once kept; "": none */
  bool used;              /* a run used it (not only made ahead): VMEXEC_TRACE says "kept" */
  struct upper_seen *seen; /* its upper layers' ctimes when it was last kept (share-spare.c) */
  size_t nseen;
  char *mounts_seen;      /* its mount table when first kept, less the runs' tmpfs (share-spare.c) */
  unsigned patch_serial;  /* share_patch_serial() when it was made (or, unused, still served) */
};
/* Make /run a shared mount (runs' namespaces are its slaves). */
void share_init(void);
/* A WIRE_SHARE payload; NULL with a one-line message in err when it is
 * malformed or names a root that would hide the guest's system. */
struct share *share_parse(const uint8_t *p, size_t n, char *err, size_t cap);
/* Before the fork: mount the generation (or take another hold of it) and
 * create the run's tmpfs in RUN_DIR. -1 with a message. */
int share_prepare(struct share *s, const char *run_dir, char *err, size_t cap);
/* WIRE_GEN_PREPARE (payload P, N bytes): mount that generation ahead of the
 * run that will use it, and warm the lookups that run's namespace needs. */
void share_gen_prepare(const uint8_t *p, size_t n);
/* In the child, before exec: a private mount namespace with every root of S
 * (NULL: none) at its path, inside the run's own root when the guest has a
 * full image (root.c). -1 with a message (the caller adds errno). Leaves the
 * cwd at /. */
int share_enter(const struct share *s, char *err, size_t cap);
/* The run is over: drop its tmpfs and its hold on the generation (which is
 * released, with WIRE_GEN_RELEASED, when unused and no longer the newest). */
void share_free(struct share *s);
/* Release the generations no run holds and no run will use (older than the
 * newest): after a run's end, off the way of the next run's start. */
void share_sweep(void);
/* A child of share_sweep's ended (reap_children): true if it was one. */
bool share_reaped(pid_t pid, int status);

/* share-patch.c: files of a generation that changed on the host after the
 * guest read them (WIRE_PATCH, WIRE_PATCH_DATA), in a layer over it. */
void share_patch_begin(const uint8_t *p, size_t n);
void share_patch_data(const uint8_t *p, size_t n);
/* How many patches were completed so far: a namespace made before the
 * latest one may show a file as it was. */
unsigned share_patch_serial(void);
/* The layer's directory for PATH in generation GEN into BUF: true if it
 * exists (something beneath PATH is patched). */
bool share_patch_dir(uint32_t gen, const char *path, char *buf, size_t cap);
/* True if the layer holds the directory PATH of generation GEN whole (its
 * path in the layer into BUF): made on the host since the generation, or
 * made anew there (it or a directory above it in the layer hides the
 * generation's): the layer's alone is PATH's lower layer. */
bool share_patch_whole(uint32_t gen, const char *path, char *buf, size_t cap);
/* The host's regular file PATH as generation GEN shows it (its patch
 * layer over it), opened read-only in the agent's namespace, or -1. */
int share_patch_open(uint32_t gen, const char *path);
/* Remove GEN's layer (its release). */
void share_patch_drop(uint32_t gen);

/* share-dev.c: the block device a generation is mounted from, over its
 * byte range of the share disk: a partition of the disk, or else a loop
 * device. */
struct share_dev {
  char path[48];  /* the device to mount */
  char disk[48];  /* the share disk */
  int part;       /* the partition's number, or 0 */
  int loop_fd;    /* the loop device, or -1 */
};
/* 0, or -1 with a one-line message in err. */
int share_dev_attach(const char *disk, uint64_t offset, uint64_t size, struct share_dev *d, char *err, size_t cap);
/* Once the file system on it is unmounted: 0, or -1 with errno (EBUSY:
 * still in use somewhere; try again later). */
int share_dev_detach(struct share_dev *d);
/* A partition another process deleted (share_dev_detach in a child): its
 * number is free again. */
void share_dev_forget(struct share_dev *d);

/* share-spare.c: runs' mount namespaces kept for later runs with the
 * same share when nothing was written in them (the overlay's upper layers are
 * as share_prepare made them): that run joins it (setns) instead of
 * mounting the tmpfs, unsharing and mounting the overlays again. */
/* A spare that serves WANT (same generation and roots): WANT is freed
 * and the spare returned, taken. Else NULL (and spares of an older
 * generation are dropped). */
struct share *share_take_spare(struct share *want);
/* In the child, after share_enter: send its namespace (fds of
 * /proc/self/ns/mnt, mountinfo and /) on SOCK for share_receive_ns, with its
 * mount table as made (less the runs' tmpfs and generations other than GEN). */
void share_send_ns(int sock, uint32_t gen);
/* The namespace the run's child sent on SOCK, if it did, into s->ns_fd. */
void share_receive_ns(struct share *s, int sock);
/* S was kept before and its upper layers' ctimes are as they were then:
 * the run that used it wrote nothing (no write-back walk is needed). */
bool share_unchanged(const struct share *s);
/* The run that used S ended, its write-back sent: keep S as a spare if its
 * namespace is known and untouched (UNCHANGED: share_unchanged said so;
 * the least recently kept spare goes if there are too many). CGROUP: that
 * run's cgroup under CGROUP_ROOT ("" for none, or a namespace made ahead),
 * whose emptiness share_spare_patched waits for. True: the spares own S
 * now; false: the caller frees S. */
bool share_keep(struct share *s, bool unchanged, const char *cgroup);
/* Let go of the namespaces being made ahead (share_ahead). */
void share_ahead_drop(void);
/* A new generation was mounted: spares of older ones will never serve. */
void share_spare_outdated(uint32_t newest_gen);
/* A patch of generation GEN's host PATH was completed: namespaces of runs
 * going on are not kept (their overlays may cache the file as it was); a
 * spare of GEN goes, unless the patch REPLACED_FILE (a regular file by
 * another of that name) that is not in the spare's dentry cache. */
void share_spare_patched(uint32_t gen, const char *path, bool replaced_file);
/* A directory of generation GEN's patch layer was made or removed at host
 * PATH, or a name hidden there: namespaces made ahead for GEN whose mounts
 * looked PATH up (it is a root or view, or above one) go. */
void share_spare_layer_changed(uint32_t gen, const char *path);
/* S (prepared, its tmpfs mounted) is a generation made ahead whose
 * namespace a child is making: it comes on SOCK (share_send_ns). The oldest
 * made ahead goes if there are too many. */
void share_ahead(struct share *s, int sock);
/* A run starts while GOING runs go (itself included). */
void share_note_start(unsigned going);
/* How many namespaces to have ready for the next runs: as many as went at
 * once lately. */
size_t share_ahead_wanted(void);
/* Its tmpfs is in RUN_DIR/AHEAD_PREFIX<N>, N counting the namespaces made ahead. */
#define AHEAD_PREFIX "ahead-"
/* Before a run with share WANT looks for a spare: if the namespace made
 * ahead serves it, wait for it (briefly) and keep it as a spare. */
void share_ahead_collect(const struct share *want);
/* How many spares and namespaces made ahead serve a run with share S. */
size_t share_served(const struct share *s);

/* disk-watch.c: while runs go on, called at least once a second: a disk
 * whose requests stopped completing gets one more (a lost notification). */
void disks_watch(void);
/* A virtio interrupt was lost (WHAT says where it showed): say so, and read
 * a block of a disk, whose interrupt makes qemu's interrupt controller
 * deliver again what it believes delivered. */
void interrupt_lost(const char *what);

/* host-files.c: WIRE_HOST_FILE: one of the host's files for a minimal image's /etc. */
void host_file_receive(const uint8_t *p, size_t n);

/* disks.c: the /dev/vdX whose serial is SERIAL (a WIRE_*_SERIAL), into DEV. */
bool find_disk_by_serial(const char *serial, char *dev, size_t cap);

/* root.c: a full image's root filesystem. At boot (after the modules): mount
 * the root disk if the guest has one; on a first boot, configure the image
 * and power off instead of returning. */
void root_init(void);
bool root_present(void);
/* Where a run's root is built before the chroot ("" without a full image). */
const char *root_prefix(void);
/* In the run's new mount namespace: its root (an overlay on the disk) with the
 * guest's /proc, /sys, /dev, a fresh /tmp and /run. -1 with a message. */
int root_enter(char *err, size_t cap);
/* chroot into that root. */
int root_switch(char *err, size_t cap);
/* A run ended: what it wrote to a persistent layer goes to the disk. */
void root_run_ended(void);

/* writeback.c: after the program ended, the changes in the upper layers of a
 * run's writable roots go to the host as WIRE_WB frames. An iterator, advanced
 * while the run has credit and the port keeps up. */
struct writeback;
struct writeback *writeback_start(const struct share *s, uint32_t run);
/* Send what credit (WIRE_WB_DATA counts against *credit) and the port's
 * backlog allow; true once everything was sent. */
bool writeback_step(struct writeback *wb, uint32_t *credit);
void writeback_free(struct writeback *wb);

/* runs.c: the programs the host asked for, many at once. */
struct pollfd;
struct wire_header;
void runs_init(void);
void runs_frame(const struct wire_header *h, const uint8_t *payload);
/* The host went away: kill every run. */
void runs_cancel_all(void);
/* PID was reaped with STATUS; true if it was a run's main process. */
bool runs_reaped(pid_t pid, int status);
/* The fds the runs wait on, into p (at most cap); returns how many. One run
 * takes at most RUN_POLLFDS_MAX: its stdout and stderr files' watches,
 * stdout, stderr, stdin and exec pipes, and the pipes of the caller's fds
 * open for writing (WIRE_MAX_OUT_FDS). */
#define RUN_POLLFDS_MAX (6 + 8)
size_t runs_pollfds(struct pollfd *p, size_t cap);
/* The poll timeout the runs need (their held output), or -1. */
int runs_timeout_ms(void);
void runs_events(const struct pollfd *p, size_t n);
/* Once per round of the event loop: advance write-backs that wait for credit
 * or for the port to drain. */
void runs_continue(void);
/* Some run goes on (or its output or write-back waits for the host). */
bool runs_active(void);

#endif
