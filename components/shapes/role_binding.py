"""rbac.authorization.k8s.io/v1 RoleBinding: the proxy's ServiceAccount gets its Role."""

import pulumi
import pulumi_kubernetes as k8s

from .meta import object_meta


def role_binding(
    name: str,
    namespace: pulumi.Input[str],
    *,
    role_name: str,
    service_account: str,
    component: str,
    skip_await: bool,
) -> k8s.rbac.v1.RoleBindingArgsDict:
    """Binds Role `role_name` to ServiceAccount `service_account`, both in `namespace`."""
    subject: k8s.rbac.v1.SubjectArgsDict = {
        "kind": "ServiceAccount",
        "name": service_account,
        "namespace": namespace,
    }
    return {
        "metadata": object_meta(name, namespace, component=component, skip_await=skip_await),
        "role_ref": {"api_group": "rbac.authorization.k8s.io", "kind": "Role", "name": role_name},
        "subjects": [subject],
    }
