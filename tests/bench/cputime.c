// SPDX-License-Identifier: MIT OR Apache-2.0
// cputime OUT CMD [ARG...]: runs CMD and writes the CPU time it used, its waited-for children's
// included (wait4's rusage: here the modprobe it runs), to OUT as one line of microseconds:
// "TOTAL USER SYS", TOTAL = user + sys. The kernel's figure comes from the scheduler's own clock,
// so a run of a few hundred microseconds is measured, not sampled at the tick; what cputime
// itself does (fork, exec of CMD, the wait) is not in it, except the exec, which runs as CMD.
// Exit status: CMD's (128 + signal when killed).
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static long long usec(struct timeval tv)
{
	return (long long)tv.tv_sec * 1000000 + tv.tv_usec;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: cputime OUT CMD [ARG...]\n");
		return 2;
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		return 2;
	}
	if (pid == 0) {
		execvp(argv[2], argv + 2);
		perror(argv[2]);
		_exit(127);
	}
	int st;
	struct rusage ru;
	if (wait4(pid, &st, 0, &ru) != pid) {
		perror("wait4");
		return 2;
	}
	FILE *out = fopen(argv[1], "w");
	if (!out) {
		perror(argv[1]);
		return 2;
	}
	long long u = usec(ru.ru_utime), s = usec(ru.ru_stime);
	fprintf(out, "%lld %lld %lld\n", u + s, u, s);
	if (fclose(out) != 0) {
		perror(argv[1]);
		return 2;
	}
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}
