/*
 * Snapshots the VMM must refuse (docs/SNAPSHOT.md, docs/API.md): a restore
 * onto a machine that does not match, corrupt or truncated state files, and
 * API requests that are malformed or come at the wrong time; the running
 * source must go on unharmed.  Harness: test_snapshot_harness.h.
 */
#include "tests/integration/test_snapshot_harness.h"
#include "tests/lib/api_http.h"
#include "tests/lib/sandbox_proc.h"
#include "tests/lib/migck.h"
#include "tests/lib/wisp_run.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void refused(const struct scratch *s, const char *snapname, const char *name,
                    const char *disk, const char *vcpus, const char *mem, const char *const *extra,
                    const char *want)
{
    struct vm vm;
    ts_start_clone(&vm, s, snapname, name, disk, vcpus, mem, extra);
    struct proc_result r;
    ts_finish(&vm, 0, 2, &r);
    cr_assert(strstr(r.err, want), "%s: no \"%s\" in: %s", name, want, r.err);
    char *nl = strchr(r.err, '\n');
    cr_assert(nl && nl[1] == '\0', "%s: not one line: %s", name, r.err);
    struct stat st;
    cr_assert(stat(vm.serial, &st) < 0 || st.st_size == 0, "%s: the serial file has %lld bytes",
              name, (long long)st.st_size);
    fprintf(stderr, "snapshot: %s: %s", name, r.err);
    proc_result_free(&r);
}

Test(snapshot, refuses_mismatch, .timeout = 300)
{
    struct scratch s;
    ts_scratch_init(&s);
    struct vm src;
    ts_start_source(&src, &s, true, true, "src");
    ts_wait_migck(&src, 50, "source");
    ts_cli_snapshot(&s, "s1", true);
    struct proc_result r;
    ts_finish(&src, 0, 0, &r);
    proc_result_free(&r);

    static const char *const rng[] = {"--device", "rng", NULL};
    refused(&s, "s1", "vcpus", src.disk, "1", "128M", NULL,
            "destination has 1 vCPUs, the stream 2");
    refused(&s, "s1", "memory", src.disk, "2", "256M", NULL, "memory");
    refused(&s, "s1", "extra_device", src.disk, "2", "128M", rng, "devices");
    refused(&s, "s1", "missing_device", NULL, "2", "128M", NULL, "devices");
    ts_scratch_cleanup(&s);
}

/* Copy s1.state to NAME.state (and link the memory file) and apply `edit`. */
static void corrupt_copy(const struct scratch *s, const char *name, long flip_at, long truncate_to)
{
    char from[200], to[200], mfrom[200], mto[200];
    snprintf(from, sizeof(from), "%s/s1.state", s->snap);
    snprintf(to, sizeof(to), "%s/%s.state", s->snap, name);
    snprintf(mfrom, sizeof(mfrom), "%s/s1.mem", s->snap);
    snprintf(mto, sizeof(mto), "%s/%s.mem", s->snap, name);
    ts_copy_file(from, to);
    cr_assert_eq(link(mfrom, mto), 0, "%s", strerror(errno));
    int fd = open(to, O_RDWR | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    if (flip_at >= 0) {
        uint8_t b;
        cr_assert_eq(pread(fd, &b, 1, flip_at), 1);
        b ^= 0x20;
        cr_assert_eq(pwrite(fd, &b, 1, flip_at), 1);
    }
    if (truncate_to >= 0)
        cr_assert_eq(ftruncate(fd, truncate_to), 0);
    close(fd);
}

Test(snapshot, refuses_corrupt_state, .timeout = 300)
{
    struct scratch s;
    ts_scratch_init(&s);
    struct vm src;
    ts_start_source(&src, &s, true, false, "src");
    ts_wait_migck(&src, 50, "source");
    ts_cli_snapshot(&s, "s1", true);
    struct proc_result r;
    ts_finish(&src, 0, 0, &r);
    proc_result_free(&r);
    char path[200];
    snprintf(path, sizeof(path), "%s/s1.state", s.snap);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);

    /* Stream header 20 bytes, then the first section's 16-byte header: byte
     * 40 is in the machine section's payload (docs/MIGRATION_FORMAT.md). */
    corrupt_copy(&s, "flip", 40, -1);
    refused(&s, "flip", "flip", NULL, "2", "128M", NULL, "checksum mismatch");
    /* A byte in the middle of the file: in some other section. */
    corrupt_copy(&s, "flip2", st.st_size / 2, -1);
    refused(&s, "flip2", "flip2", NULL, "2", "128M", NULL, "checksum mismatch");
    corrupt_copy(&s, "short", -1, st.st_size / 2);
    refused(&s, "short", "short", NULL, "2", "128M", NULL, "the stream ends");
    corrupt_copy(&s, "magic", 0, -1);
    refused(&s, "magic", "magic", NULL, "2", "128M", NULL, "bad magic");
    /* The original still restores. */
    char mem[16];
    snprintf(mem, sizeof(mem), "%dM", MEM_MIB);
    struct vm clone;
    ts_start_clone(&clone, &s, "s1", "clone", NULL, "2", mem, NULL);
    ts_wait_migck(&clone, -1, "clone");
    ts_stop(&clone);
    ts_scratch_cleanup(&s);
}

