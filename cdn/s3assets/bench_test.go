package s3assets

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/glimpse-dev/glimpse/cdn/s3assets/s3test"
	"github.com/glimpse-dev/glimpse/internal/netdelay"
	"github.com/glimpse-dev/glimpse/preview"
)

// writeSite writes small files of about 2 KB and big files of 1 MiB under
// dir.
func writeSite(tb testing.TB, dir string, small, big int) {
	tb.Helper()
	for i := range small {
		p := filepath.Join(dir, "assets", fmt.Sprintf("chunk-%04d.js", i))
		writeFile(tb, p, fmt.Sprintf("/* %d */ console.log(%d);%s", i, i, strings.Repeat("x", 2000)))
	}
	for i := range big {
		writeFile(tb, filepath.Join(dir, "media", fmt.Sprintf("video-%d.bin", i)), fmt.Sprint(i)+strings.Repeat("y", 1<<20))
	}
	writeFile(tb, filepath.Join(dir, "index.html"), "<h1>bench</h1>")
}

func writeFile(tb testing.TB, p, content string) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
}

func opener(dir string) func(string) (io.ReadCloser, error) {
	return func(p string) (io.ReadCloser, error) { return os.Open(filepath.Join(dir, filepath.FromSlash(p))) }
}

// sequentialPUTs is the baseline: one PutObject per file, one after the
// other, with the same SDK and client settings.
func sequentialPUTs(ctx context.Context, tb testing.TB, c *s3.Client, bucket, prefix, dir string, m preview.Manifest) {
	paths := make([]string, 0, len(m.Files))
	for p := range m.Files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		f, err := os.Open(filepath.Join(dir, filepath.FromSlash(p)))
		if err != nil {
			tb.Fatal(err)
		}
		_, err = c.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(bucket), Key: aws.String(prefix + p), Body: f,
			ContentType: aws.String(m.Files[p].ContentType),
		})
		f.Close()
		if err != nil {
			tb.Fatal(err)
		}
	}
}

// rcloneCopy runs Debian's rclone (defaults: 4 transfers, 8 checkers)
// against the server.
func rcloneCopy(tb testing.TB, srv *s3test.Server, dir, dest string) {
	remote := fmt.Sprintf(":s3,provider=Other,endpoint='%s',access_key_id=%s,secret_access_key=%s,force_path_style=true:%s", srv.Endpoint, srv.AccessKey, srv.SecretKey, dest)
	cmd := exec.Command("rclone", "copy", "--config", "/dev/null", dir, remote)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") { // a CA bundle for a plain-HTTP endpoint breaks rclone
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("rclone: %v: %s", err, out)
	}
}

// BenchmarkPublish measures, in one run against one versitygw, a first
// publish of 200 small files and 4 files of 1 MiB with s3assets, the same
// files sent with sequential PUTs (the baseline) and with rclone copy
// (when installed), a second publish with nothing new, and a redeploy
// with one file changed. Run it with
//
//	GLIMPSE_VERSITYGW_BIN=... go test -run XXX -bench Publish -benchtime 3x ./cdn/s3assets/
//
// It reports milliseconds per step and the ratios baseline / s3assets.
// GLIMPSE_BENCH_UPLOADS=N sets Options.Uploads (default 16);
// GLIMPSE_BENCH_RCLONE=0 leaves rclone out. GLIMPSE_BENCH_RTT=DURATION
// puts a round trip of that length between every client (s3assets, the
// sequential baseline, rclone) and the server (internal/netdelay), the way
// a store across a network is; without it the client talks to versitygw
// over loopback, whose round trip is microseconds, so a cold publish is
// bound by the two processes' CPU time rather than by waiting. The proxy
// runs in the benchmark's process: with GLIMPSE_BENCH_RTT the client CPU
// figures (and x-cold-ceiling) include its copying and timers.
//
// It also reports what bounds a cold publish: the CPU time per PUT that
// versitygw (server-cpu-us-per-put, from /proc) and this process
// (client-cpu-us-per-put, getrusage) spent in the sequential baseline and
// in s3assets' cold publish, and x-cold-ceiling, the most a concurrent
// uploader can beat sequential PUTs by on this machine when server and
// client share its cores: sequential wall time per PUT divided by the
// cold publish's CPU time per PUT (server + client) over the number of
// cores.
func BenchmarkPublish(b *testing.B) {
	srv := s3test.Start(b)
	benchPublish(b, srv, 200, 4)
}

