package kobuild

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/glimpse-dev/glimpse/preview"
)

// The OpenFaaS Go templates kobuild builds (faas-cli's lang values).
const (
	// TemplateGolangMiddleware is a "package function" with
	// func Handle(w http.ResponseWriter, r *http.Request).
	TemplateGolangMiddleware = "golang-middleware"
	// TemplateGolangHTTP is a "package function" with
	// func Handle(req handler.Request) (handler.Response, error), handler
	// being github.com/openfaas/templates-sdk/go-http.
	TemplateGolangHTTP = "golang-http"
)

// Templates are the lang values of a stack file that kobuild builds.
var Templates = []string{TemplateGolangMiddleware, TemplateGolangHTTP}

// sdkHTTP is the import path of the golang-http template's types.
const sdkHTTP = "github.com/openfaas/templates-sdk/go-http"

// wrapperDirName is the directory, inside the handler directory, where the
// generated main package appears to live. It exists only in the -overlay
// given to go build, never on disk.
const wrapperDirName = "glimpse_function_main"

// plan is what Build compiles for a source directory.
type plan struct {
	template string // "" for a main package
	wrapper  []byte // generated main.go; nil for a main package
	// pkgDir is the directory of the package go build builds: the source
	// directory, or the virtual wrapper directory inside it.
	pkgDir string
	// goflags is the GOFLAGS go build runs with (see quietGOFLAGS).
	goflags string
}

// settings are the plan's source-hash settings (none for a main package,
// so main packages keep their hashes).
func (p *plan) settings() []string {
	if p.template == "" {
		return nil
	}
	sum := sha256.Sum256(p.wrapper)
	return []string{"template=" + p.template, "wrapper=" + hex.EncodeToString(sum[:8])}
}

// planFor decides how to build dir: as a main package, or wrapped in a
// generated main for an OpenFaaS template (b.template, or, when it is
// empty, the template whose Handle the package declares). Errors are one
// line with code InvalidArgument.
func (b *Builder) planFor(dir string, env map[string]string) (*plan, error) {
	bc := build.Default
	bc.GOOS, bc.GOARCH, bc.CgoEnabled = b.goos, b.goarch, false
	pkg, err := bc.ImportDir(dir, 0)
	if err != nil {
		// No Go files, several packages, a parse error: go build says
		// what is wrong, as it did before templates.
		if b.template == "" {
			return &plan{pkgDir: dir}, nil
		}
		var noGo *build.NoGoError
		if errors.As(err, &noGo) {
			return nil, preview.Errorf(preview.InvalidArgument, "function source %s has no Go files; lang: %s needs a package function with a Handle function", dir, b.template)
		}
		return nil, preview.Errorf(preview.InvalidArgument, "function source %s: %s", dir, oneLineErr(err))
	}
	if pkg.Name == "main" {
		// A main package is built as it is, whatever the template: it
		// is its own server (examples/hello says lang: golang-middleware).
		return &plan{pkgDir: dir}, nil
	}
	handles, err := findHandle(dir, pkg.GoFiles)
	if err != nil {
		return nil, err
	}
	tmpl := b.template
	if tmpl == "" {
		for _, h := range handles {
			if h.template != "" {
				tmpl = h.template
				break
			}
		}
		if tmpl == "" {
			return nil, preview.Errorf(preview.InvalidArgument, "function source %s is package %s without main; set lang: golang-middleware in stack.yml or add a main package", dir, pkg.Name)
		}
	} else {
		ok := false
		for _, h := range handles {
			ok = ok || h.template == tmpl
		}
		if !ok {
			want := "func Handle(w http.ResponseWriter, r *http.Request)"
			if tmpl == TemplateGolangHTTP {
				want = "func Handle(req handler.Request) (handler.Response, error) with handler " + sdkHTTP
			}
			if len(handles) == 0 {
				return nil, preview.Errorf(preview.InvalidArgument, "function source %s (package %s) has no Handle function; lang: %s needs %s", dir, pkg.Name, tmpl, want)
			}
			return nil, preview.Errorf(preview.InvalidArgument, "function source %s: Handle at %s is %s; lang: %s needs %s", dir, handles[0].pos, handles[0].sig, tmpl, want)
		}
	}
	gomod := env["GOMOD"]
	if gomod == "" || gomod == os.DevNull {
		return nil, preview.Errorf(preview.FailedPrecondition, "%s is not inside a Go module (no go.mod found)", dir)
	}
	modPath, _, err := readModFile(gomod)
	if err != nil {
		return nil, err
	}
	rel, err := filepath.Rel(filepath.Dir(gomod), dir)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return nil, preview.Errorf(preview.FailedPrecondition, "%s is outside its module %s", dir, filepath.Dir(gomod))
	}
	importPath := path.Join(modPath, filepath.ToSlash(rel))
	wdir := filepath.Join(dir, wrapperDirName)
	if _, err := os.Lstat(wdir); err == nil {
		return nil, preview.Errorf(preview.InvalidArgument, "function source %s has a %s directory, which kobuild reserves for its generated main", dir, wrapperDirName)
	}
	return &plan{template: tmpl, wrapper: wrapperSource(tmpl, importPath), pkgDir: wdir}, nil
}

