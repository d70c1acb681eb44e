package preview

import (
	"testing"
	"unicode/utf8"
)

// Function paths come from the pull request and end up in other systems'
// configuration (an ingress-nginx regex location): only a narrow set of
// characters passes, in glimpse.yaml and on a route alike.
func TestValidFunctionPath(t *testing.T) {
	for _, p := range []string{"/", "/graphql", "/api/", "/v1/items-list_2.json", "/~user", "/a%20b"} {
		if !ValidFunctionPath(p) {
			t.Errorf("%q refused", p)
		}
	}
	for _, p := range []string{"", "graphql", "/a b", "/a?b", "/a#b", `/a";deny all;"`, "/a\nb", "/a\tb", "/a{1}", "/a|b", "/(x)", "/a*", "/a$", "/" + string(make([]byte, 300))} {
		if ValidFunctionPath(p) {
			t.Errorf("%q accepted", p)
		}
		r := Route{Host: "pr-1.app.localhost", Function: "app-pr-1", FunctionPaths: []string{p}}
		if err := r.Validate(); err == nil || CodeOf(err) != InvalidArgument {
			t.Errorf("route with function path %q: %v, want InvalidArgument", p, err)
		}
	}
}

// A failed Up's reason is cut to a bound without splitting a character.
func TestFailureLineKeepsUTF8(t *testing.T) {
	long := ""
	for len(long) < 2*maxFailure {
		long += "é"
	}
	got := failureLine(errorString("deploy: x" + long)) // 9 bytes: the bound falls inside an é
	if !utf8.ValidString(got) || len(got) > maxFailure+len("…") {
		t.Fatalf("failure line of %d bytes, valid UTF-8 %v", len(got), utf8.ValidString(got))
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }
