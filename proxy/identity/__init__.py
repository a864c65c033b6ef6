"""Who is calling: ServiceAccount tokens verified offline, per-app attribution and budgets.

`gate.IdentityGate` plugs into the policy room (proxy.policy) as its caller check:
`admit()` before anything is forwarded (verify, attribute, check limits; the app's own
model list goes with the answer) and `charge()` once the upstream's usage is known.
With LLM_PROXY_IDENTITY_MODE=off (the default) none of it is imported or runs.
"""