// BenchmarkPublish10k is the figure: 10,000 small files
// (GLIMPSE_BENCH_FILES=N for another number).
func BenchmarkPublish10k(b *testing.B) {
	if os.Getenv("GLIMPSE_BENCH_10K") == "" {
		b.Skip("set GLIMPSE_BENCH_10K=1: 10,000 files take minutes here")
	}
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("GLIMPSE_BENCH_FILES")); err == nil && v > 0 {
		n = v
	}
	srv := s3test.Start(b)
	benchPublish(b, srv, n, 0)
}

// selfCPU returns the CPU time (user + system) this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMeter measures the CPU time the server and this process spend
// between start and stop.
type cpuMeter struct {
	srv            *s3test.Server
	server, client time.Duration
	s0, c0         time.Duration
}

func (m *cpuMeter) start() { m.s0, m.c0 = m.srv.CPUTime(), selfCPU() }
func (m *cpuMeter) stop() {
	m.server += m.srv.CPUTime() - m.s0
	m.client += selfCPU() - m.c0
}

func benchPublish(b *testing.B, srv *s3test.Server, small, big int) {
	ctx := context.Background()
	bucket := newBucket(b, srv)
	srv, rtt := throughDelay(b, srv)
	dir := b.TempDir()
	writeSite(b, dir, small, big)
	m, err := preview.ScanAssets(dir)
	if err != nil {
		b.Fatal(err)
	}
	_, hasRclone := exec.LookPath("rclone")
	if os.Getenv("GLIMPSE_BENCH_RCLONE") == "0" {
		hasRclone = exec.ErrNotFound
	}
	var sum struct {
		seq, cold, unchanged, change, onto, rcCold, rcUnchanged, rcChange time.Duration
		unchangedReq, changeReq, ontoReq                                  map[string]int
		coldPUTs                                                          int
		seqDials, coldDials                                               int64
	}
	seqCPU, coldCPU := &cpuMeter{srv: srv}, &cpuMeter{srv: srv}
	run := 0
	for b.Loop() {
		run++
		b.StopTimer()
		// Fresh prefixes each round: every cold step starts empty.
		uploads, _ := strconv.Atoi(os.Getenv("GLIMPSE_BENCH_UPLOADS"))
		s, c := newCounted(b, srv, bucket, Options{Prefix: fmt.Sprintf("glimpse-%d", run), Uploads: uploads})
		d0 := c.dials.Load()
		seqCPU.start()
		t0 := time.Now()
		sequentialPUTs(ctx, b, s.Client(), bucket, fmt.Sprintf("seq-%d", run), dir, m)
		sum.seq += time.Since(t0)
		seqCPU.stop()
		sum.seqDials += c.dials.Load() - d0

		c.take()
		d0 = c.dials.Load()
		coldCPU.start()
		t0 = time.Now()
		if _, err := s.Publish(ctx, "hello/pr-1/1", m, nil, opener(dir)); err != nil {
			b.Fatal(err)
		}
		sum.cold += time.Since(t0)
		coldCPU.stop()
		sum.coldDials += c.dials.Load() - d0
		sum.coldPUTs += c.take()["PUT"]

		t0 = time.Now()
		st, err := s.Publish(ctx, "hello/pr-1/1", m, nil, opener(dir))
		if err != nil || !st.Unchanged {
			b.Fatal(st, err)
		}
		sum.unchanged += time.Since(t0)
		sum.unchangedReq = c.take()

		// One file changed, published as the next generation.
		changed := filepath.Join(dir, "index.html")
		writeFile(b, changed, fmt.Sprintf("<h1>bench %d</h1>", run))
		m2, err := preview.ScanAssets(dir)
		if err != nil {
			b.Fatal(err)
		}
		t0 = time.Now()
		st, err = s.Publish(ctx, "hello/pr-1/2", m2, nil, opener(dir))
		if err != nil || st.Uploaded != 1 {
			b.Fatal(st, err)
		}
		sum.change += time.Since(t0)
		sum.changeReq = c.take()

		// The same change published onto the served manifest, as the
		// Pipeline's redeploy does: only the changed blob is looked up.
		writeFile(b, changed, fmt.Sprintf("<h1>onto %d</h1>", run))
		m3, err := preview.ScanAssets(dir)
		if err != nil {
			b.Fatal(err)
		}
		t0 = time.Now()
		st, err = s.PublishOnto(ctx, "hello/pr-1/3", m3, nil, opener(dir), "hello/pr-1/2")
		if err != nil || st.Uploaded != 1 {
			b.Fatal(st, err)
		}
		sum.onto += time.Since(t0)
		sum.ontoReq = c.take()
		writeFile(b, changed, "<h1>bench</h1>")

		if hasRclone == nil {
			dest := fmt.Sprintf("%s/rclone-%d", bucket, run)
			t0 = time.Now()
			rcloneCopy(b, srv, dir, dest)
			sum.rcCold += time.Since(t0)
			t0 = time.Now()
			rcloneCopy(b, srv, dir, dest)
			sum.rcUnchanged += time.Since(t0)
			writeFile(b, changed, fmt.Sprintf("<h1>rclone %d</h1>", run))
			t0 = time.Now()
			rcloneCopy(b, srv, dir, dest)
			sum.rcChange += time.Since(t0)
			writeFile(b, changed, "<h1>bench</h1>")
		}
		b.StartTimer()
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(run) / 1e6 }
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(sum.seq), "seqput-ms")
	b.ReportMetric(ms(sum.cold), "s3assets-cold-ms")
	b.ReportMetric(ms(sum.unchanged), "s3assets-unchanged-ms")
	b.ReportMetric(ms(sum.change), "s3assets-1change-ms")
	b.ReportMetric(ms(sum.onto), "s3assets-1change-onto-ms")
	b.ReportMetric(float64(sum.seq)/float64(sum.cold), "x-cold-vs-seqput")
	seqPUTs := float64(len(m.Files) * run)
	us := func(d time.Duration, puts float64) float64 { return float64(d) / 1e3 / puts }
	coldPUTs := float64(sum.coldPUTs)
	b.ReportMetric(us(sum.seq, seqPUTs), "seqput-wall-us-per-put")
	b.ReportMetric(us(seqCPU.server, seqPUTs), "seqput-server-cpu-us-per-put")
	b.ReportMetric(us(seqCPU.client, seqPUTs), "seqput-client-cpu-us-per-put")
	b.ReportMetric(us(sum.cold, coldPUTs), "s3assets-cold-wall-us-per-put")
	b.ReportMetric(us(coldCPU.server, coldPUTs), "s3assets-cold-server-cpu-us-per-put")
	b.ReportMetric(us(coldCPU.client, coldPUTs), "s3assets-cold-client-cpu-us-per-put")
	if cpu := coldCPU.server + coldCPU.client; cpu > 0 {
		b.ReportMetric(us(sum.seq, seqPUTs)/(us(cpu, coldPUTs)/float64(runtime.NumCPU())), "x-cold-ceiling")
	}
	if hasRclone == nil {
		b.ReportMetric(ms(sum.rcCold), "rclone-cold-ms")
		b.ReportMetric(ms(sum.rcUnchanged), "rclone-unchanged-ms")
		b.ReportMetric(ms(sum.rcChange), "rclone-1change-ms")
		b.ReportMetric(float64(sum.rcCold)/float64(sum.cold), "x-cold-vs-rclone")
		b.ReportMetric(float64(sum.rcUnchanged)/float64(sum.unchanged), "x-unchanged-vs-rclone")
		b.ReportMetric(float64(sum.rcChange)/float64(sum.change), "x-1change-vs-rclone")
		b.ReportMetric(float64(sum.rcChange)/float64(sum.onto), "x-1change-onto-vs-rclone")
	}
	if rtt > 0 {
		b.ReportMetric(float64(rtt)/1e6, "rtt-ms")
	}
	b.Logf("connections opened: sequential PUTs %d, cold publishes %d (%d rounds)", sum.seqDials, sum.coldDials, run)
	b.Logf("files %d (%d small, %d of 1 MiB); last round's requests: unchanged publish %v, one change %v, one change onto the served manifest %v", len(m.Files), small, big, sum.unchangedReq, sum.changeReq, sum.ontoReq)
}

// throughDelay returns srv as the clients should reach it: through a
// proxy adding GLIMPSE_BENCH_RTT of round trip when that is set (the
// returned Server differs only in Endpoint; CPUTime still reads
// versitygw), else srv itself.
func throughDelay(b *testing.B, srv *s3test.Server) (*s3test.Server, time.Duration) {
	v := os.Getenv("GLIMPSE_BENCH_RTT")
	if v == "" {
		return srv, 0
	}
	rtt, err := time.ParseDuration(v)
	if err != nil || rtt <= 0 {
		b.Fatalf("GLIMPSE_BENCH_RTT=%q: want a positive duration such as 5ms", v)
	}
	p, err := netdelay.Listen(strings.TrimPrefix(srv.Endpoint, "http://"), rtt/2)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	via := *srv
	via.Endpoint = "http://" + p.Addr()
	return &via, rtt
}
