"""Who is calling: ServiceAccount tokens verified offline, per-app attribution and budgets.

`gate.IdentityGate` is the one object the request path talks to: `admit()` before
anything is forwarded (verify, attribute, check limits) and `charge()` once the
upstream's usage is known. With LLM_PROXY_IDENTITY_MODE=off (the default) none of it
is imported or runs.
"""
