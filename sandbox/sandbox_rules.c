/*
 * The seccomp allow-lists of sandbox/sandbox.c, one table per thread role, and
 * how a role's filter is assembled from them (sandbox_role_rules()).  This
 * is the data a reviewer audits, kept apart from the code that compiles,
 * installs and enforces it (sandbox.c) so the policy reads as one list.
 *
 * Adding a syscall for a device is one line in the table of the thread that
 * makes it, with the reason; docs/SECURITY.md carries the same tables and
 * test_sandbox.c checks that every rule is documented.  Rules are listed
 * hottest first: libseccomp orders the filter's checks that way.
 */
#include "sandbox/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/userfaultfd.h>
#include <linux/vhost.h>
#include <linux/vfio.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>

/* ASan's runtime makes calls of its own (see san_rules). */
#if defined(__SANITIZE_ADDRESS__)
#define SANDBOX_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANDBOX_SANITIZER 1
#endif
#endif
#ifndef SANDBOX_SANITIZER
#define SANDBOX_SANITIZER 0
#endif

/*
 * The iommufd teardown ioctls (devices/vfio/iommufd_uapi.h has the ABI; the
 * sandbox may not include devices/, and Debian's 6.1 headers lack them):
 * _IO(';', n), no size encoded.  test_sandbox.c checks they match.
 */
#define SANDBOX_VFIO_DEVICE_DETACH_IOMMUFD_PT _IO(';', 100 + 20)
#define SANDBOX_IOMMU_DESTROY                 _IO(';', 0x80)
#define SANDBOX_IOMMU_IOAS_UNMAP              _IO(';', 0x86)

/* Programs for x86_64: not when the aarch64 build's generator runs on an x86 host. */
#if defined(__x86_64__) && !defined(SANDBOX_TARGET_AARCH64)
#define SANDBOX_X86 1
#else
#define SANDBOX_X86 0
#endif

#define IOCTL_MASK  0xffffffffULL /* the kernel reads the request as a 32-bit int */
#define SOCK_TYPE_M 0xf           /* socket type without SOCK_CLOEXEC/SOCK_NONBLOCK */

/* ---- rule tables ------------------------------------------------------------------------ */

/* Positional: {nr, name, nargs, args, err, why} as in struct sandbox_rule. */
// clang-format off
#define RULE(sys, w)        {SCMP_SYS(sys), #sys, 0, {{0}}, 0, (w)}
#define RULE1(sys, a, w)    {SCMP_SYS(sys), #sys, 1, {a}, 0, (w)}
#define RULE2(sys, a, b, w) {SCMP_SYS(sys), #sys, 2, {a, b}, 0, (w)}
#define REFUSE(sys, e, w)   {SCMP_SYS(sys), #sys, 0, {{0}}, (e), (w)}
#define EQ(n, v)            {(n), SCMP_CMP_EQ, (scmp_datum_t)(v), 0}
#define MASKED(n, m, v)     {(n), SCMP_CMP_MASKED_EQ, (scmp_datum_t)(m), (scmp_datum_t)(v)}
// clang-format on
#define IOCTL(req, w)        RULE1(ioctl, MASKED(1, IOCTL_MASK, req), w)
#define NO_EXEC(sys, w)      RULE1(sys, MASKED(2, PROT_EXEC, 0), w)
#define TGKILL(sig, w)       RULE2(tgkill, EQ(0, SANDBOX_SELF_PID), EQ(2, sig), w)
#define SIGACTION(sig, w)    RULE1(rt_sigaction, EQ(0, sig), w)
#define SOCKET(dom, type, w) RULE2(socket, EQ(0, dom), MASKED(1, SOCK_TYPE_M, type), w)
/* Read-only opens: no write access, creation, truncation or O_TMPFILE (whose
 * glibc value includes O_DIRECTORY, which a read-only open may use). */
