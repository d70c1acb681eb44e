package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/glimpse-dev/glimpse/preview"
)

// Serve is the configuration of `glimpse serve`: which providers the
// daemon composes, where it listens, and its idle and connection
// settings. Each key comes from the serve config file (--config), from its
// environment variable, or from its flag, the later winning; a key set
// nowhere keeps its zero value, which means the documented default (the
// embedded stack, unchanged behaviour). ServeKeys lists every key.
type Serve struct {
	Listen string
	// Runtime is the function runtime's provider URL (openfaas://host:port);
	// empty means the embedded runtime.
	Runtime string
	// Assets is the asset store's provider URL (s3://bucket?...,
	// fs:///dir); empty means the embedded file store in GLIMPSE_HOME.
	Assets string
	// Routes is the file the edge journals its routes to, or the URL of
	// a route source whose routes the edge serves and writes
	// (k8s-ingress://NAMESPACE or k8s-gateway://NAMESPACE?gateway=NAME:
	// the Ingresses or HTTPRoutes every replica shares);
	// empty means GLIMPSE_HOME/routes.json.
	Routes string
	// Registry is "embedded" (the default) or "none".
	Registry string
	// LeaderElection says which replica runs the work only one may run
	// (the idle controller and the scheduled gc): "NAMESPACE/NAME" contends for that
	// coordination.k8s.io Lease and runs it only while leading; "off"
	// runs it in this process without an election; empty (auto) elects
	// on the Lease glimpse-leader in the pod's own namespace when the
	// daemon runs in a cluster (a service account is mounted) with a
	// Kubernetes runtime or route source, and runs without an election
	// otherwise. Every replica serves the edge either way.
	LeaderElection string
	// GCEvery is how often the daemon (its leader) runs what `glimpse gc
	// --yes` does and collects the embedded registry's unreferenced
	// blobs; zero means DefaultGCEvery, negative ("off") never.
	GCEvery time.Duration

	IdleAfter   time.Duration
	MaxAwake    int
	WakeTimeout time.Duration
	WaitingPage bool

	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	BodyReadTimeout   time.Duration
	MaxBodyBytes      int64
	MaxConns          int
}

// DefaultGCEvery is Serve.GCEvery when unset.
const DefaultGCEvery = time.Hour

// ServeKey is one setting of Serve, with the names it has in the file, in
// the environment and on the command line.
type ServeKey struct {
	// Key is its name in the file, dotted for nested keys ("idle.after").
	Key string
	// Flag is the command-line flag without dashes, Env the environment
	// variable.
	Flag, Env string
	// Kind is what the value is: "string", "url", "duration", "int",
	// "bool".
	Kind string
	// Usage says what it does, for flag help and the reference.
	Usage string
	set   func(s *Serve, v string) error
}

