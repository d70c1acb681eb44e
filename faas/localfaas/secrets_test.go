//go:build unix

package localfaas

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/openfaas/faas-provider/types"

	"github.com/glimpse-dev/glimpse/faas/openfaas"
	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
)

// readSecret asks the running function fn (echofn) for the file of secret
// name in its secrets directory, as the function itself sees it.
func readSecret(t *testing.T, rt *Runtime, fn, name string) (string, bool) {
	t.Helper()
	addr, err := rt.WaitEndpoint(testCtx(t), fn)
	if err != nil {
		t.Fatalf("endpoint of %s: %v", fn, err)
	}
	dir := preview.SecretsDir
	if !rt.Sandboxed() {
		if dir = getEcho(t, "http://"+addr+"/").Env[preview.EnvSecretsDir]; dir == "" {
			return "", false
		}
	}
	resp, err := http.Get("http://" + addr + "/read?path=" + url.QueryEscape(dir+"/"+name))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode == http.StatusOK
}

// secretsHarness adds the Secrets case to a harness whose runtimes are
// (or stand in front of) the localfaas runtimes that of returns.
func secretsHarness(h previewtest.RuntimeHarness, of func(preview.FunctionRuntime) *Runtime) previewtest.RuntimeHarness {
	h.Secret = func(t *testing.T, rt preview.FunctionRuntime, fn, name string) (string, bool) {
		return readSecret(t, of(rt), fn, name)
	}
	h.CreateSecret = func(t *testing.T, rt preview.FunctionRuntime, name, value string) {
		if err := of(rt).CreateSecret(testCtx(t), name, []byte(value)); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

func TestConformanceSecrets(t *testing.T) {
	t.Parallel()
	// Sandboxed where the machine allows (a private tree per function),
	// and unsandboxed (a secrets directory named by GLIMPSE_SECRETS_DIR).
	for _, mode := range []Sandbox{SandboxAuto, SandboxOff} {
		t.Run("sandbox="+mode.String(), func(t *testing.T) {
			previewtest.RunFunctionRuntimeTests(t, secretsHarness(previewtest.RuntimeHarness{
				New: func(t *testing.T) preview.FunctionRuntime {
					return newRuntime(t, t.TempDir(), func(o *Options) { o.Sandbox = mode })
				},
				Image: func(t *testing.T) string { return echoImage(t, "conformance") },
			}, func(rt preview.FunctionRuntime) *Runtime { return rt.(*Runtime) }))
		})
	}
}

// The openfaas client over the gateway: Function.Secrets go through
// /system/secrets and the deployment's secrets list.
func TestConformanceSecretsOverGateway(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	behind := map[preview.FunctionRuntime]*Runtime{}
	previewtest.RunFunctionRuntimeTests(t, secretsHarness(previewtest.RuntimeHarness{
		New: func(t *testing.T) preview.FunctionRuntime {
			rt := newRuntime(t, t.TempDir(), nil)
			c := gatewayClient(t, rt)
			mu.Lock()
			behind[c] = rt
			mu.Unlock()
			return c
		},
		Image: func(t *testing.T) string { return echoImage(t, "conformance") },
	}, func(c preview.FunctionRuntime) *Runtime { mu.Lock(); defer mu.Unlock(); return behind[c] }))
}

// A function's secret is delivered inside its own tree: not in the image's
// shared tree, not in the state file, and gone with the function; the
// secrets of a restarted runtime come back.
func TestSecretsStayPrivate(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	home := t.TempDir()
	rt := newRuntime(t, home, nil)
	img := echoImage(t, "secrets")
	a := testFunction("notes-pr-1", img, 1)
	a.Secrets = map[string]string{"notes-pr-1-database-url": "postgres://u:pw-private-1@h/db"}
	b := testFunction("notes-pr-2", img, 2)
	for _, f := range []preview.Function{a, b} {
		if err := rt.Apply(ctx, f); err != nil {
			t.Fatalf("Apply %s: %v", f.Name, err)
		}
	}
	if got, ok := readSecret(t, rt, a.Name, "notes-pr-1-database-url"); !ok || got != "postgres://u:pw-private-1@h/db" {
		t.Fatalf("function sees %q, %v", got, ok)
	}
	// Nothing outside home/functions/{secrets,roots} holds the value.
	err := filepath.Walk(home, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(home, p)
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte("pw-private-1")) {
			if !strings.HasPrefix(rel, filepath.Join("functions", "secrets")+string(filepath.Separator)) && !strings.HasPrefix(rel, filepath.Join("functions", "roots", a.Name)+string(filepath.Separator)) {
				t.Errorf("%s holds the secret's value", rel)
			}
			if fi.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s holding a secret has mode %v", rel, fi.Mode().Perm())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if rt.Sandboxed() {
		// The other function of the same image sees no secrets directory.
		if got, ok := readSecret(t, rt, b.Name, "notes-pr-1-database-url"); ok {
			t.Fatalf("another function of the same image reads %q", got)
		}
	}
	// A restarted runtime brings the function back with its secret, and
	// deletes the secrets of a function it no longer has.
	rt.Close()
	stray := []string{filepath.Join(home, "functions", "secrets", "gone-pr-1.json"), filepath.Join(home, "functions", "roots", "gone-pr-1")}
	os.WriteFile(stray[0], []byte(`{"x":"y"}`), 0o600)
	os.MkdirAll(stray[1], 0o700)
	rt = newRuntime(t, home, nil)
	for _, p := range stray {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("stray %s survived a restart (%v)", p, err)
		}
	}
	if got, ok := readSecret(t, rt, a.Name, "notes-pr-1-database-url"); !ok || got != "postgres://u:pw-private-1@h/db" {
		t.Fatalf("after a restart the function sees %q, %v", got, ok)
	}
	if err := rt.Remove(ctx, a.Name); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{rt.fnSecretsPath(a.Name), rt.rootsDir(a.Name)} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("after Remove %s is still there (%v)", p, err)
		}
	}
}