#define OPEN_WRITE_FLAGS (O_ACCMODE | O_CREAT | O_TRUNC | O_APPEND | (O_TMPFILE & ~O_DIRECTORY))
#define OPEN_RDONLY(w)   RULE1(openat, MASKED(2, OPEN_WRITE_FLAGS, O_RDONLY), w)

#define ABORT_WHY "abort() and term.c's fatal-signal handler re-raise it (security.md B6)"
#define RESET_WHY "abort() and term.c's fatal-signal handler reset it to SIG_DFL"

/* Every role: libc, exit and crash paths, the SIGSYS handler. */
static const struct sandbox_rule common_rules[] = {
    RULE(write, "log lines, serial output, eventfd and irqfd signals, the SIGSYS message"),
    RULE(futex, "pthread mutexes (device locks), pthread_join, libc-internal locks"),
    RULE(clock_gettime, "vDSO fallback on clock sources without vDSO support (log limiter)"),
    NO_EXEC(mmap, "malloc of large blocks and new arenas; never executable"),
    NO_EXEC(mprotect, "malloc arena growth; never executable"),
    RULE(munmap, "free() of large blocks; teardown of guest memory and vCPU run areas"),
    RULE(brk, "malloc's main arena"),
    RULE1(madvise, EQ(2, MADV_DONTNEED), "glibc returns exited threads' stacks and trimmed heap"),
    RULE(rt_sigprocmask, "pthread_kill() and abort() mask signals; thread exit"),
    RULE(rt_sigreturn, "return from the vCPU kick handler (SIGUSR1)"),
    RULE(getpid, "raise() and pthread_kill() pass the thread group id to tgkill"),
    RULE(gettid, "raise() in abort()"),
    TGKILL(SIGABRT, ABORT_WHY),
    TGKILL(SIGSEGV, ABORT_WHY),
    TGKILL(SIGBUS, ABORT_WHY),
    TGKILL(SIGILL, ABORT_WHY),
    TGKILL(SIGFPE, ABORT_WHY),
    TGKILL(SIGQUIT, ABORT_WHY),
    SIGACTION(SIGABRT, RESET_WHY),
    SIGACTION(SIGSEGV, RESET_WHY),
    SIGACTION(SIGBUS, RESET_WHY),
    SIGACTION(SIGILL, RESET_WHY),
    SIGACTION(SIGFPE, RESET_WHY),
    SIGACTION(SIGQUIT, RESET_WHY),
    RULE(writev, "glibc's fatal-error reports (heap corruption, stack protector) before abort()"),
    IOCTL(TCSETS, "term_restore() (tcsetattr) at exit and in the fatal-signal and SIGSYS handlers"),
    IOCTL(TCGETS, "tcsetattr() in term_restore() reads the mode back to check it"),
    RULE(exit, "a thread returning from its start routine"),
    RULE(exit_group, "process exit; _exit() in the SIGSYS handler"),
};

/*
 * Refused softly in every role unless an earlier rule allows the syscall:
 * nothing opens files after setup, but a library that probes one (glibc's
 * fatal-error path tries /dev/tty) should see ENOENT, not kill the VM.
 */
static const struct sandbox_rule soft_rules[] = {
    REFUSE(openat, ENOENT, "no file is opened after setup; probes fail softly (as in crosvm)"),
};

