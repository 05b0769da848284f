/*
 * The Firecracker-compatible pre-boot phase on the real binary (docs/API.md,
 * "Firecracker compatibility"): `wisp run --api-sock PATH` without a kernel
 * is configured entirely through the socket, with requests written from
 * Firecracker's published API description, and answers GET / and
 * GET /machine-config from what it collected.
 *
 * Two kinds of tests: fc_api/preboot_* need no /dev/kvm (InstanceStart is
 * refused by the start checks, and the process stays in the pre-boot
 * phase), so they also run on a host without KVM; fc_api/instance_start_*
 * boot the test guest and need KVM (the testbed).
 */
#include "tests/lib/api_http.h"
#include "tests/lib/netns.h"
#include "tests/lib/sandbox_proc.h"
#include "tests/lib/wisp_run.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define AFTER_START "The requested operation is not supported after starting the microVM."

struct fc_vm {
    struct sandbox_proc p;
    char dir[64];
    char sock[96];
    char serial[96];
};

/* The wisp a test started and has not stopped yet (a copy: the test's own
 * struct is on its stack): a failed assertion ends the test early, and this
 * wisp, waiting for requests, must not outlive it. */
static struct {
    pid_t pid; /* 0: none */
    char dir[64], sock[96], serial[96];
} live;

static void kill_live(void)
{
    if (!live.pid)
        return;
    kill(live.pid, SIGKILL);
    waitpid(live.pid, NULL, 0);
    unlink(live.sock);
    unlink(live.serial);
    rmdir(live.dir);
    live.pid = 0;
}

TestSuite(fc_api, .fini = kill_live);

static char reply[API_HTTP_REPLY_MAX];

static void sleep_ms(long ms)
{
    nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000L}, NULL);
}

/* A --device for the next start_preboot_in() (NULL: none beyond the bare set). */
static const char *extra_device;

/*
 * Start wisp with --api-sock and no kernel; wait for the socket.  `dir`:
 * the directory of an earlier wisp to share (NULL: a new one); `bare`: only
 * --api-sock, as a Firecracker client starts the process it restores into.
 */
static void start_preboot_in(struct fc_vm *vm, const char *dir, bool bare)
{
    snprintf(vm->dir, sizeof(vm->dir), "%s", dir ? dir : "/tmp/wisp-fcapi-XXXXXX");
    cr_assert(dir || mkdtemp(vm->dir));
    snprintf(vm->sock, sizeof(vm->sock), "%s/fc%s.sock", vm->dir, bare ? "-bare" : "");
    snprintf(vm->serial, sizeof(vm->serial), "%s/serial.log", vm->dir);
    char serial_arg[128];
    snprintf(serial_arg, sizeof(serial_arg), "file:%s", vm->serial);
    char *argv[12] = {(char *)(uintptr_t)wisp_bin(), "run", "--api-sock", vm->sock};
    size_t n = 4;
    if (extra_device) {
        argv[n++] = "--device";
        argv[n++] = (char *)(uintptr_t)extra_device;
    }
    if (!bare) {
        argv[n++] = "--serial";
        argv[n++] = serial_arg;
        argv[n++] = "--debug-exit";
        argv[n++] = "--snapshot-dir";
        argv[n++] = vm->dir;
    }
    argv[n] = NULL;
    cr_assert_eq(sandbox_proc_start(&vm->p, argv, NULL), 0);
    live.pid = vm->p.pid;
    memcpy(live.dir, vm->dir, sizeof(live.dir));
    memcpy(live.sock, vm->sock, sizeof(live.sock));
    memcpy(live.serial, vm->serial, sizeof(live.serial));
    /* Until the API answers, not until the file exists: the file appears at
     * bind(), a moment before listen() (seen under -j2 load: GET / got -1). */
    const char *body = NULL;
    for (int i = 0; api_http(vm->sock, "GET", "/", NULL, reply, &body) != 200; i++) {
        int status;
        cr_assert_eq(waitpid(vm->p.pid, &status, WNOHANG), 0, "wisp ended early");
        cr_assert_lt(i, WISP_TIMEOUT_MS / 20, "the API never answered GET /");
        sleep_ms(20);
    }
}

