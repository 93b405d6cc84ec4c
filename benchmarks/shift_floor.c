/* The syscall floor for chown-shifting a tree: nftw + lchown, nothing else.
 *
 * It is deliberately WRONG (it shifts a hard-linked inode once per link, loses
 * setuid/setgid bits and file capabilities, ignores ACLs, follows nothing but also
 * checks nothing) and exists only as the speed reference for userns.shift.
 *
 *   gcc -O2 -o shift_floor benchmarks/shift_floor.c
 *   ./shift_floor TREE DELTA        # every uid and gid += DELTA (DELTA may be negative)
 */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static long delta;
static unsigned long entries;

static int visit(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)flag;
    (void)ftw;
    entries++;
    if (lchown(path, (uid_t)((long)st->st_uid + delta), (gid_t)((long)st->st_gid + delta)) != 0) {
        perror(path);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s TREE DELTA\n", argv[0]);
        return 2;
    }
    delta = strtol(argv[2], NULL, 10);
    if (nftw(argv[1], visit, 64, FTW_PHYS) != 0)
        return 1;
    printf("%lu entries\n", entries);
    return 0;
}
