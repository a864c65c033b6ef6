//go:build tools

// Package tools pins the etcd server the e2e suite builds with `go build`.
package tools

import _ "go.etcd.io/etcd/server/v3"
