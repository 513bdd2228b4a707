// switchyard: argv → config → Gateway.run → exit code. Nothing else lives here (libevent-notes S4).

internal import ArgumentParser
internal import SwitchyardCore
internal import SwitchyardServer
internal import SwitchyardIO

#if canImport(Glibc)
    internal import Glibc
#endif

// Inside a freshly spawned child: arm the parent-death signal, then exec the real server.
if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == ChildLauncher.verb {
    ChildLauncher.exec(CommandLine.arguments)
}
// `demo-server` turns this binary into the bundled stdio MCP server (the default child).
if CommandLine.arguments.count == 2 && CommandLine.arguments[1] == "demo-server" {
    exit(DemoServer.run())
}
// `hash-key` prints the sha256 of a secret read from stdin, for `auth.keys[].sha256`.
if CommandLine.arguments.count == 2 && CommandLine.arguments[1] == "hash-key" {
    exit(HashKey.run())
}
Switchyard.main()
