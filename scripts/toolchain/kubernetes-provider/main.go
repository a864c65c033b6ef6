// Command pulumi-resource-kubernetes re-wraps the upstream provider's main package.
//
// Upstream embeds a schema file that its Makefile generates (schema-embed.json), which a
// module download does not contain, so `go build` of the upstream command fails. The
// toolchain script copies this file plus the module's schema.json and
// terraform-mapping.json into a staging directory and builds there; the schema's version
// is stamped at start-up from the -ldflags version, as upstream's generate.go does.
package main

import (
	_ "embed"
	"encoding/json"
	"log"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema.json
var rawSchema []byte

//go:embed terraform-mapping.json
var rawMapping []byte

func main() {
	provider.Serve("kubernetes", version.Version, stamp(rawSchema, version.Version), compact(rawMapping))
}

// stamp sets the schema's top-level "version" so the engine sees the plugin's own version.
func stamp(schema []byte, v string) []byte {
	var spec map[string]json.RawMessage
	if err := json.Unmarshal(schema, &spec); err != nil {
		log.Fatalf("cannot parse schema: %v", err)
	}
	quoted, err := json.Marshal(v)
	if err != nil {
		log.Fatal(err)
	}
	spec["version"] = quoted
	out, err := json.Marshal(spec)
	if err != nil {
		log.Fatal(err)
	}
	return out
}

// compact re-serialises the mapping without whitespace, as upstream embeds it.
func compact(mapping []byte) []byte {
	var v any
	if err := json.Unmarshal(mapping, &v); err != nil {
		log.Fatalf("cannot parse terraform mapping: %v", err)
	}
	out, err := json.Marshal(v)
	if err != nil {
		log.Fatal(err)
	}
	return out
}
