package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/glimpse-dev/glimpse/preview"
)

// The GitHub App flags: both or neither, a readable RSA PEM, and errors
// that say which flag in one line.
func TestGitHubAppFlags(t *testing.T) {
	dir := t.TempDir()
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	good := filepath.Join(dir, "app.pem")
	os.WriteFile(good, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600)
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("not a key"), 0o600)
	for _, c := range []struct {
		name       string
		f          githubAppFlags
		env        string
		wantErr    string
		wantAppNil bool
	}{
		{name: "none", wantAppNil: true},
		{name: "app and key", f: githubAppFlags{appID: "42", appKeyFile: good, appInstallation: 7}},
		{name: "key from the environment", f: githubAppFlags{appID: "Iv1.abc"}, env: good},
		{name: "no key", f: githubAppFlags{appID: "42"}, wantErr: "--github-app-id needs the app's private key"},
		{name: "key without app", f: githubAppFlags{appKeyFile: good}, wantErr: "--github-app-key-file needs --github-app-id"},
		{name: "missing file", f: githubAppFlags{appID: "42", appKeyFile: filepath.Join(dir, "nope.pem")}, wantErr: "--github-app-key-file: open"},
		{name: "not PEM", f: githubAppFlags{appID: "42", appKeyFile: bad}, wantErr: "no PEM block"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("GLIMPSE_GITHUB_APP_KEY_FILE", c.env)
			app, err := c.f.appAuth()
			switch {
			case c.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || preview.CodeOf(err) != preview.InvalidArgument || strings.Contains(err.Error(), "\n") {
					t.Errorf("error %v (%v), want InvalidArgument containing %q", err, preview.CodeOf(err), c.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case c.wantAppNil != (app == nil):
				t.Errorf("app %+v", app)
			case app != nil && (!app.Key.Equal(key) || app.AppID != c.f.appID || app.InstallationID != c.f.appInstallation):
				t.Errorf("app %q installation %d", app.AppID, app.InstallationID)
			}
		})
	}
}
