/*
 * Command-line parsing (see cli.h).  Options are `--key value`,
 * `--key=value` or, for switches, `--key`; the keys are exactly the JSON
 * config keys, and values go through config_set().
 */
#include "vmm/cli.h"
#include "arch/arch.h"
#include "vmm/api/api_fc.h"

#include <errno.h>
#include <string.h>

void cli_print_version(FILE *f)
{
    fprintf(f, "wisp %s (%s)\n", WISP_VERSION, WISP_GIT_REV);
}

void cli_print_help(FILE *f)
{
    fprintf(f, "wisp: a small, security-focused microVM monitor for Linux/KVM\n"
               "\n"
               "Usage:\n"
               "  wisp run --kernel PATH [options]   boot a microVM (see `wisp run --help`)\n"
               "  wisp run --config vm.json          the same, described in a JSON file\n"
               "  wisp run --config-file fc.json     the same, in Firecracker's JSON layout\n"
               "  wisp run --api-sock PATH           no kernel: wait for Firecracker's pre-boot\n"
               "                                     API (PUT /boot-source ... InstanceStart)\n"
               "  wisp jail [options] -- RUN-ARGS    run it jailed, as root (`wisp jail --help`)\n"
               "  wisp vpci derive --vfio SYSFS-PATH | --vfio-user SOCKET [-o FILE]\n"
               "                                     write the vPCI layout wisp presents of that\n"
               "                                     function (docs/VPCI_LAYOUT.md)\n"
               "  wisp pause --api-sock PATH         pause a running VM's vCPUs (control API)\n"
               "  wisp resume --api-sock PATH        let them run again\n"
               "  wisp status --api-sock PATH        print the instance information as JSON\n"
               "  wisp snapshot create --api-sock PATH --state NAME --mem NAME [--stop]\n"
               "                                     write a snapshot into the VM's\n"
               "                                     --snapshot-dir (docs/SNAPSHOT.md)\n"
               "  wisp migrate --api-sock PATH --to URL [--downtime-ms N] [--max-rounds N]\n"
               "               [--bandwidth-mbps N]  live-migrate to a `wisp run --incoming`\n"
               "  wisp --help                        this text\n"
               "  wisp --version                     version\n"
               "\n"
               "Exit status:\n"
               "  0    the guest powered off or reset, or the VM moved away (migration done)\n"
               "  1    VMM failure while running (KVM or emulation error)\n"
               "  2    usage or configuration error (options, JSON, kernel/initrd/disk image,\n"
               "       paths, memory size, layout), checked before /dev/kvm is opened\n"
               "  3    the host cannot run the VM (/dev/kvm missing or denied, huge pages,\n"
               "       no IOMMUFD for a /dev/vfio/devices/vfioN device)\n"
               "  N    with --debug-exit: the value the guest wrote to the debug-exit port\n"
               "  148  a thread made a syscall its seccomp filter forbids (--seccomp kill)\n"
               "  128+S  killed by signal S (e.g. 130 after SIGINT when not a terminal)\n"
               "\n"
               "pause, resume, status and snapshot exit with 0 (done), 1 (the API refused: the\n"
               "fault is printed), 2 (usage) or 3 (no answer from the socket).\n");
}

