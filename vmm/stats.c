/* --stats output (see stats.h). */
#include "vmm/stats.h"
#include "vmm/vm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Value in KiB of a "Key:   N kB" line of /proc/self/status, or 0. */
static unsigned long long status_kib(const char *key)
{
    FILE *f = fopen("/proc/self/status", "re");
    if (!f)
        return 0;
    char line[256];
    unsigned long long v = 0;
    size_t klen = strlen(key);
    while (fgets(line, sizeof(line), f)) {
        if (!strncmp(line, key, klen) && line[klen] == ':') {
            v = strtoull(line + klen + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

/* Guest RAM pages that are resident (touched by the guest or by loading). */
static unsigned long long guest_resident_kib(const struct gmem *gm)
{
    unsigned long long pages = 0;
    unsigned char vec[4096];
    for (unsigned i = 0; i < gm->nregions; i++) {
        const struct gmem_region *r = &gm->regions[i];
        for (uint64_t off = 0; off < r->size; off += sizeof(vec) * PAGE_SIZE) {
            uint64_t chunk = MIN(r->size - off, (uint64_t)sizeof(vec) * PAGE_SIZE);
            if (mincore(r->hva + off, (size_t)chunk, vec) < 0)
                return 0;
            for (uint64_t p = 0; p < chunk / PAGE_SIZE; p++)
                pages += vec[p] & 1;
        }
    }
    return pages * PAGE_SIZE / 1024;
}

void stats_print(struct vm *vm)
{
    unsigned long long hwm = status_kib("VmHWM");
    unsigned long long guest = guest_resident_kib(&vm->mem);
    fprintf(stderr,
            "{\"wisp_stats\":1,\"exit_code\":%d,\"peak_rss_kib\":%llu,"
            "\"guest_resident_kib\":%llu,\"vmm_overhead_kib\":%llu,\"vcpus\":%u,"
            "\"stdin_dropped\":%llu,\"stop_monotonic_ns\":%llu}\n",
            atomic_load(&vm->exit_code), hwm, guest, hwm > guest ? hwm - guest : 0, vm->nvcpus,
            (unsigned long long)vm->stdin_dropped, (unsigned long long)vm->stop_ns);
}
