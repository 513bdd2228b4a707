// switchyard: argv → config → Gateway.run → exit code. Nothing else lives here (libevent-notes S4).

internal import ArgumentParser
internal import SwitchyardCore
internal import SwitchyardServer

Switchyard.main()
