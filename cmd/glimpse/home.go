package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/glimpse-dev/glimpse/daemon"
	"github.com/glimpse-dev/glimpse/faas/localfaas"
	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/registry/ociregistry"
)

// serveFile records where a running `glimpse serve` listens, so that other
// commands find it.
const serveFile = "serve.json"

type serveInfo struct {
	Addr string `json:"addr"`
	PID  int    `json:"pid"`
	// Runtime and Assets are the provider URLs the daemon was configured
	// with; empty for its embedded parts. Commands default to them.
	Runtime string `json:"runtime,omitempty"`
	Assets  string `json:"assets,omitempty"`
	// NoRegistry is set when the daemon serves no registry.
	NoRegistry bool `json:"noRegistry,omitempty"`
}

func (g *globalFlags) homeDir() (string, error) {
	h := g.home
	if h == "" {
		h = os.Getenv("GLIMPSE_HOME")
	}
	if h == "" {
		u, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("cannot find the home directory; set GLIMPSE_HOME: %v", err)
		}
		h = filepath.Join(u, ".glimpse")
	}
	abs, err := filepath.Abs(h)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return "", fmt.Errorf("GLIMPSE_HOME %s: %v", abs, err)
	}
	return abs, nil
}

func writeServeInfo(home string, info serveInfo) error {
	b, _ := json.Marshal(info)
	tmp := filepath.Join(home, serveFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(home, serveFile))
}

// findServe returns the address of the running local stack, checking that
// it answers /healthz.
func findServe(ctx context.Context, home string) (serveInfo, error) {
	var info serveInfo
	b, err := os.ReadFile(filepath.Join(home, serveFile))
	if errors.Is(err, fs.ErrNotExist) {
		return info, preview.Errorf(preview.FailedPrecondition, "no local stack is running for GLIMPSE_HOME=%s: start one with 'glimpse serve' or configure providers in glimpse.yaml", home)
	}
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal(b, &info); err != nil || info.Addr == "" {
		return info, fmt.Errorf("%s is damaged; restart 'glimpse serve'", filepath.Join(home, serveFile))
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+info.Addr+"/healthz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return info, preview.Errorf(preview.Unavailable, "the local stack at %s (from %s) does not answer: start it with 'glimpse serve'", info.Addr, filepath.Join(home, serveFile))
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return info, preview.Errorf(preview.Unavailable, "the local stack at %s is not ready (%s)", info.Addr, resp.Status)
	}
	return info, nil
}

// localEnv returns a Getenv that supplies the local stack's credentials
// to the client providers: the gateway's and the edge's when the
// environment does not set them, and, when localRegistry (the registry is
// the stack's own), the registry's (ociregistry.EnvUsername and
// EnvPassword, which the builders and the registry client send with every
// push and delete) whatever the environment says, as the stack's registry
// takes no other credentials. Registry credentials are not supplied for
// another registry: they would go to it. Nor are the gateway's when
// localGateway is false (the daemon forwards to a gateway of its own
// configuration, which has other credentials).
func localEnv(home string, localRegistry, localGateway bool) (func(string) string, error) {
	pw, err := localfaas.LoadOrCreatePassword(home)
	if err != nil {
		return nil, err
	}
	pw = strings.TrimSpace(pw)
	return func(k string) string {
		if localRegistry {
			switch k {
			case ociregistry.EnvUsername:
				return daemon.User
			case ociregistry.EnvPassword:
				return pw
			}
		}
		if v := os.Getenv(k); v != "" {
			return v
		}
		switch k {
		case "GLIMPSE_USERNAME":
			return daemon.User
		case "GLIMPSE_PASSWORD":
			return pw
		}
		if localGateway {
			switch k {
			case "OPENFAAS_USERNAME":
				return daemon.User
			case "OPENFAAS_PASSWORD":
				return pw
			}
		}
		return ""
	}, nil
}