// ServeKeys are every key of Serve, in the order the reference lists them.
var ServeKeys = []ServeKey{
	{Key: "listen", Flag: "listen", Kind: "string", Usage: "address to listen on, HOST:PORT (default 127.0.0.1:8080)",
		set: func(s *Serve, v string) error {
			if _, _, err := net.SplitHostPort(v); err != nil {
				return fmt.Errorf("%q: want HOST:PORT such as 127.0.0.1:8080", v)
			}
			s.Listen = v
			return nil
		}},
	{Key: "runtime", Flag: "runtime", Kind: "url", Usage: "function runtime the daemon's edge forwards to and the idle controller scales, such as openfaas://gateway:8080 (default: the embedded runtime)",
		set: providerURL(func(s *Serve) *string { return &s.Runtime })},
	{Key: "assets", Flag: "assets", Kind: "url", Usage: "asset store the edge serves static files from, such as s3://bucket?endpoint=... (default: files in GLIMPSE_HOME/assets)",
		set: providerURL(func(s *Serve) *string { return &s.Assets })},
	{Key: "routes", Flag: "routes", Kind: "string", Usage: "file the edge journals its routes to (default GLIMPSE_HOME/routes.json), or a route source URL such as k8s-ingress://NAMESPACE or k8s-gateway://NAMESPACE?gateway=NAME (routes kept as Ingresses or HTTPRoutes every replica serves)",
		set: func(s *Serve, v string) error { s.Routes = v; return nil }},
	{Key: "registry", Flag: "registry", Kind: "string", Usage: "embedded: serve the embedded OCI registry under /v2/; none: do not (builds push elsewhere)",
		set: func(s *Serve, v string) error {
			if v != "embedded" && v != "none" {
				return fmt.Errorf("%q: want embedded or none", v)
			}
			s.Registry = v
			return nil
		}},
	{Key: "leaderElection", Flag: "leader-elect", Kind: "string", Usage: "NAMESPACE/NAME: run the idle controller and the scheduled gc only while holding that Lease (every replica serves the edge); off: run it here without an election (default: the Lease glimpse-leader in the pod's namespace when running in a cluster with a Kubernetes provider, else off)",
		set: func(s *Serve, v string) error {
			if v == "off" {
				s.LeaderElection = v
				return nil
			}
			ns, name, ok := strings.Cut(v, "/")
			if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
				return fmt.Errorf("%q: want NAMESPACE/NAME of a Lease, or off", v)
			}
			s.LeaderElection = v
			return nil
		}},
	{Key: "gc.every", Flag: "gc-every", Kind: "duration", Usage: "run what glimpse gc --yes does (expired previews, orphans, unused tags and asset blobs) and collect the embedded registry's unreferenced blobs this often, on the leader; off: never (default 1h)",
		set: func(s *Serve, v string) error {
			if v == "off" {
				s.GCEvery = -1
				return nil
			}
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return fmt.Errorf("%q: want a positive duration such as 30m, or off", v)
			}
			s.GCEvery = d
			return nil
		}},
	{Key: "idle.after", Flag: "idle-after", Kind: "duration", Usage: "scale a preview to zero after this long without requests, unless its glimpse.yaml sets idle.after (default 15m)",
		set: duration(func(s *Serve) *time.Duration { return &s.IdleAfter })},
	{Key: "idle.maxAwake", Flag: "max-awake", Kind: "int", Usage: "at most this many previews awake at once; the least recently used sleep first (0: no cap)",
		set: integer(func(s *Serve) *int { return &s.MaxAwake }, 0)},
	{Key: "idle.wakeTimeout", Flag: "wake-timeout", Kind: "duration", Usage: "how long a request waits for a sleeping preview to wake before a 504 (default 1m)",
		set: duration(func(s *Serve) *time.Duration { return &s.WakeTimeout })},
	{Key: "idle.waitingPage", Flag: "waiting-page", Kind: "bool", Usage: "show browsers a self-reloading page while a preview wakes instead of holding the request",
		set: func(s *Serve, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("%q: want true or false", v)
			}
			s.WaitingPage = b
			return nil
		}},
	{Key: "limits.readHeaderTimeout", Flag: "read-header-timeout", Kind: "duration", Usage: "close a connection whose request header takes longer than this to arrive (default 10s)",
		set: duration(func(s *Serve) *time.Duration { return &s.ReadHeaderTimeout })},
	{Key: "limits.idleTimeout", Flag: "idle-timeout", Kind: "duration", Usage: "close a keep-alive connection idle this long between requests (default 2m)",
		set: duration(func(s *Serve) *time.Duration { return &s.IdleTimeout })},
	{Key: "limits.bodyReadTimeout", Flag: "body-read-timeout", Kind: "duration", Usage: "answer 408 when a request body stops arriving for this long (per read, not per body; default 1m)",
		set: duration(func(s *Serve) *time.Duration { return &s.BodyReadTimeout })},
	{Key: "limits.maxBodyBytes", Flag: "max-body-bytes", Kind: "int", Usage: "largest request body sent to a function, through a preview host or /function/; -1: no limit (default 104857600, 100 MiB)",
		set: func(s *Serve, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < -1 {
				return fmt.Errorf("%q: want a number of bytes, or -1 for no limit", v)
			}
			s.MaxBodyBytes = n
			return nil
		}},
	{Key: "limits.maxConns", Flag: "max-conns", Kind: "int", Usage: "most client connections open at once; more wait in the listen backlog; -1: no cap (default 4096)",
		set: integer(func(s *Serve) *int { return &s.MaxConns }, -1)},
}

func init() {
	for i := range ServeKeys {
		k := &ServeKeys[i]
		k.Env = "GLIMPSE_SERVE_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(k.Flag))
	}
}