/* Main thread: the event loop and the virtio back ends it serves. */
static const struct sandbox_rule main_rules[] = {
    RULE(epoll_wait, "the event loop waits here"),
    RULE(read, "eventfds, signalfd, stdin; console socket and tap reads"),
    RULE(epoll_ctl, "evloop_add/del while running: stdin pause/resume, console connections"),
    RULE(readv, "virtio-net: tap receive (writev, for transmit, is common)"),
    RULE(io_uring_enter, "virtio-blk: submit and reap io_uring requests (rings set up before)"),
    RULE(getrandom, "virtio-rng: entropy for the guest"),
    RULE1(fallocate, EQ(1, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE),
          "virtio-balloon: give inflated and reported guest pages back (gmem_discard)"),
    RULE(accept4, "virtio-console, virtio-vsock: connections on their listening AF_UNIX sockets"),
    SOCKET(AF_UNIX, SOCK_STREAM,
           "virtio-console, virtio-vsock: UNIX stream sockets, never a network one"),
    RULE(connect, "virtio-vsock: a guest connection to host port P opens <uds_path>_P (the "
                  "only sockets this thread can create are AF_UNIX)"),
    RULE(shutdown, "virtio-vsock: the guest half-closed, so the host socket is (SHUT_WR)"),
    RULE(close, "closing console connections; teardown"),
    RULE(ppoll, "virtio-console on a stdio fd shared with the parent: a zero-timeout poll "
                "before each read or write (never waits)"),
    IOCTL(TIOCGWINSZ, "virtio-console on stdio: terminal size"),
    IOCTL(KVM_IOEVENTFD, "virtio-mmio teardown: unbind the QueueNotify eventfds from the VM"),
    IOCTL(UFFDIO_UNREGISTER, "--restore-lazy teardown: guest memory leaves the userfaultfd"),
    RULE(unlink,
         "virtio-console teardown: remove its socket file (Landlock: only in its directory)"),
    TGKILL(SIGUSR1, "vcpu_kick(): make vCPU threads leave KVM_RUN when the VM stops"),
};

/*
 * Only in a VM with a PCI passthrough device (--device vfio / vfio-user) or a vhost-user
 * device (--device blk,vhost-user=...), which needs the same socket calls:
 * its filters are a separate set of embedded programs, so a VM without one
 * keeps the narrower ones.
 */
static const struct sandbox_rule passthrough_main_rules[] = {
    IOCTL(VFIO_DEVICE_SET_IRQS, "passthrough teardown: detach the vectors' eventfds"),
    IOCTL(KVM_IRQFD, "passthrough teardown: unbind the vectors' irqfds"),
    IOCTL(VFIO_IOMMU_UNMAP_DMA, "passthrough teardown: guest RAM leaves the IOMMU"),
    IOCTL(SANDBOX_VFIO_DEVICE_DETACH_IOMMUFD_PT,
          "passthrough teardown (iommufd): the device leaves the IOAS"),
    IOCTL(SANDBOX_IOMMU_IOAS_UNMAP, "passthrough teardown (iommufd): guest RAM leaves the IOAS"),
    IOCTL(SANDBOX_IOMMU_DESTROY, "passthrough teardown (iommufd): the IOAS goes"),
    IOCTL(KVM_SET_GSI_ROUTING, "passthrough teardown: the vectors' MSI routes go"),
    IOCTL(KVM_SET_USER_MEMORY_REGION, "passthrough teardown: BAR memory slots go"),
    RULE(sendmsg, "vfio-user teardown: SET_IRQS to the server"),
    RULE(recvmsg, "vfio-user teardown: the server's replies"),
    RULE(poll, "vfio-user teardown: waits for the server with a deadline"),
    RULE(recvfrom, "vhost-user: the main loop peeks at the backend socket (EOF = backend gone)"),
    RULE(shutdown, "vhost-user: a failed backend connection is shut down"),
    RULE(getsockopt, "vhost-user reconnect: the result of a connect that had to wait"),
};

static const struct sandbox_rule passthrough_vcpu_rules[] = {
    RULE(pread64, "passthrough (kernel VFIO): trapped BAR and config reads on the device fd"),
    RULE(pwrite64, "passthrough (kernel VFIO): trapped BAR writes, command register forwarding"),
    IOCTL(VFIO_DEVICE_SET_IRQS, "passthrough: the guest enabled MSI/MSI-X or a vector; attach "
                                "or detach its eventfd at the device"),
    IOCTL(KVM_SET_GSI_ROUTING, "passthrough: a vector's MSI route follows the guest's address "
                               "and data"),
    IOCTL(KVM_IRQFD, "passthrough: bind or unbind a vector's eventfd and its GSI (unmask, mask)"),
    RULE(eventfd2, "passthrough: the eventfd of a vector enabled for the first time"),
    RULE(close, "passthrough: the guest turned MSI/MSI-X on or off: the vectors' eventfds go"),
    IOCTL(KVM_SET_USER_MEMORY_REGION, "passthrough: the guest moved a BAR or toggled decode; "
                                      "its mmap-ed part follows as a memory slot"),
    RULE(sendmsg, "vfio-user: BAR and config accesses and SET_IRQS go to the server"),
    RULE(recvmsg, "vfio-user: the server's replies"),
    RULE(poll, "vfio-user: waits for the server's reply with a deadline"),
    RULE(epoll_ctl, "vhost-user: DRIVER_OK and reset hand a queue's kick eventfd to the "
                    "backend and back (the main loop stops/starts polling it)"),
    RULE(shutdown, "vhost-user: a failed backend connection is shut down"),
};

