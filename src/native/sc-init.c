/*
 * sc-init: the fork-sensitive half of SystemContainers (shared/DESIGN.md, "Processes").
 *
 * The daemon is a multithreaded .NET process, which may neither unshare/setns into user or
 * mount namespaces nor run managed code in a forked child. It therefore posix_spawns this
 * small single-threaded program, which does those steps and reports back.
 *
 *   sc-init create   plan on fd 3; fds 0-2 are the console pty slave that init keeps, or with
 *                    "ownconsole 1" /dev/null: init's console is then made in the container's
 *                    own devpts and its master goes back with a "console" line (SCM_RIGHTS).
 *   sc-init exec     plan on fd 3; fd 4 is a pidfd of the container's init; 0-2 are the
 *                    command's stdio, or with "pty 1" a terminal made in the container's own
 *                    devpts whose master goes back with a "tty" line (SCM_RIGHTS).
 *                    Exits with the command's status (128+signal if killed).
 *   sc-init console  plan on fd 3; fd 4 is a pidfd of the container's init. Mounts a new pty
 *                    slave over the container's /dev/console (a restarted daemon's console);
 *                    with "ownconsole 1" one of its own devpts, whose master goes back.
 *   sc-init disk     plan on fd 3; fd 4 is a pidfd of the container's init. Unmounts the
 *                    "undisk" paths and mounts the "disk" devices in the running container.
 *   sc-init rootfs   plan on fd 3. Mounts a stopped container's rootfs detached and sends the
 *                    mount back with a "root" line (SCM_RIGHTS).
 *
 * The plan is "key value" lines ending with "end". Replies on fd 3 are "pid N" or
 * "error <operation>: <errno name>" (create with "netsync 1" first sends "child N" and waits
 * for a "go" line, or "abort", answered with "aborted"). fd 3 is close-on-exec, so the
 * daemon's read of it ends exactly when the container's process has exec'd (or failed).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <net/if.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <linux/sched.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <termios.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <linux/magic.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_LIST 256
/* The engine allows 1024 arguments and 1024 variables (Spec/ExecLimits.cs) and adds a few of its own. */
#define MAX_ARGV 1100

/* A disk device: a host path mounted at path in the container; tree is its detached copy. */
struct disk {
    const char *source, *path;
    int readonly, shift, is_dir, tree;
};

/*
 * One mount of the container's root, made in plan order: "bind" attaches a detached copy of
 * source (idmapped through the child's user namespace with idmap 1), any other type is a
 * filesystem mounted from source with data. A transient mount is detached once all are made.
 */
struct rootmount {
    const char *type, *source, *target, *data;
    int idmap, transient;
};

struct plan {
    const char *target, *hostname, *cwd, *console, *cgroup2, *lxcfsroot;
    int userns, idmap, pty, home, netsync, nesting, ownconsole;
    unsigned short rows, cols;
    char *uidmap, *gidmap;
    const char *args[MAX_ARGV], *envs[MAX_ARGV], *cgroups[MAX_LIST], *netifs[MAX_LIST], *sysallow[MAX_LIST], *lxcfs[MAX_LIST];
    int nargs, nenvs, ncgroups, nnetifs, nsysallow, nlxcfs;
    int capdrop[64];
    int ncapdrop;
    struct disk disks[MAX_LIST];
    int ndisks;
    struct rootmount roots[MAX_LIST];
    int nroots;
    const char *undisks[MAX_LIST];
    int nundisks;
    unsigned uid, gid;
};

static int report_fd = 3;
/* In the container child before exec: a byte here tells sc-init that the child failed. */
static int fail_fd = -1;
/* In sc-init after clone: a child to kill and reap should sc-init fail, so none is left behind. */
static pid_t pending_child = 0;

static void reply(const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (n > (int)sizeof buf - 2) n = sizeof buf - 2;
    buf[n++] = '\n';
    (void)!write(report_fd, buf, n);
}

/* Sends the last reply line, kills and reaps a child not yet exec'd, then exits. */
static void __attribute__((noreturn)) quit(const char *line)
{
    reply("%s", line);
    if (fail_fd >= 0) (void)!write(fail_fd, "f", 1);
    if (pending_child > 0) {
        kill(pending_child, SIGKILL);
        waitpid(pending_child, NULL, 0);
    }
    _exit(125);
}

/* Reports the failing operation with its errno name, then exits. */
static void __attribute__((noreturn)) die(const char *fmt, ...)
{
    int err = errno;
    char msg[3500];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *name = strerrorname_np(err);
    char line[3600];
    snprintf(line, sizeof line, "error %s: %s", msg, name ? name : "EUNKNOWN");
    quit(line);
}

static char *read_all(int fd)
{
    size_t cap = 8192, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 1 >= cap) buf = realloc(buf, cap *= 2);
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) die("cannot read plan");
        if (n == 0) break;
        len += n;
        buf[len] = 0;
        if (strstr(buf, "\nend\n") || strncmp(buf, "end\n", 4) == 0) break;
    }
    buf[len] = 0;
    return buf;
}

static void append_line(char **acc, const char *line)
{
    size_t old = *acc ? strlen(*acc) : 0;
    *acc = realloc(*acc, old + strlen(line) + 2);
    strcpy(*acc + old, line);
    strcat(*acc, "\n");
}

/* Adds a plan value to a list; a plan with more than fit is refused, never cut short. */
static void push(const char **list, int *n, int max, const char *key, const char *val)
{
    if (*n >= max) { errno = E2BIG; die("cannot take more than %d %s lines", max, key); }
    list[(*n)++] = val;
}

/* The root mount the last "root" line began, which its "root.*" lines describe. */
static struct rootmount *last_root(struct plan *p, const char *key)
{
    if (p->nroots == 0) { errno = EINVAL; die("plan has %s before a root line", key); }
    return &p->roots[p->nroots - 1];
}

/* The disk the last "disk" line began, which its "disk.*" lines describe. */
static struct disk *last_disk(struct plan *p, const char *key)
{
    if (p->ndisks == 0) { errno = EINVAL; die("plan has %s before a disk line", key); }
    return &p->disks[p->ndisks - 1];
}

