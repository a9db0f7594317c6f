import Foundation
import GRDB
import StrataStore

/// A provisioned appliance: its LDF is `$STRATA_HOME/appliances/NAME.ldf` (`@TEMPLATE`), its VLFS is NAME.
public struct Appliance: Sendable, Codable, Equatable {
    public var name: String
    public var template: String
    /// Lowercase, colon-separated: the key the boot service looks appliances up by.
    public var mac: String?

    public init(name: String, template: String, mac: String?) {
        self.name = name
        self.template = template
        self.mac = mac
    }
}

/// The appliances of a home, in `$STRATA_HOME/appliances.sqlite`: one row each, the MAC unique and
/// indexed (a boot looks one up by MAC), every change one transaction.
public final class ApplianceRegistry: Sendable {
    public let home: StrataHome
    let database: DatabaseQueue

    public var path: String { home.path + "/appliances.sqlite" }

    public init(home: StrataHome) throws {
        self.home = home
        try makeDirectories(home.path)
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA journal_mode = DELETE; PRAGMA synchronous = FULL")
        }
        configuration.busyMode = .timeout(30)
        do {
            database = try DatabaseQueue(path: home.path + "/appliances.sqlite", configuration: configuration)
            try database.write { db in
                try db.execute(sql: """
                    CREATE TABLE IF NOT EXISTS appliances (
                        name TEXT PRIMARY KEY,
                        template TEXT NOT NULL,
                        mac TEXT UNIQUE
                    );
                    """)
            }
        } catch let error as DatabaseError {
            throw LayerError("\(home.path)/appliances.sqlite: \(error.message ?? error.description)")
        }
    }

    public func ldf(of name: String) -> String { home.path + "/appliances/\(name).ldf" }

    /// `aa:bb:cc:dd:ee:ff` (or with `-`), any case, as the registry keeps it; nil if it is not one.
    public static func normalizedMAC(_ text: String) -> String? {
        let parts = text.lowercased().split(separator: text.contains("-") ? "-" : ":", omittingEmptySubsequences: false)
        guard parts.count == 6, parts.allSatisfy({ $0.count == 2 && $0.allSatisfy(\.isHexDigit) }) else { return nil }
        return parts.joined(separator: ":")
    }

    /// The MAC address of one network interface, normalised; an error naming `what` (`--mac '…'`,
    /// `MAC '…'`) and what is wrong otherwise. A group address (the low bit of the first octet set:
    /// multicast, broadcast) or all zeros never identifies a booting machine.
    public static func interfaceMAC(_ text: String, what: String) throws -> String {
        guard let mac = normalizedMAC(text) else {
            throw LayerError("\(what) '\(text)': not a MAC address (six pairs of hex digits: aa:bb:cc:dd:ee:ff)")
        }
        guard let first = UInt8(mac.prefix(2), radix: 16), first & 1 == 0 else {
            throw LayerError("\(what) '\(text)': a group (multicast or broadcast) address, not one interface's")
        }
        guard mac != "00:00:00:00:00:00" else { throw LayerError("\(what) '\(text)': the all-zero address, not one interface's") }
        return mac
    }

    /// Records appliances in one transaction, after `commitFiles` has written their files: a
    /// duplicate name or MAC refuses them all, and a failure of `commitFiles` records none. The
    /// transaction takes the write lock first, so a concurrent provisioning of the same names waits,
    /// then sees them taken before it writes any file.
    public func add(_ appliances: [Appliance], commitFiles: () throws -> Void) throws {
        try database.writeWithoutTransaction { db in try db.inTransaction(.immediate) {
            for appliance in appliances {
                if let existing = try String.fetchOne(db, sql: "SELECT template FROM appliances WHERE name = ?", arguments: [appliance.name]) {
                    throw LayerError("appliance '\(appliance.name)' exists already (from template '\(existing)')")
                }
                if let mac = appliance.mac, let owner = try String.fetchOne(db, sql: "SELECT name FROM appliances WHERE mac = ?", arguments: [mac]) {
                    throw LayerError("MAC \(mac) is bound to appliance '\(owner)' already")
                }
                try db.execute(sql: "INSERT INTO appliances (name, template, mac) VALUES (?, ?, ?)",
                               arguments: [appliance.name, appliance.template, appliance.mac])
            }
            try commitFiles()
            return .commit
        } }
    }

    /// Binds a MAC address to a provisioned appliance (`strata boot register`), in one transaction:
    /// refuses an unknown appliance, a MAC bound to another one, and an appliance bound to another MAC
    /// (one interface boots it; unregister that first). Binding it again to the same appliance is no
    /// change. `mac` is normalised (``interfaceMAC(_:what:)``).
    public func bind(mac: String, to name: String) throws {
        try database.writeWithoutTransaction { db in try db.inTransaction(.immediate) {
            guard let current = try Row.fetchOne(db, sql: "SELECT mac FROM appliances WHERE name = ?", arguments: [name]) else {
                throw LayerError("no appliance '\(name)' (provision it first: 'strata provision \(name) --template T')")
            }
            if let owner = try String.fetchOne(db, sql: "SELECT name FROM appliances WHERE mac = ?", arguments: [mac]), owner != name {
                throw LayerError("MAC \(mac) is bound to appliance '\(owner)' already (strata boot unregister \(mac))")
            }
            if let bound: String = current["mac"], bound != mac {
                throw LayerError("appliance '\(name)' is bound to MAC \(bound) already (strata boot unregister \(bound))")
            }
            try db.execute(sql: "UPDATE appliances SET mac = ? WHERE name = ?", arguments: [mac, name])
            return .commit
        } }
    }

    /// Unbinds a MAC address (`strata boot unregister`); returns the appliance it was bound to, or
    /// throws naming the MAC when none was. The appliance itself stays.
    @discardableResult
    public func unbind(mac: String) throws -> String {
        try database.writeWithoutTransaction { db in
            var name: String?
            try db.inTransaction(.immediate) {
                name = try String.fetchOne(db, sql: "SELECT name FROM appliances WHERE mac = ?", arguments: [mac])
                try db.execute(sql: "UPDATE appliances SET mac = NULL WHERE mac = ?", arguments: [mac])
                return .commit
            }
            guard let name else { throw LayerError("MAC \(mac) is not bound to any appliance") }
            return name
        }
    }

    public func all() throws -> [Appliance] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT name, template, mac FROM appliances ORDER BY name").map {
                Appliance(name: $0["name"], template: $0["template"], mac: $0["mac"])
            }
        }
    }

    public func appliance(mac: String) throws -> Appliance? {
        guard let mac = Self.normalizedMAC(mac) else { return nil }
        return try database.read { db in
            try Row.fetchOne(db, sql: "SELECT name, template, mac FROM appliances WHERE mac = ?", arguments: [mac]).map {
                Appliance(name: $0["name"], template: $0["template"], mac: $0["mac"])
            }
        }
    }
}
