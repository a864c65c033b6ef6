"""The Kubernetes provider: Secrets must be mutable, or rotation is delete-then-create.

With default settings pulumi-kubernetes plans a *replace* whenever a Secret's data
changes; for a named Secret that means delete, then create, leaving both data planes
without a key for a moment. `enableSecretMutable` turns that into an in-place update.

A provider's inputs cannot be read back from a `pulumi_kubernetes.Provider` object
(the Python SDK sends them straight to the engine), so LlmGateway cannot inspect a
provider it is handed. It therefore trusts only what it can know:
  * providers made by `secret_mutable_provider()` (flag set by construction);
  * providers the caller vouches for with `mark_secret_mutable()` (they built it
    with `enable_secret_mutable=True` themselves);
  * any provider while PULUMI_K8S_ENABLE_SECRET_MUTABLE is true in the environment
    (the provider falls back to that variable when the argument is unset).
Anything else is refused with SecretMutabilityError, naming the fixes.
"""

import os
import weakref

import pulumi
import pulumi_kubernetes as k8s

FLAG_ENV_VAR = "PULUMI_K8S_ENABLE_SECRET_MUTABLE"
_TRUE_VALUES = {"1", "t", "T", "true", "TRUE", "True"}  # what the provider's own parser takes

_vouched: "weakref.WeakSet[pulumi.ProviderResource]" = weakref.WeakSet()


class SecretMutabilityError(pulumi.RunError):
    """A provider that may replace (delete, then create) the key Secret on rotation."""


def secret_mutable_provider(
    name: str,
    *,
    kubeconfig: pulumi.Input[str] | None = None,
    context: pulumi.Input[str] | None = None,
    opts: pulumi.ResourceOptions | None = None,
) -> k8s.Provider:
    """A Kubernetes provider that updates Secrets in place; kubeconfig/context optional."""
    provider = k8s.Provider(
        name,
        enable_secret_mutable=True,
        kubeconfig=kubeconfig,
        context=context,
        opts=opts,
    )
    _vouched.add(provider)
    return provider


def mark_secret_mutable(provider: k8s.Provider) -> k8s.Provider:
    """Vouch that `provider` was built with enable_secret_mutable=True; returns it."""
    _vouched.add(provider)
    return provider


def check_secret_mutable(provider: pulumi.ProviderResource) -> None:
    """Refuse a provider that is not known to update Secrets in place."""
    if provider in _vouched:
        return
    if os.environ.get(FLAG_ENV_VAR, "") in _TRUE_VALUES:
        pulumi.log.info(
            f"llm-gateway: trusting the passed-in Kubernetes provider because "
            f"{FLAG_ENV_VAR} is set; an explicit enable_secret_mutable=False on it "
            "would still make key rotation delete and recreate the Secret."
        )
        return
    raise SecretMutabilityError(
        "the Kubernetes provider passed to LlmGateway is not known to have "
        "enable_secret_mutable=True, so a key rotation would delete and recreate the "
        "Secret (both data planes briefly without a key). Build it with "
        "components.secret_mutable_provider(...), or build "
        "pulumi_kubernetes.Provider(..., enable_secret_mutable=True) and pass it through "
        f"components.mark_secret_mutable(provider), or set {FLAG_ENV_VAR}=true."
    )
