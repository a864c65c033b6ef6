"""llm-gateway as a Pulumi component package: LlmGateway for any Pulumi language."""
