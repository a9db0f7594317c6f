#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

// FUSE over io_uring (kernel ABI 7.42, Linux 6.14): the daemon hands the kernel, per queue (one per
// possible CPU), entries of two buffers each; the kernel fills an entry with a request and completes
// the entry's command; the daemon writes the reply into the same buffers and commits it with a command
// that also fetches the next request. Neither libfuse 3.14 nor the installed kernel headers (6.1) know
// it, so its few pieces are spelled out here; the rest of the project sees `strata_fuse_ring_entry`
// as an opaque pointer.

enum { STRATA_FUSE_URING_REGISTER = 1, STRATA_FUSE_URING_COMMIT_AND_FETCH = 2 };

struct strata_fuse_uring_ent_in_out {
    uint64_t flags;
    uint64_t commit_id;     // the request's unique: what its commit names
    uint32_t payload_sz;    // bytes in the payload buffer, in either direction
    uint32_t padding;
    uint64_t reserved;
};

// The header buffer: fuse_in_header (request) or fuse_out_header (reply), then the opcode's own
// header (the request's first argument), then the entry's bookkeeping.
struct strata_fuse_uring_req_header {
    unsigned char in_out[128];
    unsigned char op_in[128];
    struct strata_fuse_uring_ent_in_out ring_ent_in_out;
};

// The command, in the second half of a 128-byte SQE.
struct strata_fuse_uring_cmd_req {
    uint64_t flags;
    uint64_t commit_id;
    uint16_t qid;
    uint8_t padding[6];
};

// fuse_in_header is 40 bytes, fuse_out_header 16. A request is rebuilt contiguous, as /dev/fuse hands
// it to libfuse, just before the payload: the scratch in front of it holds the two headers.
#define STRATA_FUSE_IN_HEADER 40
#define STRATA_FUSE_OUT_HEADER 16
#define STRATA_FUSE_RING_SCRATCH 256

struct strata_fuse_ring_entry {
    struct io_uring ring;                       // this entry's alone: one thread submits on it
    struct strata_fuse_uring_req_header header;
    struct iovec buffers[2];                    // header, payload: what REGISTER hands the kernel
    unsigned char *area;                        // scratch, then payload
    size_t payload_size;
    int fuse_fd;
    uint16_t qid;
};

/// An entry for queue `qid` with a payload buffer of `payload_size` bytes, its io_uring created
/// disabled: `strata_fuse_ring_entry_enable` on the thread that will use it. NULL with errno on failure.
static inline struct strata_fuse_ring_entry *strata_fuse_ring_entry_create(int fuse_fd, uint16_t qid, size_t payload_size) {
    struct strata_fuse_ring_entry *entry = calloc(1, sizeof *entry);
    if (entry == NULL) return NULL;
    void *area = mmap(NULL, STRATA_FUSE_RING_SCRATCH + payload_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (area == MAP_FAILED) { free(entry); return NULL; }
    unsigned flags = IORING_SETUP_SQE128 | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED;
    int result = io_uring_queue_init(2, &entry->ring, flags);
    if (result < 0) { munmap(area, STRATA_FUSE_RING_SCRATCH + payload_size); free(entry); errno = -result; return NULL; }
    entry->area = area;
    entry->payload_size = payload_size;
    entry->buffers[0] = (struct iovec){ &entry->header, sizeof entry->header };
    entry->buffers[1] = (struct iovec){ entry->area + STRATA_FUSE_RING_SCRATCH, payload_size };
    entry->fuse_fd = fuse_fd;
    entry->qid = qid;
    return entry;
}

static inline void strata_fuse_ring_entry_destroy(struct strata_fuse_ring_entry *entry) {
    io_uring_queue_exit(&entry->ring);
    munmap(entry->area, STRATA_FUSE_RING_SCRATCH + entry->payload_size);
    free(entry);
}

/// Binds the entry's io_uring to the calling thread (the only one that may submit on it), keeps the
/// thread on the queue's CPU (whose tasks' requests the queue carries, so that a request is handed over
/// on the CPU where its caller now waits), and blocks signals there, which the session's own threads
/// handle. 0 or -errno.
static inline int strata_fuse_ring_entry_enable(struct strata_fuse_ring_entry *entry) {
    sigset_t all;
    unsigned long cpus[16] = { 0 };
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    if (entry->qid < 16 * 64) {
        cpus[entry->qid / 64] = 1ul << (entry->qid % 64);
        syscall(SYS_sched_setaffinity, 0, sizeof cpus, cpus);   // best effort: the CPU may be offline
    }
    // liburing 2.3 declares io_uring_enable_rings but does not export it.
    return syscall(SYS_io_uring_register, entry->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0) < 0 ? -errno : 0;
}

/// Submits REGISTER or COMMIT_AND_FETCH (of the reply in the buffers to request `commit_id`) and
/// waits for the entry's command to complete: 0 when the buffers hold the next request, or -errno.
static inline int strata_fuse_ring_entry_send(struct strata_fuse_ring_entry *entry, uint32_t command, uint64_t commit_id) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&entry->ring);
    if (sqe == NULL) return -EBUSY;
    memset(sqe, 0, 128);
    sqe->opcode = IORING_OP_URING_CMD;
    sqe->fd = entry->fuse_fd;
    sqe->cmd_op = command;
    sqe->addr = (uint64_t)(uintptr_t)entry->buffers;
    sqe->len = 2;
    struct strata_fuse_uring_cmd_req *request = (struct strata_fuse_uring_cmd_req *)sqe->cmd;
    request->commit_id = commit_id;
    request->qid = entry->qid;
    int result = io_uring_submit(&entry->ring);
    if (result < 0) return result;
    struct io_uring_cqe *cqe;
    do { result = io_uring_wait_cqe(&entry->ring, &cqe); } while (result == -EINTR);
    if (result < 0) return result;
    result = cqe->res;
    io_uring_cqe_seen(&entry->ring, cqe);
    return result;
}