static void start_preboot(struct fc_vm *vm)
{
    start_preboot_in(vm, NULL, false);
}

/* SIGTERM, reap, check the status and that the socket file is gone. */
static void stop(struct fc_vm *vm, int want_status)
{
    kill(vm->p.pid, SIGTERM);
    struct proc_result r;
    sandbox_proc_finish(&vm->p, NULL, WISP_TIMEOUT_MS, &r);
    live.pid = 0;
    cr_assert_not(r.timed_out, "wisp did not stop on SIGTERM");
    cr_assert_eq(r.status, want_status, "status %d\n%s", r.status, r.err);
    cr_assert_null(strstr(r.err, "seccomp"), "%s", r.err);
    struct stat st;
    cr_assert_lt(stat(vm->sock, &st), 0, "the API socket was left behind");
    proc_result_free(&r);
    unlink(vm->serial);
    rmdir(vm->dir);
}

/* One request; asserts the status and, for a 4xx, that the fault contains `part`. */
static const char *call(struct fc_vm *vm, const char *method, const char *path, const char *json,
                        int want, const char *part)
{
    const char *body = NULL;
    int status = api_http(vm->sock, method, path, json, reply, &body);
    cr_assert_eq(status, want, "%s %s: status %d, body %s", method, path, status,
                 body ? body : "(none)");
    if (part)
        cr_assert(body && strstr(body, part), "%s %s: '%s' lacks '%s'", method, path,
                  body ? body : "", part);
    if (want == 204)
        cr_assert(!body || !body[0], "204 with a body: %s", body);
    return body;
}

/* The count of "tick " in the serial file. */
static unsigned ticks(const char *path)
{
    size_t len;
    char *text = read_file(path, &len);
    unsigned n = 0;
    for (const char *p = text; p && (p = strstr(p, "tick ")) != NULL; p++)
        n++;
    free(text);
    return n;
}

/* Wait (at most WISP_TIMEOUT_MS) until `serial` holds `want` ticks; the count seen. */
static unsigned wait_ticks(const char *serial, unsigned want)
{
    for (int i = 0; i < WISP_TIMEOUT_MS / 50 && ticks(serial) < want; i++)
        sleep_ms(50);
    return ticks(serial);
}

/* A running VM: pause, snapshot to vm.state and vm.mem in its directory,
 * then SIGKILL it, as a client discards the source.  Its ticks so far. */
static unsigned snapshot_and_kill(struct fc_vm *vm)
{
    call(vm, "PATCH", "/vm", "{\"state\": \"Paused\"}", 204, NULL);
    call(vm, "PUT", "/snapshot/create",
         "{\"snapshot_type\": \"Full\", \"snapshot_path\": \"vm.state\", "
         "\"mem_file_path\": \"vm.mem\"}",
         200, "\"state_bytes\"");
    kill(vm->p.pid, SIGKILL);
    struct proc_result r;
    sandbox_proc_finish(&vm->p, NULL, WISP_TIMEOUT_MS, &r);
    live.pid = 0;
    proc_result_free(&r);
    return ticks(vm->serial);
}

/* Configure everything the pre-boot phase takes. */
static void configure(struct fc_vm *vm, const char *kernel)
{
    char json[512];
    call(vm, "GET", "/", NULL, 200, "\"state\":\"Not started\"");
    snprintf(json, sizeof(json), "{\"kernel_image_path\": \"%s\", \"boot_args\": \"test=tick\"}",
             kernel);
    call(vm, "PUT", "/boot-source", json, 204, NULL);
    call(vm, "PUT", "/machine-config",
         "{\"vcpu_count\": 2, \"mem_size_mib\": 128, \"smt\": false, \"track_dirty_pages\": false}",
         204, NULL);
    call(vm, "PATCH", "/machine-config", "{\"mem_size_mib\": 256}", 204, NULL);
    call(vm, "PUT", "/balloon",
         "{\"amount_mib\": 0, \"deflate_on_oom\": true, \"stats_polling_interval_s\": 1}", 204,
         NULL);
    snprintf(json, sizeof(json), "{\"guest_cid\": 3, \"uds_path\": \"%s/v.sock\"}", vm->dir);
    call(vm, "PUT", "/vsock", json, 204, NULL);
    call(vm, "PUT", "/logger", "{\"level\": \"Info\", \"show_level\": true}", 204, NULL);
    call(vm, "PUT", "/metrics", "{\"metrics_path\": \"/dev/null\"}", 204, NULL);
    call(vm, "PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}", 204, NULL);
}

