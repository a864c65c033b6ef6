"""AIRoute: the design card's route, emitted as the Gateway API HTTPRoute agentgateway reads.

agentgateway has no AIRoute kind; the name stays for our component only.
"""

import pulumi

from .custom_resource import declare_custom_resource
from .shapes import http_route as shape

COMPONENT_TYPE = "llm-gateway:index:AIRoute"


class AIRoute(pulumi.ComponentResource):
    """HTTPRoute `<route_name>`: Gateway listener `http` → AgentgatewayBackend."""

    def __init__(
        self,
        name: str,
        *,
        namespace: pulumi.Input[str],
        route_name: str,
        gateway_name: str,
        backend_name: str,
        path_prefix: str = "/",
        skip_await: bool = False,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(COMPONENT_TYPE, name, None, opts)
        manifest = shape.http_route(
            route_name,
            namespace,
            gateway_name=gateway_name,
            backend_name=backend_name,
            path_prefix=path_prefix,
            skip_await=skip_await,
        )
        self.route = declare_custom_resource(name, manifest, pulumi.ResourceOptions(parent=self))
        self.register_outputs({"routeName": route_name})
