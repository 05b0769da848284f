/*
 * VM lifecycle (see vm.h): acquire KVM, memory, devices and the guest image
 * in vm_create(), run vCPU threads and the main event loop in vm_run(),
 * release in reverse order in vm_destroy().
 */
#include "vmm/vm.h"
#include "arch/arch.h"
#include "vmm/api/api.h"
#include "vmm/devmgr.h"
#include "devices/legacy/serial.h"
#include "vmm/kvm.h"
#include "sandbox/landlock.h"
#include "vmm/log.h"
#include "vmm/metrics.h"
#include "sandbox/sandbox.h"
#include "vmm/stats.h"
#include "vmm/term.h"
#include "vmm/vcpu.h"
#include "vmm/vm_mig.h"
#include "vmm/vm_pause.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

void vm_request_stop(struct vm *vm, enum vm_stop_reason reason, int exit_code)
{
    int expected = VM_RUNNING;
    if (atomic_compare_exchange_strong(&vm->stop_reason, &expected, (int)reason)) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        vm->stop_ns = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
        atomic_store(&vm->exit_code, exit_code);
        uint64_t one = 1;
        ssize_t r __unused = write(vm->stop_efd, &one, sizeof(one));
    }
}

/* ---- services handed to arch code (vmm/services.h) ------------------------ */

static void svc_register_pio(void *ctx, uint16_t base, uint16_t len, const char *name,
                             bus_read_fn read, bus_write_fn write, void *opaque)
{
    struct vm *vm = ctx;
    if (bus_register(&vm->pio, base, len, name, read, write, opaque) < 0)
        vmm_fatal("port range 0x%x+%u (%s) conflicts with another device", base, len, name);
}

static void svc_register_mmio(void *ctx, uint64_t base, uint64_t len, const char *name,
                              bus_read_fn read, bus_write_fn write, void *opaque)
{
    struct vm *vm = ctx;
    if (bus_register(&vm->mmio, base, len, name, read, write, opaque) < 0)
        vmm_fatal("MMIO range 0x%llx+%llu (%s) conflicts with another device",
                  (unsigned long long)base, (unsigned long long)len, name);
}

static void svc_request_stop(void *ctx, enum vm_stop_reason reason, int exit_code)
{
    vm_request_stop(ctx, reason, exit_code);
}

static int svc_irqfd_create(void *ctx, unsigned gsi, int *fd, struct errbuf *err)
{
    return kvm_irqfd_create(ctx, gsi, fd, err);
}

static int svc_irqfd_bind(void *ctx, int fd, unsigned gsi, bool assign)
{
    return kvm_irqfd_bind(ctx, fd, gsi, assign);
}

static int svc_mem_slot_add(void *ctx, uint64_t gpa, uint64_t size, void *hva, unsigned *slot)
{
    return kvm_dev_slot_add(ctx, gpa, size, hva, slot);
}

static void svc_mem_slot_remove(void *ctx, unsigned slot)
{
    kvm_dev_slot_remove(ctx, slot);
}

/* The UART can take input again: wake the main loop (on_serial_room). */
static void serial_room(void *opaque)
{
    struct vm *vm = opaque;
    uint64_t one = 1;
    ssize_t r __unused = write(vm->serial_room_efd, &one, sizeof(one));
}

/* ---- creation ----------------------------------------------------------- */

int vm_create(struct vm *vm, const struct vm_config *cfg, struct errbuf *err)
{
    int ret = vm_build(vm, cfg, err);
    return ret < 0 ? ret : vm_open_api(vm, err);
}

int vm_open_api(struct vm *vm, struct errbuf *err)
{
    if (!vm->cfg->api_sock || vm->api)
        return 0;
    /* Last: the socket appears only once everything else is in place. */
    int ret = api_server_create(vm->cfg->api_sock, &vm->ctl, &vm->api, err);
    if (ret < 0)
        vm_destroy(vm);
    return ret;
}

