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
	"reflect"
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
	// Configuration holds build settings: copy paths (relative to the
	// stack file's directory) join a docker:// build's context, as for
	// faas-cli build; templates (where faas-cli template pull fetches
	// from) are not used.
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
	// Limits and Requests are the function's resources; glimpse.yaml's
	// function.resources takes the fields it leaves empty from them.
	Limits   *StackResources `yaml:"limits,omitempty"`
	Requests *StackResources `yaml:"requests,omitempty"`
	// Constraints are placement constraints.
	Constraints []string `yaml:"constraints,omitempty"`
	// BuildArgs, BuildOptions, BuildSecrets, Platforms and SkipBuild are
	// faas-cli build settings; a docker:// build applies BuildArgs and
	// BuildOptions (see BuilderURL), Warnings lists the others. ParseStack
	// refuses a build_args value that is a list or a map.
	BuildArgs    map[string]string `yaml:"build_args,omitempty"`
	BuildOptions []string          `yaml:"build_options,omitempty"`
	BuildSecrets map[string]string `yaml:"build_secrets,omitempty"`
	Platforms    string            `yaml:"platforms,omitempty"`
	SkipBuild    bool              `yaml:"skip_build,omitempty"`
	// ReadOnlyRootFilesystem mounts the root filesystem read-only.
	ReadOnlyRootFilesystem bool `yaml:"readonly_root_filesystem,omitempty"`
	// Namespace is the function's namespace.
	Namespace string `yaml:"namespace,omitempty"`

	// dir is the stack file's directory (absolute, symbolic links
	// resolved), set when glimpse.yaml loads the stack: faas-cli's working
	// directory, holding template/ and the copy paths.
	dir string
	// copy is the stack's configuration.copy.
	copy []string
}

// ParseStack parses stack file content. Like faas-cli (whose --envsubst
// is on by default), it first substitutes environment variables looked up
// with lookup (nil: os.LookupEnv): $VAR, ${VAR}, ${VAR:-default} (unset or
// empty), ${VAR=default} (unset), ${VAR:=default}; $$ is a literal $; an
// unset variable is empty. It checks that provider.name is "openfaas", the
// version is "1.0" if set, that there are functions and that build_args
// values are not lists or maps. Errors are one line.
func ParseStack(b []byte, lookup func(string) (string, bool)) (*Stack, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	expanded, err := expandEnv(string(b), lookup)
	if err != nil {
		return nil, err
	}
	if err := checkBuildArgs([]byte(expanded)); err != nil {
		return nil, err
	}
	var s Stack
	if err := yaml.NewDecoder(bytes.NewReader([]byte(expanded))).Decode(&s); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("file is empty")
		}
		return nil, yamlError(err, []byte(expanded), reflect.TypeOf(s))
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
		f.copy = s.Configuration.Copy
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
			return nil, preview.Errorf(preview.InvalidArgument, "%s: %v", p, yamlError(err, b, reflect.TypeOf(ef)))
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
	f.dir = stackDir
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
	if err := f.Resources().Validate(fs.Stack + ": functions." + f.Name); err != nil {
		return nil, nil, err
	}
	fs.Resources = overlayResources(f.Resources(), fs.Resources)
	return s, f, nil
}

// Resources are the function's limits and requests as preview.Resources
// (faas-cli's memory and cpu are Kubernetes quantities on faas-netes).
func (f *StackFunction) Resources() preview.Resources {
	var r preview.Resources
	if f.Requests != nil {
		r.Requests = preview.ResourceList{CPU: f.Requests.CPU, Memory: f.Requests.Memory}
	}
	if f.Limits != nil {
		r.Limits = preview.ResourceList{CPU: f.Limits.CPU, Memory: f.Limits.Memory}
	}
	return r
}

