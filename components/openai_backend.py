"""OpenAIBackend: the AgentgatewayBackend that injects the key on the gateway side."""

import pulumi

from .custom_resource import declare_custom_resource
from .shapes import agentgateway_backend as shape

COMPONENT_TYPE = "llm-gateway:index:OpenAIBackend"
BACKEND_NAME = "openai"


class OpenAIBackend(pulumi.ComponentResource):
    """AgentgatewayBackend `openai` reading key `apiKey` of the Secret next to it."""

    backend_name: str

    def __init__(
        self,
        name: str,
        *,
        namespace: pulumi.Input[str],
        secret_name: str,
        upstream_url: str,
        model: str | None = None,
        skip_await: bool = False,
        backend_name: str = BACKEND_NAME,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(COMPONENT_TYPE, name, None, opts)
        manifest = shape.agentgateway_backend(
            backend_name,
            namespace,
            secret_name=secret_name,
            upstream_url=upstream_url,
            model=model,
            skip_await=skip_await,
        )
        self.backend_name = backend_name
        self.backend = declare_custom_resource(name, manifest, pulumi.ResourceOptions(parent=self))
        self.register_outputs({"backendName": backend_name})
