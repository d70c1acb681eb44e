package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/glimpse-dev/glimpse/preview"
)

func TestLoadDatabaseAndSecrets(t *testing.T) {
	for _, c := range []struct {
		name, yaml, wantErr string
	}{
		{"ok", "function:\n  secrets: [team-token]\n  database: {migrations: db/migrations, seed: db/seed, readOnly: true}\nproviders:\n  database: postgres://127.0.0.1:5432/postgres\n", ""},
		{"credentials in the URL", "function:\n  database: {template: notes_template}\nproviders:\n  database: postgres://admin:pw@127.0.0.1:5432/postgres\n", "must not hold credentials"},
		{"template and migrations", "function:\n  database: {template: t, migrations: db/migrations}\n", "set one of template, migrations and shared"},
		{"migrations outside the app", "function:\n  database: {migrations: ../elsewhere}\n", "outside the app directory"},
		{"missing seed dir", "function:\n  database: {migrations: db/migrations, seed: db/none}\n", "does not exist"},
		{"bad secret name", "function:\n  secrets: [Team_Token]\n", "function.secrets"},
		{"secret twice", "function:\n  secrets: [a, a]\n", "given twice"},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "app")
			for _, d := range []string{"function", "db/migrations", "db/seed"} {
				os.MkdirAll(filepath.Join(dir, d), 0o755)
			}
			os.MkdirAll(filepath.Join(root, "elsewhere"), 0o755)
			os.WriteFile(filepath.Join(dir, FileName), []byte("app: notes\n"+c.yaml), 0o644)
			f, err := Load(dir)
			if c.wantErr == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if d := f.Function.Database; d == nil || d.Migrations != "db/migrations" || !d.ReadOnly || f.Providers.Database == "" || len(f.Function.Secrets) != 1 {
					t.Fatalf("Load = %+v", f)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) || preview.CodeOf(err) != preview.InvalidArgument || strings.Contains(err.Error(), "pw@") {
				t.Fatalf("Load: %v; want InvalidArgument containing %q (and no password)", err, c.wantErr)
			}
		})
	}
}
