"""The web pages, served by the same FastAPI service as the API: sign-in, the merchant's
till, the member's wallet, administration, audit and the public directory of merchants.

Server-rendered (Jinja2), in French with an English switch, made for a phone screen, with a
little JavaScript (the till's wait for payment, QR scanning). Pages call the same Python
services the HTTP routes call, in-process, never the API over the network.

Modules: `session` (the sign-in cookie, and why it holds what it holds), `csrf`, `i18n`
(the catalogue), `rendering` (templates, `Page`, `WebRoute`: errors as pages), `forms`
(posted fields checked, amounts parsed the French way), `ledger_views` (history lines,
operation ids), `static_files`, one module per area (`sign_in`, `wallet`, `till`, `admin`,
`auditor`, `directory`), and `routes`, which gathers them for `rollon.api.app.ROUTERS`.
"""
