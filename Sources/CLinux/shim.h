// Linux calls that Swift's Glibc module leaves out (they sit behind _GNU_SOURCE or in sys/xattr.h).
#include <sys/types.h>
#include <sys/xattr.h>
#include <spawn.h>

int syncfs(int fd);
ssize_t copy_file_range(int fd_in, off_t *off_in, int fd_out, off_t *off_out, size_t len, unsigned int flags);
int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags);
int fallocate(int fd, int mode, off_t offset, off_t len);
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
