/*
 * Resource statistics printed at exit with --stats, as one JSON line on
 * stderr.  The benchmark uses it to measure the VMM's memory overhead:
 * peak RSS minus the guest RAM pages the guest actually touched.
 */
#ifndef VMM_STATS_H
#define VMM_STATS_H

struct vm;

void stats_print(struct vm *vm);

#endif /* VMM_STATS_H */
