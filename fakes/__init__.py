"""Stand-ins for what the proxy talks to, shared by the tests, the benchmark and the local node.

Outside tests/ on purpose: `make demo` (the node's recording upstream) and `make bench` run
them without the test tree.

- openai_upstream: a fake OpenAI API on loopback, steered per request by a header
- node_upstream: that fake on the local node, recording which key arrived (demo and e2e)
- kube_api: a fake Kubernetes API serving one namespace's Secrets (list and watch)
- kubelet_secret_dir: a Secret volume with the kubelet's atomic swap
- cluster_issuer: a fake service-account token issuer with its JWKS
"""
