import Foundation
import HTTPTypes
import Hummingbird
import NIOPosix
import StrataStore
#if canImport(Glibc)
import Glibc
#endif

/// A directory whose regular files are served, held open (O_PATH) from when it was added: every file
/// is reached beneath this descriptor, so neither a `..` nor a symbolic link (anywhere in the path)
/// nor a mount point leads out of it.
final class ServedDirectory: Sendable {
    let path: String
    let contentType: String
    private let descriptor: Int32

    init(_ path: String, contentType: String) throws {
        let fd = Glibc.open(path, O_DIRECTORY | Beneath.pathOnly | O_CLOEXEC)
        guard fd >= 0 else { throw ServerError("\(path): \(String(cString: strerror(errno)))") }
        self.path = path
        self.contentType = contentType
        descriptor = fd
    }

    deinit { close(descriptor) }

    /// The regular file at `relative`, open for reading; nil for anything else, or nothing.
    func open(_ relative: String) -> OpenFile? {
        guard !relative.isEmpty, let opened = try? Beneath.openChecked(descriptor, relative, path: path + "/" + relative,
                                                                      accept: { ($0.st_mode & S_IFMT) == S_IFREG }) else { return nil }
        return OpenFile(fd: opened.fd, status: opened.status)
    }

    func response(to request: Request, file relative: String, rateLimit: Int) -> Response {
        guard let file = open(relative) else { return .refusal(.notFound) }
        return file.response(to: request, contentType: contentType, rateLimit: rateLimit)
    }
}

/// One file served at a route: its name, looked up in its directory on every request.
struct ServedFile: Sendable {
    let directory: ServedDirectory
    let name: String

    init(_ path: String, contentType: String) throws {
        guard let resolved = realpath(path, nil) else { throw ServerError("\(path): \(String(cString: strerror(errno)))") }
        let real = String(cString: resolved)
        free(resolved)
        let (parent, name) = Beneath.split(real)
        directory = try ServedDirectory(parent.isEmpty ? "/" : parent, contentType: contentType)
        self.name = name
        guard directory.open(name) != nil else { throw ServerError("\(path): not a regular file") }
    }

    func response(to request: Request, rateLimit: Int) -> Response {
        directory.response(to: request, file: name, rateLimit: rateLimit)
    }
}

/// A regular file open for reading, closed when the last response reading it is done.
final class OpenFile: Sendable {
    let fd: Int32
    let size: Int64
    /// Changes whenever the file's content may have: its modification time and size.
    let etag: String

    init(fd: Int32, status: stat) {
        self.fd = fd
        size = Int64(status.st_size)
        etag = "\"\(String(status.st_mtim.tv_sec, radix: 16))\(String(status.st_mtim.tv_nsec, radix: 16))-\(String(size, radix: 16))\""
    }

    deinit { close(fd) }

    /// The body is read in chunks of this size (or a tenth of a second's worth under a rate limit).
    static let chunkSize = 256 * 1024

    /// The answer to a GET or HEAD of this file: 304 when `If-None-Match` names it, 206 for a
    /// single satisfiable range (unless `If-Range` names another version), 416 for a range past
    /// its end, else 200 with the whole file.
    func response(to request: Request, contentType: String, rateLimit: Int) -> Response {
        var headers: HTTPFields = [.eTag: etag, .acceptRanges: "bytes", .contentType: contentType]
        if let match = request.headers[.ifNoneMatch], match == etag || match == "*" {
            headers[.contentLength] = String(size)
            return Response(status: .notModified, headers: headers)
        }
        var range = 0..<size
        var status = HTTPResponse.Status.ok
        if let asked = request.headers[.range], request.headers[.ifRange].map({ $0 == etag }) ?? true {
            switch ByteRange.parse(asked, size: size) {
            case .whole:
                break
            case .unsatisfiable:
                return .refusal(.rangeNotSatisfiable, headers: [.contentRange: "bytes */\(size)"])
            case .part(let part):
                range = part
                status = .partialContent
                headers[.contentRange] = "bytes \(part.lowerBound)-\(part.upperBound - 1)/\(size)"
            }
        }
        return Response(status: status, headers: headers, body: ResponseBody(contentLength: Int(range.count)) { [self, range] writer in
            try await send(range, to: &writer, rateLimit: rateLimit)
            try await writer.finish(nil)
        })
    }

    /// Streams `range` of the file, read on NIO's blocking-I/O thread pool a chunk at a time, paced
    /// to `rateLimit` bytes per second if it is not 0.
    private func send(_ range: Range<Int64>, to writer: inout any ResponseBodyWriter, rateLimit: Int) async throws {
        let started = ContinuousClock.now
        let chunk = rateLimit > 0 ? max(rateLimit / 10, 1) : Self.chunkSize
        var offset = range.lowerBound
        while offset < range.upperBound {
            let length = Int(min(Int64(chunk), range.upperBound - offset))
            let buffer = try await NIOThreadPool.singleton.runIfActive { [self, offset] in try read(length, at: offset) }
            try await writer.write(buffer)
            offset += Int64(length)
            if rateLimit > 0 {
                try await Task.sleep(until: started + .milliseconds((offset - range.lowerBound) * 1000 / Int64(rateLimit)))
            }
        }
    }

    /// `length` bytes at `offset`; an error if the file ends sooner (it was truncated while served).
    private func read(_ length: Int, at offset: Int64) throws -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: length)
        while buffer.readableBytes < length {
            let done = Int64(buffer.readableBytes)
            var n = 0
            var failure: Int32 = 0
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length - Int(done)) { space in
                n = pread(fd, space.baseAddress, length - Int(done), off_t(offset + done))
                if n < 0 { failure = errno }
                return max(n, 0)
            }
            if failure == EINTR { continue }
            guard n > 0 else { throw ServerError("read at \(offset + done): \(n < 0 ? String(cString: strerror(failure)) : "the file was truncated")") }
        }
        return buffer
    }
}
