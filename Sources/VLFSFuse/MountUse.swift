/// What a FUSE mount is for, which decides who may use it and what the kernel lets its files do.
public enum MountUse: Sendable {
    /// An appliance's root filesystem, mounted by root: every user works in it, its setuid programs
    /// (`su`, `sudo`, `passwd`, `ping`) run with their owners' rights and its device nodes open —
    /// libfuse would otherwise mount it nosuid,nodev.
    case appliance
    /// Looking at an image or at evidence: read-only, nothing in it runs setuid or opens a device.
    /// Without `everyone`, only the user who mounted it gets in (no allow_other), since an image's
    /// access list may name only some users.
    case inspection(everyone: Bool)

    /// The mount options that say so.
    var options: String {
        switch self {
        case .appliance: "allow_other,suid,dev"
        case .inspection(let everyone): "ro,nosuid,nodev" + (everyone ? ",allow_other" : "")
        }
    }
}
