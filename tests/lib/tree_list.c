/* Directory tree listings for jail tests (see tree_list.h). */
#include "tests/lib/tree_list.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

/* nftw has no user pointer: the listing is collected here. */
static char **lines;
static size_t nlines, skip_len;

static int list_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)flag;
    if (ftw->level == 0)
        return 0;
    char type = S_ISDIR(st->st_mode)    ? 'd'
                : S_ISREG(st->st_mode)  ? 'f'
                : S_ISCHR(st->st_mode)  ? 'c'
                : S_ISLNK(st->st_mode)  ? 'l'
                : S_ISFIFO(st->st_mode) ? 'p'
                                        : '?';
    char line[700], dev[32] = "";
    if (type == 'c')
        snprintf(dev, sizeof(dev), " %u:%u", major(st->st_rdev), minor(st->st_rdev));
    snprintf(line, sizeof(line), "%s %c %04o %u:%u%s", path + skip_len, type,
             (unsigned)(st->st_mode & 07777), (unsigned)st->st_uid, (unsigned)st->st_gid, dev);
    char **grown = realloc(lines, (nlines + 1) * sizeof(char *));
    if (!grown)
        abort();
    lines = grown;
    lines[nlines++] = strdup(line);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char *tree_list(const char *dir)
{
    /* "/." so that nftw descends through a link such as /proc/PID/root (it
     * strips a trailing '/' and would report the link itself). */
    char top[600];
    snprintf(top, sizeof(top), "%s/.", dir);
    skip_len = strlen(top) + 1;
    lines = NULL;
    nlines = 0;
    char *out = NULL;
    if (nftw(top, list_one, 16, FTW_PHYS) == 0) {
        if (nlines)
            qsort(lines, nlines, sizeof(char *), cmp_str);
        size_t total = 1;
        for (size_t i = 0; i < nlines; i++)
            total += strlen(lines[i]) + 1;
        out = calloc(1, total);
        for (size_t i = 0; out && i < nlines; i++) {
            strcat(out, lines[i]);
            strcat(out, "\n");
        }
    }
    for (size_t i = 0; i < nlines; i++)
        free(lines[i]);
    free(lines);
    lines = NULL;
    nlines = 0;
    return out;
}
