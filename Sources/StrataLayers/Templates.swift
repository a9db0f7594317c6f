import Foundation

/// Templates: LDFs recorded in the home (`strata template create`) that any LDF includes by name.
extension StrataHome {
    public var templatesDirectory: String { path + "/templates" }

    public func templateLDF(_ name: String) -> String { templatesDirectory + "/" + name + ".ldf" }

    /// `@NAME` as every verb resolves it: beside the including file first, then among the home's templates.
    public func resolveInclude(_ name: String, from includingFile: URL) -> URL? {
        LDF.defaultIncludeResolver(name: name, from: includingFile, templates: templatesDirectory)
    }

    /// An LDF with its includes followed, templates found in this home.
    public func loadExpanded(_ ldf: String, edited: LDF? = nil) throws -> ExpandedLDF {
        try LDF.loadExpanded(URL(fileURLWithPath: ldf), edited: edited, resolveInclude: resolveInclude)
    }
}

extension StrataHome {
    /// A template's name becomes part of its configuration layer's (`NAME-config`), so it follows layer names' rules.
    public static func checkTemplateName(_ name: String) throws {
        if let problem = layerNameProblem(name) { throw LayerError("invalid template name '\(name)': \(problem)") }
    }

    /// The configuration layer that `strata template promote` makes of a template.
    public static func configLayerName(ofTemplate name: String) -> String { name + "-config" }
}
