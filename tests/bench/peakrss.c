// SPDX-License-Identifier: MIT OR Apache-2.0
// peakrss OUT CMD [ARG...]: runs CMD and writes its own peak RSS in KiB (VmHWM, read when it
// exits) to OUT. GNU time's %M folds in the largest waited-for child (here: the modprobe shell),
// which hides the process under test; PTRACE_O_TRACEEXIT stops CMD before its memory is released,
// and its children are not traced. Exit status: CMD's.
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static long vm_hwm(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: peakrss OUT CMD [ARG...]\n");
		return 2;
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		return 2;
	}
	if (pid == 0) {
		ptrace(PTRACE_TRACEME, 0, 0, 0);
		execvp(argv[2], argv + 2); // stops with SIGTRAP once the new image is in place
		perror(argv[2]);
		_exit(127);
	}
	int st;
	long hwm = -1;
	int opts_set = 0;
	while (waitpid(pid, &st, 0) == pid) {
		if (WIFEXITED(st) || WIFSIGNALED(st))
			break;
		int sig = WSTOPSIG(st);
		if (sig == SIGTRAP) {
			if (!opts_set) {
				ptrace(PTRACE_SETOPTIONS, pid, 0, PTRACE_O_TRACEEXIT);
				opts_set = 1;
			}
			if ((st >> 16) == PTRACE_EVENT_EXIT)
				hwm = vm_hwm(pid);
			sig = 0;
		}
		ptrace(PTRACE_CONT, pid, 0, sig);
	}
	FILE *out = fopen(argv[1], "w");
	if (!out) {
		perror(argv[1]);
		return 2;
	}
	fprintf(out, "%ld\n", hwm);
	fclose(out);
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}
