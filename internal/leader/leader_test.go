package leader_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/glimpse-dev/glimpse/internal/kubeapi"
	"github.com/glimpse-dev/glimpse/internal/kubetest"
	"github.com/glimpse-dev/glimpse/internal/leader"
	"github.com/glimpse-dev/glimpse/preview"
)

// envChild, when set (to a childSpec in JSON), makes the test binary a
// candidate in its own process, for a leader that is killed.
const envChild = "GLIMPSE_LEADER_TEST_CHILD"

type childSpec struct {
	Host, Token, CAFile, Namespace, Name, Identity string
}

func TestMain(m *testing.M) {
	// client-go's elector logs every attempt through klog.
	klog.LogToStderr(false)
	klog.SetOutput(io.Discard)
	if spec := os.Getenv(envChild); spec != "" {
		os.Exit(child(spec))
	}
	code := m.Run()
	kubetest.StopShared()
	os.Exit(code)
}

// child contends for the Lease and prints "leading" when it leads, then
// waits to be killed.
func child(spec string) int {
	var s childSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: s.Host, BearerToken: s.Token, TLSClientConfig: rest.TLSClientConfig{CAFile: s.CAFile}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	cfg := timing(cs, s.Namespace, s.Name, s.Identity)
	err = leader.Run(context.Background(), cfg, func(ctx context.Context) {
		fmt.Println("leading")
		<-ctx.Done()
	})
	fmt.Fprintln(os.Stderr, err)
	return 1
}

// The election's timing in these tests: kube-controller-manager's shape,
// scaled down.
const (
	leaseDuration = 2 * time.Second
	renewDeadline = 1000 * time.Millisecond
	retryPeriod   = 250 * time.Millisecond
)