/*
 * Only in a VM with --device vsock,backend=vhost (devices/vhost/vhost_vsock.c):
 * DRIVER_OK (a vCPU's status write) starts the kernel's rings, a reset
 * stops them; teardown on the main thread stops them too.  The device was
 * opened, owned and given its CID before any filter.
 */
static const struct sandbox_rule vhost_vsock_vcpu_rules[] = {
    IOCTL(VHOST_SET_FEATURES, "vhost-vsock DRIVER_OK: the guest's acked features"),
    IOCTL(VHOST_SET_MEM_TABLE, "vhost-vsock DRIVER_OK: guest RAM at wisp's addresses"),
    IOCTL(VHOST_SET_VRING_NUM, "vhost-vsock DRIVER_OK: rx and tx ring sizes"),
    IOCTL(VHOST_SET_VRING_BASE, "vhost-vsock DRIVER_OK: rx and tx start positions"),
    IOCTL(VHOST_SET_VRING_ADDR, "vhost-vsock DRIVER_OK: rx and tx ring addresses"),
    IOCTL(VHOST_SET_VRING_KICK, "vhost-vsock DRIVER_OK: the queue's QueueNotify eventfd; reset "
                                "detaches it"),
    IOCTL(VHOST_SET_VRING_CALL, "vhost-vsock DRIVER_OK: wisp's call eventfd; reset detaches it"),
    IOCTL(VHOST_VSOCK_SET_RUNNING, "vhost-vsock: DRIVER_OK starts the kernel's rings, reset "
                                   "stops them"),
    IOCTL(VHOST_GET_VRING_BASE, "vhost-vsock reset: the stopped rings' positions"),
    RULE(epoll_ctl, "vhost-vsock: DRIVER_OK and reset hand a queue's kick eventfd to the "
                    "kernel and back (the main loop stops/starts polling it)"),
};

static const struct sandbox_rule vhost_vsock_main_rules[] = {
    IOCTL(VHOST_VSOCK_SET_RUNNING, "vhost-vsock teardown: the kernel's rings stop"),
    IOCTL(VHOST_GET_VRING_BASE, "vhost-vsock teardown: the stopped rings' positions"),
    IOCTL(VHOST_SET_VRING_KICK, "vhost-vsock teardown: the kick eventfds are detached"),
    IOCTL(VHOST_SET_VRING_CALL, "vhost-vsock teardown: the call eventfds are detached"),
};

/* --stats: stats_print() at exit. */
static const struct sandbox_rule stats_rules[] = {
    OPEN_RDONLY("stats_print() reads /proc/self/status (peak RSS)"),
    RULE(newfstatat, "fopen() sizes its buffer"),
    RULE(mincore, "stats_print() counts resident guest pages"),
};

/* vCPU threads: everything else they do (devices' PIO/MMIO handlers) is common. */
static const struct sandbox_rule vcpu_rules[] = {
    IOCTL(KVM_RUN, "run the guest; the only KVM ioctl after setup"),
    RULE(io_uring_enter, "virtio-blk reset (Status 0) waits here for requests in flight"),
    RULE(clock_nanosleep, "virtio-blk reset: 1 ms back-off on a transient io_uring error"),
    RULE(ppoll, "COM1 output: a zero-timeout poll for room before each write (never waits)"),
};

