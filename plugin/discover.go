package plugin

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/glimpse-dev/glimpse/preview"
)

// Finder finds plugin binaries: scheme foo is served by the executable
// glimpse-plugin-foo in Dir, else on PATH.
type Finder struct {
	// Dir is the plugin directory; empty means DefaultDir().
	Dir string
}

// DefaultDir returns $GLIMPSE_HOME/plugins, where GLIMPSE_HOME defaults to
// ~/.glimpse as for the glimpse command; "" when neither is known.
func DefaultDir() string {
	home := os.Getenv("GLIMPSE_HOME")
	if home == "" {
		u, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		home = filepath.Join(u, ".glimpse")
	}
	return filepath.Join(home, "plugins")
}

func (f Finder) dir() string {
	if f.Dir != "" {
		return f.Dir
	}
	return DefaultDir()
}

// Lookup returns the path of the plugin for scheme with the default
// Finder.
func Lookup(scheme string) (string, error) { return Finder{}.Lookup(scheme) }

// Lookup returns the path of the executable glimpse-plugin-<scheme>, in the
// plugin directory first and then on PATH, or NotFound naming both places.
// It starts nothing.
func (f Finder) Lookup(scheme string) (string, error) {
	if err := preview.ValidateDNSLabel(scheme); err != nil {
		return "", preview.Errorf(preview.InvalidArgument, "plugin scheme %q: %v", scheme, err)
	}
	name := BinaryPrefix + scheme
	if d := f.dir(); d != "" {
		p := filepath.Join(d, name)
		if isExecutable(p) {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", preview.Errorf(preview.NotFound, "no provider for scheme %q: no plugin %s in %s or on PATH", scheme, name, f.dir())
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return p, nil
	}
	return abs, nil
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// Found is one plugin binary as List reports it. Error, when not empty, is
// the one-line reason the plugin could not be asked (a failed handshake, a
// binary that is not a Glimpse plugin); Info is then empty.
type Found struct {
	Scheme string `json:"scheme"`
	Path   string `json:"path"`
	Info
	Error string `json:"error,omitempty"`
}

// List finds every glimpse-plugin-* executable in the plugin directory and
// on PATH (the first of a name wins, as with Lookup), starts each to ask
// what it serves, stops it again, and returns them sorted by scheme. A
// plugin that fails is reported in its Found.Error, never as List's error.
func (f Finder) List(ctx context.Context) []Found {
	seen := map[string]bool{}
	var found []Found
	scan := func(dir string) {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return
		}
		for _, e := range entries {
			scheme, ok := strings.CutPrefix(e.Name(), BinaryPrefix)
			p := filepath.Join(dir, e.Name())
			if !ok || scheme == "" || seen[scheme] || !isExecutable(p) {
				continue
			}
			seen[scheme] = true
			found = append(found, Found{Scheme: scheme, Path: p})
		}
	}
	if d := f.dir(); d != "" {
		scan(d)
	}
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		if d != "" {
			scan(d)
		}
	}
	sort.Slice(found, func(i, j int) bool { return found[i].Scheme < found[j].Scheme })
	var wg sync.WaitGroup
	for i := range found {
		wg.Go(func() {
			c := Open(found[i].Path, nil)
			defer c.Close()
			info, err := c.Describe(ctx)
			if err != nil {
				found[i].Error = oneLine(err.Error())
				return
			}
			found[i].Info = info
		})
	}
	wg.Wait()
	return found
}
