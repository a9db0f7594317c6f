import CSolv
import Foundation

// The one file that speaks libsolv. Everything above it sees Swift values: solvable and dependency
// ids, strings, arrays, and the outcome of a solve. libsolv runs in Debian mode (DISTTYPE_DEB):
// Debian version comparison, Breaks as conflicts, Pre-Depends as prerequisites, `:any` qualifiers.

/// A solvable (one layer unit, or one Debian package) in a `SolvPool`.
struct SolvableID: Hashable, Comparable, Sendable {
    let raw: Int32
    static func < (a: SolvableID, b: SolvableID) -> Bool { a.raw < b.raw }
}

/// A dependency (a name, a versioned name, `a | b`, `name:any`) interned in a `SolvPool`.
struct DependencyID: Hashable, Sendable {
    let raw: Int32
}

/// One request to the solver.
enum SolvJob {
    /// Install one of these units (of one layer).
    case installOne(of: [SolvableID])
    /// Install this unit if that leaves the other jobs solvable (a weak job, dropped on conflict).
    case installIfPossible(SolvableID)
    /// When a choice is left, prefer these units; later favor jobs win over earlier ones.
    case favor([SolvableID])
}

/// Why a rule of an unsolvable problem exists, in libsolv's terms with Swift ids.
enum SolvRule {
    /// Job number (an index into the jobs given to `solve`).
    case job(Int)
    case notInstallable(SolvableID)
    case nothingProvides(SolvableID, DependencyID)
    case requires(SolvableID, DependencyID)
    case selfConflict(SolvableID, DependencyID)
    case conflicts(SolvableID, SolvableID, DependencyID)
    case sameName(SolvableID, SolvableID)
    case other(String)
}

/// A way out of an unsolvable problem: a set of elements to apply together.
enum SolvSolutionElement {
    /// Drop job number (index into the jobs given to `solve`).
    case dropJob(Int)
    case other(String)
}

struct SolvProblem {
    var rules: [SolvRule]
    var solutions: [[SolvSolutionElement]]
}

enum SolvOutcome {
    case solved([SolvableID])
    case unsolvable([SolvProblem])
}

/// A repository inside a `SolvPool`.
struct SolvRepository {
    fileprivate let repo: UnsafeMutablePointer<Repo>
    var solvables: [SolvableID] {
        (repo.pointee.start..<repo.pointee.end).compactMap { id in
            repo.pointee.pool.pointee.solvables[Int(id)].repo == repo ? SolvableID(raw: id) : nil
        }
    }
}

struct SolvError: Error, CustomStringConvertible {
    let description: String
}

/// A libsolv pool in Debian mode for one architecture (plus `all`).
final class SolvPool {
    private let pool: UnsafeMutablePointer<Pool>

    init(architecture: String) {
        pool = pool_create()
        pool_setdisttype(pool, Int32(DISTTYPE_DEB))
        pool_setarch(pool, architecture)
    }

    deinit { pool_free(pool) }

    // MARK: Repositories

    /// Adds a repository from Packages-format text (Debian control stanzas separated by blank lines).
    /// `priority`: higher wins when the same choice is offered by several repositories.
    func addRepository(name: String, priority: Int32, packages: [UInt8]) throws -> SolvRepository {
        let repo = repo_create(pool, name)!
        repo.pointee.priority = priority
        let status = try withReadStream(packages) { repo_add_debpackages(repo, $0, 0) }
        if status != 0 { throw SolvError(description: "\(name): \(String(cString: pool_errstr(pool)))") }
        return SolvRepository(repo: repo)
    }

    /// Adds a repository from a `.solv` image file written from `solvImage(of:)`.
    func addRepository(name: String, priority: Int32, solvFile path: String) throws -> SolvRepository {
        guard let stream = fopen(path, "r") else { throw SolvError(description: "\(path): \(String(cString: strerror(errno)))") }
        defer { fclose(stream) }
        let repo = repo_create(pool, name)!
        repo.pointee.priority = priority
        if repo_add_solv(repo, stream, 0) != 0 {
            let message = String(cString: pool_errstr(pool))
            repo_free(repo, 1)
            throw SolvError(description: "\(path): \(message)")
        }
        return SolvRepository(repo: repo)
    }

