package previewtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/preview"
)

// uniqueApp returns a DNS-label app name unique to the running test, so
// that suites sharing a backend do not see each other's resources.
func uniqueApp(t *testing.T) string {
	sum := sha256.Sum256([]byte(t.Name() + time.Now().String()))
	return "t" + hex.EncodeToString(sum[:])[:10]
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func cancelled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// wantCode fails t unless err has code want.
func wantCode(t *testing.T, err error, want preview.Code, what string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: got nil error, want code %v", what, want)
	}
	if got := preview.CodeOf(err); got != want {
		t.Fatalf("%s: got code %v (%v), want %v", what, got, err, want)
	}
}

// wantCancelled fails t unless err reports the cancellation.
func wantCancelled(t *testing.T, err error, what string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s with a cancelled context: got nil error", what)
	}
	if c := preview.CodeOf(err); c != preview.Canceled && c != preview.DeadlineExceeded {
		t.Fatalf("%s with a cancelled context: got code %v (%v), want Canceled", what, c, err)
	}
}

func labelsFor(app string, pr int) preview.Labels {
	return preview.OwnerLabels("conformance", preview.Target{App: app, PR: pr, Commit: "c0ffee1"})
}
