/*
 * The pre-boot phase (preboot.h).  Two threads: the API server thread
 * (under the `api` seccomp role, like the running VM's) applies requests
 * to the configuration through api_fc_route(); the main thread sleeps on
 * an eventfd and does what the API thread may not: on InstanceStart it
 * runs preflight_check() (files, /dev/kvm) and builds the machine through
 * the caller's hook (vm_build), and that verdict becomes the request's
 * answer.  Once the answer is sent the main thread hands the listening
 * socket over and returns to main(), which opens the VM's own API server
 * and runs the VM as for the command line.
 *
 * Why the API thread waits for the main thread (bounded): Firecracker
 * answers InstanceStart only once the start succeeded or failed, and the
 * checks and the build need syscalls the `api` role does not allow.
 */
#include "vmm/preboot.h"
#include "arch/arch.h"
#include "migration/snapshot.h"
#include "sandbox/sandbox.h"
#include "vmm/api/api.h"
#include "vmm/api/api_fc.h"
#include "vmm/log.h"
#include "vmm/preflight.h"
#include "vmm/vm.h"
#include "vmm/vm_mig_config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

/* How long InstanceStart waits for the main thread's checks and build. */
#define PREBOOT_CHECK_TIMEOUT_S 30
/* How often the main thread checks that the API thread still serves. */
#define PREBOOT_ALIVE_CHECK_MS 1000

enum check_state { CHECK_IDLE, CHECK_ASKED, CHECK_DONE };

struct preboot {
    struct vm_config *cfg;
    const struct preboot_hooks *hooks;
    struct api_fc fc;
    int efd; /* API thread -> main thread: a check is asked, or the answer is out */
    int sfd; /* SIGINT, SIGTERM, SIGHUP: end wisp before the VM exists */
    pthread_mutex_t lock;
    pthread_cond_t cond; /* main thread -> API thread: the check is done */
    enum check_state check;
    bool is_load;     /* the asked check is a snapshot load (else InstanceStart) */
    bool load_failed; /* end wisp once the answer is out */
    /* The load's request, copied (its paths into load_state and load_mem):
     * a check that outlives its request (timed out) must not read the
     * request's memory. */
    struct api_fc_load load;
    char load_state[API_FC_PATH_MAX + 1];
    char load_mem[API_FC_PATH_MAX + 1];
    int verdict; /* 0 or -errno, once CHECK_DONE */
    char why[sizeof(((struct errbuf *)0)->msg)];
    bool answered; /* the accepted InstanceStart's answer is sent */
    bool built;    /* hooks->build succeeded for the accepted request (main thread only) */
};

bool preboot_wanted(const struct vm_config *cfg)
{
    return cfg->api_sock && !cfg->kernel && !cfg->restore && !cfg->incoming && !cfg->restore_wait;
}

static void poke(struct preboot *pb)
{
    uint64_t one = 1;
    ssize_t r __unused = write(pb->efd, &one, sizeof(one));
}

/* API thread: ask main to check a start (load NULL) or a snapshot load, and wait. */
static int ask(struct preboot *pb, const struct api_fc_load *load, char *why, size_t whylen)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += PREBOOT_CHECK_TIMEOUT_S;
    pthread_mutex_lock(&pb->lock);
    pb->check = CHECK_ASKED;
    pb->is_load = load != NULL;
    if (load) {
        snprintf(pb->load_state, sizeof(pb->load_state), "%s", load->state_path);
        snprintf(pb->load_mem, sizeof(pb->load_mem), "%s", load->mem_path);
        pb->load = *load;
        pb->load.state_path = pb->load_state;
        pb->load.mem_path = pb->load_mem;
    }
    poke(pb);
    int ret = 0;
    while (pb->check == CHECK_ASKED && ret != ETIMEDOUT)
        ret = pthread_cond_timedwait(&pb->cond, &pb->lock, &deadline);
    if (pb->check != CHECK_DONE) {
        pb->check = CHECK_IDLE; /* a late verdict is dropped */
        snprintf(why, whylen, "the start checks did not finish within %d s",
                 PREBOOT_CHECK_TIMEOUT_S);
        ret = -ETIMEDOUT;
    } else {
        pb->check = CHECK_IDLE;
        ret = pb->verdict;
        if (ret < 0)
            snprintf(why, whylen, "%s", pb->why);
    }
    if (load && ret < 0)
        pb->load_failed = true;
    pthread_mutex_unlock(&pb->lock);
    return ret;
}

