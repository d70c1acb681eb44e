package plugin

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/glimpse-dev/glimpse/plugin/proto"
	"github.com/glimpse-dev/glimpse/preview"
)

// Info is what a plugin says about itself.
type Info struct {
	Name            string   `json:"name"`
	Version         string   `json:"version"`
	ProtocolVersion int      `json:"protocolVersion"`
	Interfaces      []string `json:"interfaces"`
}

// Serves reports whether the plugin serves the interface named iface
// (IfaceDNS, IfaceGenerationRemover, ...).
func (i Info) Serves(iface string) bool { return slices.Contains(i.Interfaces, iface) }

// Options tune a Client. nil gives the defaults.
type Options struct {
	// Stderr receives what the plugin writes to its standard error; nil
	// discards it.
	Stderr io.Writer
	// StartTimeout bounds the start and handshake of the plugin process;
	// 0 means 10 seconds.
	StartTimeout time.Duration
	// URL is the provider URL that named the plugin (its scheme is the
	// plugin's); the plugin reads it with ConfigURL. Secrets never ride in
	// it: the plugin inherits the host's environment.
	URL string
}

// Client is the host's side of one plugin binary. It starts the plugin on
// first use, over gRPC with mutual TLS (go-plugin's AutoMTLS), and starts
// it again on the next call after it exited or crashed: a call in flight
// when the plugin dies fails with code Unavailable. Whether such a call
// took effect is unknown; every provider call is idempotent, so repeating
// it is safe. A Client is safe for concurrent use. Close stops the plugin;
// the process also ends when the host process dies (see Serve).
type Client struct {
	name  string
	start func() (*session, func(), error)

	mu     sync.Mutex
	cur    *session
	kill   func()
	info   *Info
	closed bool
}

// Open returns a Client for the plugin binary at path. It does not start
// the plugin; the first call does.
func Open(path string, opts *Options) *Client {
	if opts == nil {
		opts = &Options{}
	}
	name := strings.TrimPrefix(filepath.Base(path), BinaryPrefix)
	timeout := opts.StartTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	return &Client{name: name, start: func() (*session, func(), error) {
		cmd := exec.Command(path)
		if opts.URL != "" {
			cmd.Env = []string{URLEnv + "=" + opts.URL}
		}
		deathSignal(cmd)
		logger := hclog.NewNullLogger()
		tail := &lastLine{}
		var stderr io.Writer = tail
		if opts.Stderr != nil {
			stderr = io.MultiWriter(opts.Stderr, tail)
		}
		pc := goplugin.NewClient(&goplugin.ClientConfig{
			HandshakeConfig:  handshake,
			VersionedPlugins: map[int]goplugin.PluginSet{ProtocolVersion: {dispenseName: &grpcPlugin{}}},
			Cmd:              cmd,
			AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
			AutoMTLS:         true,
			Managed:          true,
			StartTimeout:     timeout,
			Logger:           logger,
			Stderr:           stderr,
		})
		proto, err := pc.Client()
		if err != nil {
			pc.Kill()
			// The plugin's own last word says more than go-plugin's.
			msg := strings.TrimSuffix(oneLine(err.Error()), ":")
			if l := tail.String(); l != "" {
				msg = l
			}
			return nil, nil, preview.Errorf(preview.Unavailable, "plugin %s (%s) failed to start: %s", name, path, msg)
		}
		raw, err := proto.Dispense(dispenseName)
		if err != nil {
			pc.Kill()
			return nil, nil, preview.Errorf(preview.Unavailable, "plugin %s (%s): %s", name, path, oneLine(err.Error()))
		}
		return raw.(*session), pc.Kill, nil
	}}
}

// lastLine keeps the last non-empty line written to it: the plugin's last
// word on standard error, quoted when it fails to start.
type lastLine struct {
	mu   sync.Mutex
	line string
}

