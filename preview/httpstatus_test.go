package preview

import "testing"

func TestHTTPStatusRoundTrip(t *testing.T) {
	// Aborted shares 409 with AlreadyExists, as in Kubernetes; the body carries the code.
	for c := NotFound; c <= Internal; c++ {
		if got := CodeOfHTTPStatus(HTTPStatus(c)); got != c {
			t.Errorf("CodeOfHTTPStatus(HTTPStatus(%v)) = %v", c, got)
		}
	}
	for status, want := range map[int]Code{418: Unknown, 500: Internal, 599: Internal, 401: PermissionDenied, 405: Unimplemented} {
		if got := CodeOfHTTPStatus(status); got != want {
			t.Errorf("CodeOfHTTPStatus(%d) = %v, want %v", status, got, want)
		}
	}
}
