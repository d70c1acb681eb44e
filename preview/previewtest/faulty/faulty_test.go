package faulty_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
	"github.com/glimpse-dev/glimpse/preview/previewtest/faulty"
)

// TestSlowWrappersPassConformance: wrappers that only delay calls change
// no behaviour, so the in-memory providers wrapped pass their suites.
func TestSlowWrappersPassConformance(t *testing.T) {
	for _, cfg := range []faulty.Config{{Slow: 1, MaxDelay: 50 * time.Microsecond}, {Slow: 1}, {}} {
		name := fmt.Sprintf("delay=%v,slow=%v", cfg.MaxDelay, cfg.Slow)
		t.Run(name, func(t *testing.T) {
			s := faulty.New(1, cfg).Session("conformance")
			t.Run("Router", func(t *testing.T) {
				previewtest.RunRouterTests(t, previewtest.RouterHarness{
					New: func(t *testing.T) preview.Router { return s.Router(previewtest.NewMemRouter()) },
				})
			})
			t.Run("Runtime", func(t *testing.T) {
				previewtest.RunFunctionRuntimeTests(t, previewtest.RuntimeHarness{
					New:   func(t *testing.T) preview.FunctionRuntime { return s.Runtime(previewtest.NewMemRuntime()) },
					Image: func(t *testing.T) string { return "mem.invalid/app@sha256:" + strings.Repeat("0", 64) },
				})
			})
			t.Run("Assets", func(t *testing.T) {
				shared := s.Assets(previewtest.NewMemAssets())
				previewtest.RunAssetStoreTests(t, previewtest.AssetStoreHarness{
					New: func(t *testing.T) preview.AssetStore { return shared },
				})
			})
			t.Run("DNS", func(t *testing.T) {
				shared := s.DNS(previewtest.NewMemDNS())
				previewtest.RunDNSTests(t, previewtest.DNSHarness{
					New: func(t *testing.T) preview.DNS { return shared },
				})
			})
			t.Run("RegistryBuilder", func(t *testing.T) {
				reg := previewtest.NewMemRegistry()
				previewtest.RunRegistryTests(t, previewtest.RegistryHarness{
					New: func(t *testing.T) preview.Registry { return s.Registry(reg) },
					Push: func(t *testing.T, repo, tag string, seed int) string {
						d := fmt.Sprintf("sha256:%064x", seed+1)
						reg.Put(strings.TrimPrefix(repo, "mem.invalid/"), tag, d)
						return d
					},
				})
				previewtest.RunBuilderTests(t, previewtest.BuilderHarness{
					New:      func(t *testing.T) preview.Builder { return s.Builder(&previewtest.MemBuilder{Registry: reg}) },
					Registry: func(t *testing.T) preview.Registry { return s.Registry(reg) },
					Source: func(t *testing.T) string {
						dir := t.TempDir()
						os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n"), 0o644)
						return dir
					},
					Change: func(t *testing.T, dir string) {
						os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main // changed\n"), 0o644)
					},
					Break: func(t *testing.T, dir string) { os.WriteFile(filepath.Join(dir, "BROKEN"), nil, 0o644) },
				})
			})
			if cfg.Slow == 0 && s.Faulted() {
				t.Fatal("a zero Config injected a fault")
			}
		})
	}
}

// kinds runs n Ensure calls of a session made by a new injector and
// returns how each call ended.
func kinds(seed uint64, cfg faulty.Config, n int) []string {
	s := faulty.New(seed, cfg).Session("op")
	d := s.DNS(previewtest.NewMemDNS())
	var out []string
	for i := range n {
		err := d.Ensure(context.Background(), fmt.Sprintf("h%d.localhost", i), nil)
		out = append(out, preview.CodeOf(err).String())
	}
	return out
}

// TestSeeded: a seed fixes a session's sequence of faults; another seed
// gives another.
func TestSeeded(t *testing.T) {
	cfg := faulty.Config{Error: 0.2, Timeout: 0.1, ErrorAfter: 0.2}
	a, b := kinds(7, cfg, 200), kinds(7, cfg, 200)
	if strings.Join(a, ",") != strings.Join(b, ",") {
		t.Fatalf("seed 7 twice gave different faults:\n%v\n%v", a, b)
	}
	if c := kinds(8, cfg, 200); strings.Join(a, ",") == strings.Join(c, ",") {
		t.Fatalf("seeds 7 and 8 gave the same 200 outcomes")
	}
}

