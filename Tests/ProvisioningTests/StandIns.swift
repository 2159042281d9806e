import Foundation
import Glibc

/// Writes each `name: body` as an executable `#!/bin/sh` script in `folder`, for tests that run a
/// script with stand-ins for the programs it calls first on PATH.
func writeStandIns(_ scripts: [String: String], in folder: String) throws {
    for (name, body) in scripts {
        try "#!/bin/sh\n\(body)\n".write(toFile: folder + "/" + name, atomically: true, encoding: .utf8)
        chmod(folder + "/" + name, 0o755)
    }
}
