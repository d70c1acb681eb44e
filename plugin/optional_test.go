package plugin

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
)

// Small providers with the optional interfaces the in-memory ones lack,
// to check each optional method's round trip.

type logRuntime struct{ *previewtest.MemRuntime }

func (logRuntime) Logs(ctx context.Context, name string, opts preview.LogOptions, fn func(preview.LogLine) error) error {
	if name != "fn" {
		return preview.Errorf(preview.NotFound, "function %s not found", name)
	}
	for i := range 3 {
		if err := fn(preview.LogLine{Function: name, Instance: "i1", Time: opts.Since.Add(time.Duration(i) * time.Second), Text: "line"}); err != nil {
			return err
		}
	}
	return nil
}

type fullRegistry struct{ *previewtest.MemRegistry }

func (fullRegistry) Apps(context.Context) ([]string, error) { return []string{"a", "b"}, nil }
func (fullRegistry) DeleteManifest(_ context.Context, app, digest string) error {
	return preview.Errorf(preview.PermissionDenied, "refused %s@%s", app, digest)
}

type collectingAssets struct{ *previewtest.MemAssets }

func (collectingAssets) CollectBlobs(_ context.Context, o preview.BlobCollectOptions) (preview.BlobCollectStats, error) {
	return preview.BlobCollectStats{Blobs: 3, Deleted: int(o.OlderThan / time.Second), DeletedBytes: 7, Temp: map[bool]int{true: 1}[o.DryRun]}, nil
}

type activeRouter struct{ *previewtest.MemRouter }

func (activeRouter) Activity(context.Context) ([]preview.Activity, error) {
	return []preview.Activity{{Function: "f", Started: 5, InFlight: 1, Finished: 4, LastActivity: time.Unix(100, 0)}, {Host: "pr-1.app.localhost", LastActivity: time.Unix(101, 0)}}, nil
}

type recordingCDN struct{ got *preview.PurgeRequest }

func (r recordingCDN) Purge(_ context.Context, req preview.PurgeRequest) error {
	*r.got = req
	return nil
}