/* API thread: InstanceStart with a valid configuration. */
static int on_start(void *ctx, char *why, size_t whylen)
{
    return ask(ctx, NULL, why, whylen);
}

/* API thread: PUT /snapshot/load before anything was configured. */
static int on_load(void *ctx, const struct api_fc_load *req, char *why, size_t whylen)
{
    return ask(ctx, req, why, whylen);
}

/*
 * Main thread: rebuild the configuration from the snapshot's CONFIG section
 * and make it a --restore of the two files (the same path as the command
 * line's --restore from here on), then the start checks.
 */
static int prepare_load(struct vm_config *cfg, const struct api_fc_load *req, struct errbuf *err)
{
    /* The snapshot brings every device: ones from the command line would be added to them. */
    if (cfg->ndevices)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "a snapshot brings its own devices: start wisp with --api-sock and no "
                       "--device to load one this way");
    int fd = open(req->state_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return err_set(err, WISP_EXIT_USAGE, errno, "snapshot state file %s: %s", req->state_path,
                       strerror(errno));
    struct mig_config *mc = calloc(1, sizeof(*mc));
    int e = mc ? mig_snapshot_read_config(fd, arch_mig_id(), mc, err)
               : err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
    close(fd);
    if (e == 0)
        e = vm_mig_config_apply(mc, cfg, err);
    /* network_overrides: the snapshot's interfaces on this host's taps. */
    for (unsigned i = 0; e == 0 && i < req->nnet; i++) {
        struct errbuf oe = {0};
        e = config_override_net_tap(cfg, req->net[i].iface_id, req->net[i].host_dev_name, &oe);
        if (e == -ENOENT)
            err_set(err, WISP_EXIT_USAGE, ENOENT,
                    "network_overrides: the snapshot has no network interface '%s'",
                    req->net[i].iface_id);
        else if (e < 0)
            err_set(err, WISP_EXIT_USAGE, -e, "network_overrides: %s", oe.msg);
    }
    if (mc)
        mig_config_free(mc);
    free(mc);
    char *s = NULL, *m = NULL;
    if (e == 0 && (!(s = strdup(req->state_path)) || !(m = strdup(req->mem_path)))) {
        free(s);
        e = err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
    }
    if (e < 0)
        return e;
    free(cfg->restore);
    free(cfg->restore_mem);
    cfg->restore = s;
    cfg->restore_mem = m;
    cfg->restore_paused = !req->resume;
    e = config_validate(cfg, err);
    return e < 0 ? e : preflight_check(cfg, err);
}

/* API thread: the 204 to InstanceStart has been sent. */
static void on_answered(void *ctx)
{
    struct preboot *pb = ctx;
    pthread_mutex_lock(&pb->lock);
    pb->answered = true;
    pthread_mutex_unlock(&pb->lock);
    poke(pb);
}