    /// The repository as a `.solv` image holding only what resolution reads: descriptions, URLs,
    /// sizes, file locations, source packages and the weak relations (Recommends, Suggests,
    /// Enhances) are left out, which halves the image and its load time.
    func solvImage(of repository: SolvRepository) throws -> [UInt8] {
        var buffer: UnsafeMutablePointer<CChar>?
        var size = 0
        guard let stream = open_memstream(&buffer, &size) else { throw SolvError(description: "open_memstream failed") }
        let status = repo_write_filtered(repository.repo, stream, { repo, key, data in
            let unread: [solv_knownid] = [SOLVABLE_DESCRIPTION, SOLVABLE_SUMMARY, SOLVABLE_URL, SOLVABLE_INSTALLSIZE,
                                          SOLVABLE_MEDIADIR, SOLVABLE_MEDIAFILE, SOLVABLE_MEDIANR, SOLVABLE_SOURCENAME,
                                          SOLVABLE_SOURCEEVR, SOLVABLE_SOURCEARCH, SOLVABLE_RECOMMENDS, SOLVABLE_SUGGESTS,
                                          SOLVABLE_ENHANCES]
            if unread.contains(where: { Id($0.rawValue) == key!.pointee.name }) { return Int32(KEY_STORAGE_DROPPED) }
            return repo_write_stdkeyfilter(repo, key, data)
        }, nil, nil)
        fclose(stream)
        defer { free(buffer) }
        if status != 0 { throw SolvError(description: "repo_write: \(String(cString: pool_errstr(pool)))") }
        return buffer.map { Array(UnsafeRawBufferPointer(start: $0, count: size).bindMemory(to: UInt8.self)) } ?? []
    }

    private func withReadStream(_ bytes: [UInt8], _ body: (UnsafeMutablePointer<FILE>) -> Int32) throws -> Int32 {
        var copy = bytes
        if copy.isEmpty { copy = [0] }
        let count = bytes.count
        return try copy.withUnsafeMutableBytes { buffer in
            guard let stream = fmemopen(buffer.baseAddress, count == 0 ? 1 : count, "r") else {
                throw SolvError(description: "fmemopen failed")
            }
            defer { fclose(stream) }
            if count == 0 { return 0 }
            return body(stream)
        }
    }

    /// Indexes what provides what; call after adding every repository and before any query or solve.
    func prepare() {
        pool_createwhatprovides(pool)
        restrictAnyQualifiers()
    }

    /// Debian's rule for `name:any`: only a Multi-Arch: allowed unit satisfies it. libsolv ignores
    /// the qualifier (its source says so: "need to check for Multi-Arch: allowed"), so the providers
    /// of every dependency carrying it are filtered here, straight into libsolv's provider cache
    /// (`pool_set_whatprovides` would rescan every rel per call). That is safe right after
    /// `pool_createwhatprovides`: no rel containing these (`a | b:any`) has cached providers yet,
    /// and computing a versioned `b:any (>= 1)` reads the plain name `b`, not the cached `b:any`.
    private func restrictAnyQualifiers() {
        let allowed = pool_str2id(pool, "allowed", 0)
        var restricted: Set<Int32> = []
        for index in 1..<Int(pool.pointee.nrels) {
            let rel = pool.pointee.rels[index]
            let id = Int32(bitPattern: 0x8000_0000 | UInt32(index))
            let isAny = rel.flags == Int32(REL_MULTIARCH) && rel.evr == Id(ARCH_ANY.rawValue)
            let versionsAny = rel.flags > 0 && rel.flags < 8 && restricted.contains(rel.name)
            guard isAny || versionsAny else { continue }
            restricted.insert(id)
            var providers = Queue()
            queue_init(&providers)
            defer { queue_free(&providers) }
            var pointer = pool_whatprovides_ptr(pool, id)!
            while pointer.pointee != 0 {
                let solvable = pool_id2solvable(pool, pointer.pointee)!
                if allowed != 0 && solvable_lookup_id(solvable, Id(SOLVABLE_MULTIARCH.rawValue)) == allowed {
                    queue_push(&providers, pointer.pointee)
                }
                pointer += 1
            }
            pool.pointee.whatprovides_rel[index] = Offset(pool_queuetowhatprovides(pool, &providers))
        }
    }

    // MARK: Solvables and dependencies

    private func solvable(_ id: SolvableID) -> UnsafeMutablePointer<Solvable> { pool_id2solvable(pool, id.raw)! }

    func name(_ id: SolvableID) -> String { String(cString: pool_id2str(pool, solvable(id).pointee.name)) }
    func version(_ id: SolvableID) -> String { String(cString: pool_id2str(pool, solvable(id).pointee.evr)) }
    func architecture(_ id: SolvableID) -> String { String(cString: pool_id2str(pool, solvable(id).pointee.arch)) }
    func repositoryName(_ id: SolvableID) -> String { String(cString: solvable(id).pointee.repo.pointee.name) }

    /// The interned name, for cheap comparisons.
    func nameID(_ id: SolvableID) -> Int32 { solvable(id).pointee.name }

    /// The SHA-256 of the package file the index names, as lowercase hex.
    func sha256(_ id: SolvableID) -> String? {
        var type: Id = 0
        guard let sum = solvable_lookup_checksum(solvable(id), Id(SOLVABLE_CHECKSUM.rawValue), &type),
              type == Id(REPOKEY_TYPE_SHA256.rawValue) else { return nil }
        return String(cString: sum)
    }