int vm_build(struct vm *vm, const struct vm_config *cfg, struct errbuf *err)
{
    int ret;
    memset(vm, 0, sizeof(*vm));
    vm->cfg = cfg;
    vm->kvm_fd = vm->vm_fd = vm->stop_efd = vm->serial_room_efd = vm->signal_fd = -1;
    vm->metrics_tfd = -1;
    vm->mem.fd = -1;
    vm->loop.epfd = -1;
    bus_init(&vm->pio, "pio");
    bus_init(&vm->mmio, "mmio");
    vm->svc = (struct vm_services){
        .ctx = vm,
        .register_pio = svc_register_pio,
        .register_mmio = svc_register_mmio,
        .request_stop = svc_request_stop,
        .irqfd_create = svc_irqfd_create,
        .irqfd_bind = svc_irqfd_bind,
        .mem_slot_add = svc_mem_slot_add,
        .mem_slot_remove = svc_mem_slot_remove,
    };
    vm_control_init(vm);
    ret = vm_pause_init(vm);
    if (ret < 0) {
        err_set(err, WISP_EXIT_HOST, -ret, "cannot create the pause lock: %s", strerror(-ret));
        goto fail;
    }

    ret = vm_mig_open(vm, err);
    if (ret < 0)
        goto fail;
    ret = kvm_open_vm(vm, err);
    if (ret < 0)
        goto fail;

    unsigned max = MIN(arch_max_vcpus(), vm->kvm_max_vcpus);
    if (cfg->vcpus > max) {
        ret = err_set(err, WISP_EXIT_USAGE, EINVAL, "%u vCPUs requested; at most %u supported",
                      cfg->vcpus, max);
        goto fail;
    }
    if (cfg->memory < arch_min_memory()) {
        ret = err_set(err, WISP_EXIT_USAGE, EINVAL,
                      "memory size %llu KiB is too small; at least %llu MiB is needed",
                      (unsigned long long)(cfg->memory / KiB),
                      (unsigned long long)(arch_min_memory() / MiB));
        goto fail;
    }

    struct gmem_range ranges[GMEM_MAX_REGIONS];
    unsigned n = GMEM_MAX_REGIONS;
    ret = arch_ram_layout(cfg->memory, ranges, &n, err);
    if (ret < 0)
        goto fail;
    /* A restore maps the memory file copy-on-write, unless a device shares RAM:
     * then the file is copied into the shared memfd. */
    bool copy_in = cfg->restore && config_shares_ram(cfg);
    if (cfg->restore && !copy_in)
        ret = gmem_create_restore(&vm->mem, ranges, n, vm_mig_restore_mem_fd(vm), cfg->restore_lazy,
                                  err);
    else
        ret = gmem_create(&vm->mem, ranges, n, cfg->hugepages, err);
    if (ret == 0 && copy_in)
        ret = gmem_copy_in(&vm->mem, vm_mig_restore_mem_fd(vm), err);
    if (ret < 0)
        goto fail;
    ret = kvm_map_memory(vm, err);
    if (ret < 0)
        goto fail;

    struct arch_host host = {
        .cfg = cfg, .kvm_fd = vm->kvm_fd, .vm_fd = vm->vm_fd, .mem = &vm->mem, .svc = &vm->svc};
    ret = arch_vm_init(&host, &vm->arch, err);
    if (ret < 0)
        goto fail;
    ret = evloop_init(&vm->loop);
    if (ret < 0) {
        err_set(err, WISP_EXIT_HOST, -ret, "cannot create event loop: %s", strerror(-ret));
        goto fail;
    }
    vm->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    vm->serial_room_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (vm->stop_efd < 0 || vm->serial_room_efd < 0) {
        ret = err_set(err, WISP_EXIT_HOST, errno, "cannot create eventfd: %s", strerror(errno));
        goto fail;
    }
    /* Devices are described on the command line, so place them before loading. */
    ret = devmgr_plan(vm, &vm->cmdline, err);
    if (ret < 0)
        goto fail;
    /* Load (and so validate) the guest before creating devices: a bad image
     * must not leave a fresh serial output file behind. */
    /* A restored guest's memory already holds its kernel and everything else. */
    ret = cfg->restore || cfg->incoming || cfg->restore_wait
              ? 0
              : arch_load_guest(vm->arch, vm->cmdline, err);
    if (ret < 0)
        goto fail;
    /* The vCPUs before any device: on arm64 the interrupt controller can only
     * be initialised once every vCPU exists, and KVM takes no irqfd before. */
    vm->vcpus = calloc(cfg->vcpus, sizeof(*vm->vcpus));
    if (!vm->vcpus) {
        ret = err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
        goto fail;
    }
    for (unsigned i = 0; i < cfg->vcpus; i++) {
        ret = vcpu_create(vm, &vm->vcpus[i], i, err);
        if (ret < 0)
            goto fail;
        vm->nvcpus = i + 1;
        ret = arch_vcpu_init(vm->arch, vm->vcpus[i].fd, i, err);
        if (ret < 0)
            goto fail;
    }
    ret = arch_create_devices(vm->arch, err);
    if (ret < 0)
        goto fail;
    vm->serial = arch_serial(vm->arch);
    serial_set_rx_notify(vm->serial, serial_room, vm);
    ret = devmgr_create(vm, err);
    if (ret < 0)
        goto fail;
    return 0;
fail:
    vm_destroy(vm);
    return ret;
}