/* Main thread: wait for the API thread's requests until InstanceStart is answered. */
static int serve(struct preboot *pb, struct api_server *srv, struct errbuf *err)
{
    for (;;) {
        struct pollfd pfd[2] = {{.fd = pb->efd, .events = POLLIN},
                                {.fd = pb->sfd, .events = POLLIN}};
        /* A server thread that gave up (it logged why) would leave us waiting forever. */
        if (api_server_ended(srv))
            return err_set(err, WISP_EXIT_FAILURE, EIO,
                           "pre-boot: the API thread stopped before InstanceStart");
        int ready = poll(pfd, 2, PREBOOT_ALIVE_CHECK_MS);
        if (ready == 0)
            continue;
        if (ready < 0) {
            if (errno == EINTR)
                continue;
            return err_set(err, WISP_EXIT_HOST, errno, "pre-boot: poll: %s", strerror(errno));
        }
        struct signalfd_siginfo si;
        if ((pfd[1].revents & POLLIN) && read(pb->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
            return err_set(err, 128 + (int)si.ssi_signo, EINTR,
                           "stopped by signal %u before InstanceStart", si.ssi_signo);
        if (!(pfd[0].revents & POLLIN))
            continue;
        uint64_t n;
        if (read(pb->efd, &n, sizeof(n)) < 0) {
            if (errno == EINTR)
                continue;
            return err_set(err, WISP_EXIT_HOST, errno, "pre-boot: eventfd: %s", strerror(errno));
        }
        pthread_mutex_lock(&pb->lock);
        bool asked = pb->check == CHECK_ASKED, done = pb->answered;
        bool is_load = pb->is_load, failed = pb->load_failed;
        struct api_fc_load load = pb->load;
        pthread_mutex_unlock(&pb->lock);
        if (done && failed) /* as a failed --restore-wait load: the answer is out, wisp ends */
            return err_set(err, WISP_EXIT_USAGE, EINVAL, "snapshot load failed: %s", pb->why);
        if (done)
            return 0;
        if (!asked)
            continue;
        /* The API thread waits inside the request: the configuration (and
         * the load request it points to) hold still. */
        struct errbuf e = {0};
        int verdict = is_load ? prepare_load(pb->cfg, &load, &e) : preflight_check(pb->cfg, &e);
        const struct preboot_hooks *h = pb->hooks;
        if (verdict == 0 && h && h->build)
            verdict = h->build(h->ctx, &e);
        pthread_mutex_lock(&pb->lock);
        bool late = pb->check != CHECK_ASKED;
        if (!late) {
            pb->check = CHECK_DONE;
            pb->verdict = verdict;
            snprintf(pb->why, sizeof(pb->why), "%s", e.msg);
            pthread_cond_signal(&pb->cond);
        }
        pthread_mutex_unlock(&pb->lock);
        if (late && verdict == 0 && h && h->unbuild) {
            log_warn("pre-boot: the machine was built after its request timed out; released");
            h->unbuild(h->ctx);
        } else if (!late && verdict == 0) {
            pb->built = h && h->build;
        }
        if (verdict < 0)
            log_info("pre-boot: InstanceStart refused: %s", e.msg);
    }
}

int preboot_run(struct vm_config *cfg, const struct preboot_hooks *hooks, struct errbuf *err)
{
    struct preboot pb = {.cfg = cfg, .hooks = hooks, .efd = -1, .sfd = -1};
    struct api_server *srv = NULL;
    pthread_condattr_t ca;
    int ret;
    api_fc_init(&pb.fc, cfg);
    pb.fc.start = on_start;
    pb.fc.load = on_load;
    pb.fc.answered = on_answered;
    pb.fc.ctx = &pb;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&pb.lock, NULL);
    pthread_cond_init(&pb.cond, &ca);
    pthread_condattr_destroy(&ca);
    /* Blocked for good, as vm_run() blocks them: the socket file must not be
     * left behind by a plain kill, and the API thread inherits the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    signal(SIGPIPE, SIG_IGN);
    pb.efd = eventfd(0, EFD_CLOEXEC);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0 || pb.efd < 0 ||
        (pb.sfd = signalfd(-1, &set, SFD_CLOEXEC)) < 0) {
        ret = err_set(err, WISP_EXIT_HOST, errno, "pre-boot: eventfd or signals: %s",
                      strerror(errno));
        goto out;
    }
    /* The options the API cannot change (seccomp mode, --stats, passthrough
     * devices) decide the filters, so they can be built now, as vm_run would. */
    struct sandbox_opts so;
    vm_sandbox_opts(cfg, &so);
    ret = sandbox_prepare(&so, err);
    if (ret < 0)
        goto out;
    ret = api_server_create(cfg->api_sock, NULL, &srv, err);
    if (ret < 0)
        goto out;
    api_server_set_preboot(srv, &pb.fc);
    ret = api_server_start(srv, err);
    if (ret < 0)
        goto out;
    log_info("pre-boot: waiting for the configuration on %s", cfg->api_sock);
    ret = serve(&pb, srv, err);
    if (ret < 0) {
        /* A signal between the build and the answer: the caller gets nothing built. */
        if (pb.built && hooks->unbuild)
            hooks->unbuild(hooks->ctx);
        goto out;
    }
    ret = api_server_hand_over(srv);
    srv = NULL; /* freed by the hand-over in every case */
    if (ret < 0)
        log_warn("pre-boot: could not keep the API socket; it is created again");
    ret = 0;
out:
    api_server_destroy(srv);
    if (pb.efd >= 0)
        close(pb.efd);
    if (pb.sfd >= 0)
        close(pb.sfd);
    pthread_cond_destroy(&pb.cond);
    pthread_mutex_destroy(&pb.lock);
    return ret;
}
