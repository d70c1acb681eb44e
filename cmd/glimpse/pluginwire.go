package main

import (
	"github.com/glimpse-dev/glimpse/plugin"
	"github.com/glimpse-dev/glimpse/preview"
)

// A provider URL whose scheme no built-in provider registered is served by
// a plugin: scheme foo by the executable glimpse-plugin-foo in
// $GLIMPSE_HOME/plugins or on PATH (package plugin). main stops every
// plugin process it started with plugin.Shutdown before it exits.
func init() {
	preview.Builders.SetFallback(plugin.OpenBuilder)
	preview.Registries.SetFallback(plugin.OpenRegistry)
	preview.Runtimes.SetFallback(plugin.OpenRuntime)
	preview.AssetStores.SetFallback(plugin.OpenAssets)
	preview.Routers.SetFallback(plugin.OpenRouter)
	preview.DNSProviders.SetFallback(plugin.OpenDNS)
	preview.CDNs.SetFallback(plugin.OpenCDN)
}