// overlayResources returns stack's resources with every field that
// glimpse.yaml's (own) sets taken from own.
func overlayResources(stack, own preview.Resources) preview.Resources {
	pick := func(a, b string) string {
		if b != "" {
			return b
		}
		return a
	}
	return preview.Resources{
		Requests: preview.ResourceList{CPU: pick(stack.Requests.CPU, own.Requests.CPU), Memory: pick(stack.Requests.Memory, own.Requests.Memory)},
		Limits:   preview.ResourceList{CPU: pick(stack.Limits.CPU, own.Limits.CPU), Memory: pick(stack.Limits.Memory, own.Limits.Memory)},
	}
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
//     and holds the Dockerfile) unless another builder is configured; a
//     configured ko:// is refused;
//   - any other lang with a template/<lang>/ directory next to the stack
//     file (what faas-cli template pull leaves): docker:// with
//     template=<lang> and project=<the stack file's directory>, which
//     builds the template's Dockerfile around the handler as faas-cli
//     build does; a configured ko:// is refused, another non-docker
//     builder is kept;
//   - any other lang is an InvalidArgument error of one line naming what
//     Glimpse builds and how to get the other templates.
//
// For docker:// (dockerfile and templates) the function's build_args
// become arg=NAME=value, its build_options option=NAME and the stack's
// configuration.copy copy=PATH, added to the configured URL's query.
// Settings a builder cannot apply are listed by Warnings. BuilderURL does
// no I/O other than looking for template/<lang>/.
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
		return f.dockerURL(configured, "", "dockerfile, which the docker:// builder builds")
	}
	if f.dir != "" && validTemplateName(f.Lang) {
		if fi, err := os.Stat(filepath.Join(f.dir, "template", f.Lang)); err == nil && fi.IsDir() {
			return f.dockerURL(configured, f.Lang, f.Lang+", a template the docker:// builder builds")
		}
	}
	have := ""
	if names := f.templateDirs(); len(names) > 0 {
		have = " or a template of template/ (" + strings.Join(names, ", ") + ")"
	}
	return "", preview.Errorf(preview.InvalidArgument, "stack file: functions.%s: lang: %s is not a template Glimpse can build; it builds golang-middleware, golang-http (with the templates-sdk replace), dockerfile (docker builder)%s; run faas-cli template pull (or faas-cli template store pull %s) next to the stack file to get template/%s", f.Name, f.Lang, have, f.Lang, f.Lang)
}

// dockerURL returns the docker:// builder URL of a dockerfile or template
// lang (see BuilderURL); what names the lang in the error for a ko://
// builder.
func (f *StackFunction) dockerURL(configured, template, what string) (string, error) {
	u := configured
	if u == "" {
		u = "docker://"
	}
	p, err := url.Parse(u)
	if err == nil && p.Scheme == "ko" {
		return "", preview.Errorf(preview.InvalidArgument, "stack file: functions.%s.lang is %s, but providers.builder is %s", f.Name, what, configured)
	}
	if err != nil || p.Scheme != "docker" {
		return configured, nil
	}
	q := p.Query()
	if template != "" {
		q.Set("template", template)
	}
	for _, k := range slices.Sorted(maps.Keys(f.BuildArgs)) {
		q.Add("arg", k+"="+f.BuildArgs[k])
	}
	if template != "" {
		for _, o := range f.BuildOptions {
			q.Add("option", o)
		}
	}
	for _, c := range f.copy {
		q.Add("copy", c)
	}
	if template != "" || len(f.copy) > 0 {
		q.Set("project", f.dir)
	}
	if len(q) == 0 {
		return u, nil
	}
	// Not p.String(): it writes "docker:?..." for an empty host.
	return p.Scheme + "://" + p.Host + p.Path + "?" + q.Encode(), nil
}