static void parse_plan(char *text, struct plan *p)
{
    memset(p, 0, sizeof *p);
    p->cwd = "/";
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char *val = strchr(line, ' ');
        if (val) *val++ = 0; else val = "";
        if (!strcmp(line, "end")) break;
        else if (!strcmp(line, "console")) p->console = val;
        else if (!strcmp(line, "target")) p->target = val;
        else if (!strcmp(line, "hostname")) p->hostname = val;
        else if (!strcmp(line, "cwd")) p->cwd = val;
        else if (!strcmp(line, "home")) p->home = atoi(val);
        else if (!strcmp(line, "userns")) p->userns = atoi(val);
        else if (!strcmp(line, "idmap")) p->idmap = atoi(val);
        else if (!strcmp(line, "pty")) p->pty = atoi(val);
        else if (!strcmp(line, "netsync")) p->netsync = atoi(val);
        else if (!strcmp(line, "nesting")) p->nesting = atoi(val);
        else if (!strcmp(line, "ownconsole")) p->ownconsole = atoi(val);
        else if (!strcmp(line, "netif")) push(p->netifs, &p->nnetifs, MAX_LIST, line, val);
        else if (!strcmp(line, "rows")) p->rows = atoi(val);
        else if (!strcmp(line, "cols")) p->cols = atoi(val);
        else if (!strcmp(line, "uid")) p->uid = strtoul(val, NULL, 10);
        else if (!strcmp(line, "gid")) p->gid = strtoul(val, NULL, 10);
        else if (!strcmp(line, "uidmap")) append_line(&p->uidmap, val);
        else if (!strcmp(line, "gidmap")) append_line(&p->gidmap, val);
        else if (!strcmp(line, "arg")) push(p->args, &p->nargs, MAX_ARGV - 1, line, val);
        else if (!strcmp(line, "env")) push(p->envs, &p->nenvs, MAX_ARGV - 1, line, val);
        else if (!strcmp(line, "cgroup")) push(p->cgroups, &p->ncgroups, MAX_LIST, line, val);
        else if (!strcmp(line, "sysallow")) push(p->sysallow, &p->nsysallow, MAX_LIST, line, val);
        else if (!strcmp(line, "cgroup2")) p->cgroup2 = val;
        else if (!strcmp(line, "lxcfsroot")) p->lxcfsroot = val;
        else if (!strcmp(line, "lxcfs")) push(p->lxcfs, &p->nlxcfs, MAX_LIST, line, val);
        else if (!strcmp(line, "capdrop") && p->ncapdrop < 64) p->capdrop[p->ncapdrop++] = atoi(val);
        else if (!strcmp(line, "disk")) {
            if (p->ndisks >= MAX_LIST) { errno = E2BIG; die("cannot take more than %d disk lines", MAX_LIST); }
            p->disks[p->ndisks++] = (struct disk){ .source = val, .path = "", .shift = 1, .tree = -1 };
        }
        else if (!strcmp(line, "root")) {
            if (p->nroots >= MAX_LIST) { errno = E2BIG; die("cannot take more than %d root lines", MAX_LIST); }
            p->roots[p->nroots++] = (struct rootmount){ .type = val, .source = "", .target = "", .data = NULL };
        }
        else if (!strcmp(line, "root.source")) last_root(p, line)->source = val;
        else if (!strcmp(line, "root.target")) last_root(p, line)->target = val;
        else if (!strcmp(line, "root.data")) last_root(p, line)->data = val;
        else if (!strcmp(line, "root.idmap")) last_root(p, line)->idmap = atoi(val);
        else if (!strcmp(line, "root.transient")) last_root(p, line)->transient = atoi(val);
        else if (!strcmp(line, "disk.path")) last_disk(p, line)->path = val;
        else if (!strcmp(line, "disk.readonly")) last_disk(p, line)->readonly = atoi(val);
        else if (!strcmp(line, "disk.shift")) last_disk(p, line)->shift = atoi(val);
        else if (!strcmp(line, "undisk")) push(p->undisks, &p->nundisks, MAX_LIST, line, val);
        else { errno = EINVAL; die("unknown plan key %s", line); }
    }
}

static void write_file(const char *path, const char *data)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) die("cannot open %s", path);
    size_t len = strlen(data);
    if (write(fd, data, len) != (ssize_t)len) die("cannot write %s", path);
    close(fd);
}

/*
 * Joins the container's cgroup v1 hierarchies by writing "0" to their tasks files: this
 * process is single-threaded, and moving only the calling thread spares the kernel's global
 * threadgroup lock, whose write side waits for an RCU grace period. The cgroup2 directory is
 * entered by the child at clone time instead (CLONE_INTO_CGROUP); returns its fd or -1.
 */
static int join_cgroups(const struct plan *p)
{
    for (int i = 0; i < p->ncgroups; i++) write_file(p->cgroups[i], "0");
    if (!p->cgroup2) return -1;
    int fd = open(p->cgroup2, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) die("cannot open %s", p->cgroup2);
    return fd;
}

/* fork(), or clone3 into the cgroup2 directory cgroup_fd when there is one. */
static pid_t clone_into(int cgroup_fd, unsigned long long flags)
{
    struct clone_args args = { .flags = flags, .exit_signal = SIGCHLD };
    if (cgroup_fd >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = cgroup_fd;
    }
    return syscall(SYS_clone3, &args, sizeof args);
}

static void reset_signals(void)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int s = 1; s < _NSIG; s++) {
        if (s == SIGKILL || s == SIGSTOP) continue;
        signal(s, SIG_DFL);
    }
}

static void drop_caps(const struct plan *p)
{
    for (int i = 0; i < p->ncapdrop; i++)
        if (prctl(PR_CAPBSET_DROP, p->capdrop[i], 0, 0, 0) < 0 && errno != EINVAL)
            die("cannot drop capability %d", p->capdrop[i]);
}

/*
 * The seccomp filter every container process runs under, built with libseccomp for the
 * native ABI and every other one this kernel runs (i386 and x32 on x86_64, arm on arm64), so
 * no ABI falls through; a call from an ABI outside the filter kills the process. The denied
 * calls match Docker's and LXD's defaults: they reach the host kernel as a whole (modules,
 * kexec, raw I/O, swap, file handles) or widen its attack surface beyond what a namespace
 * confines (bpf, perf events, io_uring, userfaultfd). A user namespace already refuses most
 * of them; a privileged container has only this. The key calls fail with ENOSYS, so systemd
 * and friends fall back to running without a kernel keyring. security.syscalls.allow ("sysallow"
 * plan lines) gives back the keyring calls and those of the second kind, never the first.
 */
static int allowed(const struct plan *p, const char *name)
{
    for (int i = 0; i < p->nsysallow; i++)
        if (!strcmp(p->sysallow[i], name)) return 1;
    return 0;
}

static void load_seccomp(const struct plan *p)
{
    static const char *const eperm[] = { "init_module", "finit_module", "delete_module", "kexec_load",
                                         "kexec_file_load", "open_by_handle_at", "iopl", "ioperm", "swapon",
                                         "swapoff", "bpf", "perf_event_open", "userfaultfd", "io_uring_setup",
                                         "io_uring_enter", "io_uring_register", NULL };
    static const char *const enosys[] = { "keyctl", "add_key", "request_key", NULL };
    static const char *const allowable[] = { "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
                                              "io_uring_setup", "io_uring_enter", "io_uring_register", NULL };
    for (int i = 0; i < p->nsysallow; i++) {
        int found = 0;
        for (int j = 0; allowable[j]; j++) found |= !strcmp(allowable[j], p->sysallow[i]);
        if (!found) { errno = EINVAL; die("cannot allow syscall %s: only the keyring, bpf, perf_event_open, userfaultfd and io_uring calls may be allowed", p->sysallow[i]); }
    }
    static const uint32_t other_abis[] = {
#if defined(__x86_64__)
        SCMP_ARCH_X86, SCMP_ARCH_X32,
#elif defined(__aarch64__)
        SCMP_ARCH_ARM,
#endif
        0 };
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx) { errno = ENOMEM; die("cannot build the seccomp filter"); }
    int rc = 0;
    for (int i = 0; rc == 0 && other_abis[i]; i++) {
        rc = seccomp_arch_add(ctx, other_abis[i]);
        if (rc == -EEXIST) rc = 0;
    }
    if (rc == 0) rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    /* libseccomp would set no_new_privs too; setuid binaries in a container keep working (shed_root sets it where it must). */
    if (rc == 0) rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        const char *const *names = pass == 0 ? eperm : enosys;
        uint32_t action = SCMP_ACT_ERRNO(pass == 0 ? EPERM : ENOSYS);
        for (int i = 0; rc == 0 && names[i]; i++) {
            int nr = seccomp_syscall_resolve_name(names[i]);
            /* Calls one ABI lacks (iopl on arm) are left out of that ABI's part by libseccomp. */
            if (nr != __NR_SCMP_ERROR && !allowed(p, names[i])) rc = seccomp_rule_add(ctx, action, nr, 0);
        }
    }
    if (rc == 0) rc = seccomp_load(ctx);
    seccomp_release(ctx);
    if (rc < 0) { errno = -rc; die("cannot load the seccomp filter"); }
}

