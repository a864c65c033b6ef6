//go:build tools

// Package tools pins kube-router, whose firewall (NetworkPolicy) controller the local node
// runs beside its bridge CNI; the binary is cmd/kube-router, built with `go build`.
package tools

import _ "github.com/cloudnativelabs/kube-router/v2/pkg/cmd"
