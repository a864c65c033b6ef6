"""The Kubernetes objects we emit, one module per kind: apiVersion, kind and field names.

Each module turns plain values into the object exactly as the API server sees it
(camelCase, as in the CRDs under ../shared/crds), so a CRD or API change is a one-file
change and the manifest tests can validate what these functions return. Behaviour
(what to declare, when) lives in the components, not here.
"""
