"""llm-proxy: keyless OpenAI-compatible reverse proxy (`python -m proxy`).

Kept import-free on purpose: the Pulumi program imports `proxy.fingerprint`
and must not pull in the server's dependencies.
"""