void cli_print_run_help(FILE *f)
{
    /* Option lines that depend on the architecture come from arch/. */
    const struct arch_run_help *h = arch_run_help();
    fputs("Usage: wisp run --kernel PATH [options]\n"
          "\n"
          "Boot a microVM.  Every option is also a key of the JSON config file\n"
          "(\"--memory 512M\" is {\"memory\": \"512M\"}; switches are true/false).\n"
          "\n",
          f);
    fputs(h->kernel, f);
    fputs("  --initrd PATH        initial ramdisk\n"
          "  --cmdline STR        kernel command line\n"
          "  --memory SIZE        guest RAM, e.g. 256M, 1G (default 256M; JSON number = MiB)\n"
          "  --vcpus N            number of vCPUs (default 1)\n"
          "  --serial MODE        the serial console: stdio (default), file:PATH or none\n",
          f);
    fputs(h->machine, f);
    fputs(h->devices, f);
    fputs("                         blk,path=IMG[,readonly=on][,id=NAME]\n"
          "                         blk,vhost-user=SOCK[,id=NAME]  (queues served by a\n"
          "                           vhost-user-blk backend; snapshots and migration\n"
          "                           move it to and from any blk data plane)\n"
          "                         net,tap=TAP[,mac=52:54:00:xx:xx:xx][,id=NAME]\n"
          "                         net,vhost-user=SOCK[,mac=...][,id=NAME]  (rx and tx served\n"
          "                           by a vhost-user backend, e.g. DPDK's net_vhost; no\n"
          "                           control queue; cannot be snapshotted)\n"
          "                         rng[,id=NAME]\n"
          "                         console[,socket=PATH][,id=NAME]  (stdio if no socket)\n"
          "                         balloon[,amount_mib=N][,deflate_on_oom=on]\n"
          "                           [,stats_polling_interval_s=N][,free_page_reporting=on]\n"
          "                           (at most one; docs/BALLOON.md)\n"
          "                         vsock,cid=N,uds_path=PATH[,id=NAME]  (at most one;\n"
          "                           N >= 3; host processes connect to PATH and write\n"
          "                           \"CONNECT <port>\\n\"; guest connections to host\n"
          "                           port P go to PATH_P; see docs/VSOCK.md)\n"
          "                         vsock,cid=N,backend=vhost[,id=NAME]  (the host kernel's\n"
          "                           /dev/vhost-vsock serves it: host programs use AF_VSOCK\n"
          "                           to CID N; a CID in use exits 3; cannot be snapshotted)\n"
          "                         fs,vhost-user=SOCK,tag=NAME[,id=NAME]  (virtio-fs served\n"
          "                           by a vhost-user backend such as virtiofsd; the guest\n"
          "                           mounts -t virtiofs NAME; cannot be snapshotted)\n"
          "                         vdpa,path=/dev/vhost-vdpa-N[,id=NAME]  (a vDPA device\n"
          "                           serves the queues; its type comes from the device:\n"
          "                           blk today, which migrates like blk; docs/VDPA.md)\n",
          f);
    fputs(h->passthrough, f);
    fputs("  --hugepages          back guest RAM with 2 MiB huge pages\n"
          "  --debug-exit         enable the debug-exit port (x86: I/O port 0xf4; aarch64:\n"
          "                       MMIO 0x09001000): the value the guest writes becomes\n"
          "                       wisp's exit status (for tests)\n"
          "  --log-level LEVEL    error, warn (default), info or debug\n"
          "  --log-path PATH      log to this file or FIFO instead of stderr (appended,\n"
          "                       never waited for: a line it cannot take is dropped)\n"
          "  --metrics-path PATH  write metrics, one JSON line of deltas per flush, to\n"
          "                       this file or FIFO (a FIFO needs its reader first;\n"
          "                       docs/METRICS.md)\n"
          "  --metrics-period-ms N  flush metrics every N ms (10-3600000, default 60000);\n"
          "                       also on PUT /actions FlushMetrics and at exit\n"
          "  --stats              print resource statistics as JSON on stderr at exit\n"
          "  --seccomp MODE       per-thread syscall filters: kill (default: a forbidden\n"
          "                       syscall ends wisp with status 148), log (the kernel\n"
          "                       logs it) or off (no filters; not for production)\n"
          "  --landlock MODE      give up filesystem access after set-up (Landlock): auto\n"
          "                       (default: where the kernel offers it), on (required)\n"
          "                       or off\n"
          "  --api-sock PATH      serve the control API (HTTP/1.1 + JSON, docs/API.md) on\n"
          "                       this UNIX socket (mode 0600, removed at exit); without\n"
          "                       --kernel, first Firecracker's pre-boot phase: the VM\n"
          "                       is configured through PUT requests and booted by\n"
          "                       PUT /actions {\"action_type\": \"InstanceStart\"},\n"
          "                       or restored by PUT /snapshot/load as the first request\n"
          "  --snapshot-dir DIR   where `wisp snapshot create` (PUT /snapshot/create) may\n"
          "                       write its two files; without it snapshots are off\n"
          "  --restore STATE      start from a snapshot instead of booting: its state\n"
          "  --restore-mem MEM    file and memory file (mapped copy-on-write); the other\n"
          "                       options must describe the same machine (memory, vCPUs,\n"
          "                       devices, CPU template), or wisp refuses (status 2)\n"
          "  --restore-lazy       fill guest memory on demand through userfaultfd\n"
          "  --restore-wait       serve the API (--api-sock) and wait for PUT\n"
          "                       /snapshot/load naming files in --snapshot-dir\n"
          "  --incoming URL       receive a live migration (tcp:IP:PORT or unix:PATH)\n"
          "                       instead of booting; same machine options as --restore\n"
          "  --config FILE        read options from a JSON object; later options override\n"
          "  --config-file FILE   read the machine from a JSON file in Firecracker's\n"
          "                       layout (boot-source, drives, machine-config, ...;\n"
          "                       docs/API.md); excludes --config\n"
          "  -h, --help           this text\n"
          "\n"
          "Console input: when the serial port or a virtio console uses stdio and stdin\n"
          "is a terminal, the terminal is put in raw mode (restored on exit) and keys go\n"
          "to the guest; press Ctrl-A then x to quit, Ctrl-A Ctrl-A to send Ctrl-A.\n",
          f);
    fprintf(f, "\n%s", arch_run_help_note());
}

