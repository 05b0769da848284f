/* `wisp jail` command line: ids, numbers, paths, cgroup keys, rlimits, devices. */
#include "jailer/jail_args.h"

#include <criterion/criterion.h>
#include <string.h>

#include "tests/unit/jailer/test_jail_util.h"

static struct jail_opts o;
static struct errbuf err;

#define ID64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789ABCDEF"

struct id_case {
    const char *id;
    size_t len; /* 0: strlen(id) */
    bool ok;
    const char *why;
};

static const struct id_case id_cases[] = {
    {"a", 0, true, "one character"},
    {"vm-1", 0, true, "letters, digits, dash"},
    {"-", 0, true, "a lone dash is an id"},
    {ID64, 0, true, "64 characters"},
    {"", 0, false, "empty"},
    {ID64 "x", 0, false, "65 characters"},
    {"a/b", 0, false, "slash"},
    {"/", 0, false, "only a slash"},
    {"..", 0, false, "dot-dot"},
    {"a..b", 0, false, "dot-dot inside"},
    {".", 0, false, "dot"},
    {"a\0b", 3, false, "embedded NUL"},
    {"\0", 1, false, "only NUL"},
    {"a b", 0, false, "space"},
    {"a_b", 0, false, "underscore"},
    {"a\nb", 0, false, "newline"},
    {"\xc3\xa9t\xc3\xa9", 0, false, "non-ASCII"},
    {"a*", 0, false, "glob character"},
};

Test(jail_args, id_table)
{
    for (size_t i = 0; i < ARRAY_SIZE(id_cases); i++) {
        const struct id_case *c = &id_cases[i];
        size_t len = c->len ? c->len : strlen(c->id);
        cr_expect_eq(jail_args_id_valid(c->id, len), c->ok, "id case %zu (%s)", i, c->why);
    }
    cr_expect_not(jail_args_id_valid(NULL, 0));
}

Test(jail_args, id_on_command_line)
{
    cr_assert_eq(
        tj_parse(&o, &err, "--id", ID64, "--uid", "1", "--gid", "2", "--", "--kernel", "/k", NULL),
        0, "%s", err.msg);
    cr_assert_str_eq(o.id, ID64);
    const char *bad[] = {"", ID64 "x", "a/b", "..", "x y"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        cr_expect_lt(tj_parse(&o, &err, "--id", bad[i], "--uid", "1", "--gid", "2", "--",
                              "--kernel", "/k", NULL),
                     0, "id '%s' accepted", bad[i]);
        cr_expect_eq(err.exit_code, WISP_EXIT_USAGE);
        cr_expect(strstr(err.msg, "jail: --id") == err.msg, "message: %s", err.msg);
    }
}

Test(jail_args, minimal_and_defaults)
{
    cr_assert_eq(tj_parse(&o, &err, "--id", "vm1", "--uid", "1000", "--gid", "1001", "--",
                          "--kernel", "/boot/vmlinux", "--memory", "128M", NULL),
                 0, "%s", err.msg);
    cr_assert_eq(o.uid, 1000);
    cr_assert_eq(o.gid, 1001);
    cr_assert_str_eq(o.chroot_base, JAIL_DEFAULT_BASE);
    cr_assert_null(o.exec_file);
    cr_assert_null(o.netns);
    cr_assert_eq(o.nofile, JAIL_DEFAULT_NOFILE);
    cr_assert_not(o.has_fsize);
    cr_assert_not(o.daemonize);
    cr_assert_eq(o.ncgroups, 0);
    cr_assert_eq(o.run_argc, 4);
    cr_assert_str_eq(o.run_argv[0], "--kernel");
    cr_assert_str_eq(o.run_argv[3], "128M");
}

Test(jail_args, leading_run_is_dropped)
{
    cr_assert_eq(tj_parse(&o, &err, "--id", "x", "--uid", "1", "--gid", "1", "--", "run",
                          "--kernel", "/k", NULL),
                 0, "%s", err.msg);
    cr_assert_eq(o.run_argc, 2);
    cr_assert_str_eq(o.run_argv[0], "--kernel");
}