Test(snapshot, api_faults, .timeout = 300)
{
    struct scratch s;
    ts_scratch_init(&s);
    struct vm vm;
    /* Without --snapshot-dir. */
    ts_start_source(&vm, &s, false, false, "nodir");
    ts_wait_migck(&vm, 10, "no dir");
    ts_api_fault(&s, "PUT", "/snapshot/create", "{\"snapshot_path\":\"a\",\"mem_file_path\":\"b\"}",
                 400, "--snapshot-dir");
    ts_still_running(&vm);
    ts_stop(&vm);
    struct stat st;
    char path[200];
    snprintf(path, sizeof(path), "%s/a", s.snap);
    cr_assert_lt(stat(path, &st), 0);

    ts_start_source(&vm, &s, true, false, "dir");
    ts_wait_migck(&vm, 10, "dir");
    static const char *const bad_names[] = {
        "{\"snapshot_path\":\"../x\",\"mem_file_path\":\"m\"}",
        "{\"snapshot_path\":\"s\",\"mem_file_path\":\"a/b\"}",
        "{\"snapshot_path\":\"\",\"mem_file_path\":\"m\"}",
        "{\"snapshot_path\":\"same\",\"mem_file_path\":\"same\"}",
        "{\"snapshot_path\":\"..\",\"mem_file_path\":\"m\"}",
        "{\"snapshot_path\":\"/tmp/abs\",\"mem_file_path\":\"m\"}",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad_names); i++)
        ts_api_fault(&s, "PUT", "/snapshot/create", bad_names[i], 400, "plain names");
    ts_api_fault(&s, "PUT", "/snapshot/create", "{\"snapshot_path\":\"s\"", 400, "JSON");
    ts_api_fault(&s, "PUT", "/snapshot/create",
                 "{\"snapshot_path\":\"s\",\"mem_file_path\":\"m\","
                 "\"colour\":\"red\"}",
                 400, "unknown field");
    ts_api_fault(&s, "PUT", "/snapshot/create",
                 "{\"snapshot_path\":\"s\",\"mem_file_path\":\"m\","
                 "\"stop\":\"yes\"}",
                 400, "unknown field or wrong type");
    ts_api_fault(&s, "PUT", "/snapshot/create",
                 "{\"snapshot_path\":\"s\",\"mem_file_path\":\"m\","
                 "\"snapshot_type\":\"Diff\"}",
                 400, "Full");
    ts_api_fault(&s, "PUT", "/snapshot/create", "{\"snapshot_path\":\"s\"}", 400, "required");
    ts_api_fault(&s, "GET", "/snapshot/create", NULL, 405, "");
    char reply[API_HTTP_REPLY_MAX];
    const char *body;
    cr_assert_eq(api_http(s.sock, "GET", "/snapshot/create", NULL, reply, &body), 405);
    cr_assert(strstr(reply, "Allow: PUT"), "%s", reply);
    ts_api_fault(&s, "PUT", "/snapshot/load", "{\"snapshot_path\":\"s\",\"mem_file_path\":\"m\"}",
                 409, "--restore");
    /* Nothing was written into the snapshot directory, and the VM runs on. */
    snprintf(path, sizeof(path), "rmdir '%s'", s.snap);
    ts_still_running(&vm);
    ts_stop(&vm);
    cr_assert_eq(system(path), 0, "the snapshot directory is not empty");
    ts_scratch_cleanup(&s);
}
