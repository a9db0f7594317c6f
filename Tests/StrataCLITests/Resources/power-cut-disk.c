/*
 * power-cut-disk IMAGE MOUNTPOINT: a disk with a volatile write cache that can lose power, for
 * crash-consistency tests on kernels without device-mapper (dm-flakey, dm-log-writes).
 *
 * It mounts a FUSE filesystem holding two files. MOUNTPOINT/disk is the disk, as big as IMAGE: attach
 * a loop device to it. The loop driver writes the filesystem's blocks to it (FUSE WRITE: write-through,
 * since writeback caching is not enabled here) and turns the filesystem's flushes and FUA writes into
 * an fsync of it (FUSE FSYNC). Writes are kept in memory until the next FSYNC, which makes them
 * durable: it writes them into IMAGE. Reads see both.
 *
 * MOUNTPOINT/control: writing "cut" to it cuts the power. Every write not yet flushed is dropped, and
 * from then on every write is acknowledged and discarded (as dm-flakey's drop_writes does), so the
 * filesystem above runs on, unaware, until it is torn down. IMAGE then holds exactly what a disk would
 * hold after losing power. Reading it gives counters: "writes W fsyncs F pending P dropped D cut C".
 *
 * Single-threaded (-s): requests are handled one at a time, so no locking.
 */
#define FUSE_USE_VERSION 31
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE 4096
#define DISK 1
#define CONTROL 2

static int image = -1;              /* the durable contents */
static off_t size;
static unsigned char **pending;     /* per page: its contents written since the last FSYNC, or NULL */
static size_t pages;
static int cut;
static unsigned long writes, fsyncs, dropped;

static size_t pendingCount(void) {
    size_t count = 0;
    for (size_t page = 0; page < pages; page++) count += pending[page] != NULL;
    return count;
}

static void dropPending(void) {
    for (size_t page = 0; page < pages; page++) { free(pending[page]); pending[page] = NULL; }
}

static int whole(ssize_t done, size_t wanted) { return done == (ssize_t)wanted ? 0 : -EIO; }

static int disk_getattr(const char *path, struct stat *st, struct fuse_file_info *fi) {
    (void)fi;
    memset(st, 0, sizeof *st);
    if (strcmp(path, "/") == 0) { st->st_mode = S_IFDIR | 0755; st->st_nlink = 2; return 0; }
    st->st_nlink = 1;
    if (strcmp(path, "/disk") == 0) { st->st_mode = S_IFREG | 0600; st->st_size = size; return 0; }
    if (strcmp(path, "/control") == 0) { st->st_mode = S_IFREG | 0600; return 0; }
    return -ENOENT;
}

static int disk_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t offset, struct fuse_file_info *fi,
                        enum fuse_readdir_flags flags) {
    (void)offset; (void)fi; (void)flags;
    if (strcmp(path, "/") != 0) return -ENOENT;
    const char *names[] = {".", "..", "disk", "control"};
    for (int i = 0; i < 4; i++) fill(buf, names[i], NULL, 0, 0);
    return 0;
}

static int disk_open(const char *path, struct fuse_file_info *fi) {
    if (strcmp(path, "/disk") == 0) fi->fh = DISK;
    else if (strcmp(path, "/control") == 0) fi->fh = CONTROL;
    else return -ENOENT;
    /* No page cache: every read asks this process, so after the cut a read shows what the disk holds. */
    fi->direct_io = 1;
    return 0;
}

static int disk_read(const char *path, char *buf, size_t length, off_t offset, struct fuse_file_info *fi) {
    (void)path;
    if (fi->fh == CONTROL) {
        char text[160];
        int n = snprintf(text, sizeof text, "writes %lu fsyncs %lu pending %zu dropped %lu cut %d\n",
                         writes, fsyncs, pendingCount(), dropped, cut);
        if (offset >= n) return 0;
        size_t count = (size_t)n - offset < length ? (size_t)n - offset : length;
        memcpy(buf, text + offset, count);
        return (int)count;
    }
    if (offset >= size) return 0;
    if ((off_t)length > size - offset) length = size - offset;
    for (size_t done = 0; done < length;) {
        size_t page = (offset + done) / PAGE, at = (offset + done) % PAGE;
        size_t piece = PAGE - at < length - done ? PAGE - at : length - done;
        if (pending[page]) memcpy(buf + done, pending[page] + at, piece);
        else if (whole(pread(image, buf + done, piece, offset + done), piece)) return -EIO;
        done += piece;
    }
    return (int)length;
}

static int disk_write(const char *path, const char *buf, size_t length, off_t offset, struct fuse_file_info *fi) {
    (void)path;
    if (fi->fh == CONTROL) {
        if (length < 3 || memcmp(buf, "cut", 3) != 0) return -EINVAL;
        cut = 1;
        dropPending();
        return (int)length;
    }
    if (offset < 0 || offset + (off_t)length > size) return -ENOSPC;
    writes++;
    if (cut) { dropped++; return (int)length; }
    for (size_t done = 0; done < length;) {
        size_t page = (offset + done) / PAGE, at = (offset + done) % PAGE;
        size_t piece = PAGE - at < length - done ? PAGE - at : length - done;
        if (!pending[page]) {
            /* A page written in part keeps the rest of what the disk holds. */
            if (!(pending[page] = malloc(PAGE))) return -ENOMEM;
            if (whole(pread(image, pending[page], PAGE, (off_t)page * PAGE), PAGE)) return -EIO;
        }
        memcpy(pending[page] + at, buf + done, piece);
        done += piece;
    }
    return (int)length;
}

/* The flush: what was written reaches the durable image. (The image is not fsynced itself: the power
 * that is cut is this disk's, not the host's.) */
static int disk_fsync(const char *path, int dataOnly, struct fuse_file_info *fi) {
    (void)path; (void)dataOnly;
    if (fi->fh != DISK) return 0;
    fsyncs++;
    for (size_t page = 0; page < pages; page++) {
        if (!pending[page]) continue;
        if (whole(pwrite(image, pending[page], PAGE, (off_t)page * PAGE), PAGE)) return -EIO;
        free(pending[page]);
        pending[page] = NULL;
    }
    return 0;
}

static const struct fuse_operations operations = {
    .getattr = disk_getattr,
    .readdir = disk_readdir,
    .open = disk_open,
    .read = disk_read,
    .write = disk_write,
    .fsync = disk_fsync,
};

int main(int argc, char *argv[]) {
    if (argc != 3) { fprintf(stderr, "usage: %s IMAGE MOUNTPOINT\n", argv[0]); return 2; }
    struct stat st;
    if ((image = open(argv[1], O_RDWR | O_CLOEXEC)) < 0 || fstat(image, &st) != 0) { perror(argv[1]); return 1; }
    if (st.st_size == 0 || st.st_size % PAGE != 0) { fprintf(stderr, "%s: size must be a multiple of %d\n", argv[1], PAGE); return 1; }
    size = st.st_size;
    pages = (size_t)(size / PAGE);
    if (!(pending = calloc(pages, sizeof *pending))) { perror("calloc"); return 1; }
    /* This process serves a block device's writes: memory reclaim must not wait on that device's
     * writeback, which would wait on this process. */
    (void)prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0);  /* where permitted (CAP_SYS_RESOURCE) */
    char *fuseArguments[] = {argv[0], "-f", "-s", "-o", "fsname=power-cut-disk", argv[2], NULL};
    int status = fuse_main(6, fuseArguments, &operations, NULL);
    dropPending();
    free(pending);
    close(image);
    return status;
}
