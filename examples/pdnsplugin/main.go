// Command glimpse-plugin-pdns is a Glimpse DNS provider for the PowerDNS
// HTTP API, as an out-of-tree plugin: put the binary in
// $GLIMPSE_HOME/plugins (or on PATH) and name it in glimpse.yaml as
//
//	dns: pdns://127.0.0.1:8081/previews.example.com?target=203.0.113.7
//
// with the API key in PDNS_API_KEY. See README.md.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/glimpse-dev/glimpse/plugin"
	"github.com/glimpse-dev/glimpse/preview"
)

// version is set at build time: go build -ldflags "-X main.version=v1.0.0".
var version = "dev"

func main() {
	u, err := plugin.ConfigURL()
	if err == nil && u == nil {
		// Started to be described (`glimpse plugins`): say what it serves;
		// every call says it needs a URL.
		plugin.Serve(plugin.Providers{Name: "pdns", Version: version, DNS: unconfigured{}})
		return
	}
	var d *PDNS
	if err == nil {
		d, err = New(u, os.Getenv("PDNS_API_KEY"))
	}
	if err != nil {
		// The host quotes this line when the plugin fails to start.
		fmt.Fprintln(os.Stderr, "pdns:", err)
		os.Exit(1)
	}
	plugin.Serve(plugin.Providers{Name: "pdns", Version: version, DNS: d})
}

// unconfigured is the DNS provider of a plugin started without a URL.
type unconfigured struct{}

var errNoURL = preview.Errorf(preview.FailedPrecondition, "pdns: started without a URL: Glimpse starts this plugin for a pdns:// URL")

func (unconfigured) Ensure(context.Context, string, preview.Labels) error { return errNoURL }
func (unconfigured) Remove(context.Context, string) error                 { return errNoURL }
func (unconfigured) Hosts(context.Context, preview.Labels) ([]string, error) {
	return nil, errNoURL
}
