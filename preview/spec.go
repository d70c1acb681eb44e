package preview

import (
	"fmt"
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
	// TTL is how long a preview may live after its last deploy (its last
	// push), such as "7d", "36h" or "90m" (units d, h, m, s); `glimpse
	// gc` and the daemon take older previews down. Empty means no limit.
	TTL string `json:"ttl,omitempty" yaml:"ttl,omitempty"`
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
	// Secrets name secrets the function runtime already holds (made with
	// faas-cli secret create, or the gateway's /system/secrets API); the
	// function reads each from the file /var/openfaas/secrets/<name> (see
	// SecretsDir). Glimpse never sees their values.
	Secrets []string `json:"secrets,omitempty" yaml:"secrets,omitempty"`
	// Database, when set, gives each preview of the app its own database
	// on the Pipeline's Database provider (see DatabaseSpec).
	Database *DatabaseSpec `json:"database,omitempty" yaml:"database,omitempty"`
	// Resources are the CPU and memory each replica of the function
	// reserves (requests) and may use (limits), in Kubernetes quantity
	// syntax: {requests: {cpu: 100m, memory: 64Mi}, limits: {cpu: 500m,
	// memory: 128Mi}}. Default none: the runtime's or the cluster's
	// defaults apply. The kubefaas and openfaas runtimes apply them; the
	// local runtime ignores them. With function.stack, the stack file's
	// limits and requests fill in the fields left empty here.
	Resources Resources `json:"resources,omitzero" yaml:"resources,omitempty"`
}

// DatabaseSpec is the database of each preview: copied from Template, or
// built from the SQL files of Migrations and then Seed, or (Shared) no
// database of its own but read-only access to a database every preview of
// the app shares. Neither Template nor Migrations means an empty database.
// The preview's function finds its connection string (a URL with the
// preview role's password) in the secret file whose name its environment
// variable EnvDatabaseURLSecret holds (and with ReadOnly, the read-only
// role's in EnvDatabaseReadOnlyURLSecret's).
type DatabaseSpec struct {
	// Template names an existing database on the server to copy.
	Template string `json:"template,omitempty" yaml:"template,omitempty"`
	// Migrations is a directory of *.sql files, relative to the app
	// directory, applied in name order, each once per database.
	Migrations string `json:"migrations,omitempty" yaml:"migrations,omitempty"`
	// Seed is a directory of *.sql files, relative to the app directory,
	// run in name order once, when the database is created.
	Seed string `json:"seed,omitempty" yaml:"seed,omitempty"`
	// ReadOnly adds a second, read-only role for the function.
	ReadOnly bool `json:"readOnly,omitempty" yaml:"readOnly,omitempty"`
	// Shared names an existing database all previews of the app read:
	// the preview gets only a read-only role on it.
	Shared string `json:"shared,omitempty" yaml:"shared,omitempty"`
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
			if !ValidFunctionPath(r) {
				return Errorf(InvalidArgument, "glimpse.yaml: function.routes: %q must be an absolute path such as /graphql, of letters, digits and / - _ . ~ %%", r)
			}
		}
		seen := map[string]bool{}
		for _, name := range s.Function.Secrets {
			if err := ValidateSecretName(name); err != nil {
				return Errorf(InvalidArgument, "glimpse.yaml: function.secrets: %v", err)
			}
			if seen[name] {
				return Errorf(InvalidArgument, "glimpse.yaml: function.secrets: %q is given twice", name)
			}
			seen[name] = true
		}
		if err := s.Function.Resources.Validate("glimpse.yaml: function.resources"); err != nil {
			return err
		}
		if d := s.Function.Database; d != nil {
			if err := d.validate(appDir); err != nil {
				return err
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
	if s.TTL != "" {
		if _, err := ParseTTL(s.TTL); err != nil {
			return Errorf(InvalidArgument, "glimpse.yaml: ttl: %v", err)
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

// validate checks the database section: at most one of template,
// migrations and shared; no seed without migrations or template; a shared
// database only read-only; directories inside appDir.
func (d *DatabaseSpec) validate(appDir string) error {
	n := 0
	for _, set := range []bool{d.Template != "", d.Migrations != "", d.Shared != ""} {
		if set {
			n++
		}
	}
	switch {
	case n > 1:
		return Errorf(InvalidArgument, "glimpse.yaml: function.database: set one of template, migrations and shared")
	case d.Shared != "" && d.Seed != "":
		return Errorf(InvalidArgument, "glimpse.yaml: function.database: a shared database takes no seed")
	}
	for _, dir := range []struct{ rel, field string }{{d.Migrations, "function.database.migrations"}, {d.Seed, "function.database.seed"}} {
		if dir.rel == "" {
			continue
		}
		if _, err := ResolveInside(appDir, dir.rel, dir.field); err != nil {
			return err
		}
	}
	return nil
}

// request is the DatabaseRequest of the spec for target t at generation
// gen, labelled with labels, its SQL read from appDir.
func (d *DatabaseSpec) request(appDir string, t Target, gen int64, labels Labels) (DatabaseRequest, error) {
	req := DatabaseRequest{App: t.App, PR: t.PR, Generation: gen, Labels: labels, Template: d.Template, ReadOnly: d.ReadOnly, Shared: d.Shared}
	for _, set := range []struct {
		rel, field string
		out        *[]SQLScript
	}{{d.Migrations, "function.database.migrations", &req.Migrations}, {d.Seed, "function.database.seed", &req.Seed}} {
		if set.rel == "" {
			continue
		}
		dir, err := ResolveInside(appDir, set.rel, set.field)
		if err != nil {
			return DatabaseRequest{}, err
		}
		if *set.out, err = ReadSQLDir(dir); err != nil {
			return DatabaseRequest{}, fmt.Errorf("glimpse.yaml: %s: %w", set.field, err)
		}
	}
	return req, nil
}
