// Package config loads an app's glimpse.yaml: the app spec (package
// preview's Spec) and the provider URLs that select where previews run.
// Unknown keys are errors, so a typo never silently changes behaviour.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/glimpse-dev/glimpse/preview"
)

// FileName is the name of the app file in an app directory.
const FileName = "glimpse.yaml"

// File is a parsed glimpse.yaml.
type File struct {
	preview.Spec `yaml:",inline"`
	// Providers selects providers by URL; empty fields mean the local
	// stack's defaults.
	Providers Providers `yaml:"providers,omitempty"`
}

// Providers are the provider URLs of a glimpse.yaml (see ARCHITECTURE.md,
// "Provider selection").
type Providers struct {
	Builder  string `yaml:"builder,omitempty"`
	Registry string `yaml:"registry,omitempty"`
	Runtime  string `yaml:"runtime,omitempty"`
	Assets   string `yaml:"assets,omitempty"`
	Router   string `yaml:"router,omitempty"`
	DNS      string `yaml:"dns,omitempty"`
	// Domain is the base domain of preview hosts; default "localhost".
	Domain string `yaml:"domain,omitempty"`
	// Owner scopes ownership labels; default preview.DefaultOwner.
	Owner string `yaml:"owner,omitempty"`
}

// Load reads DIR/glimpse.yaml, applies defaults and validates the spec
// against DIR. Every error is one line with code InvalidArgument (or
// NotFound for a missing file) and names the file.
func Load(dir string) (*File, error) {
	p := filepath.Join(dir, FileName)
	b, err := os.ReadFile(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if st, serr := os.Stat(dir); serr != nil || !st.IsDir() {
				return nil, preview.Errorf(preview.InvalidArgument, "app directory %s does not exist", dir)
			}
			return nil, preview.Errorf(preview.NotFound, "no %s in %s", FileName, dir)
		}
		return nil, preview.Errorf(preview.InvalidArgument, "%s: %v", p, err)
	}
	f, err := Parse(b)
	if err != nil {
		return nil, preview.Errorf(preview.InvalidArgument, "%s: %v", p, err)
	}
	if err := f.Spec.Validate(dir); err != nil {
		return nil, err
	}
	return f, nil
}

// Parse decodes glimpse.yaml content and applies the spec's defaults; it
// does not validate paths (Load does).
func Parse(b []byte) (*File, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("file is empty")
		}
		return nil, fmt.Errorf("%s", oneLine(err.Error()))
	}
	f.Spec.Defaults()
	return &f, nil
}

func oneLine(s string) string {
	s = strings.TrimPrefix(s, "yaml: ")
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
