// Command bench runs the parts of the edge proxy benchmark (see
// compare.sh): a tiny upstream, the edge in front of it, and for reference
// a tuned net/http/httputil.ReverseProxy.
//
//	bench upstream -listen 127.0.0.1:0
//	bench edge     -listen 127.0.0.1:0 -upstream 127.0.0.1:PORT [-host bench.localhost] [-no-takeover]
//	bench stdproxy -listen 127.0.0.1:0 -upstream 127.0.0.1:PORT
//	bench freeport
//
// Each server prints "listening <addr>" on stdout once it accepts
// connections and runs until killed.
package main

import (
	"context"
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
	"runtime/pprof"
	"sync"
	"time"

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

type fixed string

func (f fixed) Endpoint(string) (string, error) { return string(f), nil }

type bufPool struct{ p sync.Pool }

func (b *bufPool) Get() []byte { return b.p.Get().([]byte) }
func (b *bufPool) Put(x []byte) {
	//lint:ignore SA6002 httputil.BufferPool hands out slices; boxing one costs what the fix would
	b.p.Put(x)
}