Test(jail_args, every_option)
{
    cr_assert_eq(tj_parse(&o, &err, "--id=vm-7", "--uid", "4000", "--gid=4001", "--chroot-base",
                          "/var/lib/wisp", "--exec-file", "/usr/bin/wisp", "--netns",
                          "/run/netns/vm7", "--cgroup", "cpu.max=50000 100000", "--cgroup",
                          "memory.max=512M", "--cgroup", "pids.max=64", "--rlimit", "no-file=4096",
                          "--rlimit", "fsize=1G", "--device", "kvm", "--device", "tun", "--device",
                          "vfio:12", "--device", "vhost-vdpa:0", "--daemonize", "--", "--kernel",
                          "/k", NULL),
                 0, "%s", err.msg);
    cr_assert_str_eq(o.id, "vm-7");
    cr_assert_eq(o.gid, 4001);
    cr_assert_str_eq(o.chroot_base, "/var/lib/wisp");
    cr_assert_str_eq(o.exec_file, "/usr/bin/wisp");
    cr_assert_str_eq(o.netns, "/run/netns/vm7");
    cr_assert_eq(o.ncgroups, 3);
    cr_assert_str_eq(o.cgroups[0].key, "cpu.max");
    cr_assert_str_eq(o.cgroups[0].value, "50000 100000");
    cr_assert_str_eq(o.cgroups[2].value, "64");
    cr_assert_eq(o.nofile, 4096);
    cr_assert(o.has_fsize);
    cr_assert_eq(o.fsize, 1ull << 30);
    cr_assert_eq(o.ndevs, 4);
    cr_assert_eq(o.devs[2].type, JAIL_DEV_VFIO);
    cr_assert_eq(o.devs[2].num, 12);
    cr_assert_eq(o.devs[3].type, JAIL_DEV_VHOST_VDPA);
    cr_assert_eq(o.devs[3].num, 0);
    cr_assert(o.daemonize);
}

/* One refused command line and a word its message must contain. */
struct bad_case {
    const char *args[12];
    const char *needle;
};

static const struct bad_case bad_cases[] = {
    {{"--uid", "1", "--gid", "1", "--", "--kernel", "/k"}, "--id is required"},
    {{"--id", "a", "--gid", "1", "--", "--kernel", "/k"}, "--uid and --gid"},
    {{"--id", "a", "--uid", "0", "--gid", "1", "--", "--kernel", "/k"}, "must not run as root"},
    {{"--id", "a", "--uid", "1", "--gid", "0", "--", "--kernel", "/k"}, "must not run as root"},
    {{"--id", "a", "--uid", "-1", "--gid", "1", "--", "--kernel", "/k"}, "must be a number"},
    {{"--id", "a", "--uid", "4294967295", "--gid", "1", "--", "--kernel", "/k"}, "out of range"},
    {{"--id", "a", "--uid", "99999999999", "--gid", "1", "--", "--kernel", "/k"}, "number"},
    {{"--id", "a", "--uid", "bob", "--gid", "1", "--", "--kernel", "/k"}, "must be a number"},
    {{"--id", "a", "--uid", "1", "--gid", "1"}, "missing '-- WISP-RUN-ARGS'"},
    {{"--id", "a", "--uid", "1", "--gid", "1", "--"}, "missing '-- WISP-RUN-ARGS'"},
    {{"--id", "a", "--uid", "1", "--gid", "1", "--chroot-base", "srv", "--", "x"}, "absolute"},
    {{"--id", "a", "--uid", "1", "--gid", "1", "--chroot-base", "/srv/../etc", "--", "x"},
     "normalized"},
    {{"--id", "a", "--uid", "1", "--gid", "1", "--chroot-base", "/", "--", "x"}, "normalized"},
    {{"--id", "a", "--uid", "1", "--gid", "1", "--exec-file", "/a//b", "--", "x"}, "normalized"},
    {{"--id", "a", "--uid", "1", "--gid", "1", "--netns", "/x", "--new-netns", "--", "x"},
     "exclude"},
    {{"--id", "a", "--uid", "1", "--gid", "1", "--cgroup", "cpuset.cpus=0", "--", "x"},
     "not allowed"},
    {{"--id", "a", "--uid", "1", "--gid", "1", "--cgroup", "../x=1", "--", "x"}, "not allowed"},
    {{"--id", "a", "--uid", "1", "--gid", "1", "--cgroup", "pids.max", "--", "x"}, "KEY=VALUE"},
    {{"--id", "a", "--uid", "1", "--gid", "1", "--cgroup", "pids.max=1\n2", "--", "x"},
     "letters, digits"},
    {{"--id", "a", "--uid", "1", "--gid", "1", "--cgroup", "pids.max=", "--", "x"},
     "letters, digits"},
    {{"--id", "a", "--uid", "1", "--gid", "1", "--cgroup", "pids.max=1", "--cgroup", "pids.max=2",
      "--", "x"},
     "twice"},
    {{"--id", "a", "--uid", "1", "--gid", "1", "--rlimit", "no-file=3", "--", "x"}, "outside"},
    {{"--id", "a", "--uid", "1", "--gid", "1", "--rlimit", "no-file=x", "--", "x"}, "number"},
    {{"--id", "a", "--uid", "1", "--gid", "1", "--rlimit", "fsize=0", "--", "x"}, "size"},
    {{"--id", "a", "--uid", "1", "--gid", "1", "--rlimit", "nproc=5", "--", "x"}, "no-file=N"},
    {{"--id", "a", "--uid", "1", "--gid", "1", "--device", "vfio:", "--", "x"}, "--device must"},
    {{"--id", "a", "--uid", "1", "--gid", "1", "--device", "vfio:../1", "--", "x"},
     "--device must"},
    {{"--id", "a", "--uid", "1", "--gid", "1", "--device", "sda", "--", "x"}, "--device must"},
    {{"--id", "a", "--uid", "1", "--gid", "1", "--device", "tun", "--device", "tun", "--", "x"},
     "twice"},
    {{"--id", "a", "--uid", "1", "--gid", "1", "--daemonize=yes", "--", "x"}, "takes no value"},
    {{"--id", "a", "--uid", "1", "--gid", "1", "--bogus", "--", "x"}, "unknown option"},
    {{"--id", "a", "--uid", "1", "--gid", "1", "stray", "--", "x"}, "unexpected argument"},
    {{"--id", "a", "--uid", "1", "--gid"}, "needs a value"},
    {{"--id", "a", "--id", "b", "--uid", "1", "--gid", "1", "--", "x"}, "twice"},
    {{"--cleanup", "--id", "a", "--uid", "1"}, "--cleanup takes only"},
    {{"--cleanup", "--id", "a", "--", "--kernel", "/k"}, "--cleanup takes only"},
};

