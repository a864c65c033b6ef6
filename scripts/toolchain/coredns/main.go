// A CoreDNS with only the plugins the local node uses: cluster DNS for *.cluster.local
// from the API server. Upstream's main links ~60 plugins (cloud DNS providers among
// them); this keeps the cold build short and leaves out every plugin that forwards
// queries off the machine.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
)

func init() {
	// Same relative order as upstream's generated list (plugin.cfg).
	dnsserver.Directives = []string{"bind", "health", "errors", "log", "cache", "kubernetes"}
}

func main() {
	coremain.Run()
}