    /// Whether libsolv may install the unit at all (its architecture fits the pool's).
    func isInstallable(_ id: SolvableID) -> Bool { pool_installable(pool, solvable(id)) != 0 }

    /// Depends and Pre-Depends, in field order; `preDepends` tells which.
    func requirements(_ id: SolvableID) -> [(dependency: DependencyID, preDepends: Bool)] {
        let s = solvable(id).pointee
        guard s.requires != 0 else { return [] }
        var result: [(DependencyID, Bool)] = []
        var pointer = s.repo.pointee.idarraydata + Int(s.requires)
        var pre = false
        while pointer.pointee != 0 {
            if pointer.pointee == Id(SOLVABLE_PREREQMARKER.rawValue) {
                pre = true
            } else {
                result.append((DependencyID(raw: pointer.pointee), pre))
            }
            pointer += 1
        }
        return result
    }

    /// The alternatives of `a | b | c` in field order; a single dependency is its own alternative.
    func alternatives(_ dependency: DependencyID) -> [DependencyID] {
        var result: [DependencyID] = []
        var id = dependency.raw
        while let rel = reldep(id), rel.flags == Int32(REL_OR) {
            result.append(DependencyID(raw: rel.name))
            id = rel.evr
        }
        result.append(DependencyID(raw: id))
        return result
    }

    /// The name a dependency is about (`foo` for `foo:any (>= 1)`), interned.
    func targetNameID(_ dependency: DependencyID) -> Int32 {
        var id = dependency.raw
        while let rel = reldep(id) { id = rel.name }
        return id
    }

    func targetName(_ dependency: DependencyID) -> String { String(cString: pool_id2str(pool, targetNameID(dependency))) }

    /// Whether the dependency names a version (`foo (>= 1)`).
    func isVersioned(_ dependency: DependencyID) -> Bool {
        guard let rel = reldep(dependency.raw) else { return false }
        return rel.flags > 0 && rel.flags < 8
    }

    /// The dependency as a Debian control file writes it: `a (>= 1) | b:any`.
    func describe(_ dependency: DependencyID) -> String {
        guard let rel = reldep(dependency.raw) else { return String(cString: pool_id2str(pool, dependency.raw)) }
        let name = describe(DependencyID(raw: rel.name))
        switch rel.flags {
        case Int32(REL_OR): return name + " | " + describe(DependencyID(raw: rel.evr))
        case Int32(REL_MULTIARCH): return name + ":" + String(cString: pool_id2str(pool, rel.evr))
        default:
            let operators: [Int32: String] = [1: ">>", 2: "=", 3: ">=", 4: "<<", 6: "<="]
            guard let op = operators[rel.flags] else { return String(cString: pool_dep2str(pool, dependency.raw)) }
            return "\(name) (\(op) \(String(cString: pool_id2str(pool, rel.evr))))"
        }
    }

    /// Every unit that satisfies the dependency (for `a | b`, those of any alternative).
    func providers(_ dependency: DependencyID) -> [SolvableID] {
        var result: [SolvableID] = []
        var pointer = pool_whatprovides_ptr(pool, dependency.raw)!
        while pointer.pointee != 0 {
            result.append(SolvableID(raw: pointer.pointee))
            pointer += 1
        }
        return result
    }

    /// Every unit named `name`, whatever repository.
    func units(named name: String) -> [SolvableID] {
        let id = pool_str2id(pool, name, 0)
        guard id != 0 else { return [] }
        return providers(DependencyID(raw: id)).filter { solvable($0).pointee.name == id }
    }

    /// `flags`: positive versions compare as Debian versions.
    func compareVersions(_ a: SolvableID, _ b: SolvableID) -> Int32 {
        pool_evrcmp(pool, solvable(a).pointee.evr, solvable(b).pointee.evr, Int32(EVRCMP_COMPARE))
    }

    func priority(_ id: SolvableID) -> Int32 { solvable(id).pointee.repo.pointee.priority }

    private func reldep(_ id: Int32) -> Reldep? {
        let bits = UInt32(bitPattern: id)
        guard bits & 0x8000_0000 != 0 else { return nil }
        return pool.pointee.rels[Int(bits ^ 0x8000_0000)]
    }

    // MARK: Solving

