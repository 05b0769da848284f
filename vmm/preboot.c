/*
 * The pre-boot phase (preboot.h).  Two threads: the API server thread
 * (under the `api` seccomp role, like the running VM's) applies requests
 * to the configuration through api_fc_route(); the main thread sleeps on
 * an eventfd and does the one thing the API thread may not: on
 * InstanceStart it runs preflight_check() (files, /dev/kvm), whose verdict
 * becomes the request's answer.  Once that answer is sent the main thread
 * hands the listening socket over and returns to main(), which builds the
 * VM with vm_create() and vm_run() as for the command line.
 *
 * Why the API thread waits for the main thread (bounded): Firecracker
 * answers InstanceStart only once the start succeeded or failed, and the
 * checks need syscalls the `api` role does not allow.
 */
#include "vmm/preboot.h"
#include "sandbox/sandbox.h"
#include "vmm/api/api.h"
#include "vmm/api/api_fc.h"
#include "vmm/log.h"
#include "vmm/preflight.h"
#include "vmm/vm.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

/* How long InstanceStart waits for the main thread's checks. */
#define PREBOOT_CHECK_TIMEOUT_S 10
/* How often the main thread checks that the API thread still serves. */
#define PREBOOT_ALIVE_CHECK_MS 1000

enum check_state { CHECK_IDLE, CHECK_ASKED, CHECK_DONE };

struct preboot {
    struct vm_config *cfg;
    struct api_fc fc;
    int efd; /* API thread -> main thread: a check is asked, or the answer is out */
    int sfd; /* SIGINT, SIGTERM, SIGHUP: end wisp before the VM exists */
    pthread_mutex_t lock;
    pthread_cond_t cond; /* main thread -> API thread: the check is done */
    enum check_state check;
    int verdict; /* 0 or -errno, once CHECK_DONE */
    char why[sizeof(((struct errbuf *)0)->msg)];
    bool answered; /* the accepted InstanceStart's answer is sent */
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

/* API thread: InstanceStart with a valid configuration.  Ask main to check it. */
static int on_start(void *ctx, char *why, size_t whylen)
{
    struct preboot *pb = ctx;
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += PREBOOT_CHECK_TIMEOUT_S;
    pthread_mutex_lock(&pb->lock);
    pb->check = CHECK_ASKED;
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
    pthread_mutex_unlock(&pb->lock);
    return ret;
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
        pthread_mutex_unlock(&pb->lock);
        if (done)
            return 0;
        if (!asked)
            continue;
        /* The API thread waits inside the request: the configuration holds still. */
        struct errbuf e = {0};
        int verdict = preflight_check(pb->cfg, &e);
        pthread_mutex_lock(&pb->lock);
        if (pb->check == CHECK_ASKED) {
            pb->check = CHECK_DONE;
            pb->verdict = verdict;
            snprintf(pb->why, sizeof(pb->why), "%s", e.msg);
            pthread_cond_signal(&pb->cond);
        }
        pthread_mutex_unlock(&pb->lock);
        if (verdict < 0)
            log_info("pre-boot: InstanceStart refused: %s", e.msg);
    }
}

int preboot_run(struct vm_config *cfg, struct errbuf *err)
{
    struct preboot pb = {.cfg = cfg, .efd = -1, .sfd = -1};
    struct api_server *srv = NULL;
    pthread_condattr_t ca;
    int ret;
    api_fc_init(&pb.fc, cfg);
    pb.fc.start = on_start;
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
    if (ret < 0)
        goto out;
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
