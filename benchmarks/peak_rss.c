/* Run a command and report its peak resident set size.
 *
 * A child forked from the (large) Python benchmark process would carry the parent's RSS
 * high-water mark across exec, so the benchmarks launch every tool through this small
 * program instead: it forks, execs the command, waits with wait4 and prints
 * "peak_rss_kib N" (the largest single process among the command and the children it
 * waited for) on stderr. Its exit status is the command's.
 *
 *   gcc -O2 -o peak_rss benchmarks/peak_rss.c
 *   ./peak_rss CMD [ARG...]
 */
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CMD [ARG...]\n", argv[0]);
        return 2;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 127;
    }
    if (pid == 0) {
        execvp(argv[1], argv + 1);
        perror(argv[1]);
        _exit(127);
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) {
        perror("wait4");
        return 127;
    }
    fprintf(stderr, "peak_rss_kib %ld\n", ru.ru_maxrss);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}
