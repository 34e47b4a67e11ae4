// SPDX-License-Identifier: GPL-2.0
/*
 * deferred_fput PAGES FLAGFD: an active isolated task frees PAGES pages of
 * shmem on its way back to user space, then spins there.
 *
 * It writes PAGES pages to a memfd, maps it, closes it and unmaps it: the
 * munmap() drops the last reference to the file, whose final fput() is
 * deferred to task work, which runs after the system call's exit work, in
 * exit_to_user_mode_loop(). From then on it takes no system call, no page
 * fault (all its memory is locked) and no signal until the parent has read
 * the global counters: the only fold that can have put the freed pages in
 * them is the one at the very end of the munmap()'s exit to user mode.
 *
 * The parent steps it through the first byte of the page of FLAGFD, a
 * memfd it maps too: the program sets 1 (pages written), waits for 2, sets
 * 3 (spinning after the munmap()), waits for 4, makes one system call and
 * sets 5. Exit status 0, or 1 with a message on stderr.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <linux/prctl.h>
#include <linux/task_isolation.h>

static volatile unsigned char *flag;

static void fail(const char *what)
{
	perror(what);
	exit(1);
}

static void wait_for(unsigned char value)
{
	while (flag[0] != value)
		;
}

int main(int argc, char **argv)
{
	static char page[1 << 16];
	long size = sysconf(_SC_PAGESIZE);
	long pages, i;
	void *addr;
	int fd;

	if (argc != 3 || (pages = atol(argv[1])) <= 0 || size > (long)sizeof(page)) {
		fprintf(stderr, "usage: deferred_fput PAGES FLAGFD\n");
		return 1;
	}
	flag = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, atoi(argv[2]), 0);
	if (flag == MAP_FAILED)
		fail("mmap(FLAGFD)");
	memset(page, 'x', size);
	if (mlockall(MCL_CURRENT))
		fail("mlockall");
	if (prctl(PR_ISOL_SET, ISOL_F_QUIESCE, ISOL_F_QUIESCE_VMSTATS, 0, 0) ||
	    prctl(PR_ISOL_CTRL_SET, ISOL_F_QUIESCE, 0, 0, 0))
		fail("prctl(PR_ISOL_SET/CTRL_SET)");

	fd = memfd_create("isolharness", 0);
	if (fd < 0)
		fail("memfd_create");
	for (i = 0; i < pages; i++)
		if (write(fd, page, size) != size)
			fail("write");
	flag[0] = 1;
	wait_for(2);

	addr = mmap(NULL, pages * size, PROT_READ, MAP_SHARED, fd, 0);
	if (addr == MAP_FAILED)
		fail("mmap(memfd)");
	if (close(fd))				/* the mapping keeps the file */
		fail("close");
	if (munmap(addr, pages * size))		/* last reference: fput() deferred */
		fail("munmap");
	flag[0] = 3;
	wait_for(4);
	getppid();
	flag[0] = 5;
	return 0;
}
