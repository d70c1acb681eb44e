// Package config loads an app's glimpse.yaml: the app spec (package
// preview's Spec) and the provider URLs that select where previews run.
// Unknown keys are errors, so a typo never silently changes behaviour.
// Teams that already use OpenFaaS can point function.stack at their
// faas-cli stack.yml (see Stack) instead of repeating the function there.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/glimpse-dev/glimpse/preview"
)

// FileName is the name of the app file in an app directory.
const FileName = "glimpse.yaml"

// File is a parsed glimpse.yaml.
type File struct {
	preview.Spec `yaml:",inline"`
	// Providers are the provider URLs (see the README's section on
	// providers); an empty one means the local stack's. Secrets come from the
	// environment, never the URL; unknown query parameters are errors.
	Providers Providers `yaml:"providers,omitempty"`

	// Stack is the OpenFaaS stack file that function.stack names, as
	// Load read it; nil without one.
	Stack *Stack `yaml:"-"`
	// StackFunction is the function of Stack the app deploys. Load has
	// merged its handler, environment, labels and annotations into
	// Function and chosen the builder from its lang (a template lang
	// selects docker:// with the template); the settings Glimpse cannot
	// apply (secrets, limits, ...) are listed by StackFunction.Warnings.
	StackFunction *StackFunction `yaml:"-"`
}

// Providers are the provider URLs of a glimpse.yaml (see ARCHITECTURE.md,
// "Provider selection"). The field comments are the words of the
// generated reference (docs/glimpse-yaml.md): they speak of the file,
// not of Go.
type Providers struct {
	// Builder is `ko://` (Go, no daemon) or
	// `docker://unix:///var/run/docker.sock`.
	Builder string `yaml:"builder,omitempty"`
	// Registry is `oci://HOST/PATH`; credentials
	// `GLIMPSE_REGISTRY_USERNAME`/`PASSWORD` or the Docker config.
	Registry string `yaml:"registry,omitempty"`
	// Runtime is `openfaas://HOST:PORT?namespace=NS`; password
	// `OPENFAAS_PASSWORD(_FILE)` or faas-cli's login.
	Runtime string `yaml:"runtime,omitempty"`
	// Assets is `fs:///DIR` or
	// `s3://BUCKET?region=&prefix=&endpoint=&pathStyle=&layout=` (AWS
	// credential chain).
	Assets string `yaml:"assets,omitempty"`
	// Router is `edge://HOST:PORT` (`GLIMPSE_PASSWORD`).
	Router string `yaml:"router,omitempty"`
	// DNS is `rfc2136://HOST:PORT/ZONE?target=` (TSIG
	// `GLIMPSE_TSIG_KEY`/`SECRET`) or `cloudflare://ZONE?target=&proxied=`
	// (`CLOUDFLARE_API_TOKEN`).
	DNS string `yaml:"dns,omitempty"`
	// CDN is `cloudflare://ZONE?mode=auto&batch=30`
	// (`CLOUDFLARE_API_TOKEN`, Cache Purge permission): after each `up`
	// that changed what a preview serves, purge its host (falling back to
	// its file URLs when the plan refuses purge by hostname). Empty means
	// no CDN.
	CDN string `yaml:"cdn,omitempty"`
	// Database is the server of the previews' databases
	// (`function.database`), such as `postgres://HOST:5432/postgres`;
	// credentials `GLIMPSE_POSTGRES_USER`/`PASSWORD` (or
	// `GLIMPSE_POSTGRES_URL`) from the environment, never the URL.
	Database string `yaml:"database,omitempty"`
	// Domain is the base domain of preview hosts.
	Domain string `yaml:"domain,omitempty"`
	// Owner is written into every resource's ownership labels; `down`,
	// `ls` and `gc` only touch this owner's resources.
	Owner string `yaml:"owner,omitempty"`
}

// Load reads DIR/glimpse.yaml, reads the OpenFaaS stack file that
// function.stack names (see Stack; environment variables are substituted
// from the process environment, as faas-cli does), applies defaults and
// validates the spec against DIR. Every error is one line with code
// InvalidArgument (or NotFound for a missing file) and names the file.
func Load(dir string) (*File, error) {
	return load(dir, os.LookupEnv)
}

func load(dir string, lookup func(string) (string, bool)) (*File, error) {
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
	f, err := parse(b)
	if err != nil {
		return nil, preview.Errorf(preview.InvalidArgument, "%s: %v", p, err)
	}
	if f.Function != nil {
		if f.Stack, f.StackFunction, err = applyStack(dir, f.App, f.Function, lookup); err != nil {
			return nil, err
		}
		if f.StackFunction != nil {
			if f.Providers.Builder, err = f.StackFunction.BuilderURL(f.Providers.Builder); err != nil {
				return nil, preview.Errorf(preview.InvalidArgument, "%s: %v", f.Function.Stack, err)
			}
		}
	}
	f.Spec.Defaults()
	if err := f.Spec.Validate(dir); err != nil {
		return nil, err
	}
	if d := f.Providers.Database; d != "" {
		if u, err := url.Parse(d); err != nil || u.Scheme == "" {
			return nil, preview.Errorf(preview.InvalidArgument, "%s: providers.database %q is not a URL such as postgres://HOST:5432/postgres", p, d)
		} else if u.User != nil {
			return nil, preview.Errorf(preview.InvalidArgument, "%s: providers.database must not hold credentials: set GLIMPSE_POSTGRES_USER and GLIMPSE_POSTGRES_PASSWORD (or GLIMPSE_POSTGRES_URL) in the environment", p)
		}
	}
	if o := f.Providers.Owner; o != "" {
		// The owner goes into every resource's labels (a Kubernetes
		// label value later): a DNS label fits every target.
		if err := preview.ValidateDNSLabel(o); err != nil {
			return nil, preview.Errorf(preview.InvalidArgument, "%s: providers.owner %q: %v", p, o, err)
		}
	}
	return f, nil
}

// Parse decodes glimpse.yaml content and applies the spec's defaults; it
// does not validate paths or read a stack file (Load does).
func Parse(b []byte) (*File, error) {
	f, err := parse(b)
	if err != nil {
		return nil, err
	}
	f.Spec.Defaults()
	return f, nil
}

func parse(b []byte) (*File, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("file is empty")
		}
		return nil, yamlError(err, b, reflect.TypeOf(f))
	}
	// yaml.v3 silently drops a null key ("~:", "null:", an empty key)
	// even with KnownFields: refuse it like any unknown key.
	var doc yaml.Node
	if yaml.Unmarshal(b, &doc) == nil {
		if line := nullKey(&doc); line > 0 {
			return nil, fmt.Errorf("line %d: a key is null (~, null or empty)", line)
		}
	}
	// Decode reads one document: one after it would be silently ignored.
	for {
		var next any
		if err := dec.Decode(&next); errors.Is(err, io.EOF) {
			return &f, nil
		} else if err != nil {
			return nil, yamlError(err, b, reflect.TypeOf(f))
		}
		if next != nil {
			return nil, fmt.Errorf("more than one YAML document (a --- line)")
		}
	}
}

// nullKey returns the line of the first null mapping key under n, or 0.
// Aliases are not followed: what they point to is checked where defined.
func nullKey(n *yaml.Node) int {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind == yaml.AliasNode && k.Alias != nil {
				k = k.Alias
			}
			if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!null" {
				return n.Content[i].Line
			}
		}
	}
	for _, c := range n.Content {
		if line := nullKey(c); line > 0 {
			return line
		}
	}
	return 0
}

func oneLine(s string) string {
	s = strings.TrimPrefix(s, "yaml: ")
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
