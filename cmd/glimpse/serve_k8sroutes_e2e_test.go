package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/glimpse-dev/glimpse/ingress/k8singress"
	"github.com/glimpse-dev/glimpse/internal/kubetest"
	"github.com/glimpse-dev/glimpse/internal/testapp"
	"github.com/glimpse-dev/glimpse/internal/testenv"
	"github.com/glimpse-dev/glimpse/preview"
)

// TestServeRoutesFromIngresses runs `glimpse serve` with
// `routes: k8s-ingress://NS` against a real API server (etcd +
// kube-apiserver, internal/kubetest): `glimpse up` stores the preview's
// route as an Ingress through the daemon, the daemon's edge serves it
// from its informer; a route another writer (a second replica) stores
// straight as an Ingress is served too; and a daemon restarted with its
// disk state gone from routes (SIGKILL, same home) still serves both.
func TestServeRoutesFromIngresses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs the daemon against an API server")
	}
	testenv.Require(t, kubetest.EnvEtcd, "etcd")
	testenv.Require(t, kubetest.EnvAPIServer, "kube-apiserver")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := kubetest.Start(ctx, kubetest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	ns := c.Namespace(t)
	bin := buildBinary(t)
	cfg := filepath.Join(t.TempDir(), "serve.yaml")
	if err := os.WriteFile(cfg, []byte("routes: k8s-ingress://"+ns+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"KUBECONFIG=" + c.Kubeconfig}
	home := t.TempDir()
	s := startStackWith(t, bin, home, env, "--config", cfg)

	app := testapp.Copy(t, "../../examples/hello")
	stdout, _ := s.run(t, "up", app, "--pr", "7", "--commit", "7777777")
	url7 := lastLine(stdout)
	index, err := os.ReadFile(filepath.Join(app, "public", "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	host7 := strings.TrimSuffix(strings.TrimPrefix(url7, "http://"), "/")
	if i := strings.IndexByte(host7, ':'); i >= 0 {
		host7 = host7[:i]
	}
	ing, err := c.Client(t).NetworkingV1().Ingresses(ns).Get(ctx, host7, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the preview's route is not an Ingress: %v", err)
	}
	if ing.Labels[preview.LabelManagedBy] != preview.ManagedByValue {
		t.Errorf("Ingress labels %v; want Glimpse's", ing.Labels)
	}
	waitPage := func(url, want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			code, body, _ := get(t, s.client(), "GET", url, "")
			if code == 200 && body == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s = %d %q; want the preview's index.html", url, code, body)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitPage(url7, string(index))

	// Another replica (or a CLI with the kubeconfig) writes a route
	// straight to the Ingresses: this daemon serves it.
	other, err := k8singress.New(c.Client(t), ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := other.Route(ctx, host7)
	if err != nil {
		t.Fatal(err)
	}
	host9 := strings.Replace(host7, "pr-7", "pr-9", 1)
	rt.Host, rt.Version = host9, ""
	if _, err := other.SetRoute(ctx, rt); err != nil {
		t.Fatal(err)
	}
	url9 := strings.Replace(url7, "pr-7", "pr-9", 1)
	waitPage(url9, string(index))

	// A restart (SIGKILL, same home) serves both again from the list.
	s.cmd.Process.Signal(syscall.SIGKILL)
	s.cmd.Wait()
	s = startStackWith(t, bin, home, env, "--config", cfg)
	for _, u := range []string{url7, url9} {
		if code, body, _ := get(t, s.client(), "GET", u, ""); code != 200 || body != string(index) {
			t.Errorf("GET %s right after the restart = %d %q; want the index", u, code, body)
		}
	}
	if _, err := os.Stat(filepath.Join(home, "routes.json.log")); err == nil {
		t.Errorf("the daemon journalled routes to its home; want them only in the Ingresses")
	}
}