// validTemplateName reports whether lang can name a directory of
// template/.
func validTemplateName(lang string) bool {
	return lang != "." && lang != ".." && !strings.ContainsAny(lang, `/\`)
}

// templateDirs returns the template names under template/ next to the
// stack file, sorted; none when there is no such directory.
func (f *StackFunction) templateDirs() []string {
	if f.dir == "" {
		return nil
	}
	entries, err := os.ReadDir(filepath.Join(f.dir, "template"))
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names
}

// Warnings returns one line for each setting of the function that Glimpse
// reads but does not apply, given the builder URL that builds it (as
// BuilderURL returned it), so that none is silently ignored. Applied, and
// so not listed: environment, environment_file and fprocess (the
// function's environment), labels and annotations (set on the deployed
// function beside Glimpse's own), limits and requests (the function's
// resources, under glimpse.yaml's function.resources), and with a
// docker:// builder build_args, build_options (templates) and
// configuration.copy. Listed: secrets, constraints,
// readonly_root_filesystem, build_secrets,
// platforms, skip_build, and the build settings a ko:// (or other)
// builder has no use for. It does no I/O.
func (f *StackFunction) Warnings(builder string) []string {
	var w []string
	add := func(key, why string) {
		w = append(w, fmt.Sprintf("stack file: functions.%s.%s is ignored: %s", f.Name, key, why))
	}
	if len(f.Secrets) > 0 {
		add("secrets", "Glimpse has no secret store to mount "+strings.Join(f.Secrets, ", ")+" from; give previews their values through glimpse.yaml function.env")
	}
	if len(f.Constraints) > 0 {
		add("constraints", "Glimpse does not choose the node a preview runs on")
	}
	if f.ReadOnlyRootFilesystem {
		add("readonly_root_filesystem", "Glimpse's runtimes do not mount a preview's root filesystem read-only")
	}
	if len(f.BuildSecrets) > 0 {
		add("build_secrets", "the builders Glimpse runs have no build secrets")
	}
	if f.Platforms != "" {
		add("platforms", "set the platform on the builder URL instead (platform=linux/arm64)")
	}
	if f.SkipBuild {
		add("skip_build", "Glimpse builds every preview from its source")
	}
	if builder == "" {
		builder = "ko://" // the default builder
	}
	docker := strings.HasPrefix(builder, "docker:")
	if !docker {
		why := "the builder " + builder + " builds without a Dockerfile"
		if len(f.BuildArgs) > 0 {
			add("build_args", why)
		}
		if len(f.BuildOptions) > 0 {
			add("build_options", why)
		}
		if len(f.copy) > 0 {
			w = append(w, fmt.Sprintf("stack file: configuration.copy is ignored for functions.%s: %s", f.Name, why))
		}
	} else if len(f.BuildOptions) > 0 && f.Lang == "dockerfile" {
		add("build_options", "lang: dockerfile has no template.yml to take them from")
	}
	return w
}

// checkBuildArgs checks, in the parsed stack file b, that every function's
// build_args is a map of scalar values (faas-cli passes them as strings),
// so that a list or map value is one line naming the key rather than a
// decoding error.
func checkBuildArgs(b []byte) error {
	var doc yaml.Node
	if yaml.Unmarshal(b, &doc) != nil || len(doc.Content) == 0 {
		return nil // Decode reports it
	}
	fns := mapValue(doc.Content[0], "functions")
	if fns == nil || fns.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(fns.Content); i += 2 {
		name, args := fns.Content[i].Value, mapValue(fns.Content[i+1], "build_args")
		if args == nil || (args.Kind == yaml.ScalarNode && args.Tag == "!!null") {
			continue
		}
		if args.Kind != yaml.MappingNode {
			return fmt.Errorf("line %d: functions.%s.build_args must be a map of NAME: value", args.Line, name)
		}
		for j := 0; j+1 < len(args.Content); j += 2 {
			if v := args.Content[j+1]; v.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: functions.%s.build_args.%s must be a string, not a %s", v.Line, name, args.Content[j].Value, nodeKind(v))
			}
		}
	}
	return nil
}

// mapValue returns the value of key in the mapping n, or nil.
func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "list"
	case yaml.MappingNode:
		return "map"
	case yaml.AliasNode:
		return "alias"
	}
	return "value"
}
