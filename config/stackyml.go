package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/glimpse-dev/glimpse/preview"
)

// Stack is an OpenFaaS stack file, the stack.yml that faas-cli builds and
// deploys from (the schema of github.com/openfaas/go-sdk stack.Services).
// Like faas-cli, the parser ignores keys it does not know.
type Stack struct {
	// Version is the schema version; "1.0" or empty.
	Version string `yaml:"version,omitempty"`
	// Provider names the gateway faas-cli deploys to.
	Provider StackProvider `yaml:"provider"`
	// Functions are the stack's functions by name.
	Functions map[string]*StackFunction `yaml:"functions"`
	// Configuration holds build settings (templates, copy) that Glimpse
	// does not use.
	Configuration struct {
		Templates []struct {
			Name   string `yaml:"name"`
			Source string `yaml:"source,omitempty"`
		} `yaml:"templates,omitempty"`
		Copy []string `yaml:"copy,omitempty"`
	} `yaml:"configuration,omitempty"`
}

// StackProvider is a stack file's provider section.
type StackProvider struct {
	// Name must be "openfaas".
	Name string `yaml:"name"`
	// Gateway is the gateway URL, such as "http://127.0.0.1:8080".
	Gateway string `yaml:"gateway,omitempty"`
}

// StackResources are CPU and memory quantities ("100m", "128Mi").
type StackResources struct {
	Memory string `yaml:"memory,omitempty"`
	CPU    string `yaml:"cpu,omitempty"`
}

