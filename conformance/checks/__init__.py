"""The checks, one module per stage, registered when `registry.all_checks()` imports them:
`loading` (handshake, health, manifest, capabilities, config), `hooks` (the request pipeline),
`services` (data collection, endpoints, object hooks, Service API scopes) and `ending`
(shutdown, restart, stdin EOF, cookie: they end the plugin's life, so they run last)."""

STAGES = ("loading", "hooks", "services", "ending")