Test(fc_api, preboot_configure_and_query, .timeout = 120)
{
    struct fc_vm vm;
    start_preboot(&vm);
    /* Out of order before the start. */
    call(&vm, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", 400,
         "needs a boot source");
    call(&vm, "PATCH", "/vm", "{\"state\": \"Paused\"}", 400, "not running");
    configure(&vm, "/nonexistent/vmlinux");
    const char *b = call(&vm, "GET", "/machine-config", NULL, 200, NULL);
    cr_assert(strstr(b, "\"vcpu_count\":2") && strstr(b, "\"mem_size_mib\":256"), "%s", b);
    b = call(&vm, "GET", "/balloon", NULL, 200, NULL);
    cr_assert(strstr(b, "\"deflate_on_oom\":true"), "%s", b);
    call(&vm, "GET", "/version", NULL, 200, "\"vmm_version\"");
    /* Bad requests are answered, and change nothing. */
    call(&vm, "PUT", "/machine-config", "{\"vcpu_count\": 0, \"mem_size_mib\": 64}", 400,
         "vcpu_count");
    call(&vm, "PUT", "/drives/rootfs", "{\"drive_id\": \"rootfs\", \"is_root_device\": true}", 400,
         "path_on_host is required");
    call(&vm, "PUT", "/network-interfaces/eth0", "{\"iface_id\": \"eth0\", \"host_dev_name\": 7}",
         400, "wrong type");
    call(&vm, "PUT", "/boot-source", "{\"kernel_image_path\": ", 400, "malformed JSON");
    call(&vm, "GET", "/nothing", NULL, 404, "no resource");
    b = call(&vm, "GET", "/machine-config", NULL, 200, NULL);
    cr_assert(strstr(b, "\"vcpu_count\":2"), "%s", b);
    /* The start checks refuse a kernel that is not there; wisp stays in the pre-boot phase. */
    call(&vm, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", 400, "/nonexistent");
    call(&vm, "GET", "/", NULL, 200, "\"state\":\"Not started\"");
    stop(&vm, 128 + SIGTERM);
}

/* The pre-boot server thread is under the `api` seccomp role, like the running VM's. */
Test(fc_api, preboot_api_thread_is_filtered, .timeout = 60)
{
    struct fc_vm vm;
    start_preboot(&vm);
    call(&vm, "GET", "/", NULL, 200, "Not started"); /* the thread serves */
    pid_t tids[32];
    int n = sandbox_proc_threads(vm.p.pid, tids, 32);
    bool found = false;
    for (int i = 0; i < n; i++) {
        char path[96], text[4096];
        snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)vm.p.pid, (int)tids[i]);
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        size_t len = fread(text, 1, sizeof(text) - 1, f);
        fclose(f);
        text[len] = '\0';
        if (!strstr(text, "Name:\twisp-api\n"))
            continue;
        found = true;
        cr_assert(strstr(text, "\nSeccomp:\t2\n"), "wisp-api is not filtered:\n%s", text);
    }
    cr_assert(found, "no wisp-api thread");
    stop(&vm, 128 + SIGTERM);
}