// StackFunction is one function of a stack file.
type StackFunction struct {
	// Name is the function's key in the file (not a YAML field).
	Name string `yaml:"-"`
	// Lang is the faas-cli template ("golang-middleware", "dockerfile").
	Lang string `yaml:"lang"`
	// Handler is the function's source directory, relative to the stack
	// file.
	Handler string `yaml:"handler"`
	// Image is the image faas-cli builds; Glimpse builds its own per
	// pull request and does not use it.
	Image string `yaml:"image"`
	// FProcess is the process the classic watchdog runs.
	FProcess string `yaml:"fprocess,omitempty"`
	// Environment is the function's environment.
	Environment map[string]string `yaml:"environment,omitempty"`
	// EnvironmentFile lists YAML files, relative to the stack file, each
	// with an "environment:" map; later files override earlier ones and
	// Environment.
	EnvironmentFile []string `yaml:"environment_file,omitempty"`
	// Secrets name OpenFaaS secrets mounted into the function.
	Secrets []string `yaml:"secrets,omitempty"`
	// Labels and Annotations are set on the deployed function.
	Labels      map[string]string `yaml:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
	// Limits and Requests are the function's resources.
	Limits   *StackResources `yaml:"limits,omitempty"`
	Requests *StackResources `yaml:"requests,omitempty"`
	// Constraints are placement constraints.
	Constraints []string `yaml:"constraints,omitempty"`
	// BuildArgs, BuildOptions, BuildSecrets, Platforms and SkipBuild are
	// faas-cli build settings.
	BuildArgs    map[string]string `yaml:"build_args,omitempty"`
	BuildOptions []string          `yaml:"build_options,omitempty"`
	BuildSecrets map[string]string `yaml:"build_secrets,omitempty"`
	Platforms    string            `yaml:"platforms,omitempty"`
	SkipBuild    bool              `yaml:"skip_build,omitempty"`
	// ReadOnlyRootFilesystem mounts the root filesystem read-only.
	ReadOnlyRootFilesystem bool `yaml:"readonly_root_filesystem,omitempty"`
	// Namespace is the function's namespace.
	Namespace string `yaml:"namespace,omitempty"`
}

// ParseStack parses stack file content. Like faas-cli (whose --envsubst
// is on by default), it first substitutes environment variables looked up
// with lookup (nil: os.LookupEnv): $VAR, ${VAR}, ${VAR:-default} (unset or
// empty), ${VAR=default} (unset), ${VAR:=default}; $$ is a literal $; an
// unset variable is empty. It checks that provider.name is "openfaas", the
// version is "1.0" if set, and that there are functions. Errors are one
// line.
func ParseStack(b []byte, lookup func(string) (string, bool)) (*Stack, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	expanded, err := expandEnv(string(b), lookup)
	if err != nil {
		return nil, err
	}
	var s Stack
	if err := yaml.NewDecoder(bytes.NewReader([]byte(expanded))).Decode(&s); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("file is empty")
		}
		return nil, fmt.Errorf("%s", oneLine(err.Error()))
	}
	if s.Provider.Name != "openfaas" {
		return nil, fmt.Errorf("provider.name must be \"openfaas\", got %q", s.Provider.Name)
	}
	if s.Version != "" && s.Version != "1.0" {
		return nil, fmt.Errorf("version must be 1.0, got %q", s.Version)
	}
	if len(s.Functions) == 0 {
		return nil, fmt.Errorf("no functions")
	}
	for name, f := range s.Functions {
		if f == nil {
			return nil, fmt.Errorf("functions.%s is empty", name)
		}
		f.Name = name
		if strings.EqualFold(f.Lang, "Dockerfile") {
			f.Lang = "dockerfile"
		}
	}
	return &s, nil
}

// LoadStack reads and parses the stack file at path (see ParseStack).
// Errors are one line naming the file, with code InvalidArgument.
func LoadStack(path string, lookup func(string) (string, bool)) (*Stack, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, preview.Errorf(preview.InvalidArgument, "stack file: %v", err)
	}
	s, err := ParseStack(b, lookup)
	if err != nil {
		return nil, preview.Errorf(preview.InvalidArgument, "%s: %v", path, err)
	}
	return s, nil
}

// Names returns the function names, sorted.
func (s *Stack) Names() []string { return slices.Sorted(maps.Keys(s.Functions)) }

// Select returns the function called name; with name empty, the function
// called app, or else the only function. Any other case is an
// InvalidArgument error of one line that lists the functions.
func (s *Stack) Select(name, app string) (*StackFunction, error) {
	list := strings.Join(s.Names(), ", ")
	if name != "" {
		if f, ok := s.Functions[name]; ok {
			return f, nil
		}
		return nil, preview.Errorf(preview.InvalidArgument, "function %q is not in the stack file (functions: %s)", name, list)
	}
	if f, ok := s.Functions[app]; ok {
		return f, nil
	}
	if len(s.Functions) == 1 {
		return s.Functions[s.Names()[0]], nil
	}
	return nil, preview.Errorf(preview.InvalidArgument, "the stack file has %d functions (%s) and none is named %q; choose one with function.stackFunction", len(s.Functions), list, app)
}

// RuntimeURL returns provider.gateway as a runtime URL for package
// openfaas ("http://gw:8080" -> "openfaas://gw:8080", https adds tls=true),
// with namespace when not empty. An empty or unusable gateway is
// InvalidArgument.
func (s *Stack) RuntimeURL(namespace string) (string, error) {
	u, err := url.Parse(s.Provider.Gateway)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.User != nil {
		return "", preview.Errorf(preview.InvalidArgument, "stack file: provider.gateway %q is not a URL such as http://127.0.0.1:8080", s.Provider.Gateway)
	}
	q := url.Values{}
	if u.Scheme == "https" {
		q.Set("tls", "true")
	}
	if namespace != "" {
		q.Set("namespace", namespace)
	}
	r := url.URL{Scheme: "openfaas", Host: u.Host, RawQuery: q.Encode()}
	return r.String(), nil
}

// Env returns the function's environment as `faas-cli deploy` computes
// it: Environment, overridden by each EnvironmentFile in order, plus
// "fprocess" when FProcess is set. Environment files are resolved in
// stackDir and must stay inside root (after following symbolic links).
// Errors are InvalidArgument.
func (f *StackFunction) Env(root, stackDir string) (map[string]string, error) {
	env := maps.Clone(f.Environment)
	if env == nil {
		env = map[string]string{}
	}
	for _, file := range f.EnvironmentFile {
		rel, err := filepath.Rel(root, filepath.Join(stackDir, file))
		if err != nil {
			return nil, preview.Errorf(preview.InvalidArgument, "stack file: functions.%s.environment_file: %v", f.Name, err)
		}
		p, err := preview.ResolveInside(root, rel, "stack file functions."+f.Name+".environment_file")
		if err != nil {
			return nil, err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, preview.Errorf(preview.InvalidArgument, "stack file: functions.%s.environment_file: %v", f.Name, err)
		}
		var ef struct {
			Environment map[string]string `yaml:"environment"`
		}
		if err := yaml.Unmarshal(b, &ef); err != nil {
			return nil, preview.Errorf(preview.InvalidArgument, "%s: %s", p, oneLine(err.Error()))
		}
		maps.Copy(env, ef.Environment)
	}
	if f.FProcess != "" {
		env["fprocess"] = f.FProcess
	}
	return env, nil
}

// applyStack merges the stack function that fs names into fs, for the app
// in dir: Source defaults to the handler (relative to dir), and the
// stack's environment goes under fs.Env (glimpse.yaml wins). It returns
// the stack and the function.
func applyStack(dir, app string, fs *preview.FunctionSpec, lookup func(string) (string, bool)) (*Stack, *StackFunction, error) {
	if fs.Stack == "" {
		if fs.StackFunction != "" {
			return nil, nil, preview.Errorf(preview.InvalidArgument, "%s: function.stackFunction %q needs function.stack, the stack file", FileName, fs.StackFunction)
		}
		return nil, nil, nil
	}
	p, err := preview.ResolveInside(dir, fs.Stack, "function.stack")
	if err != nil {
		return nil, nil, err
	}
	s, err := LoadStack(p, lookup)
	if err != nil {
		return nil, nil, err
	}
	f, err := s.Select(fs.StackFunction, app)
	if err != nil {
		return nil, nil, preview.Errorf(preview.InvalidArgument, "%s: function.stack %s: %v", FileName, fs.Stack, err)
	}
	root, err := preview.ResolveInside(dir, ".", "app directory")
	if err != nil {
		return nil, nil, err
	}
	stackDir := filepath.Dir(p)
	if fs.Source == "" && f.Handler != "" {
		rel, err := filepath.Rel(root, filepath.Join(stackDir, f.Handler))
		if err != nil {
			return nil, nil, preview.Errorf(preview.InvalidArgument, "%s: functions.%s.handler: %v", fs.Stack, f.Name, err)
		}
		if _, err := preview.ResolveInside(root, rel, fs.Stack+" functions."+f.Name+".handler"); err != nil {
			return nil, nil, err
		}
		fs.Source = filepath.ToSlash(rel)
	}
	env, err := f.Env(root, stackDir)
	if err != nil {
		return nil, nil, err
	}
	maps.Copy(env, fs.Env)
	if len(env) > 0 {
		fs.Env = env
	}
	fs.Labels = overlay(f.Labels, fs.Labels)
	fs.Annotations = overlay(f.Annotations, fs.Annotations)
	return s, f, nil
}

// expandEnv substitutes environment variables in s (see ParseStack).
func expandEnv(s string, lookup func(string) (string, bool)) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		switch n := s[i+1]; {
		case n == '$':
			b.WriteByte('$')
			i++
		case n == '{':
			end := closingBrace(s[i+2:])
			if end < 0 {
				return "", fmt.Errorf("unclosed ${ in %q", excerpt(s[i:]))
			}
			expr := s[i+2 : i+2+end]
			v, err := expandExpr(expr, lookup)
			if err != nil {
				return "", err
			}
			b.WriteString(v)
			i += 2 + end
		case isNameStart(n):
			j := i + 1
			for j < len(s) && isNameChar(s[j]) {
				j++
			}
			v, _ := lookup(s[i+1 : j])
			b.WriteString(v)
			i = j - 1
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// expandExpr evaluates the inside of ${...}.
func expandExpr(expr string, lookup func(string) (string, bool)) (string, error) {
	j := 0
	for j < len(expr) && isNameChar(expr[j]) {
		j++
	}
	name, op := expr[:j], expr[j:]
	if name == "" || !isNameStart(name[0]) {
		return "", fmt.Errorf("%q: not a variable name", "${"+expr+"}")
	}
	v, set := lookup(name)
	var def string
	var useDef bool
	switch {
	case op == "":
		return v, nil
	case strings.HasPrefix(op, ":-"), strings.HasPrefix(op, ":="):
		def, useDef = op[2:], !set || v == ""
	case strings.HasPrefix(op, "="):
		def, useDef = op[1:], !set
	default:
		return "", fmt.Errorf("%q: unsupported substitution; use ${VAR}, ${VAR:-default} or ${VAR=default}", "${"+expr+"}")
	}
	if !useDef {
		return v, nil
	}
	return expandEnv(def, lookup)
}

// closingBrace returns the index of the } that closes a ${ whose inside
// starts s, counting nested ${...}; -1 when there is none.
func closingBrace(s string) int {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '$' && i+1 < len(s) && s[i+1] == '{':
			depth++
			i++
		case s[i] == '}':
			if depth == 0 {
				return i
			}
			depth--
		}
	}
	return -1
}

func isNameStart(c byte) bool {
	return c == '_' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

func isNameChar(c byte) bool { return isNameStart(c) || ('0' <= c && c <= '9') }

func excerpt(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 40 {
		s = s[:40]
	}
	return s
}

// overlay returns base with over's entries on top (glimpse.yaml wins over
// the stack file); nil when both are empty.
func overlay(base, over map[string]string) map[string]string {
	if len(base) == 0 && len(over) == 0 {
		return nil
	}
	out := maps.Clone(base)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, over)
	return out
}

// goTemplates are the stack-file langs the ko:// builder builds by
// generating a main around the handler package (package kobuild's
// templates).
var goTemplates = []string{"golang-middleware", "golang-http"}

// BuilderURL returns the builder URL that builds the function's lang,
// given the builder URL glimpse.yaml configures (empty: the default
// ko://):
//   - no lang: configured, unchanged;
//   - golang-middleware, golang-http: a ko:// builder (configured or the
//     default) with template=<lang>; another configured scheme is kept;
//   - dockerfile: docker:// (the handler directory is the Docker context
//     and holds the Dockerfile) unless a builder is configured; a
//     configured ko:// is refused;
//   - any other lang is an InvalidArgument error of one line naming what
//     Glimpse builds.
func (f *StackFunction) BuilderURL(configured string) (string, error) {
	switch {
	case f.Lang == "":
		return configured, nil
	case slices.Contains(goTemplates, f.Lang):
		u := configured
		if u == "" {
			u = "ko://"
		}
		p, err := url.Parse(u)
		if err != nil || p.Scheme != "ko" {
			return configured, nil
		}
		q := p.Query()
		if t := q.Get("template"); t != "" && t != f.Lang {
			return "", preview.Errorf(preview.InvalidArgument, "stack file: functions.%s.lang is %s but providers.builder %s says template=%s", f.Name, f.Lang, configured, t)
		}
		q.Set("template", f.Lang)
		// Not p.String(): it writes "ko:?..." for an empty host.
		return p.Scheme + "://" + p.Host + p.Path + "?" + q.Encode(), nil
	case f.Lang == "dockerfile":
		if configured == "" {
			return "docker://", nil
		}
		if p, err := url.Parse(configured); err == nil && p.Scheme == "ko" {
			return "", preview.Errorf(preview.InvalidArgument, "stack file: functions.%s.lang is dockerfile, which the docker:// builder builds, but providers.builder is %s", f.Name, configured)
		}
		return configured, nil
	}
	return "", preview.Errorf(preview.InvalidArgument, "stack file: functions.%s: lang: %s is not a template Glimpse can build; it builds golang-middleware, golang-http (with the templates-sdk replace), dockerfile (docker builder); run faas-cli template pull and faas-cli build --shrinkwrap, then use the Dockerfile it writes with lang: dockerfile", f.Name, f.Lang)
}
