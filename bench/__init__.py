"""Benchmark: the proxy vs calling the upstream directly (`python -m bench`)."""
