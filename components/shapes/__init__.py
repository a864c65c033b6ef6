"""The Kubernetes objects we emit, one module per kind: apiVersion, kind and field names.

Core kinds are pulumi-kubernetes typed dicts (`…ArgsDict`, snake_case keys the SDK turns
into the API's camelCase), so strict mypy checks every field name; CRD kinds type their
spec in their own module, camelCase as the CRD spells it. Keep each dict literal shallow
(build nested parts as typed locals or helpers): the SDK's fields are unions
(`Input[Optional[…]]`), and mypy's inference over deeply nested literals in union context
turns a single misspelt key into minutes and gigabytes instead of one clear error.

A CRD or API change is a one-file change, and the manifest tests validate what these
functions render. Behaviour (what to declare, when) lives in the components, not here.
"""
