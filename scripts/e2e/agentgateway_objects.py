"""The cluster objects the agentgateway controller's start waits on, read or made with the
project's Kubernetes client.

Usage: python scripts/e2e/agentgateway_objects.py KUBECONFIG namespace NAME
       python scripts/e2e/agentgateway_objects.py KUBECONFIG gatewayclass NAME

`namespace` creates the controller's namespace (an existing one is fine); `gatewayclass`
exits 0 once the controller has created that GatewayClass, 1 while it does not exist.
"""

from __future__ import annotations

import sys

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException


def main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[2] not in ("namespace", "gatewayclass"):
        print(__doc__, file=sys.stderr)
        return 2
    kubeconfig, mode, name = argv[1:]
    api = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    try:
        if mode == "namespace":
            namespace = client.V1Namespace(metadata=client.V1ObjectMeta(name=name))
            client.CoreV1Api(api).create_namespace(namespace)
        else:
            client.CustomObjectsApi(api).get_cluster_custom_object(
                "gateway.networking.k8s.io", "v1", "gatewayclasses", name
            )
    except ApiException as exc:
        if mode == "namespace" and exc.status == 409:
            return 0
        if mode == "gatewayclass" and exc.status == 404:
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