// handleDecl is a top-level func Handle of the handler package.
type handleDecl struct {
	template string // the template its signature fits, or ""
	pos      string // file:line
	sig      string // "func(req string) error"
}

// findHandle parses files (in dir) and returns their top-level Handle
// functions.
func findHandle(dir string, files []string) ([]handleDecl, error) {
	fset := token.NewFileSet()
	var out []handleDecl
	for _, name := range files {
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, preview.Errorf(preview.InvalidArgument, "function source %s: %s", dir, oneLineErr(err))
		}
		imports := map[string]string{} // local name -> import path
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			local := path.Base(p)
			switch p {
			case sdkHTTP:
				local = "handler" // its package clause
			}
			if imp.Name != nil {
				local = imp.Name.Name
			}
			imports[local] = p
		}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Recv != nil || fd.Name.Name != "Handle" {
				continue
			}
			p := fset.Position(fd.Pos())
			out = append(out, handleDecl{
				template: signatureTemplate(fd.Type, imports),
				pos:      filepath.Base(p.Filename) + ":" + strconv.Itoa(p.Line),
				sig:      types.ExprString(fd.Type),
			})
		}
	}
	return out, nil
}

// signatureTemplate returns the template whose Handle signature ft is.
func signatureTemplate(ft *ast.FuncType, imports map[string]string) string {
	if ft.TypeParams != nil {
		return ""
	}
	params, results := fieldTypes(ft.Params), fieldTypes(ft.Results)
	switch {
	case len(params) == 2 && len(results) == 0 &&
		isSel(params[0], imports, "net/http", "ResponseWriter") && isStarSel(params[1], imports, "net/http", "Request"):
		return TemplateGolangMiddleware
	case len(params) == 1 && len(results) == 2 &&
		isSel(params[0], imports, sdkHTTP, "Request") && isSel(results[0], imports, sdkHTTP, "Response") && isIdent(results[1], "error"):
		return TemplateGolangHTTP
	}
	return ""
}

func fieldTypes(fl *ast.FieldList) []ast.Expr {
	if fl == nil {
		return nil
	}
	var out []ast.Expr
	for _, f := range fl.List {
		n := len(f.Names)
		if n == 0 {
			n = 1
		}
		for range n {
			out = append(out, f.Type)
		}
	}
	return out
}

func isSel(e ast.Expr, imports map[string]string, pkg, name string) bool {
	s, ok := e.(*ast.SelectorExpr)
	if !ok || s.Sel.Name != name {
		return false
	}
	x, ok := s.X.(*ast.Ident)
	return ok && imports[x.Name] == pkg
}

func isStarSel(e ast.Expr, imports map[string]string, pkg, name string) bool {
	s, ok := e.(*ast.StarExpr)
	return ok && isSel(s.X, imports, pkg, name)
}

func isIdent(e ast.Expr, name string) bool {
	i, ok := e.(*ast.Ident)
	return ok && i.Name == name
}

// writeOverlay writes the wrapper and the -overlay file that places it in
// p.pkgDir into tmp, and returns the overlay file's path.
func (p *plan) writeOverlay(tmp string) (string, error) {
	src := filepath.Join(tmp, "main.go")
	if err := os.WriteFile(src, p.wrapper, 0o644); err != nil {
		return "", err
	}
	b, err := json.Marshal(map[string]map[string]string{"Replace": {filepath.Join(p.pkgDir, "main.go"): src}})
	if err != nil {
		return "", err
	}
	o := filepath.Join(tmp, "overlay.json")
	return o, os.WriteFile(o, b, 0o644)
}