/*
 * Takes the plan's uid and gid and checks that they took: (uid_t)-1 means "keep" to the
 * set*id calls, and an id outside the user namespace's map reads back as the overflow id.
 */
static void become_user(const struct plan *p)
{
    if (p->uid == (uid_t)-1 || p->gid == (gid_t)-1) { errno = EINVAL; die("cannot run as uid %u gid %u", p->uid, p->gid); }
    if (setresgid(p->gid, p->gid, p->gid) < 0) die("cannot setresgid %u", p->gid);
    if (setgroups(0, NULL) < 0) die("cannot setgroups");
    if (setresuid(p->uid, p->uid, p->uid) < 0) die("cannot setresuid %u", p->uid);
    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0) die("cannot read back uid and gid");
    if (ru != p->uid || eu != p->uid || su != p->uid || rg != p->gid || eg != p->gid || sg != p->gid) {
        errno = EPERM;
        die("cannot become uid %u gid %u (now uid %u gid %u)", p->uid, p->gid, eu, eg);
    }
}

/*
 * A non-root user gives up every capability (the kernel keeps the inheritable set across a
 * uid change) and, where root is the host's own (no user namespace), also the way back to it
 * through setuid binaries.
 */
static void shed_root(const struct plan *p)
{
    if (p->uid == 0) return;
    struct __user_cap_header_struct head = { .version = _LINUX_CAPABILITY_VERSION_3 };
    struct __user_cap_data_struct none[2] = { 0 };
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0) die("cannot clear ambient capabilities");
    if (syscall(SYS_capset, &head, none) < 0) die("cannot clear capabilities");
    if (!p->userns && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die("cannot set no_new_privs");
}

static void do_mount(const char *src, const char *dst, const char *type, unsigned long flags,
                     const char *data)
{
    if (mount(src, dst, type, flags, data) < 0)
        die("cannot mount %s on %s", type ? type : src, dst);
}

static void ensure_dir(const char *path, mode_t mode)
{
    if (mkdir(path, mode) < 0 && errno != EEXIST) die("cannot mkdir %s", path);
}

/*
 * A top-level mount point of the rootfs, which the container wrote on its last run: before
 * pivot_root a symlink there would resolve against the host's root, so it must be a directory.
 */
static void mount_point(const char *path, mode_t mode)
{
    struct stat st;
    ensure_dir(path, mode);
    if (lstat(path, &st) < 0) die("cannot stat %s in the rootfs", path);
    if (!S_ISDIR(st.st_mode)) { errno = ENOTDIR; die("cannot mount on %s in the rootfs: it is not a directory", path); }
}

static void ensure_file(const char *path)
{
    int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) die("cannot create %s", path);
    close(fd);
}

/* Bind-mounts an empty file or /dev/null over a path that must not be read. */
static void mask(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0) return;
    if (S_ISDIR(st.st_mode))
        do_mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0");
    else
        do_mount("/dev/null", path, NULL, MS_BIND, NULL);
}

static void bind_ro_self(const char *path)
{
    do_mount(path, path, NULL, MS_BIND, NULL);
    do_mount(NULL, path, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
             NULL);
}

/*
 * Runs in the container's namespaces (as root of the outer user namespace when there are two),
 * cwd = new root, before pivot_root: the API file systems a system container needs (modelled
 * on systemd's container interface).
 */
static void mount_api_filesystems(const struct plan *p)
{
    const unsigned long common = MS_NOSUID | MS_NODEV | MS_NOEXEC;
    mount_point("proc", 0555);
    mount_point("sys", 0555);
    mount_point("dev", 0755);
    mount_point("run", 0755);
    mount_point("tmp", 01777);

    do_mount("proc", "proc", "proc", common, NULL);
    /* /proc/sys is read-only except the netns-private net subtree. */
    bind_ro_self("proc/sys");
    do_mount("proc/sys/net", "proc/sys/net", NULL, MS_BIND, NULL);
    do_mount(NULL, "proc/sys/net", NULL, MS_BIND | MS_REMOUNT | common, NULL);
    if (access("proc/sysrq-trigger", F_OK) == 0) bind_ro_self("proc/sysrq-trigger");
    static const char *masked[] = { "proc/kcore", "proc/keys", "proc/timer_list",
                                    "proc/latency_stats", "proc/sched_debug", "proc/acpi",
                                    "proc/scsi", "proc/kmsg", NULL };
    for (int i = 0; masked[i]; i++) mask(masked[i]);

    do_mount("sysfs", "sys", "sysfs", common | MS_RDONLY, NULL);
    do_mount("cgroup2", "sys/fs/cgroup", "cgroup2", common, NULL);

    /* The standard nodes are bind mounts, each with its own flags; nothing made on the tmpfs opens. */
    do_mount("tmpfs", "dev", "tmpfs", MS_NOSUID | MS_NOEXEC | MS_NODEV, "mode=755,size=65536k");
    static const char *devs[] = { "null", "zero", "full", "random", "urandom", "tty", NULL };
    char src[64], dst[64];
    for (int i = 0; devs[i]; i++) {
        snprintf(src, sizeof src, "/dev/%s", devs[i]);
        snprintf(dst, sizeof dst, "dev/%s", devs[i]);
        ensure_file(dst);
        do_mount(src, dst, NULL, MS_BIND, NULL);
    }
    ensure_dir("dev/pts", 0755);
    do_mount("devpts", "dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
             "newinstance,ptmxmode=0666,mode=0620,gid=5");
    if (symlink("pts/ptmx", "dev/ptmx") < 0) die("cannot symlink dev/ptmx");
    ensure_dir("dev/shm", 01777);
    do_mount("shm", "dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=65536k");
    ensure_dir("dev/mqueue", 0755);
    do_mount("mqueue", "dev/mqueue", "mqueue", common, NULL);
    if (p->console || p->ownconsole) ensure_file("dev/console");
    static const char *links[][2] = { { "/proc/self/fd", "dev/fd" },
                                      { "/proc/self/fd/0", "dev/stdin" },
                                      { "/proc/self/fd/1", "dev/stdout" },
                                      { "/proc/self/fd/2", "dev/stderr" },
                                      { NULL, NULL } };
    for (int i = 0; links[i][0]; i++)
        if (symlink(links[i][0], links[i][1]) < 0) die("cannot symlink %s", links[i][1]);
    do_mount("tmpfs", "run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=20%");
}

/*
 * A detached copy of path (open_tree OPEN_TREE_CLONE; flags may add AT_RECURSIVE and
 * AT_EMPTY_PATH), made private: a copy joins the peer group of the mount it copies, and on
 * systemd hosts / and /dev/pts are shared, so a mount the container made on the copy would
 * propagate back into the host's mount namespace. name is path as the messages say it.
 */
