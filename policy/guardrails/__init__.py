"""llm-gateway's CrossGuard rules, one module per concern; `pack` lists them all.

`selectors` imports nothing from pulumi_policy, so the repository's own tests can check
its names against the component's.
"""
