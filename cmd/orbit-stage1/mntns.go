package main

// A helper run of orbit-stage1 (the release-netns verb) works in the host's
// mount namespace, which stage1 itself left. Go cannot enter a mount
// namespace once its runtime has started threads, so this constructor does
// it first, while the process is still single-threaded, like runc's nsenter.

/*
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

__attribute__((constructor)) static void orbit_enter_mntns(void) {
	const char *v = getenv("_ORBIT_ENTER_MNTNS_FD");
	if (v == NULL)
		return;
	int fd = atoi(v);
	if (setns(fd, CLONE_NEWNS) < 0) {
		perror("orbit-stage1: enter the host's mount namespace");
		_exit(1);
	}
	close(fd);
}
*/
import "C"
