"""The policy room: which calls may go, for whom, and what they are charged to.

`room.PolicyRoom` is the one interface proxy.forward talks to. Beside it: the allowlist
decision (`allowlist`), the readers that find the models a body names (`model_check`,
`json_scan`, `form_scan`) and the caller interface (`caller`) that identity and budgets
(proxy.identity) plug in by.
"""
