// Linux calls that Swift's Glibc module leaves out (they sit behind _GNU_SOURCE or in sys/xattr.h).
#include <sys/types.h>
#include <sys/xattr.h>
#include <spawn.h>

int syncfs(int fd);
ssize_t copy_file_range(int fd_in, off_t *off_in, int fd_out, off_t *off_out, size_t len, unsigned int flags);
int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags);
int fallocate(int fd, int mode, off_t offset, off_t len);
int sync_file_range(int fd, off_t offset, off_t nbytes, unsigned int flags);
#include <sys/vfs.h>
#include <sys/sysmacros.h>
static inline unsigned int strata_major(dev_t device) { return major(device); }
static inline unsigned int strata_minor(dev_t device) { return minor(device); }
static inline dev_t strata_makedev(unsigned int major, unsigned int minor) { return makedev(major, minor); }
#include <spawn.h>
int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *actions, int from);

// Reaching files beneath a directory descriptor (openat2, Linux >= 5.6), and the flags the Glibc
// module hides behind _GNU_SOURCE.
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#define STRATA_O_PATH 010000000
#define STRATA_O_TMPFILE (020000000 | 0200000)
#define STRATA_AT_EMPTY_PATH 0x1000
#define STRATA_RENAME_NOREPLACE 1

/// openat2 with the resolve flags given; -1 and errno on failure.
static inline int strata_openat2(int dirfd, const char *path, int flags, unsigned int mode, unsigned long long resolve) {
    struct open_how how = { .flags = (unsigned long long)(unsigned int)flags, .mode = mode, .resolve = resolve };
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

// Hands freed heap memory back to the system (malloc.h is not in the Glibc module).
int malloc_trim(size_t pad);

// The answer to getsockopt(SO_PEERCRED), which <sys/socket.h> declares only under _GNU_SOURCE.
struct ucred {
    pid_t pid;
    uid_t uid;
    gid_t gid;
};

// Extended attributes of a name in a directory, never following a final symlink (Linux >= 6.13,
// whose numbers these are on every architecture); -1 with errno ENOSYS on older kernels.
struct strata_xattr_args { unsigned long long value; unsigned int size; unsigned int flags; };

static inline long strata_listxattrat(int dirfd, const char *path, char *list, size_t size) {
    return syscall(465, dirfd, path, AT_SYMLINK_NOFOLLOW, list, size);
}

static inline long strata_getxattrat(int dirfd, const char *path, const char *name, void *value, size_t size) {
    struct strata_xattr_args args = { .value = (unsigned long long)(unsigned long)value, .size = (unsigned int)size, .flags = 0 };
    return syscall(464, dirfd, path, AT_SYMLINK_NOFOLLOW, name, &args, sizeof args);
}

static inline int strata_setxattrat(int dirfd, const char *path, const char *name, const void *value, size_t size, int flags) {
    struct strata_xattr_args args = { .value = (unsigned long long)(unsigned long)value, .size = (unsigned int)size, .flags = (unsigned int)flags };
    return (int)syscall(463, dirfd, path, AT_SYMLINK_NOFOLLOW, name, &args, sizeof args);
}

static inline int strata_removexattrat(int dirfd, const char *path, const char *name) {
    return (int)syscall(466, dirfd, path, AT_SYMLINK_NOFOLLOW, name);
}

// A sandbox for configuration scripts: new namespaces, and a bounding set without the capabilities
// that reach past the VLFS (mounting, modules, raw I/O, tracing, rebooting, chroot escapes…).
#include <errno.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <linux/capability.h>

#define STRATA_CLONE_NEWNS 0x00020000
#define STRATA_CLONE_NEWUTS 0x04000000
#define STRATA_CLONE_NEWIPC 0x08000000
#define STRATA_CLONE_NEWPID 0x20000000
#define STRATA_CLONE_NEWNET 0x40000000

int unshare(int flags);
int chroot(const char *path);
int sethostname(const char *name, size_t len);

/// Drops each capability of `caps` from the bounding set and from the effective, permitted and
/// inheritable sets; 0, or -1 with errno.
static inline int strata_drop_capabilities(const int *caps, int count) {
    struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &header, data) != 0) return -1;
    for (int i = 0; i < count; i++) {
        if (prctl(PR_CAPBSET_DROP, caps[i], 0, 0, 0) != 0) return -1;
        unsigned int word = (unsigned int)caps[i] / 32, bit = 1u << ((unsigned int)caps[i] % 32);
        data[word].effective &= ~bit;
        data[word].permitted &= ~bit;
        data[word].inheritable &= ~bit;
    }
    return (int)syscall(SYS_capset, &header, data);
}

