/* Test probe run inside containers: makes each call a container must not reach, with arguments
 * that make it fail harmlessly when allowed (EFAULT, EBADF, EINVAL...), through the native ABI
 * and, on x86_64, the i386 (int 0x80) and x32 ABIs. Prints "<call> <abi> <errno name>": a
 * denied call reads EPERM or ENOSYS (the keyring calls). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

struct call { const char *name; long native, i386; long a1, a2, a3; };

static const struct call calls[] = {
    { "keyctl", SYS_keyctl, 288, -1, 0, 0 },
    { "add_key", SYS_add_key, 286, 0, 0, 0 },
    { "request_key", SYS_request_key, 287, 0, 0, 0 },
    { "perf_event_open", SYS_perf_event_open, 336, 0, 0, -1 },
    { "bpf", SYS_bpf, 357, -1, 0, 0 },
    { "userfaultfd", SYS_userfaultfd, 374, -1, 0, 0 },
    { "io_uring_setup", SYS_io_uring_setup, 425, 0, 0, 0 },
    { "io_uring_enter", SYS_io_uring_enter, 426, -1, 0, 0 },
    { "io_uring_register", SYS_io_uring_register, 427, -1, 0, 0 },
    { "open_by_handle_at", SYS_open_by_handle_at, 342, -1, 0, 0 },
    { "finit_module", SYS_finit_module, 350, -1, 0, 0 },
    { "iopl", SYS_iopl, 110, 4, 0, 0 },
    { "swapon", SYS_swapon, 87, 0, 0, 0 },
};

static const char *result(long rc) { return rc < 0 ? strerrorname_np(errno) : "allowed"; }

#if defined(__x86_64__)
static long i386_call(long nr, long a1, long a2, long a3)
{
    long rc;
    __asm__ volatile("int $0x80" : "=a"(rc) : "a"(nr), "b"(a1), "c"(a2), "d"(a3) : "memory");
    if (rc < 0 && rc > -4096) { errno = (int)-rc; return -1; }
    return rc;
}
#endif

int main(void)
{
    for (size_t i = 0; i < sizeof calls / sizeof *calls; i++) {
        const struct call *c = &calls[i];
        printf("%s native %s\n", c->name, result(syscall(c->native, c->a1, c->a2, c->a3, 0, 0)));
#if defined(__x86_64__)
        printf("%s i386 %s\n", c->name, result(i386_call(c->i386, c->a1, c->a2, c->a3)));
        printf("%s x32 %s\n", c->name, result(syscall(c->native | 0x40000000, c->a1, c->a2, c->a3, 0, 0)));
#endif
    }
    return 0;
}