Test(fc_api, preboot_survives_garbage, .timeout = 120)
{
    struct fc_vm vm;
    start_preboot(&vm);
    char big[6000];
    memset(big, ' ', sizeof(big) - 1);
    big[0] = '{';
    big[sizeof(big) - 2] = '}';
    big[sizeof(big) - 1] = '\0';
    call(&vm, "PUT", "/boot-source", big, 413, "over 4096 bytes");
    static const char junk[] = "\x16\x03\x01garbage\r\n\r\n";
    const char *body = NULL;
    api_http_raw(vm.sock, junk, sizeof(junk) - 1, reply, &body); /* any answer, or none */
    call(&vm, "PUT", "/drives/a", "{\"rate_limiter\": {\"a\": {\"b\": {\"c\": {}}}}}", 400,
         "malformed JSON");
    call(&vm, "GET", "/", NULL, 200, "Not started");
    stop(&vm, 128 + SIGTERM);
}

/* Needs KVM: InstanceStart boots the test guest through the CLI's code path. */
Test(fc_api, instance_start_boots_and_refuses_late_config, .timeout = 180)
{
    struct fc_vm vm;
    start_preboot(&vm);
    configure(&vm, guest_elf());
    call(&vm, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", 204, NULL);
    /* The same socket now answers from the running VM. */
    call(&vm, "GET", "/", NULL, 200, "\"state\":\"Running\"");
    const char *b = call(&vm, "GET", "/machine-config", NULL, 200, NULL);
    cr_assert(strstr(b, "\"vcpu_count\":2") && strstr(b, "\"mem_size_mib\":256"), "%s", b);
    call(&vm, "PUT", "/drives/late",
         "{\"drive_id\": \"late\", \"path_on_host\": \"/dev/null\", \"is_root_device\": false}",
         400, AFTER_START);
    call(&vm, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", 400, AFTER_START);
    call(&vm, "PUT", "/boot-source", "{\"kernel_image_path\": \"/k\"}", 400, AFTER_START);
    /* The guest runs: its ticks reach the serial file. */
    bool ticked = false;
    for (int i = 0; i < WISP_TIMEOUT_MS / 50 && !ticked; i++) {
        size_t len;
        char *text = read_file(vm.serial, &len);
        ticked = text && strstr(text, "tick ");
        free(text);
        if (!ticked)
            sleep_ms(50);
    }
    cr_assert(ticked, "the guest never ticked");
    call(&vm, "PATCH", "/vm", "{\"state\": \"Paused\"}", 204, NULL);
    call(&vm, "GET", "/", NULL, 200, "\"state\":\"Paused\"");
    call(&vm, "PATCH", "/vm", "{\"state\": \"Resumed\"}", 204, NULL);
    stop(&vm, 128 + SIGTERM);
}

/* Without /dev/kvm (this host, not the testbed): the start checks pass,
 * InstanceStart is answered 204, then vm_create() cannot open /dev/kvm:
 * wisp ends with 3 and the socket it kept for the VM is removed. */
/* Without KVM the build fails: InstanceStart is a 400 naming /dev/kvm and
 * the pre-boot phase goes on (Firecracker answers a failed start so). */
Test(fc_api, preboot_start_without_kvm_is_a_400, .timeout = 120)
{
    if (access("/dev/kvm", F_OK) == 0)
        cr_skip_test("this host has /dev/kvm: instance_start_* covers the start");
    struct fc_vm vm;
    start_preboot(&vm);
    configure(&vm, guest_elf());
    call(&vm, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", 400, "/dev/kvm");
    call(&vm, "GET", "/", NULL, 200, "\"state\":\"Not started\"");
    stop(&vm, 128 + SIGTERM);
}

/*
 * A start that fails while the machine is built (here: its "tap" is the
 * loopback device, which TUNSETIFF refuses; a missing tap would just be
 * created; the checks before the build pass) is answered 400 with the
 * builder's line, nothing is left running, and the client can fix the
 * configuration and start again in the same process.
 */
Test(fc_api, instance_start_build_failure_is_a_400_and_can_be_retried, .timeout = 180)
{
    char why[128];
    cr_assert(netns_enter(why, sizeof(why)), "%s", why);
    cr_assert_eq(netns_tap_create("wfc-ok"), 0);
    struct fc_vm vm;
    char json[512];
    start_preboot(&vm);
    snprintf(json, sizeof(json), "{\"kernel_image_path\": \"%s\", \"boot_args\": \"test=tick\"}",
             guest_elf());
    call(&vm, "PUT", "/boot-source", json, 204, NULL);
    call(&vm, "PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 128}", 204, NULL);
    call(&vm, "PUT", "/network-interfaces/eth0",
         "{\"iface_id\": \"eth0\", \"host_dev_name\": \"lo\"}", 204, NULL);
    call(&vm, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", 400,
         "tap 'lo': cannot attach");
    call(&vm, "GET", "/", NULL, 200, "\"state\":\"Not started\"");
    cr_assert_eq(ticks(vm.serial), 0, "a refused start ran the guest");
    /* Configuration is still accepted; the same start then succeeds. */
    call(&vm, "PUT", "/network-interfaces/eth0",
         "{\"iface_id\": \"eth0\", \"host_dev_name\": \"wfc-ok\"}", 204, NULL);
    call(&vm, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", 204, NULL);
    cr_assert_geq(wait_ticks(vm.serial, 2), 2, "the guest never ticked after the second start");
    call(&vm, "GET", "/", NULL, 200, "\"state\":\"Running\"");
    const char *mc = call(&vm, "GET", "/machine-config", NULL, 200, NULL);
    cr_assert(strstr(mc, "\"vcpu_count\":1"), "%s", mc);
    stop(&vm, 128 + SIGTERM);
}

/* --config-file on the real binary: Firecracker's layout is read, checked
 * and refused with one line and status 2 (no KVM needed). */
Test(fc_api, config_file_errors, .timeout = 60)
{
    static const struct {
        const char *json, *needle;
    } cases[] = {
        {"{\"boot-source\": {\"kernel_image_path\": \"/nonexistent/vmlinux\"}}", "/nonexistent"},
        {"{\"machine-config\": {\"vcpu_count\": 1, \"mem_size_mib\": 128}}", "\"boot-source\""},
        {"{\"boot-source\": {\"kernel_image_path\": \"/k\"}, \"drives\": [{\"drive_id\": \"r\"}]}",
         "\"drives\" entry 0"},
        {"{\"kernel\": \"/k\"}", "unknown section"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *path = write_temp(cases[i].json, strlen(cases[i].json));
        struct proc_result r;
        wisp_run(&r, NULL, NULL, "run", "--config-file", path, NULL);
        unlink(path);
        free(path);
        cr_assert_eq(r.status, 2, "case %zu: status %d\n%s", i, r.status, r.err);
        cr_assert(strstr(r.err, cases[i].needle), "case %zu: %s", i, r.err);
        cr_assert_eq(strchr(r.err, '\n'), r.err + strlen(r.err) - 1, "case %zu: one line: %s", i,
                     r.err);
        proc_result_free(&r);
    }
}

/* Needs KVM: the test guest boots from a Firecracker config file. */
Test(fc_api, instance_start_config_file_boots, .timeout = 180)
{
    char json[512];
    snprintf(json, sizeof(json),
             "{\"boot-source\": {\"kernel_image_path\": \"%s\", \"boot_args\": \"test=report "
             "cpus=2 mem=128\", "
             "\"initrd_path\": null}, \"machine-config\": {\"vcpu_count\": 2, \"mem_size_mib\": "
             "128}, \"logger\": null, \"metrics\": null}",
             guest_elf());
    char *path = write_temp(json, strlen(json));
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--config-file", path, "--debug-exit", "--serial", "stdio",
             NULL);
    unlink(path);
    free(path);
    cr_assert_eq(r.status, GUEST_PASS, "status %d\n%s\n%s", r.status, r.out, r.err);
    cr_assert(strstr(r.out, "RESULT PASS") && strstr(r.out, "cpus=2 online"), "%s", r.out);
    proc_result_free(&r);
}

/* ---- PUT /snapshot/load before any configuration (docs/API.md) ---- */

#define LOAD_AFTER_CONFIG                                                                          \
    "Loading a microVM snapshot not allowed after configuring boot-specific resources."

/* Without KVM: a load after a machine resource is refused with Firecracker's
 * fault, and the process keeps serving the pre-boot API. */
Test(fc_api, preboot_load_after_config_refused, .timeout = 60)
{
    struct fc_vm vm;
    start_preboot(&vm);
    call(&vm, "PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 128}", 204, NULL);
    call(&vm, "PUT", "/snapshot/load",
         "{\"snapshot_path\": \"/nonexistent/s\", \"mem_file_path\": \"/nonexistent/m\"}", 400,
         LOAD_AFTER_CONFIG);
    call(&vm, "GET", "/", NULL, 200, "\"state\":\"Not started\"");
    stop(&vm, 128 + SIGTERM);
}

/* Without KVM: a state file that is not a snapshot is a 400 with one line,
 * and wisp then ends with status 2, as a failed --restore-wait load does. */
Test(fc_api, preboot_load_of_a_bad_file_ends_with_2, .timeout = 60)
{
    struct fc_vm vm;
    start_preboot_in(&vm, NULL, true);
    char state[128], mem[128], json[512];
    snprintf(state, sizeof(state), "%s/bad.state", vm.dir);
    snprintf(mem, sizeof(mem), "%s/bad.mem", vm.dir);
    FILE *f = fopen(state, "w");
    cr_assert_not_null(f);
    fputs("not a snapshot at all", f);
    fclose(f);
    snprintf(json, sizeof(json),
             "{\"snapshot_path\": \"%s\", \"mem_backend\": {\"backend_path\": \"%s\", "
             "\"backend_type\": \"File\"}, \"resume_vm\": true}",
             state, mem);
    call(&vm, "PUT", "/snapshot/load", json, 400, "bad magic");
    struct proc_result r;
    sandbox_proc_finish(&vm.p, NULL, WISP_TIMEOUT_MS, &r);
    live.pid = 0;
    cr_assert_not(r.timed_out, "wisp did not end after the failed load");
    cr_assert_eq(r.status, 2, "status %d\n%s", r.status, r.err);
    cr_assert(strstr(r.err, "snapshot load failed"), "%s", r.err);
    proc_result_free(&r);
    unlink(state);
    rmdir(vm.dir);
}

/* A --device on the command line would be added to the snapshot's own:
 * the load is refused (400, then status 2). */
Test(fc_api, preboot_load_with_a_command_line_device_refused, .timeout = 60)
{
    struct fc_vm vm;
    extra_device = "rng";
    start_preboot_in(&vm, NULL, true);
    extra_device = NULL;
    call(&vm, "PUT", "/snapshot/load",
         "{\"snapshot_path\": \"/nonexistent/s\", \"mem_file_path\": \"/nonexistent/m\"}", 400,
         "brings its own devices");
    struct proc_result r;
    sandbox_proc_finish(&vm.p, NULL, WISP_TIMEOUT_MS, &r);
    live.pid = 0;
    cr_assert_eq(r.status, 2, "status %d\n%s", r.status, r.err);
    proc_result_free(&r);
    rmdir(vm.dir);
}

/* KVM: Firecracker's whole flow.  Configure (boot source, machine, a
 * drive), start, pause, snapshot, kill; a new wisp with only --api-sock
 * loads the snapshot as its first request and the guest ticks on. */
Test(fc_api, instance_snapshot_load_in_a_bare_process, .timeout = 240)
{
    struct fc_vm vm;
    char json[1024], disk[128];
    start_preboot(&vm);
    snprintf(disk, sizeof(disk), "%s/disk.img", vm.dir);
    FILE *f = fopen(disk, "w");
    cr_assert_not_null(f);
    cr_assert_eq(ftruncate(fileno(f), 1 << 20), 0);
    fclose(f);
    snprintf(json, sizeof(json), "{\"kernel_image_path\": \"%s\", \"boot_args\": \"test=tick\"}",
             guest_elf());
    call(&vm, "PUT", "/boot-source", json, 204, NULL);
    call(&vm, "PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 128}", 204, NULL);
    snprintf(json, sizeof(json),
             "{\"drive_id\": \"data\", \"path_on_host\": \"%s\", \"is_root_device\": false, "
             "\"is_read_only\": false}",
             disk);
    call(&vm, "PUT", "/drives/data", json, 204, NULL);
    call(&vm, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", 204, NULL);
    cr_assert_geq(wait_ticks(vm.serial, 2), 2, "the guest never ticked");
    unsigned before = snapshot_and_kill(&vm);
    struct proc_result r;

    struct fc_vm b;
    start_preboot_in(&b, vm.dir, true);
    snprintf(json, sizeof(json),
             "{\"snapshot_path\": \"%s/vm.state\", \"mem_backend\": {\"backend_path\": "
             "\"%s/vm.mem\", \"backend_type\": \"File\"}, \"enable_diff_snapshots\": false, "
             "\"resume_vm\": true}",
             vm.dir, vm.dir);
    call(&b, "PUT", "/snapshot/load", json, 204, NULL);
    /* Configuration after the load is refused; the runtime API serves. */
    call(&b, "PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 128}", 400, NULL);
    call(&b, "PUT", "/snapshot/load", json, 400, NULL);
    const char *mc = call(&b, "GET", "/machine-config", NULL, 200, NULL);
    cr_assert(strstr(mc, "\"vcpu_count\":2") && strstr(mc, "\"mem_size_mib\":128"), "%s", mc);
    /* The guest goes on from where it was: more ticks in the same serial file. */
    cr_assert_geq(wait_ticks(b.serial, before + 2), before + 2,
                  "the restored guest did not tick (%u before)", before);
    call(&b, "GET", "/", NULL, 200, "\"state\":\"Running\"");
    call(&b, "PATCH", "/vm", "{\"state\": \"Paused\"}", 204, NULL);
    call(&b, "GET", "/", NULL, 200, "\"state\":\"Paused\"");
    kill(b.p.pid, SIGTERM); /* not stop(): the directory and serial file stay */
    sandbox_proc_finish(&b.p, NULL, WISP_TIMEOUT_MS, &r);
    live.pid = 0;
    cr_assert_eq(r.status, 128 + SIGTERM, "status %d\n%s", r.status, r.err);
    proc_result_free(&r);

    /* resume_vm false (Firecracker's default): restored paused, no tick
     * until PATCH /vm Resumed. */
    struct fc_vm c;
    start_preboot_in(&c, vm.dir, true);
    snprintf(json, sizeof(json),
             "{\"snapshot_path\": \"%s/vm.state\", \"mem_file_path\": \"%s/vm.mem\"}", vm.dir,
             vm.dir);
    call(&c, "PUT", "/snapshot/load", json, 204, NULL);
    call(&c, "GET", "/", NULL, 200, "\"state\":\"Paused\"");
    unsigned paused = ticks(c.serial);
    sleep_ms(1500);
    cr_assert_eq(ticks(c.serial), paused, "a guest restored paused ticked");
    call(&c, "PATCH", "/vm", "{\"state\": \"Resumed\"}", 204, NULL);
    cr_assert_geq(wait_ticks(c.serial, paused + 2), paused + 2, "the resumed guest did not tick");
    unlink(disk);
    char p[160];
    snprintf(p, sizeof(p), "%s/vm.state", vm.dir);
    unlink(p);
    snprintf(p, sizeof(p), "%s/vm.mem", vm.dir);
    unlink(p);
    unlink(vm.sock);
    unlink(b.sock);
    stop(&c, 128 + SIGTERM);
}

/* Does process `pid` hold tap `name` (a /dev/net/tun fd whose fdinfo names it)? */
static bool holds_tap(pid_t pid, const char *name)
{
    char want[40], path[64], link[64], info[512];
    snprintf(want, sizeof(want), "iff:\t%s\n", name);
    for (int fd = 0; fd < 256; fd++) {
        snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, fd);
        ssize_t n = readlink(path, link, sizeof(link) - 1);
        if (n < 0)
            continue;
        link[n] = '\0';
        if (strcmp(link, "/dev/net/tun") != 0)
            continue;
        snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", (int)pid, fd);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t got = fread(info, 1, sizeof(info) - 1, f);
        fclose(f);
        info[got] = '\0';
        if (strstr(info, want))
            return true;
    }
    return false;
}

/*
 * Firecracker's network_overrides: a VM snapshotted on tap A is restored on
 * tap B (the override is what wisp attaches to, not the saved name); an
 * override naming an interface the snapshot lacks is a 400 and exit 2.
 */
Test(fc_api, snapshot_load_network_overrides, .timeout = 240)
{
    char why[128];
    cr_assert(netns_enter(why, sizeof(why)), "%s", why);
    cr_assert_eq(netns_tap_create("wfc-a"), 0);
    cr_assert_eq(netns_tap_create("wfc-b"), 0);
    struct fc_vm vm;
    char json[1024];
    start_preboot(&vm);
    snprintf(json, sizeof(json), "{\"kernel_image_path\": \"%s\", \"boot_args\": \"test=tick\"}",
             guest_elf());
    call(&vm, "PUT", "/boot-source", json, 204, NULL);
    call(&vm, "PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 128}", 204, NULL);
    call(&vm, "PUT", "/network-interfaces/eth0",
         "{\"iface_id\": \"eth0\", \"host_dev_name\": \"wfc-a\", "
         "\"guest_mac\": \"06:00:ac:10:00:02\"}",
         204, NULL);
    call(&vm, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", 204, NULL);
    cr_assert_geq(wait_ticks(vm.serial, 2), 2, "the guest never ticked");
    cr_assert(holds_tap(vm.p.pid, "wfc-a"), "the source is not on its tap");
    unsigned before = snapshot_and_kill(&vm);
    struct proc_result r;

    /* An interface the snapshot does not have: refused, one line, exit 2. */
    struct fc_vm bad;
    start_preboot_in(&bad, vm.dir, true);
    snprintf(json, sizeof(json),
             "{\"snapshot_path\": \"%s/vm.state\", \"mem_file_path\": \"%s/vm.mem\", "
             "\"network_overrides\": [{\"iface_id\": \"eth7\", \"host_dev_name\": \"wfc-b\"}]}",
             vm.dir, vm.dir);
    call(&bad, "PUT", "/snapshot/load", json, 400, "the snapshot has no network interface 'eth7'");
    sandbox_proc_finish(&bad.p, NULL, WISP_TIMEOUT_MS, &r);
    live.pid = 0;
    cr_assert_eq(r.status, 2, "status %d\n%s", r.status, r.err);
    proc_result_free(&r);

    struct fc_vm b;
    start_preboot_in(&b, vm.dir, true);
    snprintf(json, sizeof(json),
             "{\"snapshot_path\": \"%s/vm.state\", \"mem_file_path\": \"%s/vm.mem\", "
             "\"resume_vm\": true, "
             "\"network_overrides\": [{\"iface_id\": \"eth0\", \"host_dev_name\": \"wfc-b\"}]}",
             vm.dir, vm.dir);
    call(&b, "PUT", "/snapshot/load", json, 204, NULL);
    cr_assert_geq(wait_ticks(b.serial, before + 2), before + 2, "the restored guest did not tick");
    cr_assert(holds_tap(b.p.pid, "wfc-b"), "the restored VM is not on the override's tap");
    cr_assert_not(holds_tap(b.p.pid, "wfc-a"), "the restored VM opened the saved tap");
    kill(b.p.pid, SIGTERM);
    sandbox_proc_finish(&b.p, NULL, WISP_TIMEOUT_MS, &r);
    live.pid = 0;
    cr_assert_eq(r.status, 128 + SIGTERM, "status %d\n%s", r.status, r.err);
    proc_result_free(&r);
    char p[160];
    snprintf(p, sizeof(p), "%s/vm.state", vm.dir);
    unlink(p);
    snprintf(p, sizeof(p), "%s/vm.mem", vm.dir);
    unlink(p);
    unlink(vm.serial);
    rmdir(vm.dir);
}
