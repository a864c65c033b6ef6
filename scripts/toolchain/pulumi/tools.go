//go:build tools

// Package tools pins the pulumi CLI the e2e suite builds with `go build`.
package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