Test(jail_args, refusals)
{
    for (size_t i = 0; i < ARRAY_SIZE(bad_cases); i++) {
        const struct bad_case *c = &bad_cases[i];
        char *argv[16] = {(char *)"wisp", (char *)"jail"};
        int argc = 2;
        for (size_t j = 0; j < ARRAY_SIZE(c->args) && c->args[j]; j++)
            argv[argc++] = (char *)(uintptr_t)c->args[j];
        memset(&err, 0, sizeof(err));
        int ret = jail_args_parse(argc, argv, &o, &err);
        cr_expect_lt(ret, 0, "case %zu accepted (wanted '%s')", i, c->needle);
        cr_expect_eq(err.exit_code, WISP_EXIT_USAGE, "case %zu", i);
        cr_expect(strncmp(err.msg, "jail: ", 6) == 0, "case %zu: %s", i, err.msg);
        cr_expect_not_null(strstr(err.msg, c->needle), "case %zu: '%s' lacks '%s'", i, err.msg,
                           c->needle);
        cr_expect_null(strchr(err.msg, '\n'), "case %zu: multi-line", i);
    }
}

Test(jail_args, cleanup_and_help)
{
    cr_assert_eq(tj_parse(&o, &err, "--cleanup", "--id", "vm", "--chroot-base", "/b", NULL), 0,
                 "%s", err.msg);
    cr_assert(o.cleanup);
    cr_assert_str_eq(o.chroot_base, "/b");
    cr_assert_eq(tj_parse(&o, &err, "--help", NULL), 0);
    cr_assert(o.help);
    cr_assert_eq(tj_parse(&o, &err, "--id", "x", "-h", NULL), 0);
    cr_assert(o.help);
}

Test(jail_args, path_shapes)
{
    cr_expect(jail_args_path_ok("/srv/wisp"));
    cr_expect(jail_args_path_ok("/a"));
    cr_expect(jail_args_path_ok("/a/.hidden/b..c"));
    cr_expect_not(jail_args_path_ok("/"));
    cr_expect_not(jail_args_path_ok(""));
    cr_expect_not(jail_args_path_ok(NULL));
    cr_expect_not(jail_args_path_ok("relative/path"));
    cr_expect_not(jail_args_path_ok("/a/"));
    cr_expect_not(jail_args_path_ok("/a//b"));
    cr_expect_not(jail_args_path_ok("/a/./b"));
    cr_expect_not(jail_args_path_ok("/a/../b"));
    cr_expect_not(jail_args_path_ok("/.."));
    cr_expect_not(jail_args_path_ok("/a/."));
    char long_path[JAIL_HOST_PATH_MAX + 2];
    memset(long_path, 'a', sizeof(long_path) - 1);
    long_path[0] = '/';
    long_path[sizeof(long_path) - 1] = '\0';
    cr_expect_not(jail_args_path_ok(long_path));
}

Test(jail_args, cgroup_keys)
{
    cr_expect(jail_args_cgroup_key_ok("cpu.max"));
    cr_expect(jail_args_cgroup_key_ok("memory.max"));
    cr_expect(jail_args_cgroup_key_ok("pids.max"));
    cr_expect(jail_args_cgroup_key_ok("hugetlb.2MB.max"));
    cr_expect_not(jail_args_cgroup_key_ok("cgroup.procs"));
    cr_expect_not(jail_args_cgroup_key_ok("cgroup.subtree_control"));
    cr_expect_not(jail_args_cgroup_key_ok("memory.max/x"));
    cr_expect_not(jail_args_cgroup_key_ok(""));
}

Test(jail_args, help_text)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    jail_args_print_help(f);
    fclose(f);
    cr_assert_not_null(strstr(buf, "--chroot-base"));
    cr_assert_not_null(strstr(buf, "--cleanup"));
    cr_assert_not_null(strstr(buf, "no-file"));
    free(buf);
}
