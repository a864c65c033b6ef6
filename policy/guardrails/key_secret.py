"""The key Secret must survive a rotation: updated in place, never replaced.

A Secret is replaced (deleted, then created) on a data change unless its Kubernetes
provider has `enableSecretMutable`; an `immutable` Secret cannot change at all, so a
rotation has to replace it too. Either way both data planes are briefly without a key.
"""

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from . import selectors


def _is_key_secret(args: ResourceValidationArgs) -> bool:
    return args.resource_type == selectors.SECRET_TYPE and selectors.in_gateway(
        args.urn, args.props
    )


def _check_provider(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not _is_key_secret(args):
        return
    provider = args.provider
    if provider is not None and selectors.is_true(provider.props.get("enableSecretMutable")):
        return
    which = f"provider {provider.name!r}" if provider is not None else "its provider"
    report(
        f"Secret {selectors.object_name(args.props)!r} is managed by {which} without "
        "enableSecretMutable, so a key rotation deletes and recreates it. Give it a "
        "Kubernetes provider built with enableSecretMutable: true (Python: "
        "components.secret_mutable_provider), or let LlmGateway make its own.",
        args.urn,
    )


def _check_mutable(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if _is_key_secret(args) and args.props.get("immutable") is True:
        report(
            f"Secret {selectors.object_name(args.props)!r} sets immutable: true, so a key "
            "rotation must delete and recreate it; drop `immutable`.",
            args.urn,
        )


SECRET_UPDATED_IN_PLACE = ResourceValidationPolicy(
    name="key-secret-updated-in-place",
    description="The key Secret's Kubernetes provider updates Secrets in place "
    "(enableSecretMutable), so a rotation never replaces it.",
    validate=_check_provider,
    enforcement_level=EnforcementLevel.MANDATORY,
)

SECRET_NOT_IMMUTABLE = ResourceValidationPolicy(
    name="key-secret-not-immutable",
    description="The key Secret is not immutable, so a rotation can update it in place.",
    validate=_check_mutable,
    enforcement_level=EnforcementLevel.MANDATORY,
)
