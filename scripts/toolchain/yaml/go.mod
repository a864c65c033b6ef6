// Tools module: pins Pulumi's YAML language host for the e2e suite (served by the Go module
// proxy, built against the Pulumi modules pulumi-yaml itself pins).
module llm-gateway/e2e/yaml

go 1.26.6

require github.com/pulumi/pulumi-yaml v1.25.0
