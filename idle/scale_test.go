package idle_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/daemon"
	"github.com/glimpse-dev/glimpse/idle"
)

const slowHost = "pr-1.slow.localhost"
const slowFn = "slow-pr-1"

func call(t testing.TB, srv *httptest.Server, path string) (int, string) {
	req, _ := http.NewRequest("GET", srv.URL+path, nil)
	req.Host = slowHost
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Errorf("GET %s: %v", path, err)
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// counter reads a counter of the stack's metrics (summing its series).
func counter(t *testing.T, st *daemon.Stack, name string) float64 {
	t.Helper()
	mfs, err := st.Metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.Metric {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// controllerAt returns the stack's controller with a clock the test moves.
func controllerAt(st *daemon.Stack, clock *time.Time) *idle.Controller {
	c := *st.Idle
	c.Now = func() time.Time { return *clock }
	return &c
}

func TestSleepThenWakeOnRequest(t *testing.T) {
	st, srv := deployApp(t, "testdata/slowapp", 1)
	if code, _ := call(t, srv, "/"); code != 200 {
		t.Fatalf("first request = %d", code)
	}
	clock := time.Now()
	c := controllerAt(st, &clock)
	if res, _ := c.Cycle(context.Background()); len(res.Slept) != 0 {
		t.Fatalf("slept right after a request: %+v", res)
	}
	clock = clock.Add(3 * time.Second) // idle.after is 2s
	res, err := c.Cycle(context.Background())
	if err != nil || !slices.Equal(res.Slept, []string{slowFn}) {
		t.Fatalf("cycle after 3s of silence = %+v, %v", res, err)
	}
	if replicas(t, st.Runtime, slowFn) != 0 {
		t.Fatal("function not scaled to zero")
	}
	if code, body := call(t, srv, "/"); code != 200 || body != "ok" {
		t.Fatalf("request to the sleeping function = %d %q", code, body)
	}
	if replicas(t, st.Runtime, slowFn) != 1 || counter(t, st, "glimpse_edge_wakes_total") != 1 {
		t.Fatal("the request did not wake the function exactly once")
	}
}

func TestThousandConcurrentRequestsWakeOnce(t *testing.T) {
	st, srv := deployApp(t, "testdata/slowapp", 1)
	if _, err := st.Runtime.Scale(context.Background(), slowFn, 0); err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: 1000}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	const n = 1000
	var wg sync.WaitGroup
	codes := make(chan int, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", srv.URL+"/", nil)
			req.Host = slowHost
			resp, err := client.Do(req)
			if err != nil {
				codes <- -1
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	wg.Wait()
	close(codes)
	bad := map[int]int{}
	for c := range codes {
		if c != 200 {
			bad[c]++
		}
	}
	if len(bad) != 0 {
		t.Fatalf("requests not answered 200: %v (status: count; -1 = transport error)", bad)
	}
	if got := counter(t, st, "glimpse_edge_wakes_total"); got != 1 {
		t.Fatalf("scale-ups = %v, want exactly 1", got)
	}
}

func TestLongRequestIsNotCutOff(t *testing.T) {
	st, srv := deployApp(t, "testdata/slowapp", 1)
	clock := time.Now()
	c := controllerAt(st, &clock)
	c.Cycle(context.Background())
	done := make(chan string, 1)
	go func() {
		code, body := call(t, srv, "/slow?ms=1500")
		done <- fmt.Sprint(code, " ", body)
	}()
	// Wait until the edge counts the request in flight.
	waitInFlight(t, st, 1)
	clock = clock.Add(time.Hour)
	if res, _ := c.Cycle(context.Background()); len(res.Slept) != 0 {
		t.Fatalf("a function with a request in flight was put to sleep: %+v", res)
	}
	if got := <-done; got != "200 slow ok" {
		t.Fatalf("long request = %q", got)
	}
	// Finished now, but its end is recent: still awake until idle.after passes.
	clock = time.Now()
	if res, _ := c.Cycle(context.Background()); len(res.Slept) != 0 {
		t.Fatalf("slept right after the long request finished: %+v", res)
	}
}

func TestWebSocketKeepsFunctionAwake(t *testing.T) {
	st, srv := deployApp(t, "testdata/slowapp", 1)
	clock := time.Now()
	c := controllerAt(st, &clock)
	c.Cycle(context.Background())

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", slowHost)
	br := bufio.NewReader(conn)
	status, _ := br.ReadString('\n')
	if !strings.Contains(status, "101") {
		t.Fatalf("upgrade answered %q", status)
	}
	for line, _ := br.ReadString('\n'); line != "\r\n" && line != ""; line, _ = br.ReadString('\n') {
	}
	fmt.Fprint(conn, "ping\n")
	if echo, _ := br.ReadString('\n'); echo != "ping\n" {
		t.Fatalf("echo over the upgraded connection = %q", echo)
	}
	clock = clock.Add(time.Hour)
	if res, _ := c.Cycle(context.Background()); len(res.Slept) != 0 {
		t.Fatalf("a function with an open WebSocket was put to sleep: %+v", res)
	}
	conn.Close()
	waitInFlight(t, st, 0)
	clock = time.Now().Add(time.Hour)
	if res, _ := c.Cycle(context.Background()); !slices.Equal(res.Slept, []string{slowFn}) {
		t.Fatalf("after the WebSocket closed and idle.after passed: %+v; want it asleep", res)
	}
}

func TestRequestDuringScaleDownIsHeldAndServed(t *testing.T) {
	st, srv := deployApp(t, "testdata/slowapp", 1)
	got := make(chan string, 1)
	slept, err := st.Edge.Sleep(context.Background(), slowFn, time.Now(), func(ctx context.Context) error {
		go func() {
			code, body := call(t, srv, "/")
			got <- fmt.Sprint(code, " ", body)
		}()
		// Give the request time to reach the edge and be held by the gate.
		time.Sleep(100 * time.Millisecond)
		select {
		case r := <-got:
			t.Errorf("a request was answered (%s) while the function was being put to sleep", r)
		default:
		}
		_, err := st.Runtime.Scale(ctx, slowFn, 0)
		return err
	})
	if err != nil || !slept {
		t.Fatalf("Sleep = %v, %v", slept, err)
	}
	if r := <-got; r != "200 ok" {
		t.Fatalf("held request = %q, want 200 ok", r)
	}
	if counter(t, st, "glimpse_edge_wakes_total") != 1 {
		t.Fatal("the held request did not wake the function")
	}
}

func waitInFlight(t *testing.T, st *daemon.Stack, want int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		acts, _ := st.Edge.Activity(context.Background())
		for _, a := range acts {
			if a.Function == slowFn && a.InFlight == want {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("the edge never counted %d request(s) in flight", want)
}
