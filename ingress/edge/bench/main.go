// Command bench runs the parts of the edge benchmarks (see compare.sh): a
// tiny upstream, the edge in front of it, and for reference a tuned
// net/http/httputil.ReverseProxy; and, for static files, the edge serving
// one published file from an asset store.
//
//	bench upstream -listen 127.0.0.1:0
//	bench edge     -listen 127.0.0.1:0 -upstream 127.0.0.1:PORT [-host bench.localhost] [-no-takeover]
//	bench stdproxy -listen 127.0.0.1:0 -upstream 127.0.0.1:PORT
//	bench static   -listen 127.0.0.1:0 -assets s3://B?endpoint=... -dir DIR [-size 10240] [-host bench.localhost] [-no-takeover]
//	bench floor    -listen 127.0.0.1:0 [-size 10240]
//	bench freeport
//
// floor is the ceiling of any Go server here, not an HTTP server: one
// goroutine per connection that answers each request (each blank line
// read) with one write of a prerendered response of -size body bytes,
// with no parsing, routing or header formatting; compare.sh's
// WITH_FLOOR=1 measures it next to the edge and nginx.
// static writes DIR/asset.txt (-size bytes), publishes DIR to the asset
// store at -assets (credentials from AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY; an s3:// bucket is created when missing) under
// the prefix bench/pr-1, and serves it at http://HOST/asset.txt; nginx
// serves the same bytes from DIR.
//
// Each server prints "listening <addr>" on stdout once it accepts
// connections and runs until killed.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/glimpse-dev/glimpse/cdn/s3assets"
	"github.com/glimpse-dev/glimpse/ingress/edge"
	"github.com/glimpse-dev/glimpse/preview"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: bench upstream|edge|stdproxy|freeport [flags]")
		os.Exit(2)
	}
	mode := os.Args[1]
	fs := flag.NewFlagSet(mode, flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "listen address")
	upstream := fs.String("upstream", "", "upstream address (edge, stdproxy)")
	host := fs.String("host", "bench.localhost", "host routed to the upstream (edge)")
	size := fs.Int("size", 13, "response body size in bytes (upstream)")
	noTakeover := fs.Bool("no-takeover", false, "serve every request on net/http's server (edge.Options.DisableConnTakeover)")
	assets := fs.String("assets", "", "asset store URL (static)")
	dir := fs.String("dir", "", "directory of the published file (static)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the first -profile-seconds to this file")
	profileSeconds := fs.Int("profile-seconds", 10, "length of the CPU profile")
	fs.Parse(os.Args[2:])
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		time.AfterFunc(time.Duration(*profileSeconds)*time.Second, func() { pprof.StopCPUProfile(); f.Close() })
	}

	var h http.Handler
	switch mode {
	case "freeport":
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
		l.Close()
		return
	case "upstream":
		body := make([]byte, *size)
		copy(body, "hello, world\n")
		for i := 13; i < len(body); i++ {
			body[i] = 'x'
		}
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Write(body)
		})
	case "edge":
		e, err := edge.New(edge.Options{
			Upstreams:           fixed(*upstream),
			DisableConnTakeover: *noTakeover,
			Logger:              slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		})
		if err != nil {
			log.Fatal(err)
		}
		if err := preview.PutRoute(context.Background(), e, preview.Route{Host: *host, Function: "bench", FunctionPaths: []string{"/"}}); err != nil {
			log.Fatal(err)
		}
		h = e
	case "static":
		e, err := staticEdge(*assets, *dir, *host, *size, *noTakeover)
		if err != nil {
			log.Fatal(err)
		}
		h = e
	case "stdproxy":
		u, _ := url.Parse("http://" + *upstream)
		rp := httputil.NewSingleHostReverseProxy(u)
		rp.Transport = &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 1024,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
			ForceAttemptHTTP2:   false,
		}
		rp.BufferPool = &bufPool{p: sync.Pool{New: func() any { return make([]byte, 32<<10) }}}
		h = rp
	case "floor":
		l, err := net.Listen("tcp", *listen)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("listening", l.Addr())
		log.Fatal(serveFloor(l, *size))
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", mode)
		os.Exit(2)
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("listening", l.Addr())
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	log.Fatal(srv.Serve(l))
}

// staticEdge publishes a file of size bytes at dir/asset.txt to the store
// at storeURL and returns an edge serving it at host, with the blob read
// once so that the benchmark measures the warm cache.
func staticEdge(storeURL, dir, host string, size int, noTakeover bool) (*edge.Edge, error) {
	ctx := context.Background()
	if storeURL == "" || dir == "" {
		return nil, fmt.Errorf("static needs -assets and -dir")
	}
	body := make([]byte, size)
	for i := range body {
		body[i] = "abcdefghijklmnopqrstuvwxyz0123456789\n"[i%37]
	}
	if err := os.WriteFile(filepath.Join(dir, "asset.txt"), body, 0o644); err != nil {
		return nil, err
	}
	store, err := preview.AssetStores.Open(ctx, storeURL, &preview.OpenOptions{Getenv: os.Getenv})
	if err != nil {
		return nil, err
	}
	if s, ok := store.(*s3assets.Store); ok {
		_, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s.Bucket())})
		var owned *s3types.BucketAlreadyOwnedByYou
		if err != nil && !errors.As(err, &owned) {
			return nil, fmt.Errorf("create bucket %s: %w", s.Bucket(), err)
		}
	}
	m, err := preview.ScanAssets(dir)
	if err != nil {
		return nil, err
	}
	const prefix = "bench/pr-1"
	if _, err := store.Publish(ctx, prefix, m, nil, func(p string) (io.ReadCloser, error) {
		return os.Open(filepath.Join(dir, filepath.FromSlash(p)))
	}); err != nil {
		return nil, err
	}
	e, err := edge.New(edge.Options{
		Assets:              store,
		DisableConnTakeover: noTakeover,
		Logger:              slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return nil, err
	}
	if err := preview.PutRoute(ctx, e, preview.Route{Host: host, AssetPrefix: prefix}); err != nil {
		return nil, err
	}
	return e, nil
}

type fixed string

func (f fixed) Endpoint(string) (string, error) { return string(f), nil }

type bufPool struct{ p sync.Pool }

func (b *bufPool) Get() []byte { return b.p.Get().([]byte) }
func (b *bufPool) Put(x []byte) {
	//lint:ignore SA6002 httputil.BufferPool hands out slices; boxing one costs what the fix would
	b.p.Put(x)
}

// serveFloor answers every request on l with a prerendered response of
// size body bytes (see the package comment's floor).
func serveFloor(l net.Listener, size int) error {
	resp := fmt.Appendf(nil, "HTTP/1.1 200 OK\r\nAccept-Ranges: bytes\r\nCache-Control: no-cache\r\nContent-Length: %d\r\nContent-Type: text/plain; charset=utf-8\r\nDate: %s\r\nEtag: \"%064x\"\r\nX-Content-Type-Options: nosniff\r\n\r\n",
		size, time.Now().UTC().Format(http.TimeFormat), 0)
	resp = append(resp, bytes.Repeat([]byte("x"), size)...)
	end := []byte("\r\n\r\n")
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			buf := make([]byte, 4096)
			for {
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				for range bytes.Count(buf[:n], end) {
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			}
		}()
	}
}