func timing(cs kubernetes.Interface, ns, name, id string) leader.Config {
	return leader.Config{Client: cs, Namespace: ns, Name: name, Identity: id,
		LeaseDuration: leaseDuration, RenewDeadline: renewDeadline, RetryPeriod: retryPeriod,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func leaseName() string {
	b := make([]byte, 4)
	rand.Read(b)
	return "lease-" + hex.EncodeToString(b)
}

// candidate is one in-process elector and what it saw.
type candidate struct {
	id      string
	cancel  context.CancelFunc
	led     chan time.Time // when onLead started
	stopped chan time.Time // when onLead returned
	ret     chan error     // Run's result
}

// term counts the candidates whose onLead is running, and the most at once.
type term struct{ now, max atomic.Int32 }

func start(cfg leader.Config, tm *term) *candidate {
	ctx, cancel := context.WithCancel(context.Background())
	c := &candidate{id: cfg.Identity, cancel: cancel, led: make(chan time.Time, 8), stopped: make(chan time.Time, 8), ret: make(chan error, 1)}
	go func() {
		c.ret <- leader.Run(ctx, cfg, func(ctx context.Context) {
			n := tm.now.Add(1)
			for m := tm.max.Load(); n > m && !tm.max.CompareAndSwap(m, n); m = tm.max.Load() {
			}
			c.led <- time.Now()
			<-ctx.Done()
			tm.now.Add(-1)
			c.stopped <- time.Now()
		})
	}()
	return c
}

func cluster(t testing.TB) (*kubetest.Cluster, kubernetes.Interface, string) {
	c := kubetest.Shared(t, kubetest.Options{})
	return c, c.Client(t), c.Namespace(t)
}

// TestOneLeadsAndCancelHandsOver runs two candidates in one process
// against one real API server: exactly one leads, the Lease names it and
// carries Glimpse's labels; cancelling the leader ends its work before the
// other starts, and hands over within the lease duration (the Lease is
// released); cancelling the last one releases the Lease.
func TestOneLeadsAndCancelHandsOver(t *testing.T) {
	_, cs, ns := cluster(t)
	name := leaseName()
	var tm term
	a := start(timing(cs, ns, name, "a"), &tm)
	b := start(timing(cs, ns, name, "b"), &tm)
	defer a.cancel()
	defer b.cancel()

	var first, second *candidate
	select {
	case <-a.led:
		first, second = a, b
	case <-b.led:
		first, second = b, a
	case <-time.After(10 * time.Second):
		t.Fatal("no candidate leads after 10s")
	}
	// Several renewals and retries later, still one leader.
	select {
	case <-second.led:
		t.Fatalf("both %s and %s lead", first.id, second.id)
	case <-time.After(4 * retryPeriod):
	}
	l := lease(t, cs, ns, name)
	if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != first.id || !kubeapi.Owned(l.Labels) {
		t.Fatalf("lease holder %v, labels %v; want %s and Glimpse's labels", l.Spec.HolderIdentity, l.Labels, first.id)
	}

	cancelled := time.Now()
	first.cancel()
	var led2 time.Time
	select {
	case led2 = <-second.led:
	case <-time.After(2 * leaseDuration):
		t.Fatalf("%s does not lead %v after %s was cancelled", second.id, 2*leaseDuration, first.id)
	}
	stop1 := <-first.stopped
	if !stop1.Before(led2) {
		t.Errorf("%s's work returned at %v, after %s's began at %v", first.id, stop1, second.id, led2)
	}
	if err := <-first.ret; err != nil {
		t.Errorf("Run of the cancelled leader = %v, want nil", err)
	}
	handover := led2.Sub(cancelled)
	t.Logf("cancel handover %v = %.2f x the lease duration %v (retry period %v)", handover.Round(time.Millisecond), float64(handover)/float64(leaseDuration), leaseDuration, retryPeriod)
	if handover >= leaseDuration {
		t.Errorf("cancel handover %v, want within the lease duration %v (the lease is released)", handover, leaseDuration)
	}
	if m := tm.max.Load(); m != 1 {
		t.Errorf("%d candidates led at once, want 1", m)
	}

	second.cancel()
	<-second.stopped
	if err := <-second.ret; err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	if h := lease(t, cs, ns, name).Spec.HolderIdentity; h != nil && *h != "" {
		t.Errorf("after the last leader stopped, the lease is held by %q; want it released", *h)
	}
}

func lease(t testing.TB, cs kubernetes.Interface, ns, name string) *coordinationv1.Lease {
	t.Helper()
	l, err := cs.CoordinationV1().Leases(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestKilledLeaderHandsOver kills (SIGKILL) a leader running in its own
// process: it releases nothing, so the other candidate waits for the
// lease to expire, and takes over within the lease duration plus its own
// retry period.
func TestKilledLeaderHandsOver(t *testing.T) {
	d := killHandover(t)
	t.Logf("kill handover %v = %.2f x the lease duration %v (retry period %v)", d.Round(time.Millisecond), float64(d)/float64(leaseDuration), leaseDuration, retryPeriod)
	// The candidate counts the lease duration from when it saw the last
	// renewal, which the leader made about a retry period before it was
	// killed (more on a loaded machine, where a renewal can be late), and
	// tries every 1 to 2.2 retry periods: about the lease duration, plus
	// up to a few retry periods. Half the lease is the lower bound that
	// still shows the candidate waited for the lease to expire.
	if lo, hi := leaseDuration/2, leaseDuration+5*retryPeriod; d < lo || d > hi {
		t.Errorf("kill handover %v, want between %v and %v", d, lo, hi)
	}
}

// killHandover starts a leader in a child process, a candidate here,
// kills the leader and returns how long the candidate took to lead.
func killHandover(tb testing.TB) time.Duration {
	c, cs, ns := cluster(tb)
	name := leaseName()
	spec, _ := json.Marshal(childSpec{Host: c.Host, Token: c.Token, CAFile: c.CAFile, Namespace: ns, Name: name, Identity: "child"})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"="+string(spec))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	var once sync.Once
	kill := func() { once.Do(func() { cmd.Process.Signal(syscall.SIGKILL); cmd.Wait() }) }
	defer kill()
	leading := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.TrimSpace(sc.Text()) == "leading" {
				leading <- true
			}
		}
		close(leading)
	}()
	select {
	case ok := <-leading:
		if !ok {
			tb.Fatal("the child candidate exited without leading")
		}
	case <-time.After(10 * time.Second):
		tb.Fatal("the child candidate does not lead after 10s")
	}

	var tm term
	here := start(timing(cs, ns, name, "here"), &tm)
	defer func() { here.cancel(); <-here.ret }()
	select {
	case <-here.led:
		tb.Fatal("a second candidate leads while the first is alive")
	case <-time.After(2 * leaseDuration):
	}
	killed := time.Now()
	kill()
	select {
	case t := <-here.led:
		if h := lease(tb, cs, ns, name).Spec.HolderIdentity; h == nil || *h != "here" {
			tb.Fatalf("lease holder %v after the handover, want here", h)
		}
		return t.Sub(killed)
	case <-time.After(3 * leaseDuration):
		tb.Fatalf("no handover %v after the leader was killed", 3*leaseDuration)
	}
	return 0
}

// BenchmarkKillHandover measures the handover after a killed leader
// against its baseline, the configured lease duration: handover/lease is
// the figure (1 would mean exactly one lease duration).
func BenchmarkKillHandover(b *testing.B) {
	var total time.Duration
	for b.Loop() {
		total += killHandover(b)
	}
	mean := total / time.Duration(b.N)
	b.ReportMetric(float64(mean)/float64(time.Millisecond), "handover-ms")
	b.ReportMetric(float64(leaseDuration)/float64(time.Millisecond), "lease-ms")
	b.ReportMetric(float64(mean)/float64(leaseDuration), "handover/lease")
}

// TestForeignLease: a Lease of that name without Glimpse's label is left
// alone, FailedPrecondition.
func TestForeignLease(t *testing.T) {
	_, cs, ns := cluster(t)
	holder := "someone"
	foreign := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "theirs"}, Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder}}
	if _, err := cs.CoordinationV1().Leases(ns).Create(context.Background(), foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err := leader.Run(context.Background(), timing(cs, ns, "theirs", "a"), func(context.Context) { t.Error("led on a foreign lease") })
	if preview.CodeOf(err) != preview.FailedPrecondition || strings.Contains(err.Error(), "\n") {
		t.Fatalf("Run on a foreign lease = %v, want FailedPrecondition on one line", err)
	}
	if h := lease(t, cs, ns, "theirs").Spec.HolderIdentity; h == nil || *h != holder {
		t.Fatalf("foreign lease holder %v, want it untouched", h)
	}
}