/*
 * Control API server (vmm/api/api_server.c): libmicrohttpd on a UNIX socket
 * bound before the filter goes on, driven by the wisp-api thread.
 */
static const struct sandbox_rule api_rules[] = {
    RULE(epoll_wait, "waits for clients, requests and the stop eventfd"),
    RULE(recvfrom, "libmicrohttpd reads requests (recv)"),
    RULE(sendmsg, "libmicrohttpd writes responses (header and body in one call)"),
    RULE(sendto, "libmicrohttpd writes responses (send)"),
    RULE(accept4, "clients of the listening AF_UNIX socket (bound before)"),
    RULE(epoll_ctl, "libmicrohttpd adds and drops client connections"),
    RULE(shutdown, "libmicrohttpd ends a connection (SHUT_WR before close)"),
    RULE(close, "drops client connections; the daemon's fds when the thread stops"),
    TGKILL(SIGUSR1, "PATCH /vm Paused: vcpu_kick() makes vCPU threads leave KVM_RUN"),
};

/*
 * Migration thread (vmm/vm_mig.c, "wisp-mig"): snapshots now, live
 * migration streams later.  It pauses the VM, reads vCPU and VM state from
 * KVM, quiesces and resumes devices, and writes the snapshot's two files
 * in --snapshot-dir (Landlock confines openat to that directory).
 */
static const struct sandbox_rule migration_rules[] = {
    RULE(openat, "snapshot files, only inside --snapshot-dir (Landlock)"),
    RULE(read, "migration stream and snapshot data"),
    RULE(pwrite64, "snapshot memory file: each run of non-zero pages at its offset"),
    RULE(lseek, "SEEK_DATA/SEEK_HOLE on guest memory: pages never touched are not sent"),
    RULE(ftruncate, "snapshot files: cut to 0, then size the (sparse) memory file"),
    RULE(fdatasync, "snapshot files reach the disk before the API answers"),
    RULE(fstat, "snapshot state file size for the answer"),
    RULE(newfstatat, "fstat() as glibc issues it"),
    RULE(fcntl, "stream fds are made non-blocking (F_GETFL, F_SETFL)"),
    RULE(close, "closes snapshot files and streams"),
    RULE(ppoll, "waits for the peer or file with a deadline"),
    RULE(poll, "the fd transport waits with poll()"),
    RULE(recvmsg, "migration stream (and fds over AF_UNIX)"),
    RULE(sendmsg, "migration stream (and fds over AF_UNIX)"),
    RULE(sendto, "migration stream: send() with MSG_NOSIGNAL"),
    RULE(recvfrom, "migration stream: recv()"),
    SOCKET(AF_UNIX, SOCK_STREAM, "local migration"),
    SOCKET(AF_INET, SOCK_STREAM, "cross-host migration over TCP"),
    SOCKET(AF_INET6, SOCK_STREAM, "cross-host migration over TCP"),
    RULE(connect, "sender connects to the receiver"),
    RULE(accept4, "receiver accepts the sender"),
    RULE(setsockopt, "TCP_NODELAY and buffer sizes"),
    RULE(getsockopt, "SO_ERROR: the outcome of a non-blocking connect"),
    RULE(shutdown, "ends the stream"),
    TGKILL(SIGUSR1, "vm_pause(): vcpu_kick() makes vCPU threads leave KVM_RUN"),
    RULE(io_uring_enter, "virtio-blk quiesce waits for requests in flight; resume submits"),
    RULE(clock_nanosleep, "virtio-blk quiesce: back-off on a transient io_uring error"),
    RULE(epoll_ctl, "external data planes: kick fds back to the main loop after a save"),
    IOCTL(KVM_GET_DIRTY_LOG, "pages written since the last pass"),
    IOCTL(KVM_SET_USER_MEMORY_REGION, "dirty logging on and off for a guest memory slot"),
#if SANDBOX_X86
    /* x86 vCPU and VM state (arch/x86_64/arch_mig.c). */
    IOCTL(KVM_GET_MSR_INDEX_LIST, "the MSRs a vCPU saves (once per VM)"),
    IOCTL(KVM_GET_REGS, "snapshot: a parked vCPU's state"),
    IOCTL(KVM_GET_SREGS, "snapshot: a parked vCPU's state"),
    IOCTL(KVM_GET_XSAVE, "vCPU state: FPU and extended registers"),
    IOCTL(KVM_GET_XSAVE2, "vCPU state: FPU and extended registers (AMX-sized)"),
    IOCTL(KVM_GET_XCRS, "snapshot: a parked vCPU's state"),
    IOCTL(KVM_GET_DEBUGREGS, "snapshot: a parked vCPU's state"),
    IOCTL(KVM_GET_MSRS, "snapshot: a parked vCPU's state"),
    IOCTL(KVM_GET_LAPIC, "snapshot: a parked vCPU's state"),
    IOCTL(KVM_GET_VCPU_EVENTS, "snapshot: a parked vCPU's state"),
    IOCTL(KVM_GET_MP_STATE, "snapshot: a parked vCPU's state"),
    IOCTL(KVM_GET_TSC_KHZ, "snapshot: a parked vCPU's state"),
    IOCTL(KVM_CHECK_EXTENSION, "the XSAVE2 size of this host"),
    IOCTL(KVM_GET_IRQCHIP, "VM state: PICs and IOAPIC"),
    IOCTL(KVM_GET_PIT2, "snapshot: the VM's PIT state"),
    IOCTL(KVM_GET_CLOCK, "VM state: kvmclock"),
    IOCTL(KVM_GET_DEVICE_ATTR, "each vCPU's TSC offset, saved with kvmclock's host TSC"),
#else
    /* aarch64 vCPU and VGIC state (arch/aarch64/arch_mig.c). */
    IOCTL(KVM_GET_REG_LIST, "snapshot: the registers KVM lists for a vCPU"),
    IOCTL(KVM_GET_ONE_REG, "snapshot: each listed register of a parked vCPU"),
    IOCTL(KVM_GET_MP_STATE, "snapshot: a parked vCPU's power state (PSCI)"),
    IOCTL(KVM_GET_DEVICE_ATTR, "snapshot: the VGIC's distributor, redistributor and ICC registers"),
#endif
};

