/*
 * The Landlock kernel ABI that sandbox/landlock.c uses, spelled out here because
 * Debian 12's kernel headers (6.1) stop at ABI 3 and wisp uses rights and
 * scopes from ABI 4-6 when the running kernel has them.  Values are the
 * kernel's (Documentation/userspace-api/landlock.rst); names are ours.
 */
#ifndef SANDBOX_LANDLOCK_ABI_H
#define SANDBOX_LANDLOCK_ABI_H

#include <stdint.h>
#include <sys/syscall.h>

/* Syscall numbers (x86_64 and aarch64 share them: 444-446). */
#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#endif
#ifndef SYS_landlock_add_rule
#define SYS_landlock_add_rule 445
#endif
#ifndef SYS_landlock_restrict_self
#define SYS_landlock_restrict_self 446
#endif

/* landlock_create_ruleset(NULL, 0, flag) returns the ABI version. */
#define LL_CREATE_RULESET_VERSION (1u << 0)

/* landlock_add_rule() rule type: a file hierarchy. */
#define LL_RULE_PATH_BENEATH 1

/* Filesystem rights, with the ABI version that introduced them. */
#define LL_FS_EXECUTE     (1ull << 0) /* v1 */
#define LL_FS_WRITE_FILE  (1ull << 1)
#define LL_FS_READ_FILE   (1ull << 2)
#define LL_FS_READ_DIR    (1ull << 3)
#define LL_FS_REMOVE_DIR  (1ull << 4)
#define LL_FS_REMOVE_FILE (1ull << 5)
#define LL_FS_MAKE_CHAR   (1ull << 6)
#define LL_FS_MAKE_DIR    (1ull << 7)
#define LL_FS_MAKE_REG    (1ull << 8)
#define LL_FS_MAKE_SOCK   (1ull << 9)
#define LL_FS_MAKE_FIFO   (1ull << 10)
#define LL_FS_MAKE_BLOCK  (1ull << 11)
#define LL_FS_MAKE_SYM    (1ull << 12)
#define LL_FS_REFER       (1ull << 13) /* v2 */
#define LL_FS_TRUNCATE    (1ull << 14) /* v3 */
#define LL_FS_IOCTL_DEV   (1ull << 15) /* v5 */

/* Network rights (v4): TCP bind and connect. */
#define LL_NET_BIND_TCP    (1ull << 0)
#define LL_NET_CONNECT_TCP (1ull << 1)

/* Scopes (v6): no abstract UNIX sockets or signals outside the domain. */
#define LL_SCOPE_ABSTRACT_UNIX (1ull << 0)
#define LL_SCOPE_SIGNAL        (1ull << 1)

/* The ruleset attribute grew with the ABI; the kernel takes its size. */
struct ll_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net; /* v4 */
    uint64_t scoped;             /* v6 */
};
#define LL_RULESET_ATTR_SIZE_V1 8u
#define LL_RULESET_ATTR_SIZE_V4 16u
#define LL_RULESET_ATTR_SIZE_V6 24u

struct ll_path_beneath_attr {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));
_Static_assert(sizeof(struct ll_path_beneath_attr) == 12, "landlock_path_beneath_attr is 12 bytes");

#endif /* SANDBOX_LANDLOCK_ABI_H */
