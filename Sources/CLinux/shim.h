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