func (l *lastLine) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range strings.Split(string(p), "\n") {
		if s = strings.TrimSpace(s); s != "" {
			l.line = s
		}
	}
	return len(p), nil
}

func (l *lastLine) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.line
}

// deathSignal is setDeathSignal; tests replace it to check that the
// plugin's own watch of its parent suffices.
var deathSignal = setDeathSignal

// Shutdown stops every plugin process this host started. A host calls it
// before it exits (defer plugin.Shutdown() in main).
func Shutdown() { goplugin.CleanupClients() }

// Name is the plugin's name: its binary's name without BinaryPrefix.
func (c *Client) Name() string { return c.name }

// session returns the running plugin, starting it when there is none or
// when the last one exited.
func (c *Client) session(ctx context.Context) (*session, error) {
	if err := ctx.Err(); err != nil {
		return nil, preview.WithCode(preview.CodeOf(err), err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, preview.Errorf(preview.FailedPrecondition, "plugin %s is closed", c.name)
	}
	if c.cur != nil && c.cur.done.Err() == nil {
		return c.cur, nil
	}
	if c.kill != nil {
		c.kill()
		c.cur, c.kill = nil, nil
	}
	s, kill, err := c.start()
	if err != nil {
		return nil, err
	}
	c.cur, c.kill = s, kill
	return s, nil
}

// lost forgets s after a call found its connection broken, so that the
// next call starts the plugin again.
func (c *Client) lost(s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == s && c.kill != nil {
		c.kill()
		c.cur, c.kill = nil, nil
	}
}

// Close stops the plugin process. Calls after Close fail with
// FailedPrecondition. Close is idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.kill != nil {
		c.kill()
		c.cur, c.kill = nil, nil
	}
	return nil
}

// transportBroken reports whether err says the connection to the plugin
// failed (rather than the plugin answering with an error).
func transportBroken(err error) bool {
	st, ok := status.FromError(err)
	if !ok {
		return true
	}
	if st.Code() != codes.Unavailable && st.Code() != codes.Canceled {
		return false
	}
	for _, d := range st.Details() {
		if _, ok := d.(*pb.ErrorInfo); ok {
			return false
		}
	}
	return true
}

// do runs one call on the running plugin and classifies its error.
func do[T any](ctx context.Context, c *Client, f func(s *session) (T, error)) (T, error) {
	s, err := c.session(ctx)
	if err != nil {
		var zero T
		return zero, err
	}
	v, err := f(s)
	if err != nil {
		if ctx.Err() == nil && transportBroken(err) {
			c.lost(s)
		}
		var zero T
		return zero, fromStatus(ctx, c.name, err)
	}
	return v, nil
}

// Describe starts the plugin if needed and returns what it serves. The
// answer is asked once per Client.
func (c *Client) Describe(ctx context.Context) (Info, error) {
	c.mu.Lock()
	info := c.info
	c.mu.Unlock()
	if info != nil {
		return *info, nil
	}
	resp, err := do(ctx, c, func(s *session) (*pb.DescribeResponse, error) {
		return pb.NewInfoClient(s.cc).Describe(ctx, &pb.DescribeRequest{})
	})
	if err != nil {
		return Info{}, err
	}
	got := Info{Name: resp.Name, Version: resp.Version, ProtocolVersion: int(resp.ProtocolVersion), Interfaces: resp.Interfaces}
	c.mu.Lock()
	c.info = &got
	c.mu.Unlock()
	return got, nil
}

// need returns the plugin's Info after checking that it serves iface.
func (c *Client) need(ctx context.Context, iface string) (Info, error) {
	info, err := c.Describe(ctx)
	if err != nil {
		return info, err
	}
	if !info.Serves(iface) {
		return info, preview.Errorf(preview.Unimplemented, "plugin %s serves no %s (it serves %s)", c.name, iface, strings.Join(info.Interfaces, ", "))
	}
	return info, nil
}

func (c *Client) String() string { return fmt.Sprintf("plugin %s", c.name) }