/* Device I/O worker (no thread yet): synchronous or io_uring disk I/O off the main loop. */
static const struct sandbox_rule io_worker_rules[] = {
    RULE(io_uring_enter, "submit and reap disk requests"),
    RULE(read, "its wake-up eventfd"),
    RULE(preadv, "synchronous disk reads"),
    RULE(pwritev, "synchronous disk writes"),
    RULE(fdatasync, "virtio-blk flush"),
};

/*
 * A vDPA device's worker (--device vdpa, devices/vhost/vdpa_dp.c): every
 * call into the device after it was opened, so that no vCPU waits on a
 * VDUSE server.  IOTLB messages and its kicks are plain writes (common).
 */
static const struct sandbox_rule vdpa_rules[] = {
    IOCTL(VHOST_VDPA_SET_STATUS, "DRIVER_OK sequence and guest resets: the device status"),
    IOCTL(VHOST_VDPA_GET_STATUS, "each status is read back"),
    IOCTL(VHOST_SET_FEATURES, "FEATURES_OK: the guest's acked features"),
    IOCTL(VHOST_SET_VRING_NUM, "DRIVER_OK: ring size"),
    IOCTL(VHOST_SET_VRING_BASE, "DRIVER_OK: ring start position"),
    IOCTL(VHOST_SET_VRING_ADDR, "DRIVER_OK: ring addresses (guest-physical, through the IOTLB)"),
    IOCTL(VHOST_SET_VRING_KICK, "DRIVER_OK: the queue's QueueNotify eventfd"),
    IOCTL(VHOST_SET_VRING_CALL, "DRIVER_OK: wisp's call eventfd"),
    IOCTL(VHOST_VDPA_SET_VRING_ENABLE, "DRIVER_OK: the queue is enabled"),
    IOCTL(VHOST_VDPA_SET_CONFIG, "the driver wrote the config space"),
    RULE(close, "teardown: the device is closed (after status 0)"),
};