/// The request the kernel put in the entry, rebuilt contiguous in place (the headers copied in front
/// of the payload, which stays where it is), or NULL if its sizes do not add up.
static inline void *strata_fuse_ring_entry_request(struct strata_fuse_ring_entry *entry, size_t *length) {
    uint32_t total;
    memcpy(&total, entry->header.in_out, 4);   // fuse_in_header.len: both headers and the payload
    uint64_t payload = entry->header.ring_ent_in_out.payload_sz;
    if (total < STRATA_FUSE_IN_HEADER + payload || payload > entry->payload_size) return NULL;
    size_t operation = total - STRATA_FUSE_IN_HEADER - payload;
    if (operation > sizeof entry->header.op_in) return NULL;
    unsigned char *start = (unsigned char *)entry->buffers[1].iov_base - operation - STRATA_FUSE_IN_HEADER;
    memcpy(start, entry->header.in_out, STRATA_FUSE_IN_HEADER);
    memcpy(start + STRATA_FUSE_IN_HEADER, entry->header.op_in, operation);
    *length = total;
    return start;
}

static inline uint64_t strata_fuse_ring_entry_commit_id(const struct strata_fuse_ring_entry *entry) {
    return entry->header.ring_ent_in_out.commit_id;
}

/// The unique of the request a reply (fuse_out_header first) answers; 0 for a notification.
static inline uint64_t strata_fuse_reply_unique(const void *out_header) {
    uint64_t unique;
    memcpy(&unique, (const unsigned char *)out_header + 8, 8);
    return unique;
}

static inline void strata_fuse_ring_entry_reply_error(struct strata_fuse_ring_entry *entry, int error) {
    int32_t negative = -error;
    uint64_t unique = entry->header.ring_ent_in_out.commit_id;
    uint32_t length = STRATA_FUSE_OUT_HEADER;
    memcpy(entry->header.in_out, &length, 4);
    memcpy(entry->header.in_out + 4, &negative, 4);
    memcpy(entry->header.in_out + 8, &unique, 8);
    entry->header.ring_ent_in_out.payload_sz = 0;
}

/// Takes a reply as libfuse writes it to /dev/fuse (fuse_out_header, then the arguments) into the
/// entry: header to the header buffer, arguments to the payload buffer. Returns its length, as writev.
static inline ssize_t strata_fuse_ring_entry_take_reply(struct strata_fuse_ring_entry *entry, const struct iovec *iov, int count) {
    size_t total = 0, copied = 0;
    for (int index = 0; index < count; index++) total += iov[index].iov_len;
    if (count < 1 || iov[0].iov_len < STRATA_FUSE_OUT_HEADER) { errno = EINVAL; return -1; }
    if (total - STRATA_FUSE_OUT_HEADER > entry->payload_size) {
        strata_fuse_ring_entry_reply_error(entry, EIO);
        return (ssize_t)total;
    }
    memcpy(entry->header.in_out, iov[0].iov_base, STRATA_FUSE_OUT_HEADER);
    unsigned char *payload = entry->buffers[1].iov_base;
    for (int index = 0; index < count; index++) {
        size_t skip = index == 0 ? STRATA_FUSE_OUT_HEADER : 0;
        memcpy(payload + copied, (const unsigned char *)iov[index].iov_base + skip, iov[index].iov_len - skip);
        copied += iov[index].iov_len - skip;
    }
    entry->header.ring_ent_in_out.payload_sz = (uint32_t)copied;
    return (ssize_t)total;
}

/// Reads exactly `length` bytes from `fd` (a pipe); 0, or -1 with errno (EIO if it ends early).
static inline int strata_read_fully(int fd, void *buffer, size_t length) {
    size_t done = 0;
    while (done < length) {
        ssize_t got = read(fd, (unsigned char *)buffer + done, length - done);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) { if (got == 0) errno = EIO; return -1; }
        done += (size_t)got;
    }
    return 0;
}

/// Takes the rest of a spliced reply (its fuse_out_header `out_header` already read from `pipe`, then
/// `length` bytes of arguments) into the entry. Returns the reply's length, as splice, or -1 with errno.
static inline ssize_t strata_fuse_ring_entry_take_spliced_reply(struct strata_fuse_ring_entry *entry, const void *out_header, int pipe, size_t length) {
    if (length > entry->payload_size) { errno = EIO; return -1; }
    if (strata_read_fully(pipe, entry->buffers[1].iov_base, length) != 0) return -1;
    memcpy(entry->header.in_out, out_header, STRATA_FUSE_OUT_HEADER);
    entry->header.ring_ent_in_out.payload_sz = (uint32_t)length;
    return (ssize_t)(STRATA_FUSE_OUT_HEADER + length);
}

/// Writes a spliced reply that no entry waits for to /dev/fuse in one write, as the kernel wants it.
static inline ssize_t strata_fuse_forward_spliced_reply(const void *out_header, int pipe, size_t length, int device) {
    unsigned char *rest = malloc(length ? length : 1);
    if (rest == NULL) return -1;
    ssize_t result = -1;
    if (strata_read_fully(pipe, rest, length) == 0) {
        struct iovec iov[2] = { { (void *)out_header, STRATA_FUSE_OUT_HEADER }, { rest, length } };
        result = writev(device, iov, 2);
    }
    free(rest);
    return result;
}
