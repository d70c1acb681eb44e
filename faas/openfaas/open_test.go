package openfaas

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"

	"github.com/glimpse-dev/glimpse/preview"
)

// faasCLIConfigFile writes dir/config.yml as `faas-cli login` does
// (faas-cli config/config_file.go).
func faasCLIConfigFile(t *testing.T, dir, gateway, user, password string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	token := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	cfg := "auths:\n" +
		"  - gateway: https://other.example.com\n    auth: basic\n    token: " + base64.StdEncoding.EncodeToString([]byte("x:y")) + "\n" +
		"  - gateway: " + gateway + "\n    auth: basic\n    token: " + token + "\n" +
		"  - gateway: " + gateway + "\n    auth: oauth2\n    token: ey.jwt\n"
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestResolveCredentials(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	faasCLIConfigFile(t, filepath.Join(home, ".openfaas"), "http://127.0.0.1:8080", "cli-user", "cli:pass")
	custom := t.TempDir()
	faasCLIConfigFile(t, custom, "http://gw.example.com:8080", "custom", "from-openfaas-config")
	pwFile := filepath.Join(t.TempDir(), "basic-auth-password")
	os.WriteFile(pwFile, []byte("from-file\n"), 0o600)
	userFile := filepath.Join(t.TempDir(), "basic-auth-user")
	os.WriteFile(userFile, []byte("file-user\n"), 0o600)
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	badToken := t.TempDir()
	os.WriteFile(filepath.Join(badToken, "config.yml"), []byte("auths:\n  - gateway: http://127.0.0.1:8080\n    auth: basic\n    token: '!!'\n"), 0o600)
	badYAML := t.TempDir()
	os.WriteFile(filepath.Join(badYAML, "config.yml"), []byte("auths: [\n"), 0o600)

	for _, c := range []struct {
		name               string
		env                map[string]string
		gateway            string
		wantUser, wantPass string
		wantErr            bool
	}{
		{"nothing", map[string]string{"HOME": t.TempDir()}, "http://127.0.0.1:8080", "admin", "", false},
		{"env", map[string]string{"HOME": home, "OPENFAAS_PASSWORD": "env-pw"}, "http://127.0.0.1:8080", "admin", "env-pw", false},
		{"env user", map[string]string{"HOME": home, "OPENFAAS_USERNAME": "ops", "OPENFAAS_PASSWORD": "env-pw"}, "http://127.0.0.1:8080", "ops", "env-pw", false},
		{"password file", map[string]string{"HOME": home, "OPENFAAS_PASSWORD_FILE": pwFile, "OPENFAAS_USERNAME_FILE": userFile}, "http://127.0.0.1:8080", "file-user", "from-file", false},
		{"env beats file", map[string]string{"OPENFAAS_PASSWORD": "env-pw", "OPENFAAS_PASSWORD_FILE": pwFile}, "http://127.0.0.1:8080", "admin", "env-pw", false},
		{"faas-cli login", map[string]string{"HOME": home}, "http://127.0.0.1:8080", "cli-user", "cli:pass", false},
		{"faas-cli login, URL case and slash", map[string]string{"HOME": home}, "HTTP://127.0.0.1:8080/", "cli-user", "cli:pass", false},
		{"faas-cli login, user from env", map[string]string{"HOME": home, "OPENFAAS_USERNAME": "ops"}, "http://127.0.0.1:8080", "ops", "cli:pass", false},
		{"faas-cli login for another gateway", map[string]string{"HOME": home}, "http://127.0.0.1:9999", "admin", "", false},
		{"OPENFAAS_CONFIG", map[string]string{"HOME": home, "OPENFAAS_CONFIG": custom}, "http://gw.example.com:8080", "custom", "from-openfaas-config", false},
		{"missing password file", map[string]string{"OPENFAAS_PASSWORD_FILE": filepath.Join(home, "nope")}, "http://127.0.0.1:8080", "", "", true},
		{"empty password file", map[string]string{"OPENFAAS_PASSWORD_FILE": empty}, "http://127.0.0.1:8080", "", "", true},
		{"bad token", map[string]string{"OPENFAAS_CONFIG": badToken}, "http://127.0.0.1:8080", "", "", true},
		{"bad yaml", map[string]string{"OPENFAAS_CONFIG": badYAML}, "http://127.0.0.1:8080", "", "", true},
	} {
		u, p, err := ResolveCredentials(func(k string) string { return c.env[k] }, c.gateway)
		if c.wantErr {
			if preview.CodeOf(err) != preview.InvalidArgument {
				t.Errorf("%s: %q %q %v; want InvalidArgument", c.name, u, p, err)
			}
			continue
		}
		if err != nil || u != c.wantUser || p != c.wantPass {
			t.Errorf("%s: %q %q %v; want %q %q", c.name, u, p, err, c.wantUser, c.wantPass)
		}
	}
}

// In CI faas-cli keeps its config in ./.openfaas.
func TestResolveCredentialsCI(t *testing.T) {
	dir := t.TempDir()
	faasCLIConfigFile(t, filepath.Join(dir, ".openfaas"), "http://127.0.0.1:8080", "ci", "ci-pw")
	t.Chdir(dir)
	u, p, err := ResolveCredentials(func(k string) string {
		return map[string]string{"CI": "true", "HOME": t.TempDir()}[k]
	}, "http://127.0.0.1:8080")
	if err != nil || u != "ci" || p != "ci-pw" {
		t.Fatalf("%q %q %v", u, p, err)
	}
}