/*
 * Lazy restore (--restore-lazy): the userfaultfd page server
 * (migration/uffd.c) answers each first touch of a guest page by copying
 * it from the snapshot's memory file.
 */
static const struct sandbox_rule uffd_rules[] = {
    RULE(poll, "waits for a fault or the stop eventfd"),
    RULE(read, "fault messages from the userfaultfd"),
    RULE(pread64, "one page of the snapshot memory file"),
    IOCTL(UFFDIO_COPY, "installs the page that was faulted on"),
    IOCTL(UFFDIO_ZEROPAGE, "a page past the end of a shrunk memory file"),
    IOCTL(UFFDIO_WAKE, "wakes a thread whose page another fault already installed"),
};

/*
 * ASan builds only: the sanitizer runtime's own calls (per-thread shadow
 * memory and alternate signal stacks, and LeakSanitizer at exit, which stops
 * the world from a clone()d tracer task that inherits the main filter and
 * uses ptrace).  This widens every role a lot; release builds never contain
 * it.  The tracer blocks SIGSYS, so a missing rule here kills it silently
 * and LeakSanitizer's parent spins: test_seccomp.c boots an ASan wisp.
 */
static const struct sandbox_rule san_rules[] = {
    RULE(sigaltstack, "ASan: per-thread alternate signal stacks"),
    RULE1(madvise, EQ(2, MADV_NOHUGEPAGE), "ASan: shadow memory of exiting threads"),
    RULE1(madvise, EQ(2, MADV_DONTDUMP), "ASan: shadow memory of exiting threads"),
    RULE(rt_sigaction, "LeakSanitizer's tracer: handlers for SIGXCPU and SIGXFSZ too"),
    RULE(prctl, "LeakSanitizer: PR_SET_PTRACER, PR_SET_DUMPABLE, PR_SET_PDEATHSIG"),
    RULE(clone, "LeakSanitizer: the stop-the-world tracer task (not a thread)"),
    RULE(sched_yield, "LeakSanitizer: waits for the tracer"),
    RULE(wait4, "LeakSanitizer: reaps the tracer; the tracer waits for stopped threads"),
    RULE(getppid, "LeakSanitizer's tracer: checks its parent"),
    RULE1(open, MASKED(1, OPEN_WRITE_FLAGS, O_RDONLY), "/proc/<pid>/task, /proc/self/maps"),
    RULE(getdents, "LeakSanitizer's tracer: lists /proc/<pid>/task"),
    RULE(lseek, "LeakSanitizer's tracer: rewinds the directory"),
    RULE(ptrace, "LeakSanitizer's tracer: stops threads and reads their registers"),
    RULE(readlink, "reports: /proc/self/exe names the module of each frame"),
    RULE(read, "reports: /proc/self/maps, cmdline, environ"),
    RULE(close, "reports: /proc files"),
    RULE(pipe2, "reports: probes for a symbolizer (which never starts: no execve)"),
};

struct role_def {
    const char *name;
    const struct sandbox_rule *rules;
    size_t n;
};

static const struct role_def roles[SANDBOX_NROLES] = {
    [SANDBOX_MAIN] = {"main", main_rules, ARRAY_SIZE(main_rules)},
    [SANDBOX_VCPU] = {"vcpu", vcpu_rules, ARRAY_SIZE(vcpu_rules)},
    [SANDBOX_API] = {"api", api_rules, ARRAY_SIZE(api_rules)},
    [SANDBOX_MIGRATION] = {"migration", migration_rules, ARRAY_SIZE(migration_rules)},
    [SANDBOX_IO_WORKER] = {"io-worker", io_worker_rules, ARRAY_SIZE(io_worker_rules)},
    [SANDBOX_UFFD] = {"uffd", uffd_rules, ARRAY_SIZE(uffd_rules)},
    [SANDBOX_VDPA] = {"vdpa", vdpa_rules, ARRAY_SIZE(vdpa_rules)},
};