/* ---- main loop handlers ------------------------------------------------- */

static void on_stop(void *opaque, uint32_t events)
{
    struct vm *vm = opaque;
    (void)events;
    uint64_t v;
    ssize_t r __unused = read(vm->stop_efd, &v, sizeof(v));
    evloop_stop(&vm->loop);
}

static void on_signal(void *opaque, uint32_t events)
{
    struct vm *vm = opaque;
    (void)events;
    struct signalfd_siginfo si;
    if (read(vm->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        metrics_inc(METRICS_SIGNALS_RECEIVED);
        log_info("received signal %u, stopping", si.ssi_signo);
        vm_request_stop(vm, VM_STOP_SIGNAL, 128 + (int)si.ssi_signo);
    }
}

static void stdin_pause(struct vm *vm)
{
    if (!vm->stdin_paused) {
        evloop_del(&vm->loop, STDIN_FILENO);
        vm->stdin_paused = true;
    }
}

size_t vm_filter_input(struct vm *vm, uint8_t *buf, size_t len)
{
    if (!vm->term_raw)
        return len;
    bool stop;
    len = term_escape_filter(&vm->escape, buf, len, &stop);
    if (!stop)
        return len;
    log_info("Ctrl-A x: stopping the VM");
    vm_request_stop(vm, VM_STOP_SIGNAL, 128 + SIGINT);
    return 0;
}

/* Queue input for the UART; what does not fit is counted, not buffered. */
static void feed(struct vm *vm, const uint8_t *buf, size_t len)
{
    if (len)
        vm->stdin_dropped += len - serial_receive(vm->serial, buf, len);
}

/* Deliver host input to the guest, after the terminal escape (vm_filter_input). */
static void deliver_input(struct vm *vm, uint8_t *buf, size_t len)
{
    feed(vm, buf, vm_filter_input(vm, buf, len));
}

static void on_stdin(void *opaque, uint32_t events)
{
    struct vm *vm = opaque;
    size_t room = serial_rx_room(vm->serial);
    if (room == 0) {
        /* The guest is not reading; wait for serial_room() before reading more. */
        stdin_pause(vm);
        return;
    }
    uint8_t buf[256];
    ssize_t n = read(STDIN_FILENO, buf, MIN(room, sizeof(buf)));
    if (n > 0) {
        deliver_input(vm, buf, (size_t)n);
    } else if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) || (events & EPOLLHUP)) {
        /* End of input: the guest keeps running without a keyboard. */
        evloop_del(&vm->loop, STDIN_FILENO);
        vm->stdin_eof = true;
    }
}

static void on_serial_room(void *opaque, uint32_t events)
{
    struct vm *vm = opaque;
    (void)events;
    uint64_t v;
    ssize_t r __unused = read(vm->serial_room_efd, &v, sizeof(v));
    if (vm->stdin_paused && !vm->stdin_eof) {
        vm->stdin_paused = false;
        if (evloop_add(&vm->loop, STDIN_FILENO, EPOLLIN, on_stdin, vm) < 0)
            vm->stdin_eof = true;
    }
}

static int setup_main_loop(struct vm *vm, struct errbuf *err)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    /* Blocked before the vCPU threads start, so they inherit the mask too. */
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
        return err_set(err, WISP_EXIT_HOST, EINVAL, "cannot block signals");
    vm->signal_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (vm->signal_fd < 0)
        return err_set(err, WISP_EXIT_HOST, errno, "signalfd: %s", strerror(errno));
    /* A closed stdout must give EPIPE on write, not kill us. */
    signal(SIGPIPE, SIG_IGN);

    int ret = evloop_add(&vm->loop, vm->stop_efd, EPOLLIN, on_stop, vm);
    if (!ret)
        ret = evloop_add(&vm->loop, vm->signal_fd, EPOLLIN, on_signal, vm);
    if (!ret)
        ret = evloop_add(&vm->loop, vm->serial_room_efd, EPOLLIN, on_serial_room, vm);
    if (!ret && metrics_enabled()) { /* the timer is read in the loop: no new syscall */
        vm->metrics_tfd = metrics_timer_create(vm->cfg->metrics_period_ms);
        ret = vm->metrics_tfd < 0 ? vm->metrics_tfd
                                  : evloop_add(&vm->loop, vm->metrics_tfd, EPOLLIN,
                                               metrics_on_timer, (void *)(intptr_t)vm->metrics_tfd);
    }
    if (!ret && vm->cfg->serial == SERIAL_STDIO) {
        vm->term_raw = term_raw_enable(STDIN_FILENO);
        /* stdin may be /dev/null or a file that epoll refuses: then no input. */
        if (evloop_add(&vm->loop, STDIN_FILENO, EPOLLIN, on_stdin, vm) < 0)
            vm->stdin_eof = true;
    } else if (!ret && config_stdio_consoles(vm->cfg)) {
        /* The virtio console reads stdin itself; the escape is its input
         * filter (devmgr). The config allows one stdio user only. */
        vm->term_raw = term_raw_enable(STDIN_FILENO);
    }
    if (ret < 0)
        return err_set(err, WISP_EXIT_HOST, -ret, "event loop setup failed: %s", strerror(-ret));
    return 0;
}

