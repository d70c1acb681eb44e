// Command echofn is the function the localfaas tests run: an HTTP server on
// $HOST:$PORT that answers every request with its environment, working
// directory, PID, user and groups and the request's path and query as
// JSON. GET /crash makes it exit; GET /read?path=P answers P's content, or
// 403 with the error; GET /print?line=A&line=B&stderr=C prints A and B on
// stdout and C on stderr.
//
// ECHOFN_MODE selects other behaviours:
//   - exit: print a line and exit 1 at once;
//   - nolisten: never listen on $PORT (but on $ECHOFN_CHILD_PORT when set,
//     so a test can see whether the process still runs);
//   - fork: start a copy of itself in mode grandchild, in a new session
//     (out of the function's process group), then serve as usual and reap
//     it when it ends;
//   - grandchild: answer "grandchild" on 127.0.0.1:$ECHOFN_CHILD_PORT
//     until killed.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

func main() {
	switch os.Getenv("ECHOFN_MODE") {
	case "exit":
		fmt.Println("echofn: exiting as asked")
		os.Exit(1)
	case "nolisten":
		if p := os.Getenv("ECHOFN_CHILD_PORT"); p != "" {
			go serveChild(p)
		}
		for {
			time.Sleep(time.Hour)
		}
	case "grandchild":
		serveChild(os.Getenv("ECHOFN_CHILD_PORT"))
		return
	case "fork":
		exe := os.Args[0]
		if _, err := os.Stat(exe); err != nil {
			exe, _ = os.Executable() // unsandboxed: argv[0] is the image's path
		}
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), "ECHOFN_MODE=grandchild")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			log.Fatal(err)
		}
		go cmd.Wait()
	}
	http.HandleFunc("/crash", func(w http.ResponseWriter, r *http.Request) { os.Exit(3) })
	http.HandleFunc("/print", func(w http.ResponseWriter, r *http.Request) {
		for _, l := range r.URL.Query()["line"] {
			fmt.Println(l)
		}
		if e := r.URL.Query().Get("stderr"); e != "" {
			fmt.Fprintln(os.Stderr, e)
		}
	})
	http.HandleFunc("/read", func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(r.URL.Query().Get("path"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		w.Write(b)
	})
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		env := map[string]string{}
		for _, kv := range os.Environ() {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		wd, _ := os.Getwd()
		groups, _ := os.Getgroups()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"env": env, "cwd": wd, "pid": os.Getpid(), "args": os.Args,
			"uid": os.Getuid(), "gid": os.Getgid(), "groups": groups,
			"path": r.URL.Path, "rawPath": r.URL.RawPath, "query": r.URL.RawQuery, "host": r.Host, "method": r.Method,
		})
	})
	addr := net.JoinHostPort(os.Getenv("HOST"), os.Getenv("PORT"))
	log.Fatal(http.ListenAndServe(addr, nil))
}

func serveChild(port string) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "grandchild") })
	log.Fatal(http.ListenAndServe(net.JoinHostPort("127.0.0.1", port), h))
}