func TestOptionalInterfacesRoundTrip(t *testing.T) {
	ctx := context.Background()
	var purged preview.PurgeRequest
	c := inProcess(t, Providers{
		Runtime:  logRuntime{previewtest.NewMemRuntime()},
		Registry: fullRegistry{previewtest.NewMemRegistry()},
		Assets:   collectingAssets{previewtest.NewMemAssets()},
		Router:   activeRouter{previewtest.NewMemRouter()},
		CDN:      recordingCDN{&purged},
	})

	rt := must[preview.FunctionRuntime](t)(c.Runtime(ctx))
	lr, ok := rt.(preview.LogReader)
	if !ok {
		t.Fatal("runtime adapter lacks LogReader")
	}
	since := time.Unix(1000, 0)
	var lines []preview.LogLine
	if err := lr.Logs(ctx, "fn", preview.LogOptions{Since: since}, func(l preview.LogLine) error { lines = append(lines, l); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(lines) != 3 || lines[2].Time != since.Add(2*time.Second) || lines[0].Instance != "i1" {
		t.Fatalf("log lines %+v", lines)
	}
	stop := errors.New("enough")
	n := 0
	if err := lr.Logs(ctx, "fn", preview.LogOptions{}, func(preview.LogLine) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Fatalf("Logs with fn failing: %v after %d lines, want fn's error after 1", err, n)
	}
	if err := lr.Logs(ctx, "other", preview.LogOptions{}, func(preview.LogLine) error { return nil }); !preview.IsNotFound(err) {
		t.Fatalf("Logs of an unknown function: %v, want NotFound", err)
	}
	if _, ok := rt.(preview.GenerationRemover); !ok {
		t.Error("runtime adapter lacks GenerationRemover")
	}

	reg := must[preview.Registry](t)(c.Registry(ctx))
	al, ok1 := reg.(preview.AppLister)
	md, ok2 := reg.(preview.ManifestDeleter)
	if !ok1 || !ok2 {
		t.Fatalf("registry adapter: AppLister %v, ManifestDeleter %v", ok1, ok2)
	}
	if apps, err := al.Apps(ctx); err != nil || !slices.Equal(apps, []string{"a", "b"}) {
		t.Errorf("Apps = %v, %v", apps, err)
	}
	if err := md.DeleteManifest(ctx, "a", "sha256:x"); preview.CodeOf(err) != preview.PermissionDenied || err.Error() != "refused a@sha256:x" {
		t.Errorf("DeleteManifest: %v", err)
	}

	st := must[preview.AssetStore](t)(c.Assets(ctx))
	bc, ok := st.(preview.BlobCollector)
	if !ok {
		t.Fatal("asset adapter lacks BlobCollector")
	}
	if got, err := bc.CollectBlobs(ctx, preview.BlobCollectOptions{OlderThan: 2 * time.Second, DryRun: true}); err != nil || got != (preview.BlobCollectStats{Blobs: 3, Deleted: 2, DeletedBytes: 7, Temp: 1}) {
		t.Errorf("CollectBlobs = %+v, %v", got, err)
	}

	r := must[preview.Router](t)(c.Router(ctx))
	ar, ok := r.(preview.ActivityReporter)
	if !ok {
		t.Fatal("router adapter lacks ActivityReporter")
	}
	if acts, err := ar.Activity(ctx); err != nil || len(acts) != 2 || acts[0] != (preview.Activity{Function: "f", Started: 5, InFlight: 1, Finished: 4, LastActivity: time.Unix(100, 0)}) ||
		acts[1] != (preview.Activity{Host: "pr-1.app.localhost", LastActivity: time.Unix(101, 0)}) { // a static-only preview's requests
		t.Errorf("Activity = %+v, %v", acts, err)
	}

	cdn := must[preview.CDNPurger](t)(c.CDN(ctx))
	req := preview.PurgeRequest{Hosts: []string{"h"}, URLs: []string{"https://h/", "https://h/a"}}
	if err := cdn.Purge(ctx, req); err != nil || !slices.Equal(purged.Hosts, req.Hosts) || !slices.Equal(purged.URLs, req.URLs) {
		t.Errorf("Purge: %v, plugin got %+v", err, purged)
	}

	// Adapters of a plugin without the optional interfaces lack them.
	plain := inProcess(t, Providers{Router: previewtest.NewMemRouter(), Assets: previewtest.NewMemAssets(), Registry: previewtest.NewMemRegistry()})
	if _, ok := must[preview.Router](t)(plain.Router(ctx)).(preview.ActivityReporter); ok {
		t.Error("plain router adapter has ActivityReporter")
	}
	if _, ok := must[preview.AssetStore](t)(plain.Assets(ctx)).(preview.BlobCollector); ok {
		t.Error("plain asset adapter has BlobCollector")
	}
	if _, ok := must[preview.Registry](t)(plain.Registry(ctx)).(preview.AppLister); ok {
		t.Error("plain registry adapter has AppLister")
	}
}

// A function's resources cross the wire both ways, and no resources stay
// none (not an empty set of each).
func TestFunctionResourcesRoundTrip(t *testing.T) {
	for _, r := range []preview.Resources{
		{},
		{Requests: preview.ResourceList{CPU: "100m", Memory: "64Mi"}, Limits: preview.ResourceList{Memory: "128Mi"}},
	} {
		f := preview.Function{Name: "fn", Image: "img", Resources: r}
		if got := functionIn(functionOut(f)); got.Resources != r {
			t.Errorf("resources %+v came back as %+v", r, got.Resources)
		}
	}
	if functionOut(preview.Function{Name: "fn"}).Resources != nil {
		t.Error("a function without resources is sent with a resources message")
	}
}
