package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	"github.com/glimpse-dev/glimpse/preview"
)

func newInit() *cobra.Command {
	var app string
	c := &cobra.Command{
		Use:   "init [DIR] [--app NAME]",
		Short: "Create an app that deploys as is: a static page and a Go function",
		Long: "init writes glimpse.yaml, public/index.html and a Go function in function/ (its own\n" +
			"module, no dependencies) into DIR (default .), so that 'glimpse up DIR --pr 1' deploys\n" +
			"it. The app is named after DIR unless --app says otherwise. It never overwrites a file.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := filepath.Abs(dirArg(args))
			if err != nil {
				return err
			}
			if app == "" {
				app = appNameFor(filepath.Base(dir))
			}
			if err := preview.ValidateDNSLabel(app); err != nil {
				return preview.Errorf(preview.InvalidArgument, "app name %q: %v (give one with --app)", app, err)
			}
			files := scaffold(app)
			for _, f := range files {
				if _, err := os.Lstat(filepath.Join(dir, f.path)); err == nil {
					return preview.Errorf(preview.AlreadyExists, "%s already exists: init never overwrites (use another directory)", filepath.Join(dir, f.path))
				} else if !errors.Is(err, fs.ErrNotExist) {
					return err
				}
			}
			for _, f := range files {
				p := filepath.Join(dir, f.path)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					return err
				}
				if err := os.WriteFile(p, []byte(f.body), 0o644); err != nil {
					return err
				}
			}
			rel := dirArg(args)
			fmt.Fprintf(cmd.OutOrStdout(), "created app %s in %s\nnext: glimpse serve & then glimpse up %s --pr 1\n", app, dir, rel)
			return nil
		},
	}
	c.Flags().StringVar(&app, "app", "", "the app's name, a DNS label (default: DIR's name)")
	return c
}

// appNameFor turns a directory name into an app name: lower case, runs of
// other characters as one '-', at most 40 characters.
func appNameFor(base string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(base) {
		if ('a' <= r && r <= 'z') || ('0' <= r && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	s := strings.Trim(b.String(), "-")
	if len(s) > 40 {
		s = strings.TrimRight(s[:40], "-")
	}
	return s
}

type scaffoldFile struct{ path, body string }

// scaffold is the files init writes for app.
func scaffold(app string) []scaffoldFile {
	goVersion := strings.TrimPrefix(runtime.Version(), "go")
	if parts := strings.SplitN(goVersion, ".", 3); len(parts) >= 2 {
		goVersion = parts[0] + "." + parts[1]
	}
	return []scaffoldFile{
		{"glimpse.yaml", `# Created by glimpse init. Every key: docs/glimpse-yaml.md in Glimpse's repository.
app: ` + app + `
function:
  source: function      # a Go main package, built with ko (no Docker needed)
  routes: [/api/]       # these paths go to the function; the rest is static
assets:
  dir: public
idle:
  after: 15m            # scale to zero after 15 minutes without requests
`},
		{"public/index.html", `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>` + app + `</title></head>
<body>
<h1>` + app + `</h1>
<p id="greeting">Asking the function...</p>
<script>
fetch("/api/hello").then(r => r.json()).then(d => {
  document.getElementById("greeting").textContent = "Hello from pull request #" + d.pr + " at " + d.commit;
});
</script>
</body>
</html>
`},
		{"function/go.mod", "module example.com/" + app + "/function\n\ngo " + goVersion + "\n"},
		{"function/main.go", `// Command function is the preview's backend: GET /api/hello answers with
// the pull request and commit it was deployed for. The runtime sets HOST
// and PORT (where to listen) and GLIMPSE_APP, GLIMPSE_PR, GLIMPSE_COMMIT.
package main

import (
	"encoding/json"
	"log"
	"net"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("GET /api/hello", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{
			"app":    os.Getenv("GLIMPSE_APP"),
			"pr":     os.Getenv("GLIMPSE_PR"),
			"commit": os.Getenv("GLIMPSE_COMMIT"),
		})
	})
	log.Fatal(http.ListenAndServe(net.JoinHostPort(os.Getenv("HOST"), os.Getenv("PORT")), nil))
}
`},
	}
}
