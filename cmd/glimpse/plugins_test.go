package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/glimpse-dev/glimpse/plugin"
)

// TestPluginsCommand runs `glimpse plugins` over a plugin directory holding
// a real plugin (plugin's test plugin, built here) and a binary that is not
// a plugin.
func TestPluginsCommand(t *testing.T) {
	home := t.TempDir()
	dir := filepath.Join(home, "plugins")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, plugin.BinaryPrefix+"mem"), "../../plugin/internal/testplugin").CombinedOutput(); err != nil {
		t.Fatalf("building the test plugin: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, plugin.BinaryPrefix+"bad"), []byte("#!/bin/sh\necho hello\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", t.TempDir()+string(os.PathListSeparator)+os.Getenv("PATH"))
	defer plugin.Shutdown()

	g := &globalFlags{home: home}
	run := func(args ...string) string {
		t.Helper()
		c := newPlugins(g)
		var out bytes.Buffer
		c.SetOut(&out)
		c.SetErr(&out)
		c.SetArgs(args)
		if err := c.Execute(); err != nil {
			t.Fatalf("glimpse plugins %v: %v", args, err)
		}
		return out.String()
	}
	var found []plugin.Found
	if err := json.Unmarshal([]byte(run("-o", "json")), &found); err != nil {
		t.Fatal(err)
	}
	byScheme := map[string]plugin.Found{}
	for _, f := range found {
		byScheme[f.Scheme] = f
	}
	mem, bad := byScheme["mem"], byScheme["bad"]
	if mem.Error != "" || mem.Version != "v0.0.1-test" || mem.ProtocolVersion != plugin.ProtocolVersion || !mem.Serves(plugin.IfaceDNS) {
		t.Errorf("mem plugin: %+v", mem)
	}
	if bad.Error == "" || strings.Contains(bad.Error, "\n") {
		t.Errorf("non-plugin: %+v, want a one-line error", bad)
	}
	table := run()
	if !strings.Contains(table, "v0.0.1-test") || !strings.Contains(table, "error: ") {
		t.Errorf("table output:\n%s", table)
	}
	c := newPlugins(g)
	c.SetArgs([]string{"-o", "yaml"})
	c.SetOut(&bytes.Buffer{})
	c.SetErr(&bytes.Buffer{})
	if err := c.Execute(); err == nil {
		t.Error("-o yaml was accepted")
	}
}
