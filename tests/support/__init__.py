"""Helpers more than one test module needs; no tests here.

A suite (tests/unit, tests/proxy, ...) imports from tests/ only itself and this package, and
no module imports a test module (tests/unit/test_import_boundaries.py checks both). The fakes
of what the proxy talks to are in fakes/, beside tests/, because the bench and the local node
run them too.
"""