const char *sandbox_role_name(enum sandbox_role role)
{
    return (unsigned)role < SANDBOX_NROLES ? roles[role].name : "?";
}

bool sandbox_sanitizer_build(void)
{
    return SANDBOX_SANITIZER;
}

/* Does rule `a` already allow (or refuse) everything rule `b` would? */
static bool covers(const struct sandbox_rule *a, const struct sandbox_rule *b)
{
    if (a->nr != b->nr || a->err != b->err)
        return false;
    if (a->nargs == 0)
        return true;
    return a->nargs == b->nargs && !memcmp(a->args, b->args, a->nargs * sizeof(a->args[0]));
}

/* How add_rules() treats a rule that overlaps an earlier one. */
enum overlap {
    KEEP_ALL,     /* role and common tables: overlaps are bugs, which the unit tests catch */
    SKIP_COVERED, /* extras: skip what an earlier rule already covers */
    SKIP_SAME_NR, /* soft refusals: skip any syscall an earlier rule names */
};

static int add_rules(const struct sandbox_rule **out, size_t max, size_t *count,
                     const struct sandbox_rule *rules, size_t n, enum overlap how)
{
    for (size_t i = 0; i < n; i++) {
        bool skip = false;
        for (size_t j = 0; how != KEEP_ALL && !skip && j < *count; j++)
            skip = how == SKIP_COVERED ? covers(out[j], &rules[i]) : out[j]->nr == rules[i].nr;
        if (skip)
            continue;
        if (*count == max)
            return -ENOSPC;
        out[(*count)++] = &rules[i];
    }
    return 0;
}

int sandbox_role_rules(enum sandbox_role role, const struct sandbox_opts *opts,
                       const struct sandbox_rule **out, size_t max)
{
    if ((unsigned)role >= SANDBOX_NROLES)
        return -EINVAL;
    size_t n = 0;
    int ret = add_rules(out, max, &n, roles[role].rules, roles[role].n, KEEP_ALL);
    if (!ret)
        ret = add_rules(out, max, &n, common_rules, ARRAY_SIZE(common_rules), KEEP_ALL);
    if (!ret && role == SANDBOX_MAIN && opts->stats)
        ret = add_rules(out, max, &n, stats_rules, ARRAY_SIZE(stats_rules), SKIP_COVERED);
    if (!ret && role == SANDBOX_MAIN && opts->passthrough)
        ret = add_rules(out, max, &n, passthrough_main_rules, ARRAY_SIZE(passthrough_main_rules),
                        SKIP_COVERED);
    if (!ret && role == SANDBOX_VCPU && opts->passthrough)
        ret = add_rules(out, max, &n, passthrough_vcpu_rules, ARRAY_SIZE(passthrough_vcpu_rules),
                        SKIP_COVERED);
    if (!ret && role == SANDBOX_MAIN && opts->vhost_vsock)
        ret = add_rules(out, max, &n, vhost_vsock_main_rules, ARRAY_SIZE(vhost_vsock_main_rules),
                        SKIP_COVERED);
    if (!ret && role == SANDBOX_VCPU && opts->vhost_vsock)
        ret = add_rules(out, max, &n, vhost_vsock_vcpu_rules, ARRAY_SIZE(vhost_vsock_vcpu_rules),
                        SKIP_COVERED);
    if (!ret && SANDBOX_SANITIZER)
        ret = add_rules(out, max, &n, san_rules, ARRAY_SIZE(san_rules), SKIP_COVERED);
    if (!ret)
        ret = add_rules(out, max, &n, soft_rules, ARRAY_SIZE(soft_rules), SKIP_SAME_NR);
    return ret < 0 ? ret : (int)n;
}
