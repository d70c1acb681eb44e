package openfaas

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/openfaas/faas-provider/types"

	"github.com/glimpse-dev/glimpse/preview"
)

// ErrZeroRefused is matched (with errors.Is) by the error ScaleExact
// returns when the gateway would not scale a function to zero and kept it
// running. OpenFaaS Community Edition does this in three ways, all handled:
// the CE gateway raises a request for 0 replicas to 1 and answers 202
// (openfaas/faas gateway/scaling/ranges.go), faas-netes called directly
// answers 400 "replicas cannot be set to 0 in OpenFaaS CE"
// (pkg/handlers/replica_updater.go), and faasd 400 "replicas must > 0 for
// faasd CE" (pkg/provider/handlers/scale.go).
var ErrZeroRefused = errors.New("the OpenFaaS gateway does not scale functions to zero (OpenFaaS Community Edition keeps at least one replica)")

// ClampedError reports that the gateway settled on a replica count other
// than the one asked for. ScaleExact returns it wrapped with code
// FailedPrecondition; errors.Is(err, ErrZeroRefused) holds when zero was
// asked for and the function kept replicas.
type ClampedError struct {
	Function  string
	Requested int
	Accepted  int
	// Refusal is the gateway's own answer when it refused the request
	// (such as "replicas cannot be set to 0 in OpenFaaS CE"); empty when
	// it accepted the request and the status read back differed (the CE
	// gateway rewrites 0 to 1 without saying so).
	Refusal string
}

// Error returns one line saying what was asked, what the gateway kept,
// and why as far as the gateway said.
func (e *ClampedError) Error() string {
	why := fmt.Sprintf("the gateway reports %d after accepting the request", e.Accepted)
	if e.Refusal != "" {
		why = fmt.Sprintf("the gateway answered %q", strings.Join(strings.Fields(e.Refusal), " "))
	}
	msg := fmt.Sprintf("function %s: asked for %d replicas, the gateway keeps %d: %s", e.Function, e.Requested, e.Accepted, why)
	if e.Requested == 0 && e.Accepted > 0 {
		msg += "; OpenFaaS Community Edition does not scale to zero (OpenFaaS Standard/Pro does)"
	}
	return msg
}

// Is reports whether target is ErrZeroRefused and this clamp kept replicas
// that were asked to be zero.
func (e *ClampedError) Is(target error) bool {
	return target == ErrZeroRefused && e.Requested == 0 && e.Accepted > 0
}

// Scale asks for replicas and returns the count the gateway then reports,
// as preview.FunctionRuntime requires: "the count the runtime accepted".
// When the gateway clamps (OpenFaaS CE keeps 1 replica when asked for 0,
// and at most 5), Scale returns the clamped count with a nil error; a
// caller that asked for 0 and got 1 knows the runtime did not scale to
// zero. To learn why, and to tell the user, call ScaleExact instead (it
// returns the same count plus a *ClampedError), or RefusesZero afterwards.
// Negative counts are InvalidArgument, a missing function NotFound.
// Scale is idempotent.
func (c *Client) Scale(ctx context.Context, name string, replicas int) (int, error) {
	n, err := c.ScaleExact(ctx, name, replicas)
	var ce *ClampedError
	if errors.As(err, &ce) {
		return n, nil
	}
	return n, err
}

// ScaleExact is Scale that reports a clamp as an error: when the replica
// count the gateway settles on differs from replicas, it returns that
// count and a *ClampedError with code FailedPrecondition (errors.Is(err,
// ErrZeroRefused) when zero was refused). The idle controller uses it to
// fall back (for example to scaling the Kubernetes Deployment itself, or
// to leaving the function up and letting the edge count it idle), and the
// CLI prints the error to tell the user why a preview keeps running.
//
// After the scale request, ScaleExact reads the status back, and keeps
// reading for up to Options.ScaleSettle while it differs from replicas
// (faas-netes reports from an informer cache that may lag), unless the
// gateway refused outright or has refused zero before on this client.
//
// With Options.ScaleDeployments it scales faas-netes' Deployment instead
// (kubescale.go): the count is the one the API server accepted, never
// clamped, and a scale to one or more returns once a replica is
// available.
func (c *Client) ScaleExact(ctx context.Context, name string, replicas int) (int, error) {
	if replicas < 0 {
		return 0, preview.Errorf(preview.InvalidArgument, "function %s: replicas must not be negative, got %d", name, replicas)
	}
	if _, err := c.get(ctx, name); err != nil {
		return 0, err
	}
	if c.scaler != nil {
		n, err := c.scaler.scale(ctx, name, replicas, c.timeout)
		if err == nil || n > 0 {
			c.asleep.note(name, uint64(n))
		}
		return n, err
	}
	req := types.ScaleServiceRequest{ServiceName: name, Replicas: uint64(replicas), Namespace: c.namespace}
	err := c.do(ctx, http.MethodPost, "/system/scale-function/"+name, c.query(), req, nil)
	var refusal string
	var he *HTTPError
	switch {
	case err == nil:
	case replicas == 0 && errors.As(err, &he) && he.StatusCode == http.StatusBadRequest && strings.Contains(strings.ToLower(he.Body), "replicas"):
		refusal = strings.TrimSpace(he.Body)
	default:
		// faas-netes answers 500 "Unable to lookup function deployment"
		// when the function went away since the read above.
		if code := preview.CodeOf(err); code == preview.Internal || code == preview.NotFound {
			if _, gerr := c.get(ctx, name); preview.IsNotFound(gerr) {
				return 0, gerr
			}
		}
		return 0, err
	}
	quick := refusal != "" || (replicas == 0 && c.zeroRefused.Load())
	got, err := c.settleRead(ctx, name, replicas, quick)
	if err != nil {
		return 0, err
	}
	if got == replicas {
		if replicas == 0 {
			c.zeroRefused.Store(false)
		}
		return got, nil
	}
	if replicas == 0 {
		c.zeroRefused.Store(true)
	}
	return got, preview.WithCode(preview.FailedPrecondition, &ClampedError{Function: name, Requested: replicas, Accepted: got, Refusal: refusal})
}

// RefusesZero reports whether this client has seen the gateway keep
// replicas when asked for zero (and no later scale to zero stuck). It does
// no I/O.
func (c *Client) RefusesZero() bool { return c.zeroRefused.Load() }

// settleRead reads the replica count, and keeps reading with backoff for
// up to c.settle while it differs from want, unless quick.
func (c *Client) settleRead(ctx context.Context, name string, want int, quick bool) (int, error) {
	deadline := time.Now().Add(c.settle)
	wait := 25 * time.Millisecond
	for {
		st, err := c.get(ctx, name)
		if err != nil {
			return 0, err
		}
		got := replicaCount(st.Replicas)
		if got == want || quick || time.Now().Add(wait).After(deadline) {
			return got, nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, 400*time.Millisecond)
	}
}

// replicaCount converts a replica count of the gateway's JSON (uint64),
// clamped so that a huge one does not turn negative.
func replicaCount(n uint64) int { return int(min(n, 1<<31-1)) }