static int clone_tree(int dfd, const char *path, unsigned flags, const char *name)
{
    int tree = syscall(SYS_open_tree, dfd, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | flags);
    if (tree < 0) die("cannot open_tree %s", name);
    struct mount_attr attr = { .propagation = MS_PRIVATE };
    if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | (flags & AT_RECURSIVE), &attr, sizeof attr) < 0)
        die("cannot make the copy of %s private", name);
    return tree;
}

/*
 * lxcfs's files ("lxcfs" lines, relative to "lxcfsroot" and to the rootfs alike) are cloned
 * while this process is still the host's root to path lookup (the daemon's run directory, where
 * its lxcfs may be mounted, is closed to the container's ids) and attached over the kernel's
 * once /proc and /sys are mounted, before any mount namespace above them locks the mounts.
 */
static void clone_lxcfs(const struct plan *p, int *trees)
{
    char path[4096];
    for (int i = 0; i < p->nlxcfs; i++) {
        if (strstr(p->lxcfs[i], "..") || p->lxcfs[i][0] == '/') { errno = EINVAL; die("cannot bind lxcfs file %s: not a plain relative path", p->lxcfs[i]); }
        snprintf(path, sizeof path, "%s/%s", p->lxcfsroot ? p->lxcfsroot : "", p->lxcfs[i]);
        trees[i] = clone_tree(AT_FDCWD, path, 0, path);
    }
}

/* A file the container's kernel view lacks (no slabinfo) is left out, not made. */
static void attach_lxcfs(const struct plan *p, const int *trees)
{
    struct stat st;
    for (int i = 0; i < p->nlxcfs; i++) {
        if (lstat(p->lxcfs[i], &st) == 0 && syscall(SYS_move_mount, trees[i], "", AT_FDCWD, p->lxcfs[i], MOVE_MOUNT_F_EMPTY_PATH) < 0)
            die("cannot move_mount lxcfs's %s over %s", p->lxcfs[i], p->lxcfs[i]);
        close(trees[i]);
    }
}

/* Clones path as a detached mount (idmapped through userns_fd unless it is -1, always nodev) and attaches it at dst. */
static void attach_bind(const char *path, const char *dst, int userns_fd)
{
    int fd = clone_tree(AT_FDCWD, path, 0, path);
    struct mount_attr attr = { .attr_set = MOUNT_ATTR_NODEV };
    if (userns_fd >= 0) {
        attr.attr_set |= MOUNT_ATTR_IDMAP;
        attr.userns_fd = userns_fd;
    }
    if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0)
        die(userns_fd >= 0 ? "cannot idmap mount %s" : "cannot make %s nodev", path);
    ensure_dir(dst, 0700);
    if (syscall(SYS_move_mount, fd, "", AT_FDCWD, dst, MOVE_MOUNT_F_EMPTY_PATH) < 0)
        die("cannot move_mount %s to %s", path, dst);
    close(fd);
}

/*
 * Runs in sc-init (initial user namespace) after it joined the child's mount namespace:
 * makes the root mounts the storage driver planned ("root" lines), in order. The daemon
 * decides what they are (an overlay over an idmapped image, an idmapped volume); sc-init only
 * mounts them. nodev everywhere: a device node an image or the container left never opens.
 */
static int has_idmapped_root(const struct plan *p)
{
    for (int i = 0; i < p->nroots; i++)
        if (p->roots[i].idmap) return 1;
    return 0;
}

/* Makes the plan's root mounts in order, idmapped ones through userns, then detaches the transient ones. */
static void mount_roots(const struct plan *p, int userns)
{
    if (p->nroots == 0) { errno = EINVAL; die("plan has no root line"); }
    for (int i = 0; i < p->nroots; i++) {
        const struct rootmount *m = &p->roots[i];
        if (!strcmp(m->type, "bind")) attach_bind(m->source, m->target, m->idmap ? userns : -1);
        else do_mount(m->source, m->target, m->type, MS_NODEV, m->data);
    }
    /* An overlay holds a private clone of each layer; their attach points are not needed. */
    for (int i = 0; i < p->nroots; i++)
        if (p->roots[i].transient) umount2(p->roots[i].target, MNT_DETACH);
}

static void mount_rootfs(const struct plan *p, pid_t child)
{
    do_mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
    int userns = -1;
    if (has_idmapped_root(p)) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/ns/user", child);
        userns = open(path, O_RDONLY | O_CLOEXEC);
        if (userns < 0) die("cannot open %s", path);
    }
    mount_roots(p, userns);
    if (userns >= 0) close(userns);
}

static void write_id_maps(const struct plan *p, pid_t child)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/uid_map", child);
    write_file(path, p->uidmap);
    snprintf(path, sizeof path, "/proc/%d/gid_map", child);
    write_file(path, p->gidmap);
}

/*
 * Brings up lo and the NICs the daemon made in the container's network namespace. The kernel
 * cannot create a veth peer already up (its other end does not exist yet), so it happens here,
 * as the container's root, before init runs.
 */
static void links_up(const struct plan *p)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("cannot open a socket to configure links");
    for (int i = -1; i < p->nnetifs; i++) {
        const char *name = i < 0 ? "lo" : p->netifs[i];
        struct ifreq ifr = { 0 };
        if (strlen(name) >= sizeof ifr.ifr_name) { errno = EINVAL; die("cannot bring up %s", name); }
        strcpy(ifr.ifr_name, name);
        if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) die("cannot read the flags of %s", name);
        ifr.ifr_flags |= IFF_UP;
        if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0) die("cannot bring up %s", name);
    }
    close(fd);
}

/*
 * With "netsync 1" the daemon makes the container's NICs in its network namespace while the
 * rootfs is mounted: sc-init reports "child N" at once and lets init run only on a "go" line.
 * On "abort" (the daemon could not make them) it answers "aborted" and quits with the child:
 * the daemon's own error says why.
 */
static void wait_for_network(void)
{
    char line[64];
    size_t len = 0;
    while (len < sizeof line - 1) {
        ssize_t n = read(report_fd, line + len, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) { errno = ECONNRESET; die("cannot read the daemon's go-ahead"); }
        if (line[len] == '\n') break;
        len++;
    }
    line[len] = 0;
    if (!strcmp(line, "abort")) quit("aborted");
    if (strcmp(line, "go") != 0) { errno = EPROTO; die("cannot read the daemon's go-ahead (it sent '%s')", line); }
}

static void wait_byte(int fd)
{
    char c;
    ssize_t n;
    do n = read(fd, &c, 1); while (n < 0 && errno == EINTR);
    if (n != 1) _exit(125); /* the other side already reported why */
}

static void exec_command(struct plan *p)
{
    p->args[p->nargs] = NULL;
    p->envs[p->nenvs] = NULL;
    /* execvpe searches the caller's PATH, not envp's: take the command's own. */
    for (int i = 0; i < p->nenvs; i++)
        if (!strncmp(p->envs[i], "PATH=", 5) && setenv("PATH", p->envs[i] + 5, 1) < 0) die("cannot set PATH");
    execvpe(p->args[0], (char *const *)p->args, (char *const *)p->envs);
    die("cannot exec %s", p->args[0]);
}

/*
 * The console pty, cloned by path while the host's /dev/pts is still in reach (not through
 * /proc/self/fd/0, which resolves to the daemon's mount namespace), and attached after the
 * last mount namespace is made: the container's final /dev/console is then not locked, so a
 * restarted daemon can replace it (sc-init console).
 */
static int clone_console(const struct plan *p)
{
    if (!p->console) return -1;
    return clone_tree(AT_FDCWD, p->console, 0, p->console);
}

