// Runs a fuzz target: under libFuzzer when built with -DFUZZING, otherwise as a regression replayer over
// the files and folders named in argv (what `make test` does with Tests/Fuzz/FailCases and Corpus).

#if canImport(Glibc)
    import Glibc
#endif

#if FUZZING
    @_silgen_name("LLVMFuzzerRunDriver")
    func LLVMFuzzerRunDriver(
        _ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
    ) -> Int32
#endif

public enum FuzzDriver {
    /// `body` must crash (trap) on a property violation; returning means the input passed.
    public static func main(_ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Never {
        #if FUZZING
            var argc = CommandLine.argc
            var argv = CommandLine.unsafeArgv
            exit(LLVMFuzzerRunDriver(&argc, &argv, callback))
        #else
            var files: [String] = []
            for path in CommandLine.arguments.dropFirst() { files += list(path) }
            for f in files {
                let data = read(f)
                data.withUnsafeBufferPointer { _ = callback($0.baseAddress, $0.count) }
            }
            let line = "replayed \(files.count) inputs: 0 failures\n"
            _ = line.withCString { write(1, $0, strlen($0)) }
            exit(0)
        #endif
    }

    static func list(_ path: String) -> [String] {
        var st = stat()
        guard stat(path, &st) == 0 else { return [] }
        if (st.st_mode & S_IFMT) != S_IFDIR { return [path] }
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var out: [String] = []
        while let e = readdir(dir) {
            let name = withUnsafePointer(to: e.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name.hasPrefix(".") { continue }
            out += list(path + "/" + name)
        }
        return out.sorted()
    }

    static func read(_ path: String) -> [UInt8] {
        guard let f = fopen(path, "rb") else { return [] }
        defer { fclose(f) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&buf, 1, buf.count, f)
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return out
    }
}