static int parse_run(int argc, char *const argv[], struct vm_config *cfg, enum cli_action *action,
                     struct errbuf *err)
{
    const char *loaded = NULL; /* "config" or "config-file" once one was read */
    for (int i = 2; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            *action = CLI_RUN_HELP;
            return 0;
        }
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0')
            return err_set(err, WISP_EXIT_USAGE, EINVAL,
                           "unexpected argument '%s' (see wisp run --help)", arg);
        char key[64];
        const char *value = NULL;
        const char *eq = strchr(arg + 2, '=');
        size_t klen = eq ? (size_t)(eq - (arg + 2)) : strlen(arg + 2);
        if (klen == 0 || klen >= sizeof(key))
            return err_set(err, WISP_EXIT_USAGE, EINVAL, "unknown option '%s'", arg);
        memcpy(key, arg + 2, klen);
        key[klen] = '\0';
        bool file = !strcmp(key, "config") || !strcmp(key, "config-file");
        if (!file && !config_key_known(key))
            return err_set(err, WISP_EXIT_USAGE, EINVAL, "unknown option '%s'", key);
        if (eq) {
            value = eq + 1;
        } else if (!config_key_is_flag(key)) {
            if (i + 1 >= argc)
                return err_set(err, WISP_EXIT_USAGE, EINVAL, "option '--%s' needs a value", key);
            value = argv[++i];
        }
        int ret;
        if (file) {
            if (!value)
                return err_set(err, WISP_EXIT_USAGE, EINVAL, "option '--%s' needs a value", key);
            /* Two layouts that both name devices and memory: one source only. */
            if (loaded && strcmp(loaded, key) != 0)
                return err_set(err, WISP_EXIT_USAGE, EINVAL,
                               "--config (wisp's JSON) and --config-file (Firecracker's JSON) "
                               "exclude each other");
            loaded = key[6] ? "config-file" : "config";
            ret = key[6] ? api_fc_config_load(cfg, value, err) : config_load_json(cfg, value, err);
        } else {
            ret = config_set(cfg, key, value, err);
        }
        if (ret < 0)
            return ret;
    }
    *action = CLI_RUN;
    return 0;
}

int cli_parse(int argc, char *const argv[], struct vm_config *cfg, enum cli_action *action,
              struct errbuf *err)
{
    if (argc < 2)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "no command given (try wisp --help)");
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        *action = CLI_HELP;
        return 0;
    }
    if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        *action = CLI_VERSION;
        return 0;
    }
    if (!strcmp(cmd, "run"))
        return parse_run(argc, argv, cfg, action, err);
    if (!strcmp(cmd, "jail")) {
        *action = CLI_JAIL;
        return 0;
    }
    return err_set(err, WISP_EXIT_USAGE, EINVAL, "unknown command '%s' (try wisp --help)", cmd);
}
