package config

import (
	"net/url"
	"strings"
	"testing"

	"github.com/glimpse-dev/glimpse/preview"
)

// FuzzParseStack feeds arbitrary stack.yml content to ParseStack and
// checks: no panic; errors are one non-empty line; an accepted stack has
// provider openfaas, version "" or "1.0", at least one function, each
// named by its key; Select and RuntimeURL answer with one-line
// InvalidArgument errors or a usable result; and the variable
// substitution leaves text without "$" alone and never re-expands the
// values it substitutes.
func FuzzParseStack(f *testing.F) {
	env := map[string]string{"SET": "value", "EMPTY": "", "DOLLAR": "${SET}$$", "URL": "http://gw:8080"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	f.Fuzz(func(t *testing.T, data []byte, name, app string) {
		s := string(data)
		exp, err := expandEnv(s, lookup)
		if err != nil {
			checkOneLine(t, "expandEnv", err)
		} else {
			if !strings.Contains(s, "$") && exp != s {
				t.Fatalf("expandEnv(%q) = %q, want it unchanged", s, exp)
			}
		}
		if !strings.Contains(s, "$") {
			// A substituted value is inserted literally, not expanded again.
			in := s + "${DOLLAR}" + s + "${EMPTY:-$SET}"
			if got, err := expandEnv(in, lookup); err != nil || got != s+env["DOLLAR"]+s+"value" {
				t.Fatalf("expandEnv(%q) = %q, %v; want %q", in, got, err, s+env["DOLLAR"]+s+"value")
			}
		}
		st, err := ParseStack(data, lookup)
		if err != nil {
			checkOneLine(t, "ParseStack", err)
			return
		}
		if st.Provider.Name != "openfaas" || (st.Version != "" && st.Version != "1.0") || len(st.Functions) == 0 {
			t.Fatalf("ParseStack accepted %q: %+v", data, st)
		}
		for k, fn := range st.Functions {
			if fn == nil || fn.Name != k {
				t.Fatalf("function %q: %+v", k, fn)
			}
			if strings.EqualFold(fn.Lang, "dockerfile") && fn.Lang != "dockerfile" {
				t.Fatalf("function %q: lang %q not normalised", k, fn.Lang)
			}
		}
		if len(st.Names()) != len(st.Functions) {
			t.Fatalf("Names() = %v", st.Names())
		}
		fn, err := st.Select(name, app)
		if err != nil {
			checkOneLine(t, "Select", err)
			if preview.CodeOf(err) != preview.InvalidArgument {
				t.Fatalf("Select: code %v: %v", preview.CodeOf(err), err)
			}
		} else if fn == nil || (name != "" && fn.Name != name) {
			t.Fatalf("Select(%q, %q) = %+v", name, app, fn)
		}
		for _, ns := range []string{"", "openfaas-fn", name} {
			ru, err := st.RuntimeURL(ns)
			if err != nil {
				checkOneLine(t, "RuntimeURL", err)
				if preview.CodeOf(err) != preview.InvalidArgument {
					t.Fatalf("RuntimeURL: code %v: %v", preview.CodeOf(err), err)
				}
				continue
			}
			u, err := url.Parse(ru)
			if err != nil || u.Scheme != "openfaas" || u.Host == "" || u.Query().Get("namespace") != ns {
				t.Fatalf("RuntimeURL(%q) for gateway %q = %q (%v)", ns, st.Provider.Gateway, ru, err)
			}
			if strings.HasPrefix(st.Provider.Gateway, "https:") != (u.Query().Get("tls") == "true") {
				t.Fatalf("RuntimeURL(%q) for gateway %q = %q: tls", ns, st.Provider.Gateway, ru)
			}
		}
	})
}
