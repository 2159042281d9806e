import Foundation
import PackagePlugin

/// Compiles a target's `Resources` folder into its code: every file there
/// becomes a string keyed by its path below the folder (`TemplateTexts.files`),
/// so the texts are edited as plain files and the programs need no resource
/// bundle at run time (docs/components.md, "Texts").
@main struct EmbedTemplateTexts: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let folder = target.directoryURL.appending(path: "Resources")
        var inputs: [URL] = []
        if let walker = FileManager.default.enumerator(at: folder, includingPropertiesForKeys: [.isRegularFileKey]) {
            for case let url as URL in walker where (try? url.resourceValues(forKeys: [.isRegularFileKey]))?.isRegularFile == true {
                inputs.append(url)
            }
        }
        let output = context.pluginWorkDirectoryURL.appending(path: "TemplateTexts.swift")
        return [
            .buildCommand(
                displayName: "Embedding the template texts of \(target.name)",
                executable: try context.tool(named: "EmbedTexts").url,
                arguments: [folder.path, output.path],
                inputFiles: inputs,
                outputFiles: [output])
        ]
    }
}