func oneLineErr(err error) string {
	s := strings.TrimSpace(err.Error())
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// wrapperSource returns the main package kobuild generates around a
// handler package (importPath) of template tmpl. It behaves as the
// OpenFaaS template behind of-watchdog's http mode does, from their
// documentation:
//   - it listens on $PORT (default 8080, of-watchdog's port);
//   - GET /_/health answers 200 OK (503 once shutting down), as of-watchdog;
//     every other path goes to Handle;
//   - read_timeout and write_timeout (Go durations or seconds, default
//     10s) are the server's read and write timeouts; request headers are
//     limited to 1 MiB; exec_timeout, when set, is the deadline of each
//     request's context; max_inflight, when set, answers 429 to requests
//     beyond that many at once;
//   - golang-http: the body is read whole into Request.Body; a non-nil
//     error is logged to stderr and answered 500 with the response's body;
//     a zero StatusCode is 200;
//   - on SIGTERM or SIGINT it stops accepting, waits for requests in
//     flight up to healthcheck_interval (default write_timeout) and exits 0;
//     with nothing in flight it exits at once.
//
// The code is compatible with Go 1.16 language rules, since it compiles
// with the handler module's go version.
func wrapperSource(tmpl, importPath string) []byte {
	var imports, handler string
	switch tmpl {
	case TemplateGolangHTTP:
		imports = "\t\"io\"\n\n\tfunction " + strconv.Quote(importPath) + "\n\thandler " + strconv.Quote(sdkHTTP) + "\n"
		handler = httpAdapter
	default:
		imports = "\n\tfunction " + strconv.Quote(importPath) + "\n"
		handler = "var handle http.Handler = http.HandlerFunc(function.Handle)\n"
	}
	return []byte(fmt.Sprintf(wrapperTemplate, tmpl, imports, handler))
}

const httpAdapter = `var handle http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	var body []byte
	if r.Body != nil {
		b, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			http.Error(w, "reading the request body: "+err.Error(), http.StatusBadRequest)
			return
		}
		body = b
	}
	req := handler.Request{Body: body, Header: r.Header, QueryString: r.URL.RawQuery, Method: r.Method, Host: r.Host}
	req.WithContext(r.Context())
	res, err := function.Handle(req)
	for k, vs := range res.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	status := res.StatusCode
	if err != nil {
		log.Printf("function error: %v", err)
		status = http.StatusInternalServerError
	} else if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	w.Write(res.Body)
})
`

const wrapperTemplate = `// Code generated by Glimpse kobuild for lang: %s. DO NOT EDIT.

package main

import (
	"context"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
%s)

%s
func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	readTimeout := duration("read_timeout", 10*time.Second)
	writeTimeout := duration("write_timeout", 10*time.Second)
	grace := duration("healthcheck_interval", writeTimeout)
	execTimeout := duration("exec_timeout", 0)
	maxInflight, _ := strconv.Atoi(os.Getenv("max_inflight"))

	var stopping int32
	var inflight int64
	mux := http.NewServeMux()
	mux.HandleFunc("/_/health", func(w http.ResponseWriter, r *http.Request) {
		if atomic.LoadInt32(&stopping) == 1 {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("OK"))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if n := atomic.AddInt64(&inflight, 1); maxInflight > 0 && n > int64(maxInflight) {
			atomic.AddInt64(&inflight, -1)
			http.Error(w, "too many requests in flight", http.StatusTooManyRequests)
			return
		}
		defer atomic.AddInt64(&inflight, -1)
		if execTimeout > 0 {
			ctx, cancel := context.WithTimeout(r.Context(), execTimeout)
			defer cancel()
			r = r.WithContext(ctx)
		}
		handle.ServeHTTP(w, r)
	})
	srv := &http.Server{Handler: mux, ReadTimeout: readTimeout, WriteTimeout: writeTimeout, MaxHeaderBytes: 1 << 20}
	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {
		log.Fatalf("listen: %%v", err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		log.Fatalf("serve: %%v", err)
	case <-sig:
	}
	atomic.StoreInt32(&stopping, 1)
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Printf("shutdown: %%v", err)
	}
}

// duration reads a Go duration ("10s") or a number of seconds from the
// environment variable name.
func duration(name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	if d, err := time.ParseDuration(v); err == nil {
		return d
	}
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(n) * time.Second
	}
	log.Printf("%%s=%%q is not a duration; using %%s", name, v, def)
	return def
}
`