func duration(field func(*Serve) *time.Duration) func(*Serve, string) error {
	return func(s *Serve, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return fmt.Errorf("%q: want a duration such as 90s or 15m, not negative", v)
		}
		*field(s) = d
		return nil
	}
}

func integer(field func(*Serve) *int, least int) func(*Serve, string) error {
	return func(s *Serve, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < least {
			return fmt.Errorf("%q: want a whole number of at least %d", v, least)
		}
		*field(s) = n
		return nil
	}
}

func providerURL(field func(*Serve) *string) func(*Serve, string) error {
	return func(s *Serve, v string) error {
		scheme, rest, ok := strings.Cut(v, "://")
		if !ok || scheme == "" || rest == "" {
			return fmt.Errorf("%q: want a provider URL such as openfaas://gateway:8080", v)
		}
		*field(s) = v
		return nil
	}
}

// ServeKeyByFlag returns the key whose flag is flag.
func ServeKeyByFlag(flag string) (ServeKey, bool) {
	for _, k := range ServeKeys {
		if k.Flag == flag {
			return k, true
		}
	}
	return ServeKey{}, false
}

// Set sets key (a ServeKey's Key) from its text value. The error is one
// line naming the key.
func (s *Serve) Set(key, value string) error {
	for _, k := range ServeKeys {
		if k.Key == key {
			if err := k.set(s, strings.TrimSpace(value)); err != nil {
				return preview.Errorf(preview.InvalidArgument, "%s: %v", key, err)
			}
			return nil
		}
	}
	return preview.Errorf(preview.InvalidArgument, "unknown key %s (known: %s)", key, knownServeKeys())
}

func knownServeKeys() string {
	names := make([]string, len(ServeKeys))
	for i, k := range ServeKeys {
		names[i] = k.Key
	}
	return strings.Join(names, ", ")
}

// LoadServe reads the serve config file at path into s: keys it sets
// replace s's. Errors are one line naming the file, the line and the key;
// an unknown key is an error.
func LoadServe(path string, s *Serve) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return preview.Errorf(preview.InvalidArgument, "serve config: %v", err)
	}
	if err := ParseServe(b, s); err != nil {
		return preview.Errorf(preview.InvalidArgument, "serve config %s: %v", path, err)
	}
	return nil
}

// ParseServe decodes serve config content into s: a YAML mapping whose
// keys are ServeKeys' (nested: "idle: {after: 5m}" sets idle.after) and
// whose values are scalars. An empty document sets nothing.
func ParseServe(b []byte, s *Serve) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return fmt.Errorf("%s", oneLine(err.Error()))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return fmt.Errorf("more than one YAML document (a --- line)")
	}
	if len(doc.Content) == 0 {
		return nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return nil
	}
	return setNode(s, "", root)
}

// setNode sets the keys of the mapping n, under prefix.
func setNode(s *Serve, prefix string, n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		if prefix == "" {
			return fmt.Errorf("line %d: want a mapping of keys (listen, runtime, idle, ...)", n.Line)
		}
		return fmt.Errorf("line %d: %s: want a mapping", n.Line, strings.TrimSuffix(prefix, "."))
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!null" || k.Value == "" {
			return fmt.Errorf("line %d: a key is not a plain name", k.Line)
		}
		key := prefix + k.Value
		if seen[key] {
			return fmt.Errorf("line %d: %s is set twice", k.Line, key)
		}
		seen[key] = true
		if v.Kind == yaml.MappingNode {
			if !isServeSection(key) {
				return fmt.Errorf("line %d: unknown key %s (known: %s)", k.Line, key, knownServeKeys())
			}
			if err := setNode(s, key+".", v); err != nil {
				return err
			}
			continue
		}
		if isServeSection(key) {
			return fmt.Errorf("line %d: %s is a section: put its keys under it (%s.after: 5m is written \"%s:\" then \"  after: 5m\")", k.Line, key, key, key)
		}
		if v.Kind != yaml.ScalarNode {
			return fmt.Errorf("line %d: %s: want a single value", v.Line, key)
		}
		if err := s.Set(key, v.Value); err != nil {
			return fmt.Errorf("line %d: %s", k.Line, err)
		}
	}
	return nil
}

// isServeSection reports whether some key lies under section.
func isServeSection(section string) bool {
	for _, k := range ServeKeys {
		if strings.HasPrefix(k.Key, section+".") {
			return true
		}
	}
	return false
}
