/*
 * A directory tree as text, for tests that check exactly what a jail (or a
 * failed attempt at one) leaves on disk: one sorted line per entry below
 * `dir`, "relative/path TYPE MODE UID:GID[ MAJOR:MINOR]", TYPE one of
 * d f c l p ?.  Links are listed, never followed.
 */
#ifndef TESTS_LIB_TREE_LIST_H
#define TESTS_LIB_TREE_LIST_H

/* malloc'd listing ("" for an empty directory), or NULL if `dir` cannot be walked. */
char *tree_list(const char *dir);

#endif /* TESTS_LIB_TREE_LIST_H */
