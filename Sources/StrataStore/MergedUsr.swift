/// Debian 12's merged /usr. A Debian 12 system as the installers make it (debootstrap, mmdebstrap with
/// usrmerge) has `/bin`, `/sbin`, `/lib` and `/lib64` as symlinks into `/usr`, while the `.deb` payloads
/// still say `./bin/bash`: dpkg writes through the symlinks. A union of package layers equals such a
/// system only if each layer holds its files where dpkg's writes land, so Debian packages import with
/// their aliased paths mapped into `/usr`, and the symlinks themselves come with `base-files`
/// (see `linkOwner`). One rule for package import and rootfs import keeps the two in step.
///
/// The aliased directories are those usrmerge links on amd64, the architecture Strata builds
/// appliances for: `lib32`, `libx32` and `libo32` stay real directories, as they do on a bookworm
/// system converted by usrmerge where the packages do not ship them.
public enum MergedUsr {
    public static let aliased: Set<String> = ["bin", "sbin", "lib", "lib64"]

    /// The layer that carries the symlinks: `base-files` is `Essential` and `Priority: required`, so it
    /// is in every Debian composition (Strata always includes the base), unlike `usr-is-merged`, which is
    /// optional and an alternative of `usrmerge`. Debian 13's base-files ships these very symlinks.
    /// On bookworm no package owns them, and the generated dpkg database keeps it so (the layer's
    /// file list comes from its archive, not from its tree).
    public static let linkOwner = "base-files"

    /// Where dpkg's write of `path` lands on a merged system: `bin/bash` → `usr/bin/bash`.
    public static func mapped(_ path: [String]) -> [String] {
        guard let first = path.first, aliased.contains(first) else { return path }
        return ["usr"] + path
    }

    /// The symlinks (`bin` → `usr/bin`…) and their target directories, as `linkOwner`'s layer holds them.
    public static func addLinks(to builder: TreeBuilder) throws {
        for name in aliased.sorted() {
            if try !builder.contains(["usr", name]) {
                try builder.add(TreeEntry(name: name, kind: .directory, mode: 0o755), at: ["usr", name])
            }
            try builder.add(TreeEntry(name: name, kind: .symlink, mode: 0o777, target: "usr/" + name), at: [name])
        }
    }
}
