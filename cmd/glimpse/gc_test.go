package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/glimpse-dev/glimpse/config"
	"github.com/glimpse-dev/glimpse/internal/testapp"
	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/registry/registrytest"
)

// gcFixture is a local stack whose pipeline pushes to a chosen registry,
// with three previews of examples/hello made and two of them taken down:
// PR 1 and PR 2 share one image (same source), PR 3 has its own; PR 1 and
// PR 3 are gone. So gc must delete pr-1-*, pr-3-* and PR 3's source tag,
// and keep pr-2-* and the source tag it shares with PR 1.
type gcFixture struct {
	pl      *preview.Pipeline
	home    string
	dir     string // the app, whose glimpse.yaml names the registry
	shared  string // digest of PR 1 and 2
	own     string // digest of PR 3
	srcKept string // source tag of the shared image
	srcGone string // source tag of PR 3's image
}

// newGCFixture makes the fixture; registry is the registry URL, empty for
// the local stack's own (the daemon's embedded registry).
func newGCFixture(t *testing.T, registry string) *gcFixture {
	t.Helper()
	ctx := context.Background()
	_, home := inProcessStack(t)
	dir := testapp.Copy(t, "../../examples/hello")
	if registry != "" {
		y, _ := os.ReadFile(filepath.Join(dir, "glimpse.yaml"))
		y = append(y, "providers:\n  registry: "+registry+"\n"...)
		if err := os.WriteFile(filepath.Join(dir, "glimpse.yaml"), y, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	file, err := config.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	pl, err := openPipeline(ctx, home, file.Providers)
	if err != nil {
		t.Fatal(err)
	}
	up := func(pr int, commit string) preview.Preview {
		t.Helper()
		pv, err := pl.Up(ctx, preview.UpRequest{Dir: dir, Spec: file.Spec, PR: pr, Commit: commit})
		if err != nil {
			t.Fatalf("up #%d: %v", pr, err)
		}
		return pv
	}
	f := &gcFixture{pl: pl, home: home, dir: dir}
	p1 := up(1, "1111111")
	p2 := up(2, "2222222")
	main := filepath.Join(dir, "function", "main.go")
	b, _ := os.ReadFile(main)
	if err := os.WriteFile(main, append(b, "\nvar gcTest = 3\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	p3 := up(3, "3333333")
	_, f.shared, _ = strings.Cut(p1.Image, "@")
	_, f.own, _ = strings.Cut(p3.Image, "@")
	if p2.Image != p1.Image || f.own == f.shared {
		t.Fatalf("images: #1 %s, #2 %s, #3 %s; want #1 = #2 != #3", p1.Image, p2.Image, p3.Image)
	}
	for _, pr := range []int{1, 3} {
		if err := pl.Down(ctx, "hello", pr); err != nil {
			t.Fatal(err)
		}
	}
	for _, tag := range f.tags(t) {
		if !strings.HasPrefix(tag, "src-") {
			continue
		}
		d, err := pl.Registry.Resolve(ctx, pl.Registry.Repository("hello")+":"+tag)
		if err != nil {
			t.Fatal(err)
		}
		if d == f.shared {
			f.srcKept = tag
		} else {
			f.srcGone = tag
		}
	}
	if f.srcKept == "" || f.srcGone == "" {
		t.Fatalf("source tags: %v", f.tags(t))
	}
	return f
}

func (f *gcFixture) tags(t *testing.T) []string {
	t.Helper()
	tags, err := f.pl.Registry.Tags(context.Background(), "hello")
	if err != nil {
		t.Fatal(err)
	}
	return tags
}

func (f *gcFixture) gc(t *testing.T, flags gcFlags) (preview.GCReport, string, error) {
	t.Helper()
	flags.output = "json"
	flags.dir = f.dir
	var out, errb bytes.Buffer
	err := runGC(context.Background(), f.home, &flags, &out, &errb)
	var rep preview.GCReport
	if jerr := json.Unmarshal(out.Bytes(), &rep); jerr != nil {
		t.Fatalf("gc output is not a JSON report: %v\n%s", jerr, out.String())
	}
	return rep, errb.String(), err
}

// registryURLFor returns the pipeline's registry URL for a host.
func registryURLFor(host string) string { return "oci://" + host }

// On the local stack, as `glimpse serve` runs it (the daemon's registry,
// with its authentication).
func TestGCRemovesTagsOfGonePreviews(t *testing.T) {
	t.Parallel()
	f := newGCFixture(t, "")
	before := f.tags(t)
	if len(before) != 5 {
		t.Fatalf("tags before gc: %v, want 3 pr tags and 2 source tags", before)
	}

	rep, _, err := f.gc(t, gcFlags{dryRun: true})
	if err != nil || rep.Count(preview.GCDelete) != 3 || rep.Count(preview.GCKeep) != 2 || len(rep.Warnings) != 0 || !slices.Equal(rep.Apps, []string{"hello"}) {
		t.Fatalf("dry run: %+v, %v; want 3 to delete, 2 to keep", rep, err)
	}
	if got := f.tags(t); !slices.Equal(got, before) {
		t.Fatalf("a dry run deleted tags: %v", got)
	}

	rep, summary, err := f.gc(t, gcFlags{})
	if err != nil {
		t.Fatalf("gc: %v", err)
	}
	want := []string{"pr-2-2222222", f.srcKept}
	slices.Sort(want)
	if got := f.tags(t); !slices.Equal(got, want) {
		t.Fatalf("tags after gc: %v, want %v (report %+v)", got, want, rep)
	}
	if !strings.Contains(summary, "deleted 3 tag(s), kept 2") {
		t.Fatalf("summary %q", summary)
	}
	// The live preview's image is intact, by tag and by digest.
	ctx := context.Background()
	if d, err := f.pl.Registry.Resolve(ctx, f.pl.Registry.Repository("hello")+"@"+f.shared); err != nil || d != f.shared {
		t.Fatalf("live image after gc: %q, %v", d, err)
	}
	list, err := f.pl.List(ctx, "hello")
	if err != nil || len(list) != 1 || list[0].PR != 2 || list[0].Status != preview.StatusReady {
		t.Fatalf("previews after gc: %+v, %v", list, err)
	}

	// Again: nothing left to delete.
	rep, _, err = f.gc(t, gcFlags{})
	if err != nil || rep.Count(preview.GCDeleted) != 0 || rep.Count(preview.GCKeep) != 2 {
		t.Fatalf("second gc: %+v, %v", rep, err)
	}

	// The last preview goes: gc, told of no app, finds hello through the
	// registry's catalog and empties its repository.
	if err := f.pl.Down(ctx, "hello", 2); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := runGC(ctx, f.home, &gcFlags{output: "json"}, &out, &bytes.Buffer{}); err != nil {
		t.Fatalf("gc without apps: %v", err)
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || !slices.Equal(rep.Apps, []string{"hello"}) || rep.Count(preview.GCDeleted) != 2 {
		t.Fatalf("gc without apps: %+v, %v", rep, err)
	}
	if got := f.tags(t); len(got) != 0 {
		t.Fatalf("tags after the last preview went: %v", got)
	}
}

// refusingProxy serves a registry through a proxy that answers some
// DELETEs as a registry refusing them does (405 UNSUPPORTED): all of them,
// or only tag deletes (as the distribution registry before v3 does, which
// deletes manifests only by digest).
func refusingProxy(t *testing.T, host string, onlyTags bool) string {
	t.Helper()
	target, _ := url.Parse("http://" + host)
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete {
			_, ref, _ := strings.Cut(r.URL.Path, "/manifests/")
			if !onlyTags || !strings.HasPrefix(ref, "sha256:") {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusMethodNotAllowed)
				w.Write([]byte(`{"errors":[{"code":"UNSUPPORTED","message":"The operation is unsupported."}]}`))
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// On the CNCF distribution registry: tag deletes work as on the embedded
// registry; where only manifest deletes work, gc deletes a manifest only
// when every tag naming it goes (deleting the shared image would remove the
// live preview's tag with it); where nothing may be deleted, gc reports and
// succeeds.
func TestGCOnDistribution(t *testing.T) {
	t.Parallel()
	host := registrytest.Distribution(t)
	_ = host
	t.Run("TagDeletes", func(t *testing.T) {
		t.Parallel()
		f := newGCFixture(t, registryURLFor(registrytest.Distribution(t)))
		if _, _, err := f.gc(t, gcFlags{}); err != nil {
			t.Fatalf("gc: %v", err)
		}
		want := []string{"pr-2-2222222", f.srcKept}
		slices.Sort(want)
		if got := f.tags(t); !slices.Equal(got, want) {
			t.Fatalf("tags after gc: %v, want %v", got, want)
		}
	})
	t.Run("OnlyManifestDeletes", func(t *testing.T) {
		t.Parallel()
		f := newGCFixture(t, registryURLFor(refusingProxy(t, registrytest.Distribution(t), true)))
		rep, summary, err := f.gc(t, gcFlags{})
		if err != nil {
			t.Fatalf("gc: %v", err)
		}
		want := []string{"pr-1-1111111", "pr-2-2222222", f.srcKept}
		slices.Sort(want)
		if got := f.tags(t); !slices.Equal(got, want) {
			t.Fatalf("tags after gc: %v, want %v (report %+v)", got, want, rep)
		}
		if rep.Count(preview.GCDeleted) != 2 || rep.Count(preview.GCRefused) != 1 || !strings.Contains(summary, "1 refused") {
			t.Fatalf("report %+v, summary %q: want PR 3's two tags deleted with their manifest, pr-1 refused", rep, summary)
		}
		ctx := context.Background()
		if _, err := f.pl.Registry.Resolve(ctx, f.pl.Registry.Repository("hello")+"@"+f.own); !preview.IsNotFound(err) {
			t.Fatalf("PR 3's manifest after gc: %v, want NotFound", err)
		}
	})
	t.Run("NoDeletes", func(t *testing.T) {
		t.Parallel()
		f := newGCFixture(t, registryURLFor(refusingProxy(t, registrytest.Distribution(t), false)))
		before := f.tags(t)
		rep, summary, err := f.gc(t, gcFlags{})
		if err != nil {
			t.Fatalf("gc on a registry refusing deletes failed: %v", err)
		}
		if got := f.tags(t); !slices.Equal(got, before) || rep.Count(preview.GCRefused) != 3 || !strings.Contains(summary, "3 refused") {
			t.Fatalf("tags %v (before %v), report %+v, summary %q", got, before, rep, summary)
		}
	})
}

func TestGCBadInput(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	for _, c := range []struct {
		flags gcFlags
		want  string
	}{
		{gcFlags{apps: []string{"Bad_App"}}, `--app "Bad_App"`},
		{gcFlags{output: "yaml"}, "--output must be json or table"},
		{gcFlags{}, "no local stack is running"},
	} {
		err := runGC(context.Background(), home, &c.flags, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("runGC(%+v) = %v, want %q", c.flags, err, c.want)
		}
	}
}
