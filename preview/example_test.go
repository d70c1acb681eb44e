package preview_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
)

// A Pipeline composed in code from providers: here the in-memory reference
// providers; a platform team puts its own (or the ones opened by URL) in
// the same fields. OnEvent receives each step's progress.
func ExamplePipeline() {
	reg := previewtest.NewMemRegistry()
	pl := &preview.Pipeline{
		Builder:    &previewtest.MemBuilder{Registry: reg},
		Registry:   reg,
		Runtime:    previewtest.NewMemRuntime(),
		Assets:     previewtest.NewMemAssets(),
		Router:     previewtest.NewMemRouter(),
		BaseDomain: "previews.example.com",
		OnEvent: func(e preview.Event) {
			if e.State == preview.EventDone || e.State == preview.EventSkipped {
				fmt.Printf("%s %s\n", e.Step, e.State)
			}
		},
	}
	dir, _ := os.MkdirTemp("", "app")
	defer os.RemoveAll(dir)
	os.MkdirAll(filepath.Join(dir, "public"), 0o755)
	os.WriteFile(filepath.Join(dir, "public", "index.html"), []byte("<h1>hello</h1>"), 0o644)

	spec := preview.Spec{App: "hello", Assets: &preview.AssetsSpec{Dir: "public"}}
	pv, err := pl.Up(context.Background(), preview.UpRequest{Dir: dir, Spec: spec, PR: 42, Commit: "3f2c1ab"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(pv.URL, pv.Status)
	// Output:
	// claim done
	// assets done
	// route done
	// cleanup skipped
	// https://pr-42.hello.previews.example.com ready
}

// Providers register URL schemes in a Mux; Open picks the opener by scheme
// and refuses unknown schemes and query parameters with one-line
// InvalidArgument errors.
func ExampleMux() {
	routers := preview.NewMux[preview.Router]("router")
	routers.Register("mem", func(ctx context.Context, u *url.URL, o *preview.OpenOptions) (preview.Router, error) {
		if _, err := preview.QueryParams(u); err != nil {
			return nil, err
		}
		return previewtest.NewMemRouter(), nil
	})
	if _, err := routers.Open(context.Background(), "mem://", nil); err == nil {
		fmt.Println("opened mem://")
	}
	_, err := routers.Open(context.Background(), "mem://?color=blue", nil)
	fmt.Println(preview.CodeOf(err))
	_, err = routers.Open(context.Background(), "nope://x", nil)
	fmt.Println(preview.CodeOf(err))
	// Output:
	// opened mem://
	// InvalidArgument
	// InvalidArgument
}
