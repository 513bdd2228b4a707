// Fuzz target: the config loader (YAML/JSON text → validated config or one-line error). Property: no
// crash, and every error is a single line naming a path or the file.

import FuzzSupport
import SwitchyardCore
import SwitchyardServer

FuzzDriver.main { data, size in
    let text = String(decoding: UnsafeRawBufferPointer(start: data, count: size), as: UTF8.self)
    do throws(ConfigError) {
        _ = try ConfigFile.parse(text: text, name: "fuzz.yaml", baseDir: "/tmp")
    } catch {
        precondition(!error.description.contains("\n"), "multi-line config error")
    }
    return 0
}
