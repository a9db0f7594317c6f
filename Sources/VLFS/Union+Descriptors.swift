import StrataStore
#if canImport(Glibc)
import Glibc
#endif

/// Descriptors by node, for a mount whose kernel opens regular files itself (`InodeDescriptors`):
/// the daemon opens a file at its first READ or WRITE instead of at OPEN, and a shared file is copied
/// up by the first change that needs it (a write, an allocation, a copy into it) instead of by an open
/// for writing.
extension Union {
    /// Lends the descriptor of `inode` for one request, opening it if it has none: a shared file's blob
    /// (fetched now by a lazy layer, and noted as first opened), or the private file. `writable` (under
    /// the gate) copies a shared file up first and lends the copy.
    public func borrowDescriptor(_ inode: UInt64, writable: Bool) throws(FSError) -> InodeDescriptors.Loan {
        if let loan = descriptors.borrow(inode, writable: writable) { return loan }
        // A revert may drop a private file between resolving and opening it; resolve again then.
        var attempts = 0
        while true {
            attempts += 1
            let (path, resolved) = try resolve(inode: inode)
            switch resolved.top {
            case .shared(let layer, let entry):
                guard entry.kind == .regular else { throw FSError.invalid }
                guard writable else {
                    let blob = try resolved.stack.layers[layer].openBlob(entry)
                    firstOpens.note(path)
                    return descriptors.insert(inode, descriptor: blob, isShared: true, isWritable: false)
                }
                // nil: another change copied it up meanwhile.
                if let copy = try copyUp(path, withData: true, opening: O_RDWR) {
                    return descriptors.insert(inode, descriptor: copy, isShared: false, isWritable: true)
                }
            case .privateFile:
                do {
                    let (file, isWritable) = try openPrivate(path, writable: writable)
                    return descriptors.insert(inode, descriptor: file, isShared: false, isWritable: isWritable)
                } catch let error where error == .notFound && attempts < 3 {
                    continue
                }
            }
        }
    }

    /// A private file opened read-write, so that its slot serves writes too; read-only where only
    /// that works and only reading is asked for.
    private func openPrivate(_ path: String, writable: Bool) throws(FSError) -> (Int32, isWritable: Bool) {
        do {
            return (try privateLayer.open(path, flags: O_RDWR), true)
        } catch let error where !writable && [EACCES, EPERM, EROFS, ETXTBSY].contains(error.code) {
            return (try privateLayer.open(path, flags: O_RDONLY), false)
        }
    }

    /// Keeps the descriptor `create` opened (read-write) as its node's slot: the kernel that opens files
    /// itself sends no RELEASE for it.
    public func keepCreated(_ inode: UInt64, _ file: OpenFile) {
        unregisterOpen(inode, descriptor: file.descriptor)
        _ = descriptors.insert(inode, descriptor: file.descriptor, isShared: false, isWritable: true, lend: false)
    }

    /// Before the name `path` goes (unlink, replaced by rename): a regular file the kernel holds, with no
    /// other name, keeps a descriptor until the kernel forgets its node, as an open file does in POSIX.
    func keepUnlinked(_ path: String, _ resolved: Resolved) {
        guard descriptors.keepsUnlinkedFiles.load(ordering: .relaxed), !resolved.isDirectory, !resolved.isHardLinked,
              let inode = inodes.inode(at: path), inodes.isHeld(inode),
              let attributes = try? attributes(of: resolved, inode: inode), attributes.st_mode & S_IFMT == S_IFREG,
              let loan = try? borrowDescriptor(inode, writable: false) else { return }
        descriptors.pin(inode, attributes: attributes)
        descriptors.giveBack(loan)
    }

    /// After a live update changed `paths`: a shared file being read keeps its old blob, as an open
    /// file does, on its node, which leaves the path to a new node (the kernel's next lookup makes a
    /// new inode). Only a file read since it was last idle long has a slot (`InodeDescriptors`).
    func keepReadBlobs(_ paths: [String], from old: LayerStack) {
        guard descriptors.keepsUnlinkedFiles.load(ordering: .relaxed) else { return }
        for path in paths {
            guard let inode = inodes.inode(at: path), let resolved = try? resolve(path, in: old), case .shared = resolved.top,
                  let attributes = try? attributes(of: resolved, inode: inode), descriptors.pin(inode, attributes: attributes) else { continue }
            renew(inode)
        }
    }
}
