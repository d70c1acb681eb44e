// Package kubeapi holds what Glimpse's Kubernetes providers share
// (ingress/k8singress, faas/kubefaas): opening a client configuration,
// classifying API errors into preview's codes, turning a preview.Labels
// selector into a label selector narrowed to Glimpse's objects, and
// checking that an object is Glimpse's before touching it.
package kubeapi

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/glimpse-dev/glimpse/preview"
)

// FieldManager is the field manager Glimpse's writes are recorded under
// (metadata.managedFields).
const FieldManager = "glimpse"

// EnvKubeconfig names the kubeconfig file the providers' URL openers read.
const EnvKubeconfig = "KUBECONFIG"

// Config returns the client configuration a provider opened from a URL
// uses: the kubeconfig file named by KUBECONFIG (read through o, its
// current context), else the in-cluster service account, else
// ~/.kube/config. Credentials never come from the URL. None found is
// FailedPrecondition.
func Config(o *preview.OpenOptions) (*rest.Config, error) {
	c, _, err := ConfigSource(o)
	return c, err
}

// ConfigSource is Config that also says where the configuration came
// from, for a log line: "kubeconfig PATH" or "in-cluster service
// account" (the pod's mounted token, at the API server named by
// KUBERNETES_SERVICE_HOST and _PORT).
func ConfigSource(o *preview.OpenOptions) (*rest.Config, string, error) {
	path := o.Env(EnvKubeconfig)
	if path == "" {
		if c, err := rest.InClusterConfig(); err == nil {
			return c, "in-cluster service account", nil
		}
		if home, err := os.UserHomeDir(); err == nil {
			if p := filepath.Join(home, ".kube", "config"); fileExists(p) {
				path = p
			}
		}
	}
	if path == "" {
		return nil, "", preview.Errorf(preview.FailedPrecondition, "no Kubernetes credentials: set %s to a kubeconfig file, or run in a cluster", EnvKubeconfig)
	}
	c, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, "", preview.Errorf(preview.FailedPrecondition, "kubeconfig %s: %v", path, err)
	}
	return c, "kubeconfig " + path, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Classify gives err, from a call to the API server about what (such as
// `ingress default/pr-1.example.com`), the preview code that says what a
// caller can do: NotFound, AlreadyExists, Aborted (a resourceVersion
// conflict), InvalidArgument (rejected as invalid), PermissionDenied,
// ResourceExhausted (throttled), Unavailable (unreachable, timed out,
// overloaded), Canceled or DeadlineExceeded (the context ended),
// Internal otherwise. ctx is the call's context. The message is one line:
// what, then the API server's message. Classify(ctx, nil, ...) is nil.
func Classify(ctx context.Context, err error, what string) error {
	if err == nil {
		return nil
	}
	var code preview.Code
	switch {
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled):
		code = preview.Canceled
	case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded):
		code = preview.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = preview.Canceled
	case apierrors.IsNotFound(err):
		code = preview.NotFound
	case apierrors.IsAlreadyExists(err):
		code = preview.AlreadyExists
	case apierrors.IsConflict(err):
		code = preview.Aborted
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err):
		code = preview.InvalidArgument
	case apierrors.IsForbidden(err), apierrors.IsUnauthorized(err):
		code = preview.PermissionDenied
	case apierrors.IsTooManyRequests(err):
		code = preview.ResourceExhausted
	case apierrors.IsServiceUnavailable(err), apierrors.IsServerTimeout(err), apierrors.IsTimeout(err), isNetwork(err):
		code = preview.Unavailable
	default:
		code = preview.Internal
	}
	return preview.WithCode(code, &callError{what: what, err: err})
}

// callError is a failed call: one line, what then the server's message,
// with the client-go error (an apierrors.APIStatus) reachable through
// errors.As.
type callError struct {
	what string
	err  error
}

func (e *callError) Error() string { return e.what + ": " + oneLine(e.err) }
func (e *callError) Unwrap() error { return e.err }

func isNetwork(err error) bool {
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &oe) || errors.As(err, &ne)
}

// oneLine returns err's message with line breaks folded, so that a
// multi-line server message stays one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// Selector returns the label selector for selector narrowed to objects
// carrying Glimpse's managed-by label, with keys sorted. A key or value
// Kubernetes cannot select on is InvalidArgument.
func Selector(selector preview.Labels) (string, error) {
	s := selector.With(preview.LabelManagedBy, preview.ManagedByValue)
	keys := make([]string, 0, len(s))
	for k, v := range s {
		if err := CheckLabel(k, v); err != nil {
			return "", err
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + s[k]
	}
	return strings.Join(parts, ","), nil
}

// Labels returns the labels of an object Glimpse writes: l with the
// ownership markers (managed-by, labels-version) set. A key or value that
// is not a valid Kubernetes label is InvalidArgument.
func Labels(l preview.Labels) (map[string]string, error) {
	out := l.With(preview.LabelManagedBy, preview.ManagedByValue)
	if out[preview.LabelVersion] == "" {
		out[preview.LabelVersion] = preview.LabelsVersionValue
	}
	for k, v := range out {
		if err := CheckLabel(k, v); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// CheckLabel checks that k=v is a valid Kubernetes label; InvalidArgument
// otherwise.
func CheckLabel(k, v string) error {
	if errs := validation.IsQualifiedName(k); len(errs) > 0 {
		return preview.Errorf(preview.InvalidArgument, "label key %q: %s", k, strings.Join(errs, "; "))
	}
	if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
		return preview.Errorf(preview.InvalidArgument, "label %s value %q: %s", k, v, strings.Join(errs, "; "))
	}
	return nil
}

// Owned reports whether an object with these labels is Glimpse's.
func Owned(labels map[string]string) bool {
	return labels[preview.LabelManagedBy] == preview.ManagedByValue
}

// NotOwned is the FailedPrecondition error for an object Glimpse found in
// its way but did not create, which it never changes or deletes.
func NotOwned(what string) error {
	return preview.Errorf(preview.FailedPrecondition, "%s exists but is not Glimpse's (no label %s=%s): left alone", what, preview.LabelManagedBy, preview.ManagedByValue)
}
