package edge

import (
	"context"
	"testing"

	"github.com/glimpse-dev/glimpse/preview"
)

// captureSource is a RouteSource that hands the test its sink; its Router
// methods are never called here.
type captureSource struct {
	preview.Router
	initial []preview.Route
	sink    RouteSink
	stopped bool
}

func (s *captureSource) Watch(ctx context.Context, sink RouteSink) (func(), error) {
	s.sink = sink
	sink.Replace(s.initial)
	return func() { s.stopped = true }, nil
}

// TestSourceSink checks the table an Edge in cluster mode builds from
// its source's calls: the first list served as soon as New returns, an
// unchanged Version keeping the cached manifest, a changed one dropping
// it, an invalid route and a delete no longer served, and Close stopping
// the watch. SourceStore reaches the same mode through Options.Routes.
func TestSourceSink(t *testing.T) {
	a := preview.Route{Host: "A.example.com", AssetPrefix: "a/pr-1/c", Version: "1"}
	b := preview.Route{Host: "b.example.com", AssetPrefix: "b/pr-1/c", Version: "1"}
	src := &captureSource{initial: []preview.Route{a, b, {Host: "bad host", Version: "1"}}}
	e, err := New(Options{Routes: SourceStore(src), StateFile: t.TempDir() + "/routes.json", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if !e.HasHost("a.example.com") || !e.HasHost("b.example.com") {
		t.Fatalf("first list not served after New")
	}
	set := &assetSet{}
	(*e.table.Load())["a.example.com"].assets.Store(set)
	(*e.table.Load())["b.example.com"].assets.Store(set)

	src.sink.Put(a) // the same version again: nothing changes
	if (*e.table.Load())["a.example.com"].assets.Load() != set {
		t.Errorf("a Put of the stored version dropped the cached manifest")
	}
	b.Version = "2"
	src.sink.Put(b)
	if (*e.table.Load())["b.example.com"].assets.Load() != nil {
		t.Errorf("a new version kept the cached manifest")
	}
	src.sink.Put(preview.Route{Host: "a.example.com", FunctionPaths: []string{"/x"}, Version: "3"}) // paths without a function
	if e.HasHost("a.example.com") {
		t.Errorf("an invalid route replacing a valid one is still served")
	}
	src.sink.Delete("B.example.com")
	if e.HasHost("b.example.com") {
		t.Errorf("a deleted route is still served")
	}
	e.Close()
	if !src.stopped {
		t.Errorf("Close did not stop the watch")
	}
	if _, err := New(Options{Source: src, StateFile: t.TempDir() + "/r.json"}); preview.CodeOf(err) != preview.InvalidArgument {
		t.Errorf("Source with StateFile: %v; want InvalidArgument", err)
	}
	if _, err := SourceStore(src).Load(); preview.CodeOf(err) != preview.FailedPrecondition {
		t.Errorf("SourceStore used as a store: %v; want FailedPrecondition", err)
	}
}