// TestErrorBeforeAndAfter: an error before the call changes nothing and
// may be Unavailable; an error after it leaves the write done and is
// never Unavailable (the provider contract: Unavailable means nothing
// happened).
func TestErrorBeforeAndAfter(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		cfg     faulty.Config
		kind    faulty.Kind
		written bool
		codes   []preview.Code
	}{
		{faulty.Config{Error: 1}, faulty.Error, false, []preview.Code{preview.Unavailable, preview.Internal}},
		{faulty.Config{Timeout: 1}, faulty.Timeout, false, []preview.Code{preview.DeadlineExceeded}},
		{faulty.Config{ErrorAfter: 1}, faulty.ErrorAfter, true, []preview.Code{preview.Internal, preview.DeadlineExceeded}},
	} {
		t.Run(tc.kind.String(), func(t *testing.T) {
			in := faulty.New(3, tc.cfg)
			s := in.Session("op")
			mem := previewtest.NewMemDNS()
			d := s.DNS(mem)
			seen := map[preview.Code]bool{}
			for i := range 50 {
				host := fmt.Sprintf("h%d.localhost", i)
				err := d.Ensure(ctx, host, nil)
				var f *faulty.Fault
				if !errors.As(err, &f) || f.Kind != tc.kind || f.Method != "DNS.Ensure" || f.Session != "op" {
					t.Fatalf("Ensure: %v, want an injected %s", err, tc.kind)
				}
				seen[preview.CodeOf(err)] = true
				if _, ok := mem.Labels(host); ok != tc.written {
					t.Fatalf("after an injected %s the record exists: %v, want %v", tc.kind, ok, tc.written)
				}
			}
			for c := range seen {
				if !contains(tc.codes, c) {
					t.Fatalf("%s injected code %v, want one of %v", tc.kind, c, tc.codes)
				}
			}
			if len(seen) != len(tc.codes) {
				t.Fatalf("%s injected codes %v in 50 calls, want all of %v", tc.kind, seen, tc.codes)
			}
			if !s.Faulted() || in.Stats().Kinds[tc.kind] != 50 || in.Stats().Methods["DNS.Ensure"] != 50 {
				t.Fatalf("stats %v, Faulted %v", in.Stats(), s.Faulted())
			}
		})
	}
}

func contains(cs []preview.Code, c preview.Code) bool {
	for _, x := range cs {
		if x == c {
			return true
		}
	}
	return false
}

// TestCrashStopsOnlyItsSession: a doomed session crashes at its k-th
// call and fails every call after; another session of the same injector
// carries on.
func TestCrashStopsOnlyItsSession(t *testing.T) {
	ctx := context.Background()
	in := faulty.New(5, faulty.Config{Crash: 1, CrashWithin: 1})
	mem := previewtest.NewMemDNS()
	a, b := in.Session("a"), in.Session("b")
	da := a.DNS(mem)
	err := da.Ensure(ctx, "a.localhost", nil)
	if !a.Crashed() || !faulty.IsFault(err) || b.Crashed() {
		t.Fatalf("first call of a session doomed at call 1: %v, crashed %v (other %v)", err, a.Crashed(), b.Crashed())
	}
	for range 5 {
		err := da.Remove(ctx, "a.localhost")
		var f *faulty.Fault
		if !errors.As(err, &f) || f.Kind != faulty.Crashed || preview.CodeOf(err) != preview.Unavailable {
			t.Fatalf("a call after the crash: %v, want Crashed/Unavailable", err)
		}
	}
	// b is doomed too (Crash 1) but has its own count; an undoomed
	// session of another injector runs on over the same provider.
	ok := faulty.New(5, faulty.Config{}).Session("c").DNS(mem)
	if err := ok.Ensure(ctx, "c.localhost", nil); err != nil {
		t.Fatalf("another session after a crash: %v", err)
	}
	st := in.Stats()
	if st.Doomed != 2 || st.Kinds[faulty.Crash] != 1 || st.Kinds[faulty.Crashed] != 5 || st.Sessions != 2 {
		t.Fatalf("stats %+v", st)
	}

	// Doomed within 3 calls: the calls before the crash pass, every call
	// from it on fails.
	for seed := range uint64(20) {
		s := faulty.New(seed, faulty.Config{Crash: 1, CrashWithin: 3}).Session("late")
		d := s.DNS(mem)
		first := 0
		for i := 1; i <= 6; i++ {
			err := d.Ensure(ctx, "late.localhost", nil)
			switch {
			case err != nil && first == 0:
				first = i
			case err == nil && first != 0:
				t.Fatalf("seed %d: call %d passed after the crash at call %d", seed, i, first)
			}
		}
		if first < 1 || first > 3 || !s.Crashed() {
			t.Fatalf("seed %d: crashed at call %d (%v), want within 3", seed, first, s.Crashed())
		}
	}
}