static void attach_console_tree(int tree)
{
    if (tree < 0) return;
    if (syscall(SYS_move_mount, tree, "", AT_FDCWD, "/dev/console", MOVE_MOUNT_F_EMPTY_PATH) < 0)
        die("cannot move_mount the console to /dev/console");
    close(tree);
}

/* Sends a reply line with fd attached (SCM_RIGHTS), so the daemon owns what fd refers to. */
static void send_fd(const char *line, int fd)
{
    char text[64];
    snprintf(text, sizeof text, "%s\n", line);
    struct iovec iov = { .iov_base = text, .iov_len = strlen(text) };
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                          .msg_controllen = sizeof control.buf };
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    if (sendmsg(report_fd, &msg, 0) < 0) die("cannot send the %s to the daemon", line);
}

/*
 * The console of a checkpointable container: a pty of the container's own devpts, bound over
 * /dev/console and made init's stdio, with its master sent to the daemon. criu dumps it as a
 * terminal of the container whose master lies outside the tree (orphan_pts_master) and hands a
 * new master back on restore; a bind of a host pty it could not restore.
 */
static void make_own_console(int stdio)
{
    char slave[64];
    int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0) die("cannot open /dev/ptmx in the container");
    if (unlockpt(master) < 0 || ptsname_r(master, slave, sizeof slave) != 0)
        die("cannot set up the console in the container");
    int tty = open(slave, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (tty < 0) die("cannot open %s", slave);
    do_mount(slave, "/dev/console", NULL, MS_BIND, NULL);
    for (int fd = 0; stdio && fd < 3; fd++)
        if (dup2(tty, fd) < 0) die("cannot dup the console");
    close(tty);
    send_fd("console", master);
    close(master);
}

/* The inner id map: each outer line "inside outside count" becomes "inside inside count". */
static char *identity_map(const char *map)
{
    char *out = NULL, line[128];
    for (const char *at = map; *at; ) {
        unsigned long inside, outside, count;
        int used;
        if (sscanf(at, "%lu %lu %lu\n%n", &inside, &outside, &count, &used) != 3) {
            errno = EINVAL;
            die("cannot parse id map line %s", at);
        }
        snprintf(line, sizeof line, "%lu %lu %lu", inside, inside, count);
        append_line(&out, line);
        at += used;
    }
    return out;
}

static void join_ns(pid_t pid, const char *name, int type)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/%s", pid, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, type) < 0) die("cannot join namespace %s", path);
    close(fd);
}

/*
 * An unprivileged container lives in two user namespaces, so that the kernel locks its masks.
 * The outer one (the plan's id map) owns the mount and pid namespaces where the rootfs, /proc,
 * /sys and every mask are built; the inner one maps the same ids 1:1 and owns the network, uts,
 * ipc and cgroup namespaces, and the mount namespace init gets at last: a copy of the outer
 * one, which the kernel makes with every mount MNT_LOCKED (and its ro/nosuid/nodev/noexec
 * flags locked) because its owner is less privileged. Container root can then neither unmount
 * a mask nor clear its flags, and cannot mount a fresh procfs (its pid namespace is the outer
 * one's). A forked helper makes the inner namespaces as the container's root (an owner must be
 * mapped in the parent namespace); this process joins all but the user namespace now, while it
 * is still the host's root in the outer one, and returns an fd of the inner user namespace.
 * The helper's /proc entries are found by its pid in the host's /proc (still mounted here),
 * which it reads from /proc/self and sends on a pipe.
 */
static int make_inner_namespaces(const struct plan *p)
{
    int pidpipe[2];
    if (pipe2(pidpipe, O_CLOEXEC) < 0) die("cannot create pipe");
    pid_t local = fork();
    if (local < 0) die("cannot fork the inner namespace helper");
    if (local == 0) {
        char self[32] = { 0 };
        if (readlink("/proc/self", self, sizeof self - 1) < 0) die("cannot read /proc/self");
        become_user(p);
        /* The id change made it undumpable, which would close its /proc entries to this process. */
        if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0) die("cannot set the helper dumpable");
        if (unshare(CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWCGROUP) < 0)
            die("cannot unshare the inner user, network, uts, ipc and cgroup namespaces");
        if (write(pidpipe[1], self, strlen(self)) < 0) die("cannot report the helper's pid");
        raise(SIGSTOP);
        _exit(0);
    }
    close(pidpipe[1]);
    int status;
    while (waitpid(local, &status, WUNTRACED) < 0)
        if (errno != EINTR) die("cannot wait for the inner namespace helper");
    if (!WIFSTOPPED(status)) _exit(125); /* the helper already reported why */
    char self[32] = { 0 };
    if (read(pidpipe[0], self, sizeof self - 1) <= 0) die("cannot read the helper's pid");
    close(pidpipe[0]);
    pid_t helper = atoi(self);
    char path[64];
    for (int i = 0; i < 2; i++) {
        char *map = identity_map(i == 0 ? p->uidmap : p->gidmap);
        snprintf(path, sizeof path, "/proc/%d/%s", helper, i == 0 ? "uid_map" : "gid_map");
        write_file(path, map);
        free(map);
    }
    snprintf(path, sizeof path, "/proc/%d/ns/user", helper);
    int userns = open(path, O_RDONLY | O_CLOEXEC);
    if (userns < 0) die("cannot open %s", path);
    join_ns(helper, "net", CLONE_NEWNET);
    join_ns(helper, "uts", CLONE_NEWUTS);
    join_ns(helper, "ipc", CLONE_NEWIPC);
    join_ns(helper, "cgroup", CLONE_NEWCGROUP);
    kill(local, SIGKILL);
    waitpid(local, NULL, 0);
    return userns;
}

/* Enters the inner user namespace and takes the locked copy of the mount namespace. */
static void enter_inner_namespaces(int userns)
{
    if (userns < 0) return;
    if (setns(userns, CLONE_NEWUSER) < 0) die("cannot join the inner user namespace");
    close(userns);
    if (unshare(CLONE_NEWNS) < 0) die("cannot unshare the locked mount namespace");
}

/* Opens path below root as the container would resolve it: "/" and ".." stop at root, and no
 * /proc/<pid>/fd-style link is followed, so nothing outside the container can be reached. */
