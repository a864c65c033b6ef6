//go:build tools

// Package tools pins the YAML language host the e2e suite builds with `go build`.
package tools

import _ "github.com/pulumi/pulumi-yaml/cmd/pulumi-language-yaml"