// TestInvalidConfig needs no server.
func TestInvalidConfig(t *testing.T) {
	var cs kubernetes.Interface = &kubernetes.Clientset{}
	for name, cfg := range map[string]leader.Config{
		"no client":            {Namespace: "ns", Name: "l"},
		"no name":              {Client: cs, Namespace: "ns"},
		"sub-second lease":     {Client: cs, Namespace: "ns", Name: "l", LeaseDuration: 1500 * time.Millisecond},
		"renew beyond lease":   {Client: cs, Namespace: "ns", Name: "l", LeaseDuration: 2 * time.Second, RenewDeadline: 3 * time.Second},
		"no margin":            {Client: cs, Namespace: "ns", Name: "l", LeaseDuration: 2 * time.Second, RenewDeadline: 1800 * time.Millisecond, RetryPeriod: 200 * time.Millisecond},
		"negative":             {Client: cs, Namespace: "ns", Name: "l", RetryPeriod: -time.Second},
		"retry beyond renewal": {Client: cs, Namespace: "ns", Name: "l", RetryPeriod: 10 * time.Second},
	} {
		err := leader.Run(context.Background(), cfg, func(context.Context) { t.Errorf("%s: led", name) })
		if preview.CodeOf(err) != preview.InvalidArgument {
			t.Errorf("%s: Run = %v, want InvalidArgument", name, err)
		}
	}
}

// cancelHandover runs two candidates, cancels the one that leads and
// returns how long the other took to lead.
func cancelHandover(tb testing.TB) time.Duration {
	_, cs, ns := cluster(tb)
	name := leaseName()
	var tm term
	a := start(timing(cs, ns, name, "a"), &tm)
	b := start(timing(cs, ns, name, "b"), &tm)
	defer func() { a.cancel(); b.cancel(); <-a.ret; <-b.ret }()
	first, second := a, b
	select {
	case <-a.led:
	case <-b.led:
		first, second = b, a
	case <-time.After(10 * time.Second):
		tb.Fatal("no candidate leads after 10s")
	}
	cancelled := time.Now()
	first.cancel()
	select {
	case t := <-second.led:
		return t.Sub(cancelled)
	case <-time.After(2 * leaseDuration):
		tb.Fatalf("no handover %v after the leader was cancelled", 2*leaseDuration)
	}
	return 0
}

// BenchmarkCancelHandover measures the handover after a leader stopped
// cleanly (it releases the Lease) against the configured lease duration.
func BenchmarkCancelHandover(b *testing.B) {
	var total time.Duration
	for b.Loop() {
		total += cancelHandover(b)
	}
	mean := total / time.Duration(b.N)
	b.ReportMetric(float64(mean)/float64(time.Millisecond), "handover-ms")
	b.ReportMetric(float64(leaseDuration)/float64(time.Millisecond), "lease-ms")
	b.ReportMetric(float64(mean)/float64(leaseDuration), "handover/lease")
}