static int open_in(int root, const char *path, int flags)
{
    struct open_how how = { .flags = flags | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
    return syscall(SYS_openat2, root, path, &how, sizeof how);
}

/* The host id of the container's root in an id map ("0 base count" lines); 0 without one. */
static unsigned root_host_id(const char *map)
{
    unsigned inside, outside;
    for (const char *at = map; at && *at; at = strchr(at, '\n') ? strchr(at, '\n') + 1 : "")
        if (sscanf(at, "%u %u", &inside, &outside) == 2 && inside == 0) return outside;
    return 0;
}

/*
 * Makes files as the container's root (on) or as the host's again (off): a file system the
 * container mounted (its /run) takes only ids of its own, and a mount point made for it is its
 * root's. Changing the fsuid drops the file capabilities, which are raised again.
 */
static void as_container_root(const struct plan *p, int on)
{
    setfsuid(on ? root_host_id(p->uidmap) : 0);
    setfsgid(on ? root_host_id(p->gidmap) : 0);
    struct __user_cap_header_struct head = { .version = _LINUX_CAPABILITY_VERSION_3 };
    struct __user_cap_data_struct caps[2];
    if (syscall(SYS_capget, &head, caps) < 0) die("cannot read capabilities");
    for (int i = 0; i < 2; i++) caps[i].effective = caps[i].permitted;
    if (syscall(SYS_capset, &head, caps) < 0) die("cannot raise capabilities");
}

/* Splits an absolute path into its directory (in dir) and its last part. */
static const char *split_path(const char *path, char *dir, size_t size)
{
    const char *slash = strrchr(path, '/');
    size_t len = slash == path ? 1 : (size_t)(slash - path);
    if (!slash || len >= size) { errno = ENAMETOOLONG; die("cannot take the path %s", path); }
    memcpy(dir, path, len);
    dir[len] = 0;
    return slash + 1;
}

/* Opens the directory path below root, making the parts that are missing (as_container_root). */
static int open_dirs_in(int root, const char *path)
{
    char prefix[4096] = "", copy[4096];
    snprintf(copy, sizeof copy, "%s", path);
    int dir = fcntl(root, F_DUPFD_CLOEXEC, 3);
    if (dir < 0) die("cannot dup the container root fd");
    char *save = NULL;
    for (char *part = strtok_r(copy, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
        strncat(prefix, "/", sizeof prefix - strlen(prefix) - 1);
        strncat(prefix, part, sizeof prefix - strlen(prefix) - 1);
        int next = open_in(root, prefix, O_PATH | O_DIRECTORY);
        if (next < 0 && errno == ENOENT) {
            /* A name the container makes meanwhile is resolved again, inside root, like any other. */
            if (mkdirat(dir, part, 0755) < 0 && errno != EEXIST) die("cannot mkdir %s in the container", prefix);
            next = open_in(root, prefix, O_PATH | O_DIRECTORY);
        }
        if (next < 0) die("cannot open %s in the container", prefix);
        close(dir);
        dir = next;
    }
    return dir;
}

/*
 * Opens (or makes) a disk's mount point inside the container: a directory for a directory
 * source, a regular file for a file. The container wrote that path, so the last part must be
 * neither a symlink nor a device or other odd file, and it must not lie on /proc or /sys.
 */
static int disk_target(int root, const struct disk *d, int is_dir)
{
    char parent[4096];
    const char *name = split_path(d->path, parent, sizeof parent);
    int dir = open_dirs_in(root, parent);
    int fd = openat(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        int made = is_dir ? mkdirat(dir, name, 0755) : openat(dir, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (made < 0 && errno != EEXIST) die("cannot create the mount point %s in the container", d->path);
        if (!is_dir && made >= 0) close(made);
        fd = openat(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0) die("cannot open the mount point %s in the container", d->path);
    close(dir);
    struct stat st;
    struct statfs fs;
    if (fstat(fd, &st) < 0 || fstatfs(fd, &fs) < 0) die("cannot stat the mount point %s in the container", d->path);
    if (S_ISLNK(st.st_mode)) { errno = ELOOP; die("cannot mount a disk on %s in the container: it is a symlink", d->path); }
    if (is_dir && !S_ISDIR(st.st_mode)) { errno = ENOTDIR; die("cannot mount a directory on %s in the container: it is not a directory", d->path); }
    if (!is_dir && !S_ISREG(st.st_mode)) { errno = EISDIR; die("cannot mount a file on %s in the container: it is not a regular file", d->path); }
    if (fs.f_type == PROC_SUPER_MAGIC || fs.f_type == SYSFS_MAGIC || fs.f_type == CGROUP_SUPER_MAGIC || fs.f_type == CGROUP2_SUPER_MAGIC) {
        errno = EPERM;
        die("cannot mount a disk on %s in the container: it is on /proc or /sys", d->path);
    }
    return fd;
}

/*
 * Makes each disk's detached copy of its source tree, in the host's mount namespace (open_tree
 * clones only mounts of the caller's own, so before any path of the container is in reach):
 * private, nosuid, nodev, read-only if asked, and with shift idmapped through userns (-1: a privileged
 * container, a plain bind). A file system that cannot be idmapped is an error, never a silent
 * unshifted mount.
 */
static void prepare_disks(struct plan *p, int userns)
{
    for (int i = 0; i < p->ndisks; i++) {
        struct disk *d = &p->disks[i];
        struct stat st;
        int source = open(d->source, O_PATH | O_CLOEXEC);
        if (source < 0 || fstat(source, &st) < 0) die("cannot open the disk source %s", d->source);
        d->is_dir = S_ISDIR(st.st_mode);
        d->tree = clone_tree(source, "", AT_RECURSIVE | AT_EMPTY_PATH, d->source);
        close(source);
        struct mount_attr attr = { .attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (d->readonly ? MOUNT_ATTR_RDONLY : 0) };
        if (syscall(SYS_mount_setattr, d->tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0)
            die("cannot set the mount flags of the disk source %s", d->source);
        struct mount_attr idmap = { .attr_set = MOUNT_ATTR_IDMAP, .userns_fd = userns };
        if (d->shift && userns >= 0 && syscall(SYS_mount_setattr, d->tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &idmap, sizeof idmap) < 0)
            die("cannot shift the ids of the disk source %s (its file system may not support idmapped mounts; shift=false binds it unshifted)", d->source);
    }
}

/* Mounts each prepared disk at its path below root. */
static void attach_disks(const struct plan *p, int root)
{
    for (int i = 0; i < p->ndisks; i++) {
        const struct disk *d = &p->disks[i];
        as_container_root(p, 1);
        int target = disk_target(root, d, d->is_dir);
        as_container_root(p, 0);
        if (syscall(SYS_move_mount, d->tree, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
            die("cannot move_mount %s to %s in the container", d->source, d->path);
        close(target);
        close(d->tree);
    }
}

/*
 * Unmounts the disk at path below root. What is no longer a mount point (the container
 * unmounted it) is gone already. A disk mounted at start is locked into the container.
 */
static void detach_disk(int root, const char *path)
{
    char parent[4096];
    const char *name = split_path(path, parent, sizeof parent);
    int dir = open_in(root, parent, O_PATH | O_DIRECTORY);
    if (dir < 0 && errno == ENOENT) return;
    if (dir < 0) die("cannot open %s in the container", parent);
    struct statx stx;
    int rc = statx(dir, name, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &stx);
    if (rc < 0 && errno != ENOENT) die("cannot stat %s in the container", path);
    if (rc < 0 || !(stx.stx_attributes_mask & stx.stx_attributes & STATX_ATTR_MOUNT_ROOT)) {
        close(dir);
        return;
    }
    if (fchdir(dir) < 0) die("cannot chdir to %s in the container", parent);
    if (umount2(name, MNT_DETACH | UMOUNT_NOFOLLOW) < 0) {
        if (errno == EINVAL) die("cannot unmount the disk at %s (mounted at start, it is locked into the container until it stops)", path);
        die("cannot unmount the disk at %s", path);
    }
    close(dir);
}

/* The user namespace of the container's init (fd 4), checked to be its own after the open. */
static int init_userns(void)
{
    char path[64];
    int fd = -1;
    for (int pass = 0; pass < 2; pass++) {
        FILE *f = fopen("/proc/self/fdinfo/4", "re");
        int pid = -1;
        char line[256];
        while (f && fgets(line, sizeof line, f)) sscanf(line, "Pid: %d", &pid);
        if (f) fclose(f);
        if (pid <= 0) { errno = ESRCH; die("cannot find the container's init"); }
        if (pass == 1) return fd;
        snprintf(path, sizeof path, "/proc/%d/ns/user", pid);
        if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) die("cannot open %s", path);
    }
    return fd;
}

/* Unplugs and plugs disks in a running container, in its mount namespace, as the host's root. */
static int change_disks(struct plan *p)
{
    int userns = p->userns ? init_userns() : -1;
    prepare_disks(p, userns);
    if (userns >= 0) close(userns);
    if (setns(4, CLONE_NEWNS) < 0) die("cannot join container mount namespace");
    int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) die("cannot open the container root");
    for (int i = 0; i < p->nundisks; i++) detach_disk(root, p->undisks[i]);
    attach_disks(p, root);
    close(root);
    return 0;
}

static int create(struct plan *p)
{
    if (p->nargs == 0) { errno = EINVAL; die("plan has no command"); }
    int go[2], done[2];
    if (pipe2(go, O_CLOEXEC) < 0 || pipe2(done, O_CLOEXEC) < 0) die("cannot create pipe");
    int cgroup_fd = join_cgroups(p);
    /* No CLONE_NEWCGROUP here: a new cgroup namespace is rooted at the parent's cgroup, not at
     * the CLONE_INTO_CGROUP target. The child makes one once it is in place. With locked masks
     * the other namespaces belong to the inner user namespace (make_inner_namespaces); nesting
     * keeps one user namespace, whose root may mount procfs for the containers it runs. */
    int locked = p->userns && !p->nesting;
    pid_t child = clone_into(cgroup_fd, CLONE_NEWNS | CLONE_NEWPID | (p->userns ? CLONE_NEWUSER : 0) |
                                            (locked ? 0 : CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET));
    if (child < 0) die("cannot clone3 container init");

    if (child == 0) {
        if (cgroup_fd >= 0) close(cgroup_fd);
        close(go[1]);
        close(done[0]);
        fail_fd = done[1];
        wait_byte(go[0]);
        int inner = -1;
        if (locked) inner = make_inner_namespaces(p);
        else if (unshare(CLONE_NEWCGROUP) < 0) die("cannot unshare cgroup namespace");
        if (write(done[1], "r", 1) != 1) die("cannot report the namespaces ready");
        wait_byte(go[0]);
        /* Reach the rootfs as host root: the daemon's run directory is closed to the container's ids. */
        if (chdir(p->target) < 0) die("cannot chdir %s", p->target);
        int lxcfs[MAX_LIST];
        clone_lxcfs(p, lxcfs);
        if (p->userns) become_user(p);
        links_up(p);
        mount_api_filesystems(p);
        attach_lxcfs(p, lxcfs);
        /* The disks go on top of the API file systems (so /dev and /run can hold one), before the masks are locked. */
        if (p->ndisks > 0) {
            if (write(done[1], "m", 1) != 1) die("cannot report the rootfs ready for disks");
            wait_byte(go[0]);
        }
        close(go[0]);
        int console = clone_console(p);
        if (syscall(SYS_pivot_root, ".", ".") < 0) die("cannot pivot_root %s", p->target);
        if (umount2(".", MNT_DETACH) < 0) die("cannot detach old root");
        if (chdir("/") < 0) die("cannot chdir /");
        enter_inner_namespaces(inner);
        attach_console_tree(console);
        if (p->ownconsole) make_own_console(1);
        if (sethostname(p->hostname, strlen(p->hostname)) < 0)
            die("cannot set hostname %s", p->hostname);
        drop_caps(p);
        if (setsid() < 0) die("cannot setsid");
        /* criu restores a terminal whose master is outside the tree for the session it controls. */
        if (p->ownconsole && ioctl(0, TIOCSCTTY, 0) < 0) die("cannot make the console init's controlling terminal");
        umask(022);
        reset_signals();
        if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0) die("cannot close_range");
        load_seccomp(p);
        exec_command(p);
    }

    pending_child = child;
    close(go[0]);
    close(done[1]);
    if (cgroup_fd >= 0) close(cgroup_fd);
    if (p->userns) write_id_maps(p, child);
    /* First go: the child makes its namespaces and says "r" once its network namespace is final. */
    if (write(go[1], "g", 1) != 1) die("cannot signal container init");
    char c;
    ssize_t n;
    while ((n = read(done[0], &c, 1)) < 0 && errno == EINTR) {}
    if (n != 1 || c != 'r') {
        waitpid(child, NULL, 0);
        return 125;
    }
    if (p->netsync) reply("child %d", child);
    char path[64];
    if (p->ndisks > 0) {
        int userns = -1;
        snprintf(path, sizeof path, "/proc/%d/ns/user", child);
        if (p->userns && (userns = open(path, O_RDONLY | O_CLOEXEC)) < 0) die("cannot open %s", path);
        prepare_disks(p, userns);
        if (userns >= 0) close(userns);
    }
    snprintf(path, sizeof path, "/proc/%d/ns/mnt", child);
    int mntns = open(path, O_RDONLY | O_CLOEXEC);
    if (mntns < 0 || setns(mntns, CLONE_NEWNS) < 0) die("cannot join mount namespace %s", path);
    close(mntns);
    mount_rootfs(p, child);
    if (p->netsync) wait_for_network();
    if (write(go[1], "g", 1) != 1) die("cannot signal container init");
    if (p->ndisks > 0) {
        while ((n = read(done[0], &c, 1)) < 0 && errno == EINTR) {}
        if (n != 1 || c != 'm') {
            waitpid(child, NULL, 0);
            return 125;
        }
        int root = open(p->target, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (root < 0) die("cannot open %s", p->target);
        attach_disks(p, root);
        close(root);
        if (write(go[1], "g", 1) != 1) die("cannot signal container init");
    }
    close(go[1]);

    /* done[1] closes on the child's successful exec; a byte means it failed and said why. */
    while ((n = read(done[0], &c, 1)) < 0 && errno == EINTR) {}
    if (n != 0) {
        waitpid(child, NULL, 0);
        return 125;
    }
    pending_child = 0;
    reply("pid %d", child);
    return 0;
}

/* Opens a path of the container as the container's processes would see it (open_in its root). */
static int open_in_container(const char *path, int flags)
{
    int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) return -1;
    int fd = open_in(root, path, flags);
    int err = errno;
    close(root);
    errno = err;
    return fd;
}

/* Enters the working directory, resolved inside the container, and checks that it is inside. */
static int enter_cwd(const char *path)
{
    int fd = open_in_container(path, O_PATH | O_DIRECTORY);
    if (fd < 0) return -1;
    int rc = fchdir(fd);
    close(fd);
    if (rc < 0) return -1;
    char buf[4096];
    /* The kernel's getcwd prefixes "(unreachable)" to a directory outside the process's root. */
    if (syscall(SYS_getcwd, buf, sizeof buf) < 0) return -1;
    if (buf[0] != '/') { errno = EXDEV; return -1; }
    return 0;
}

/*
 * Makes a terminal in the container's own devpts (so tty(1), sudo and the like find it) and
 * makes it the controlling terminal on 0-2; the master goes to the daemon.
 */
static void attach_terminal(const struct plan *p)
{
    char slave[64];
    int master = open_in_container("/dev/ptmx", O_RDWR | O_NOCTTY);
    if (master < 0) die("cannot open /dev/ptmx in the container");
    if (unlockpt(master) < 0 || ptsname_r(master, slave, sizeof slave) != 0)
        die("cannot set up a terminal in the container");
    struct winsize ws = { .ws_row = p->rows ? p->rows : 24, .ws_col = p->cols ? p->cols : 80 };
    ioctl(master, TIOCSWINSZ, &ws);
    int tty = open_in_container(slave, O_RDWR);
    if (tty < 0) die("cannot open %s", slave);
    if (ioctl(tty, TIOCSCTTY, 0) < 0) die("cannot set controlling terminal");
    for (int fd = 0; fd < 3; fd++)
        if (dup2(tty, fd) < 0) die("cannot dup terminal");
    send_fd("tty", master);
    close(master);
}

/*
 * The mount, pid, uts, ipc and net namespaces are joined here, as host root (the kernel allows
 * it whichever of the container's user namespaces owns them), which may clone
 * into the container's cgroup2 directory (the container's root could not: the common ancestor
 * cgroup is not delegated to it). The cgroup namespace waits for the child: with nsdelegate
 * the kernel refuses a clone into a cgroup outside the caller's cgroup namespace root. The
 * child drops the host fds, then enters the user and cgroup namespaces.
 */
static int exec_in(struct plan *p)
{
    if (p->nargs == 0) { errno = EINVAL; die("plan has no command"); }
    const int pidfd = 4;
    int cgroup_fd = join_cgroups(p);
    if (setns(pidfd, CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET) < 0)
        die("cannot join container namespaces");

    pid_t child = clone_into(cgroup_fd, 0);
    if (child < 0) die("cannot clone3 into %s", p->cgroup2 ? p->cgroup2 : "the container");
    if (child == 0) {
        if (cgroup_fd >= 0) close(cgroup_fd);
        if (setns(pidfd, CLONE_NEWCGROUP | (p->userns ? CLONE_NEWUSER : 0)) < 0)
            die("cannot join container %snamespaces", p->userns ? "user and cgroup " : "cgroup ");
        close(pidfd);
        /* Seccomp goes on while the process is still root: a non-root one may load it only with no_new_privs. */
        drop_caps(p);
        load_seccomp(p);
        become_user(p);
        shed_root(p);
        if (setsid() < 0) die("cannot setsid");
        if (p->pty) attach_terminal(p);
        /* A home directory the image lacks is no reason to fail; an explicit one is. */
        if (enter_cwd(p->cwd) < 0 && !(p->home && enter_cwd("/") == 0)) die("cannot chdir %s", p->cwd);
        reset_signals();
        if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0) die("cannot close_range");
        exec_command(p);
    }
    close(pidfd);
    if (cgroup_fd >= 0) close(cgroup_fd);
    close(0);
    close(1);
    close(2);
    reply("pid %d", child);
    int status;
    while (waitpid(child, &status, 0) < 0)
        if (errno != EINTR) die("cannot wait for %d", child);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

/*
 * The daemon that held a container's console master is gone (restart), so the old pty is hung
 * up for good. A fresh slave is cloned here, in the host mount namespace where its devpts is
 * visible, then moved over /dev/console inside the container.
 */
static int attach_console(struct plan *p)
{
    const int pidfd = 4;
    if (p->ownconsole) {
        /* As the container's root in its own user namespace, so the new pty is the container's. */
        if (setns(pidfd, CLONE_NEWNS | (p->userns ? CLONE_NEWUSER : 0)) < 0) die("cannot join container mount namespace");
        if (p->userns) become_user(p);
        if (umount2("/dev/console", MNT_DETACH) < 0 && errno != EINVAL) die("cannot unmount /dev/console");
        make_own_console(0);
        return 0;
    }
    if (!p->console) { errno = EINVAL; die("plan has no console"); }
    int tree = clone_tree(AT_FDCWD, p->console, 0, p->console);
    if (setns(pidfd, CLONE_NEWNS) < 0) die("cannot join container mount namespace");
    /* The old bind sits on the freed pty's deleted inode, which cannot be mounted over. */
    if (umount2("/dev/console", MNT_DETACH) < 0 && errno != EINVAL) die("cannot unmount /dev/console");
    if (syscall(SYS_move_mount, tree, "", AT_FDCWD, "/dev/console", MOVE_MOUNT_F_EMPTY_PATH) < 0)
        die("cannot move_mount %s to /dev/console", p->console);
    return 0;
}

/*
 * A user namespace with the plan's id maps, for an idmapped mount outside any container: a child
 * unshares it and waits, sc-init writes the maps and opens it, then the child is killed.
 */
static int userns_of_maps(const struct plan *p)
{
    int ready[2];
    if (pipe2(ready, O_CLOEXEC) < 0) die("cannot make a pipe");
    pid_t child = fork();
    if (child < 0) die("cannot fork a user namespace holder");
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        char ok = unshare(CLONE_NEWUSER) == 0;
        if (write(ready[1], &ok, 1) < 0) _exit(1);
        for (;;) pause();
    }
    pending_child = child;
    close(ready[1]);
    char ok = 0;
    if (read(ready[0], &ok, 1) != 1 || !ok) { errno = EPERM; die("cannot unshare a user namespace for the id map"); }
    close(ready[0]);
    write_id_maps(p, child);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/user", child);
    int userns = open(path, O_RDONLY | O_CLOEXEC);
    if (userns < 0) die("cannot open %s", path);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    pending_child = 0;
    return userns;
}

/*
 * Mounts a stopped container's rootfs as create's mount_rootfs does, in a private mount namespace
 * of sc-init's own, and sends the daemon a detached clone of it: it is reachable only through that
 * fd and goes away when the fd is closed; the attached mounts die with this namespace.
 */
static int mount_detached_rootfs(const struct plan *p)
{
    if (!p->target) { errno = EINVAL; die("plan has no target line"); }
    if (unshare(CLONE_NEWNS) < 0) die("cannot unshare a mount namespace");
    do_mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
    int userns = has_idmapped_root(p) ? userns_of_maps(p) : -1;
    ensure_dir(p->target, 0700);
    mount_roots(p, userns);
    if (userns >= 0) close(userns);
    int mnt = clone_tree(AT_FDCWD, p->target, 0, p->target);
    struct mount_attr attr = { .attr_set = MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID };
    if (syscall(SYS_mount_setattr, mnt, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0)
        die("cannot make the rootfs at %s nodev,nosuid", p->target);
    send_fd("root", mnt);
    return 0;
}

int main(int argc, char **argv)
{
    if (fcntl(report_fd, F_SETFD, FD_CLOEXEC) < 0) {
        fprintf(stderr, "sc-init: fd 3 must be the daemon's plan socket\n");
        return 125;
    }
    if (argc != 2) { errno = EINVAL; die("usage: sc-init create|exec|console|disk|rootfs"); }
    /* Nothing but the fds the daemon passed may reach a process that resolves container paths. */
    int passed = !strcmp(argv[1], "create") ? 4 : 5;
    if (syscall(SYS_close_range, passed, ~0U, 0) < 0) die("cannot close_range");
    struct plan p;
    parse_plan(read_all(report_fd), &p);
    if (!strcmp(argv[1], "create")) return create(&p);
    if (!strcmp(argv[1], "exec")) return exec_in(&p);
    if (!strcmp(argv[1], "console")) return attach_console(&p);
    if (!strcmp(argv[1], "disk")) return change_disks(&p);
    if (!strcmp(argv[1], "rootfs")) return mount_detached_rootfs(&p);
    errno = EINVAL;
    die("unknown mode %s", argv[1]);
}
