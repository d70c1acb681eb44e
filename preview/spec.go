package preview

import (
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Spec describes an app, as loaded from its glimpse.yaml. Paths are relative
// to the app directory. The struct carries json and yaml tags; the core does
// not parse YAML itself (see package config).
type Spec struct {
	// App is the app name, a DNS label: "hello".
	App string `json:"app" yaml:"app"`
	// Function is the backend function; nil when the app is static only.
	Function *FunctionSpec `json:"function,omitempty" yaml:"function,omitempty"`
	// Assets are the static files; nil when the app has none.
	Assets *AssetsSpec `json:"assets,omitempty" yaml:"assets,omitempty"`
	// Idle overrides the idle policy for this app.
	Idle IdleSpec `json:"idle,omitempty" yaml:"idle,omitempty"`
}

// FunctionSpec describes the app's function.
type FunctionSpec struct {
	// Source is the directory the builder builds: a Go main package for
	// ko://, a Docker context for docker://. Default "function".
	Source string `json:"source,omitempty" yaml:"source,omitempty"`
	// Routes are the path prefixes the edge forwards to the function
	// (everything else is static). Default ["/graphql"].
	Routes []string `json:"routes,omitempty" yaml:"routes,omitempty"`
	// Env is extra environment for the function.
	Env map[string]string `json:"env,omitempty" yaml:"env,omitempty"`
	// Labels and Annotations are set on the deployed function, beside
	// Glimpse's own; keys under glimpse.dev/ are reserved for Glimpse.
	Labels      map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty" yaml:"annotations,omitempty"`
	// Stack is an OpenFaaS stack file (faas-cli's stack.yml), relative to
	// the app directory, for teams that already describe the function
	// there. Package config reads it when loading glimpse.yaml: Source
	// defaults to the stack function's handler, and its environment
	// (environment, environment_file, fprocess) is merged under Env.
	// Empty means no stack file.
	Stack string `json:"stack,omitempty" yaml:"stack,omitempty"`
	// StackFunction names the function in Stack. Empty means the function
	// named like the app, or the stack's only function.
	StackFunction string `json:"stackFunction,omitempty" yaml:"stackFunction,omitempty"`
}

// AssetsSpec describes the app's static files.
type AssetsSpec struct {
	// Dir is the directory whose files are published. Default "public".
	Dir string `json:"dir,omitempty" yaml:"dir,omitempty"`
}

// IdleSpec overrides the idle policy for an app.
type IdleSpec struct {
	// After is how long a preview may go without a request before it is
	// scaled to zero, such as "15m". Empty means the controller's default.
	After string `json:"after,omitempty" yaml:"after,omitempty"`
	// AlwaysOn keeps at least one replica.
	AlwaysOn bool `json:"alwaysOn,omitempty" yaml:"alwaysOn,omitempty"`
}

// Defaults fills in the documented defaults of empty fields.
func (s *Spec) Defaults() {
	if s.Function != nil {
		if s.Function.Source == "" {
			s.Function.Source = "function"
		}
		if len(s.Function.Routes) == 0 {
			s.Function.Routes = []string{"/graphql"}
		}
	}
	if s.Assets != nil && s.Assets.Dir == "" {
		s.Assets.Dir = "public"
	}
}

// Validate checks the spec for the app in appDir: the app name is a DNS
// label, there is a function or assets, every path stays inside appDir
// (after following symbolic links) and exists, routes are absolute paths and
// idle.after parses. Errors have code InvalidArgument and name the field.
func (s *Spec) Validate(appDir string) error {
	if err := ValidateDNSLabel(s.App); err != nil {
		return Errorf(InvalidArgument, "glimpse.yaml: app %q: %v", s.App, err)
	}
	if s.Function == nil && s.Assets == nil {
		return Errorf(InvalidArgument, "glimpse.yaml: app %q has neither function nor assets", s.App)
	}
	if s.Function != nil {
		if _, err := ResolveInside(appDir, s.Function.Source, "function.source"); err != nil {
			return err
		}
		for _, m := range []map[string]string{s.Function.Labels, s.Function.Annotations} {
			for k := range m {
				if strings.HasPrefix(k, LabelPrefix) {
					return Errorf(InvalidArgument, "glimpse.yaml: function: key %q: the %s prefix is reserved for Glimpse", k, LabelPrefix)
				}
			}
		}
		for _, r := range s.Function.Routes {
			if !strings.HasPrefix(r, "/") || strings.ContainsAny(r, " ?#") {
				return Errorf(InvalidArgument, "glimpse.yaml: function.routes: %q must be an absolute path such as /graphql", r)
			}
		}
	}
	if s.Assets != nil {
		if _, err := ResolveInside(appDir, s.Assets.Dir, "assets.dir"); err != nil {
			return err
		}
	}
	if s.Idle.After != "" {
		if d, err := time.ParseDuration(s.Idle.After); err != nil || d <= 0 {
			return Errorf(InvalidArgument, "glimpse.yaml: idle.after: %q is not a positive duration such as 15m", s.Idle.After)
		}
	}
	return nil
}

// ResolveInside returns the absolute, symlink-free path of rel inside
// baseDir, and an InvalidArgument error (naming field) when it points outside
// baseDir or does not exist.
func ResolveInside(baseDir, rel, field string) (string, error) {
	base, err := filepath.Abs(baseDir)
	if err != nil {
		return "", Errorf(InvalidArgument, "%s: %v", field, err)
	}
	if b, err := filepath.EvalSymlinks(base); err == nil {
		base = b
	}
	if filepath.IsAbs(rel) {
		return "", Errorf(InvalidArgument, "glimpse.yaml: %s: %q must be relative to the app directory", field, rel)
	}
	p := filepath.Join(base, rel)
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		if os.IsNotExist(err) {
			return "", Errorf(InvalidArgument, "glimpse.yaml: %s: %q does not exist in %s", field, rel, base)
		}
		if pe, ok := err.(*os.PathError); ok {
			err = pe.Err // its path holds rel unquoted, which may span lines
		}
		return "", Errorf(InvalidArgument, "glimpse.yaml: %s: %q: %v", field, rel, err)
	}
	if r, err := filepath.Rel(base, real); err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) {
		return "", Errorf(InvalidArgument, "glimpse.yaml: %s: %q is outside the app directory %s", field, rel, base)
	}
	return real, nil
}

// Dirs returns the directories the spec deploys from, relative to the app
// directory: the function source and the assets directory, as present.
func (s *Spec) Dirs() []string {
	var d []string
	if s.Function != nil {
		d = append(d, s.Function.Source)
	}
	if s.Assets != nil {
		d = append(d, s.Assets.Dir)
	}
	return d
}
