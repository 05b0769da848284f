/* Finding the cgroup v2 mount in /proc/self/mountinfo text. */
#include "jailer/jail_cgroup.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

static char out[256];

Test(jail_cgroup, unified_host)
{
    const char *mi =
        "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
        "30 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 "
        "rw,nsdelegate,memory_recursiveprot\n";
    cr_assert_eq(jail_cgroup_find_mount(mi, out, sizeof(out)), 0);
    cr_assert_str_eq(out, "/sys/fs/cgroup");
}

Test(jail_cgroup, hybrid_host)
{
    /* v1 controllers first, the v2 hierarchy under unified/ (what this project's CI has). */
    const char *mi = "25 22 0:22 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
                     "26 25 0:23 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
                     "35 25 0:32 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
    cr_assert_eq(jail_cgroup_find_mount(mi, out, sizeof(out)), 0);
    cr_assert_str_eq(out, "/sys/fs/cgroup/unified");
}

Test(jail_cgroup, optional_fields_escapes_and_subtree_binds)
{
    /* A bind of a sub-group (root field not "/") is skipped; octal escapes are decoded. */
    const char *mi = "40 22 0:26 /machine /mnt/cg rw shared:9 master:3 - cgroup2 cgroup2 rw\n"
                     "41 22 0:26 / /mnt/my\\040cgroup rw shared:9 master:3 - cgroup2 none rw\n";
    cr_assert_eq(jail_cgroup_find_mount(mi, out, sizeof(out)), 0);
    cr_assert_str_eq(out, "/mnt/my cgroup");
}

Test(jail_cgroup, none_or_malformed)
{
    cr_assert_eq(jail_cgroup_find_mount("", out, sizeof(out)), -ENOENT);
    cr_assert_eq(jail_cgroup_find_mount("22 1 254:0 / / rw - ext4 /dev/vda rw\n", out, sizeof(out)),
                 -ENOENT);
    /* "cgroup2" as a mount point or source name is not the file system type. */
    cr_assert_eq(
        jail_cgroup_find_mount("22 1 0:1 / /cgroup2 rw - tmpfs cgroup2 rw\n", out, sizeof(out)),
        -ENOENT);
    cr_assert_eq(jail_cgroup_find_mount("garbage without fields\n", out, sizeof(out)), -ENOENT);
    cr_assert_eq(jail_cgroup_find_mount("1 2 3\n", out, sizeof(out)), -ENOENT);
    char small[4];
    cr_assert_eq(jail_cgroup_find_mount("35 25 0:32 / /sys/fs/cgroup rw - cgroup2 c rw\n", small,
                                        sizeof(small)),
                 -ENAMETOOLONG);
}
