package main

import (
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"k8s.io/klog/v2"

	"github.com/glimpse-dev/glimpse/config"
)

// TestLeaderLease: which Lease `glimpse serve` contends for, from
// leaderElection and where it runs.
func TestLeaderLease(t *testing.T) {
	inPod := func(k string) string {
		if k == "KUBERNETES_SERVICE_HOST" {
			return "10.96.0.1"
		}
		return ""
	}
	noEnv := func(string) string { return "" }
	nsFile := func(p string) ([]byte, error) {
		if p == serviceAccountNamespace {
			return []byte("glimpse\n"), nil
		}
		return nil, os.ErrNotExist
	}
	noFile := func(string) ([]byte, error) { return nil, os.ErrNotExist }
	for _, tc := range []struct {
		name     string
		cfg      config.Serve
		getenv   func(string) string
		readFile func(string) ([]byte, error)
		want     string
	}{
		{"in a pod with kubefaas", config.Serve{Runtime: "kubefaas://fns"}, inPod, nsFile, "glimpse/" + DefaultLeaseName},
		{"in a pod with Ingress routes", config.Serve{Routes: "k8s-ingress://glimpse"}, inPod, nsFile, "glimpse/" + DefaultLeaseName},
		{"in a pod, embedded providers", config.Serve{}, inPod, nsFile, ""},
		{"outside a cluster with kubefaas", config.Serve{Runtime: "kubefaas://fns"}, noEnv, nsFile, ""},
		{"no service account mounted", config.Serve{Runtime: "kubefaas://fns"}, inPod, noFile, ""},
		{"named", config.Serve{LeaderElection: "ops/lead"}, noEnv, noFile, "ops/lead"},
		{"off in a pod", config.Serve{LeaderElection: "off", Runtime: "kubefaas://fns"}, inPod, nsFile, ""},
	} {
		ns, name := leaderLease(tc.cfg, tc.getenv, tc.readFile)
		got := ""
		if name != "" {
			got = ns + "/" + name
		}
		if got != tc.want {
			t.Errorf("%s: lease %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestLeaderElectFlag: the key's syntax is checked where it is given, in
// one line that names it.
func TestLeaderElectFlag(t *testing.T) {
	for _, tc := range []struct {
		arg, want, err string
	}{
		{"glimpse/glimpse-leader", "glimpse/glimpse-leader", ""},
		{"off", "off", ""},
		{"glimpse", "", "want NAMESPACE/NAME of a Lease, or off"},
		{"a/b/c", "", "want NAMESPACE/NAME of a Lease, or off"},
		{"/x", "", "want NAMESPACE/NAME of a Lease, or off"},
	} {
		f := &serveFlags{}
		fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
		fs.SetOutput(new(strings.Builder))
		f.register(fs)
		err := fs.Parse([]string{"--leader-elect", tc.arg})
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), "\n") {
				t.Errorf("--leader-elect %s: %v; want one line with %q", tc.arg, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := f.resolve("", func(string) string { return "" })
		if err != nil || cfg.LeaderElection != tc.want {
			t.Errorf("--leader-elect %s: %q, %v", tc.arg, cfg.LeaderElection, err)
		}
	}
	var cfg config.Serve
	if err := config.ParseServe([]byte("leaderElection: ops/lead\n"), &cfg); err != nil || cfg.LeaderElection != "ops/lead" {
		t.Errorf("leaderElection in the file: %q, %v", cfg.LeaderElection, err)
	}
	if err := config.ParseServe([]byte("leaderElection: nope\n"), &cfg); err == nil || !strings.Contains(err.Error(), "leaderElection") {
		t.Errorf("a bad leaderElection in the file: %v", err)
	}
}

// client-go's klog lines come out through the daemon's logger.
func TestClientGoLogsThroughTheDaemonsLogger(t *testing.T) {
	var buf lockedBuffer
	logClientGo(slog.New(slog.NewTextHandler(&buf, nil)))
	t.Cleanup(klog.ClearLogger)
	klog.InfoS("watch of ingresses ended", "namespace", "glimpse")
	klog.Flush()
	if got := buf.String(); !strings.Contains(got, "component=client-go") || !strings.Contains(got, `msg="watch of ingresses ended"`) || !strings.Contains(got, "namespace=glimpse") {
		t.Fatalf("klog line through the daemon's logger: %q", got)
	}
}
