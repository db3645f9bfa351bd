/* Test probe run inside containers: open_by_handle_at(-1, NULL, 0) fails with EFAULT or EBADF
 * when the call is allowed, and with EPERM when seccomp (or a missing capability) denies it. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void)
{
    long rc = syscall(SYS_open_by_handle_at, -1, NULL, 0);
    printf("%s\n", rc < 0 ? strerrorname_np(errno) : "allowed");
    return 0;
}