static int apply_landlock(struct vm *vm, struct errbuf *err)
{
    const struct vm_config *cfg = vm->cfg;
    struct landlock_policy p = {
        .mode = cfg->landlock, .read_proc_self = cfg->stats, .read_all = sandbox_sanitizer_build()};
    for (unsigned i = 0; i < cfg->ndevices && p.nremove < LANDLOCK_MAX_REMOVE; i++)
        if ((cfg->devices[i].type == DEV_CONSOLE || cfg->devices[i].type == DEV_VSOCK) &&
            cfg->devices[i].socket)
            p.remove_files[p.nremove++] = cfg->devices[i].socket;
    if (cfg->api_sock && p.nremove < LANDLOCK_MAX_REMOVE)
        p.remove_files[p.nremove++] = cfg->api_sock;
    p.write_dir = cfg->snapshot_dir; /* PUT /snapshot/create writes there */
    /* PUT /migration may connect anywhere over TCP; only the migration
     * thread's seccomp filter allows AF_INET sockets at all. */
    p.allow_tcp_connect = cfg->api_sock != NULL;
    int ret = landlock_apply(&p, landlock_abi(), err);
    return ret < 0 ? ret : 0;
}

void vm_sandbox_opts(const struct vm_config *cfg, struct sandbox_opts *o)
{
    *o = (struct sandbox_opts){.mode = cfg->seccomp, .stats = cfg->stats};
    /* Only a VM with a passthrough device gets the filters that allow its run-time calls.
     * A vhost-user device (blk or fs) needs the same socket calls (sendmsg/recvmsg/poll) on its
     * vCPUs, and gets that set too for now (docs/VHOST.md: a narrower set of its own is still to
     * do); a vDPA device needs its epoll_ctl (the kick hand-over at DRIVER_OK) and gets the same
     * set. */
    for (unsigned i = 0; i < cfg->ndevices; i++) {
        const struct device_spec *d = &cfg->devices[i];
        o->passthrough = o->passthrough || DEV_IS_PCI(d->type) ||
                         ((d->type == DEV_BLK || d->type == DEV_NET) && d->socket) ||
                         d->type == DEV_FS || d->type == DEV_VDPA;
        /* vhost-vsock: its own narrow set (its ioctls on vCPUs and main only). */
        o->vhost_vsock = o->vhost_vsock || (d->type == DEV_VSOCK && d->vhost);
    }
}

