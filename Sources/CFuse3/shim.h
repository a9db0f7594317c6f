// FUSE_USE_VERSION 314 makes fuse_session_loop_mt a real function taking the opaque loop config.
#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

// FUSE passthrough (kernel ABI 7.40): the kernel reads and maps a file straight from a backing file
// the daemon registered. Neither libfuse 3.14 nor the installed kernel headers (7.38) know it, so the
// few pieces it takes are spelled out here.

struct strata_fuse_backing_map {
    int32_t fd;
    uint32_t flags;
    uint64_t padding;
};

/// Registers `backing_fd` with the FUSE connection; returns the backing id, or -1 with errno.
static inline int strata_fuse_backing_open(int session_fd, int backing_fd) {
    struct strata_fuse_backing_map map = { .fd = backing_fd, .flags = 0, .padding = 0 };
    return ioctl(session_fd, _IOW(229, 1, struct strata_fuse_backing_map), &map);
}

static inline int strata_fuse_backing_close(int session_fd, int32_t backing_id) {
    uint32_t id = (uint32_t)backing_id;
    return ioctl(session_fd, _IOW(229, 2, uint32_t), &id);
}

/// The fuse_init_out of libfuse's reply to INIT (`iov` as libfuse writes it: header, then
/// fuse_init_out) if it is a successful one the kernel reads flags2 of (FUSE_INIT_EXT), else NULL.
static inline unsigned char *strata_fuse_init_reply_out(struct iovec *iov, int count) {
    // fuse_out_header: uint32_t len, int32_t error, uint64_t unique.
    int32_t error;
    uint32_t flags;
    if (count < 2 || iov[0].iov_len < 16 || iov[1].iov_len < 40) return NULL;
    memcpy(&error, (const unsigned char *)iov[0].iov_base + 4, 4);
    if (error != 0) return NULL;
    unsigned char *out = (unsigned char *)iov[1].iov_base;
    memcpy(&flags, out + 12, 4);
    return flags & (1u << 30) ? out : NULL;
}

static inline void strata_fuse_init_out_add_flag2(unsigned char *out, unsigned bit) {
    uint32_t flags2;
    memcpy(&flags2, out + 32, 4);
    flags2 |= 1u << (bit - 32);
    memcpy(out + 32, &flags2, 4);
}

/// Adds FUSE_HANDLE_KILLPRIV_V2 to libfuse's reply to INIT and, with `passthrough`, passthrough with
/// a stacking depth of 1: backing files on a plain filesystem, and the mount itself still usable under
/// overlayfs. Returns 1 if it changed the reply.
static inline int strata_fuse_init_reply_adjust(struct iovec *iov, int count, int passthrough) {
    unsigned char *out = strata_fuse_init_reply_out(iov, count);
    uint32_t flags, depth = 1;
    if (out == NULL) return 0;
    memcpy(&flags, out + 12, 4);
    flags |= 1u << 28;                                // FUSE_HANDLE_KILLPRIV_V2
    memcpy(out + 12, &flags, 4);
    if (!passthrough) return 1;
    strata_fuse_init_out_add_flag2(out, 37);          // FUSE_PASSTHROUGH
    memcpy(out + 36, &depth, 4);                      // max_stack_depth
    return 1;
}

/// Asks for FUSE over io_uring (FUSE_OVER_IO_URING, ABI 7.42) in libfuse's reply to INIT if a ring
/// entry's payload of `payload_size` bytes holds what the connection it sets up may send: the kernel
/// sizes it max(8 KiB, max_write, max_pages pages; 32 pages unless FUSE_MAX_PAGES). Returns 1 if it did.
static inline int strata_fuse_init_reply_request_ring(struct iovec *iov, int count, size_t payload_size) {
    unsigned char *out = strata_fuse_init_reply_out(iov, count);
    uint32_t flags, max_write;
    uint16_t max_pages;
    if (out == NULL) return 0;
    memcpy(&flags, out + 12, 4);
    memcpy(&max_write, out + 20, 4);
    memcpy(&max_pages, out + 28, 2);
    size_t pages = (flags & (1u << 22)) && max_pages > 32 ? max_pages : 32;
    if (max_write > payload_size || 8192 > payload_size || pages * (size_t)sysconf(_SC_PAGESIZE) > payload_size) return 0;
    strata_fuse_init_out_add_flag2(out, 41);
    return 1;
}

/// Whether a request as read from /dev/fuse asks the daemon to clear setuid and setgid (under
/// FUSE_HANDLE_KILLPRIV_V2): a WRITE with FUSE_WRITE_KILL_SUIDGID, a SETATTR with FATTR_KILL_SUIDGID,
/// an OPEN with FUSE_OPEN_KILL_SUIDGID. libfuse 3.14 passes none of these on. (CREATE's flag is for
/// truncating a file that exists, which the daemon's CREATE never opens: it creates exclusively.)
static inline int strata_fuse_request_kills_suidgid(const void *request, size_t length) {
    // fuse_in_header (40 bytes): uint32_t len, uint32_t opcode, ...; the operation's arguments follow.
    const unsigned char *bytes = (const unsigned char *)request;
    uint32_t opcode, flags;
    size_t offset;
    uint32_t bit;
    if (length < 40) return 0;
    memcpy(&opcode, bytes + 4, 4);
    switch (opcode) {
    case 16: offset = 40 + 20; bit = 1u << 2; break;   // FUSE_WRITE: fuse_write_in.write_flags
    case 4: offset = 40; bit = 1u << 11; break;        // FUSE_SETATTR: fuse_setattr_in.valid
    case 14: offset = 40 + 4; bit = 1u << 0; break;    // FUSE_OPEN: fuse_open_in.open_flags
    default: return 0;
    }
    if (length < offset + 4) return 0;
    memcpy(&flags, bytes + offset, 4);
    return (flags & bit) != 0;
}

/// Answers OPEN with FOPEN_PASSTHROUGH and a registered backing id (fuse_open_out of ABI 7.40).
static inline int strata_fuse_reply_open_passthrough(fuse_req_t request, uint64_t fh, int32_t backing_id) {
    struct { uint64_t fh; uint32_t open_flags; int32_t backing_id; } out = { fh, 1u << 7, backing_id };
    return fuse_reply_buf(request, (const char *)&out, sizeof out);
}

// Only the custom I/O needs these (glibc declares them behind _GNU_SOURCE).
ssize_t splice(int fd_in, off_t *off_in, int fd_out, off_t *off_out, size_t len, unsigned int flags);

/// Tells the CPU that this thread spins waiting (x86 `pause`, Arm `yield`): the spinning reader of
/// /dev/fuse (`RequestReader`) leaves the core's other thread and the hypervisor some room.
static inline void strata_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}
