package ownership

import (
	"maps"
	"testing"

	"github.com/glimpse-dev/glimpse/preview"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, l := range []preview.Labels{
		preview.OwnerLabels("conformance", preview.Target{App: "hello", PR: 42, Commit: "3f2c1ab"}),
		preview.OwnerLabels("team a", preview.Target{App: "x", PR: 1, Commit: "c0ffee1"}).With("example.com/other", "a=b c"),
	} {
		enc := Encode(l)
		got, ok := Decode(enc)
		if !ok || !maps.Equal(got, l) {
			t.Errorf("Decode(Encode(%v)) = %v, %v (encoded %q)", l, got, ok, enc)
		}
	}
	if got, want := Encode(preview.OwnerLabels("o", preview.Target{App: "hello", PR: 42, Commit: "3f2c1ab"})), "glimpse/1 app=hello commit=3f2c1ab owner=o pr=42"; got != want {
		t.Errorf("Encode = %q, want %q", got, want)
	}
}

func TestNotOurs(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "hello", "glimpse/2 app=x", "glimpse/1 app", "managed by hand", "glimpse/1 %zz=1"} {
		if l, ok := Decode(s); ok {
			t.Errorf("Decode(%q) = %v, true; want not ours", s, l)
		}
	}
}
