"""rbac.authorization.k8s.io/v1 Role: the proxy may read its one Secret and nothing else.

`get`, `list` and `watch` on `secrets`, limited by `resourceNames` to the key Secret. A
list or watch passes that check only when it selects the Secret by name
(`fieldSelector=metadata.name=<secret>`), which is how the proxy's watch asks
(proxy/secret_watch.py); any other Secret in the namespace stays forbidden.
"""

import pulumi
import pulumi_kubernetes as k8s

from .meta import object_meta

VERBS = ["get", "list", "watch"]


def role(
    name: str, namespace: pulumi.Input[str], *, secret_name: str, component: str, skip_await: bool
) -> k8s.rbac.v1.RoleArgsDict:
    """Read access to Secret `secret_name` alone."""
    rule: k8s.rbac.v1.PolicyRuleArgsDict = {
        "api_groups": [""],
        "resources": ["secrets"],
        "resource_names": [secret_name],
        "verbs": VERBS,
    }
    return {
        "metadata": object_meta(name, namespace, component=component, skip_await=skip_await),
        "rules": [rule],
    }