    func solve(_ jobs: [SolvJob]) -> SolvOutcome {
        var queue = Queue()
        queue_init(&queue)
        defer { queue_free(&queue) }
        for job in jobs {
            var members = Queue()
            queue_init(&members)
            defer { queue_free(&members) }
            switch job {
            case .installOne(let units):
                for unit in units { queue_push(&members, unit.raw) }
                queue_push2(&queue, Id(SOLVER_INSTALL | SOLVER_SOLVABLE_ONE_OF), pool_queuetowhatprovides(pool, &members))
            case .installIfPossible(let unit):
                queue_push2(&queue, Id(SOLVER_INSTALL | SOLVER_SOLVABLE | SOLVER_WEAK), unit.raw)
            case .favor(let units):
                for unit in units { queue_push(&members, unit.raw) }
                queue_push2(&queue, Id(SOLVER_FAVOR | SOLVER_SOLVABLE_ONE_OF), pool_queuetowhatprovides(pool, &members))
            }
        }
        let solver = solver_create(pool)!
        defer { solver_free(solver) }
        solver_set_flag(solver, Int32(SOLVER_FLAG_IGNORE_RECOMMENDED), 1)
        if solver_solve(solver, &queue) == 0 {
            var decisions = Queue()
            queue_init(&decisions)
            defer { queue_free(&decisions) }
            solver_get_decisionqueue(solver, &decisions)
            let installed = (0..<Int(decisions.count)).map { decisions.elements[$0] }.filter { $0 > 1 }
            return .solved(installed.map { SolvableID(raw: $0) })
        }
        return .unsolvable(problems(of: solver))
    }

    private func problems(of solver: UnsafeMutablePointer<Solver>) -> [SolvProblem] {
        var result: [SolvProblem] = []
        var problem = solver_next_problem(solver, 0)
        while problem != 0 {
            var rules = Queue()
            queue_init(&rules)
            defer { queue_free(&rules) }
            solver_findallproblemrules(solver, problem, &rules)
            var described: [SolvRule] = []
            for index in 0..<Int(rules.count) {
                var source: Id = 0, target: Id = 0, dependency: Id = 0
                let type = solver_ruleinfo(solver, rules.elements[index], &source, &target, &dependency)
                described.append(rule(type, source, target, dependency, solver: solver))
            }
            var solutions: [[SolvSolutionElement]] = []
            var solution = solver_next_solution(solver, problem, 0)
            while solution != 0 {
                var elements: [SolvSolutionElement] = []
                var p: Id = 0, rp: Id = 0
                var element = solver_next_solutionelement(solver, problem, solution, 0, &p, &rp)
                while element != 0 {
                    if p == SOLVER_SOLUTION_JOB {
                        elements.append(.dropJob(Int(rp) / 2))
                    } else {
                        elements.append(.other(String(cString: solver_solutionelement2str(solver, p, rp))))
                    }
                    element = solver_next_solutionelement(solver, problem, solution, element, &p, &rp)
                }
                solutions.append(elements)
                solution = solver_next_solution(solver, problem, solution)
            }
            result.append(SolvProblem(rules: described, solutions: solutions))
            problem = solver_next_problem(solver, problem)
        }
        return result
    }

    private func rule(_ type: SolverRuleinfo, _ source: Id, _ target: Id, _ dependency: Id, solver: UnsafeMutablePointer<Solver>) -> SolvRule {
        let s = SolvableID(raw: source), t = SolvableID(raw: target), d = DependencyID(raw: dependency)
        switch type {
        case SOLVER_RULE_JOB, SOLVER_RULE_JOB_NOTHING_PROVIDES_DEP, SOLVER_RULE_JOB_UNKNOWN_PACKAGE: return .job(Int(source) / 2)
        case SOLVER_RULE_PKG_NOT_INSTALLABLE: return .notInstallable(s)
        case SOLVER_RULE_PKG_NOTHING_PROVIDES_DEP: return .nothingProvides(s, d)
        case SOLVER_RULE_PKG_REQUIRES: return .requires(s, d)
        case SOLVER_RULE_PKG_SELF_CONFLICT: return .selfConflict(s, d)
        case SOLVER_RULE_PKG_CONFLICTS: return .conflicts(s, t, d)
        case SOLVER_RULE_PKG_SAME_NAME: return .sameName(s, t)
        default: return .other(String(cString: solver_problemruleinfo2str(solver, type, source, target, dependency)))
        }
    }

    /// The units in the order their configuration scripts run: libsolv's transaction order, which
    /// puts prerequisites (Pre-Depends) strictly first and Depends first where cycles allow.
    func installOrder(_ units: [SolvableID]) -> [SolvableID] {
        var decisions = Queue()
        queue_init(&decisions)
        defer { queue_free(&decisions) }
        for unit in units { queue_push(&decisions, unit.raw) }
        let transaction = transaction_create_decisionq(pool, &decisions, nil)!
        defer { transaction_free(transaction) }
        transaction_order(transaction, 0)
        let steps = transaction.pointee.steps
        return (0..<Int(steps.count)).map { SolvableID(raw: steps.elements[$0]) }
    }
}