// The gateway's /system/secrets as faas-cli drives it.
func TestGatewaySecretsAPI(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, t.TempDir(), nil)
	srv := newGateway(t, rt)
	call := func(method string, body any, auth bool) (int, string) {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, srv.URL+"/system/secrets", bytes.NewReader(b))
		if auth {
			req.SetBasicAuth(GatewayUser, testPassword)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}
	steps := []struct {
		method string
		body   any
		auth   bool
		want   int
	}{
		{"POST", types.Secret{Name: "api-key", Value: "v1-hidden"}, false, http.StatusUnauthorized},
		{"POST", types.Secret{Name: "api-key", Value: "v1-hidden"}, true, http.StatusAccepted},
		{"POST", types.Secret{Name: "api-key", Value: "v1-hidden"}, true, http.StatusConflict},
		{"PUT", types.Secret{Name: "api-key", RawValue: []byte("v2-hidden")}, true, http.StatusAccepted},
		{"PUT", types.Secret{Name: "missing", Value: "x"}, true, http.StatusNotFound},
		{"POST", types.Secret{Name: "../escape", Value: "x"}, true, http.StatusBadRequest},
		{"POST", types.Secret{Name: "other", Value: "x", Namespace: "elsewhere"}, true, http.StatusBadRequest},
		{"POST", types.Secret{Name: "other", Value: "x"}, true, http.StatusAccepted},
		{"DELETE", types.Secret{Name: "other"}, true, http.StatusAccepted},
		{"DELETE", types.Secret{Name: "other"}, true, http.StatusNotFound},
	}
	for _, s := range steps {
		if got, body := call(s.method, s.body, s.auth); got != s.want {
			t.Fatalf("%s %+v: %d %s, want %d", s.method, s.body, got, body, s.want)
		}
	}
	code, body := call("GET", nil, true)
	var list []types.Secret
	if err := json.Unmarshal([]byte(body), &list); code != http.StatusOK || err != nil {
		t.Fatalf("GET: %d %s", code, body)
	}
	if len(list) != 1 || list[0].Name != "api-key" || strings.Contains(body, "hidden") {
		t.Fatalf("GET lists %s; want api-key's name only", body)
	}
	fi, err := os.Stat(filepath.Join(rt.heldSecretsDir(), "api-key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("stored secret: %v, mode %v; want 0600", err, fi.Mode())
	}
	if b, _ := os.ReadFile(filepath.Join(rt.heldSecretsDir(), "api-key")); string(b) != "v2-hidden" {
		t.Fatalf("stored value %q, want the PUT's", b)
	}
}

// The openfaas client stores a function's own secrets as gateway secrets
// and deletes them when the function drops them or is removed; Get shows
// only the names the caller gave in SecretNames.
func TestOpenFaaSClientOwnsItsSecrets(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	rt := newRuntime(t, t.TempDir(), nil)
	c := gatewayClient(t, rt)
	if err := rt.CreateSecret(ctx, "team-token", []byte("t")); err != nil {
		t.Fatal(err)
	}
	fn := testFunction("owned-pr-1", echoImage(t, "a"), 1)
	fn.Secrets = map[string]string{"owned-pr-1-database-url": "v1"}
	fn.SecretNames = []string{"team-token"}
	names := func() string {
		n, err := rt.SecretNames(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(n, ",")
	}
	if err := c.Apply(ctx, fn); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if got := names(); got != "owned-pr-1-database-url,team-token" {
		t.Fatalf("gateway secrets after Apply: %s", got)
	}
	st, err := c.Get(ctx, fn.Name)
	if err != nil || strings.Join(st.SecretNames, ",") != "team-token" || st.Annotations[openfaas.OwnedSecretsAnnotation] != "" {
		t.Fatalf("Get = %+v, %v; want SecretNames [team-token] and no owned-secrets annotation", st.Function, err)
	}
	fn.Secrets = nil
	if err := c.Apply(ctx, fn); err != nil {
		t.Fatalf("Apply without the secret: %v", err)
	}
	if got := names(); got != "team-token" {
		t.Fatalf("gateway secrets after the function dropped its own: %s", got)
	}
	fn.Secrets = map[string]string{"owned-pr-1-database-url": "v2"}
	if err := c.Apply(ctx, fn); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(ctx, fn.Name); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if got := names(); got != "team-token" {
		t.Fatalf("gateway secrets after Remove: %s; want the user's only", got)
	}
}