// The new mount API (Linux >= 5.2): a filesystem is configured and mounted as a descriptor, filled
// through that descriptor, and attached at a directory given as a descriptor too, so no path the
// appliance controls is ever resolved by the kernel's mount(2).
#define STRATA_MOUNT_ATTR_RDONLY 0x1
#define STRATA_MOUNT_ATTR_NOSUID 0x2
#define STRATA_MOUNT_ATTR_NODEV 0x4
#define STRATA_MOUNT_ATTR_NOEXEC 0x8

/// A detached mount of a new `type` filesystem with string options (a NULL value sets a flag), as a
/// descriptor; -1 with errno.
static inline int strata_new_mount(const char *type, const char *const *keys, const char *const *values, int count, unsigned int attributes) {
    int context = (int)syscall(430 /* fsopen */, type, 1 /* FSOPEN_CLOEXEC */);
    if (context < 0) return -1;
    for (int i = 0; i < count; i++) {
        long set = values[i] ? syscall(431, context, 1 /* FSCONFIG_SET_STRING */, keys[i], values[i], 0)
                             : syscall(431, context, 0 /* FSCONFIG_SET_FLAG */, keys[i], NULL, 0);
        if (set != 0) { int saved = errno; close(context); errno = saved; return -1; }
    }
    if (syscall(431, context, 6 /* FSCONFIG_CMD_CREATE */, NULL, NULL, 0) != 0) { int saved = errno; close(context); errno = saved; return -1; }
    int mount = (int)syscall(432 /* fsmount */, context, 1 /* FSMOUNT_CLOEXEC */, attributes);
    int saved = errno;
    close(context);
    errno = saved;
    return mount;
}

/// A detached copy of the mount tree at `path` (a bind mount), as a descriptor; -1 with errno.
static inline int strata_clone_mount(const char *path) {
    return (int)syscall(428 /* open_tree */, AT_FDCWD, path, 1 /* OPEN_TREE_CLONE */ | 02000000 /* O_CLOEXEC */ | 0x8000 /* AT_RECURSIVE */);
}

/// Attaches a detached mount at the directory `target` refers to; 0, or -1 with errno.
static inline int strata_attach_mount(int mount, int target) {
    return (int)syscall(429 /* move_mount */, mount, "", target, "", 0x4 /* F_EMPTY_PATH */ | 0x40 /* T_EMPTY_PATH */);
}

/// Makes every mount in this namespace private, so nothing done here propagates back to the host.
static inline int strata_make_mounts_private(void) {
    return mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
}

// Makes the directory open as the working directory this namespace's root, and detaches every other
// mount of it (pivot_root(2)'s ".", "." idiom: the old root lands on top of the new one, then goes).
static inline int strata_enter_root_alone(void) {
    if (syscall(SYS_pivot_root, ".", ".") != 0) return -1;
    return umount2(".", MNT_DETACH);
}

// Taking the machine down (the network-boot keeper's last step, once the disk is unmounted).
#include <sys/reboot.h>
static inline int strata_power_off(void) { return reboot(RB_POWER_OFF); }
static inline int strata_restart(void) { return reboot(RB_AUTOBOOT); }
