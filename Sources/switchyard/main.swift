// switchyard: argv → config → Gateway.run → exit code. Nothing else lives here (libevent-notes S4).

internal import ArgumentParser
internal import SwitchyardCore
internal import SwitchyardServer

#if canImport(Glibc)
    internal import Glibc
#endif

// `demo-server` turns this binary into the bundled stdio MCP server (the default child).
if CommandLine.arguments.count == 2 && CommandLine.arguments[1] == "demo-server" {
    exit(DemoServer.run())
}
Switchyard.main()
