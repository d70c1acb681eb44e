package githubloop

import (
	"net/http/httptest"
	"testing"

	"github.com/glimpse-dev/glimpse/forge/githubloop/githubfake"
)

// newFakeGitHub serves a fake of repository acme/app accepting token "tok".
func newFakeGitHub(t *testing.T) (*githubfake.Server, *httptest.Server) {
	f := githubfake.New("acme", "app", "tok")
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}
