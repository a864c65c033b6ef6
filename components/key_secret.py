"""KeySecret: the one Secret holding the provider key, and its public fingerprint."""

import pulumi
import pulumi_kubernetes as k8s

from proxy.fingerprint import key_fingerprint

from .shapes.secret import encode_key, key_secret

COMPONENT_TYPE = "llm-gateway:index:KeySecret"


class KeySecret(pulumi.ComponentResource):
    """Secret `<secret_name>` with key `apiKey`; the value only ever travels as a secret.

    `fingerprint` (first 12 hex of SHA-256) is deliberately *not* secret: it tells an
    operator which key is live, and the proxy reports the same value on /readyz.
    """

    secret_name: pulumi.Output[str]
    fingerprint: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        namespace: pulumi.Input[str],
        secret_name: str,
        key: pulumi.Input[str],
        skip_await: bool = False,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(COMPONENT_TYPE, name, None, opts)
        key_output = pulumi.Output.from_input(key)
        encoded: pulumi.Output[str] = pulumi.Output.secret(key_output.apply(encode_key))
        shape = key_secret(secret_name, namespace, encoded, skip_await=skip_await)
        self.secret = k8s.core.v1.Secret(
            name,
            metadata=shape["metadata"],
            type=shape["type"],
            data=shape["data"],
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.secret_name = self.secret.metadata.apply(lambda meta: meta.name or secret_name)
        self.fingerprint = pulumi.Output.unsecret(key_output).apply(key_fingerprint)
        self.register_outputs({"secretName": self.secret_name, "keyFingerprint": self.fingerprint})