int vm_run(struct vm *vm, struct errbuf *err)
{
    int ret = setup_main_loop(vm, err);
    if (ret < 0)
        return err->exit_code;
    ret = vcpu_signals_init();
    if (ret < 0) {
        err_set(err, WISP_EXIT_HOST, -ret, "cannot install vCPU signal handler");
        return err->exit_code;
    }
    struct sandbox_opts sandbox;
    vm_sandbox_opts(vm->cfg, &sandbox);
    /* The pre-boot API phase (vmm/preboot.c) prepared with the same options. */
    if (!sandbox_prepared() && sandbox_prepare(&sandbox, err) < 0)
        return err->exit_code;
    /* Restore before any vCPU runs, on the main thread, which still may
     * issue every KVM ioctl (no filter yet). */
    if (vm->cfg->restore && vm_mig_restore(vm, err) < 0)
        return err->exit_code;
    if (vm->cfg->restore && vm->cfg->restore_paused) {
        /* As vm_mig_await_load does: the vCPUs park as soon as they start. */
        pthread_mutex_lock(&vm->pause_lock);
        atomic_store(&vm->pause_requested, true);
        vm->paused = true;
        pthread_mutex_unlock(&vm->pause_lock);
    }
    if (vm->cfg->incoming && vm_mig_incoming(vm, err) < 0)
        return err->exit_code;
    /* Before the vCPU threads exist, so that they inherit it. */
    if (apply_landlock(vm, err) < 0)
        return err->exit_code;
    /* --restore-wait: the API thread first (under Landlock already, which
     * still lets the main thread read --snapshot-dir), then the load it
     * asks for, before any vCPU runs. */
    bool api_started = false;
    if (vm->cfg->restore_wait) {
        if (api_server_start(vm->api, err) < 0)
            return err->exit_code;
        api_started = true;
        if (vm_mig_await_load(vm, err) < 0)
            return err->exit_code;
    }
    /* Device threads (a vDPA worker) inherit Landlock, not the main filter. */
    if (devmgr_start_threads(vm, err) < 0)
        return err->exit_code;
    for (unsigned i = 0; i < vm->nvcpus; i++) {
        ret = vcpu_start(&vm->vcpus[i], err);
        if (ret < 0) {
            vm_request_stop(vm, VM_STOP_ERROR, err->exit_code);
            break;
        }
    }
    /* The API thread after the vCPUs (it kicks them), and like them before
     * the main thread's filter, which it would otherwise inherit. */
    if (ret == 0 && (ret = vm_mig_start(vm, err)) < 0)
        vm_request_stop(vm, VM_STOP_ERROR, err->exit_code);
    if (ret == 0 && vm->api && !api_started && (ret = api_server_start(vm->api, err)) < 0)
        vm_request_stop(vm, VM_STOP_ERROR, err->exit_code);
    /* Threads inherit filters: enter ours only once every other thread exists
     * (each enters its own before it handles requests or guest data), and
     * before the loop handles guest data. */
    if (ret == 0 && (ret = sandbox_enter(SANDBOX_MAIN, err)) < 0)
        vm_request_stop(vm, VM_STOP_ERROR, err->exit_code);
    if (ret == 0) {
        if (vm->on_running)
            vm->on_running(vm->on_running_ctx);
        ret = evloop_run(&vm->loop);
        if (ret < 0) {
            log_error("event loop failed: %s", strerror(-ret));
            vm_request_stop(vm, VM_STOP_ERROR, WISP_EXIT_FAILURE);
        }
    }
    /* Whatever ended the loop, make sure every vCPU leaves KVM_RUN, parked
     * ones included (vm_park_vcpu re-checks vm_stopping when woken).  The API
     * thread goes first: it may kick vCPU threads, which must still exist. */
    vm_request_stop(vm, VM_STOP_ERROR, WISP_EXIT_FAILURE);
    vm_pause_broadcast(vm);
    if (vm->api)
        api_server_stop(vm->api);
    vm_mig_stop(vm); /* a snapshot in progress gives up: vm_pause sees the stop */
    for (unsigned i = 0; i < vm->nvcpus; i++)
        vcpu_kick(&vm->vcpus[i]);
    for (unsigned i = 0; i < vm->nvcpus; i++)
        vcpu_destroy(&vm->vcpus[i]);
    vm_mig_stop_lazy(vm);
    term_restore();
    (void)metrics_flush(); /* the last deltas, as Firecracker does at exit */
    if (vm->cfg->stats)
        stats_print(vm);
    return atomic_load(&vm->exit_code);
}

void vm_destroy(struct vm *vm)
{
    if (vm->api) {
        api_server_destroy(vm->api); /* stops its thread if vm_run did not */
        vm->api = NULL;
    }
    if (vm->vcpus) {
        for (unsigned i = 0; i < vm->nvcpus; i++) {
            vcpu_kick(&vm->vcpus[i]);
            vcpu_destroy(&vm->vcpus[i]);
        }
        free(vm->vcpus);
        vm->vcpus = NULL;
    }
    vm->nvcpus = 0;
    vm_mig_destroy(vm);
    devmgr_destroy(vm); /* before the event loop: transports unregister their fds */
    evloop_destroy(&vm->loop);
    free(vm->cmdline);
    vm->cmdline = NULL;
    arch_vm_destroy(vm->arch); /* also the devices arch_create_devices made */
    vm->arch = NULL;
    vm->serial = NULL;
    int *fds[] = {&vm->stop_efd,    &vm->serial_room_efd, &vm->signal_fd,
                  &vm->metrics_tfd, &vm->vm_fd,           &vm->kvm_fd};
    for (size_t i = 0; i < ARRAY_SIZE(fds); i++) {
        if (*fds[i] >= 0)
            close(*fds[i]);
        *fds[i] = -1;
    }
    gmem_destroy(&vm->mem);
    if (vm->pause_inited) {
        pthread_cond_destroy(&vm->pause_cond);
        pthread_mutex_destroy(&vm->pause_lock);
        vm->pause_inited = false;
    }
}
