package openfaas

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/openfaas/faas-provider/types"

	"github.com/glimpse-dev/glimpse/preview"
)

// OwnedSecretsAnnotation lists, comma separated, the gateway secrets Apply
// created for a function from its Function.Secrets, so that Remove (and
// an Apply that drops one) deletes them with it. Names only: values never
// leave the gateway's /system/secrets. Get and List do not return it.
const OwnedSecretsAnnotation = "glimpse.dev/owned-secrets"

// putSecrets stores fn's own secret values through /system/secrets before
// the deploy names them, the way faas-cli secret create/update does
// (faas-netes pkg/handlers/secrets.go: PUT replaces, 404 when missing;
// POST creates, 409 when it exists; faasd writes on either). The names are
// the function's (preview.Function.Secrets says they are unique to it), so
// in a namespace shared by many functions no other function's secret is
// touched. Values travel only in the request bodies, never in an error.
func (c *Client) putSecrets(ctx context.Context, fn preview.Function) error {
	names := make([]string, 0, len(fn.Secrets))
	for n := range fn.Secrets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		s := types.Secret{Name: n, Namespace: c.namespace, Value: fn.Secrets[n]}
		err := c.do(ctx, http.MethodPut, "/system/secrets", c.query(), s, nil)
		if preview.IsNotFound(err) {
			err = c.do(ctx, http.MethodPost, "/system/secrets", c.query(), s, nil)
			if preview.CodeOf(err) == preview.AlreadyExists { // a concurrent create won
				err = c.do(ctx, http.MethodPut, "/system/secrets", c.query(), s, nil)
			}
		}
		if err != nil {
			return preview.WithCode(preview.CodeOf(err), &secretError{name: n, err: err})
		}
	}
	return nil
}

// deleteSecrets deletes the named gateway secrets; one already gone is
// success. It tries every name and returns the first failure.
func (c *Client) deleteSecrets(ctx context.Context, names []string) error {
	var first error
	for _, n := range names {
		s := types.Secret{Name: n, Namespace: c.namespace}
		err := preview.IgnoreNotFound(c.do(ctx, http.MethodDelete, "/system/secrets", c.query(), s, nil))
		// faasd answers a missing secret 500 with os.Remove's error
		// (pkg/provider/handlers/secret.go deleteSecret).
		var he *HTTPError
		if errors.As(err, &he) && he.StatusCode == http.StatusInternalServerError && strings.Contains(he.Body, "no such file or directory") {
			err = nil
		}
		if err != nil && first == nil {
			first = preview.WithCode(preview.CodeOf(err), &secretError{name: n, err: err})
		}
	}
	return first
}

type secretError struct {
	name string
	err  error
}

func (e *secretError) Error() string { return "secret " + e.name + ": " + e.err.Error() }
func (e *secretError) Unwrap() error { return e.err }

// ownedSecrets returns the names OwnedSecretsAnnotation lists.
func ownedSecrets(ann *map[string]string) []string {
	if ann == nil || (*ann)[OwnedSecretsAnnotation] == "" {
		return nil
	}
	return strings.Split((*ann)[OwnedSecretsAnnotation], ",")
}

// ownedAnnotation is the OwnedSecretsAnnotation value of fn ("" for none).
func ownedAnnotation(fn preview.Function) string {
	names := make([]string, 0, len(fn.Secrets))
	for n := range fn.Secrets {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

// dropped returns the names of old that fn no longer owns.
func dropped(old []string, fn preview.Function) []string {
	var out []string
	for _, n := range old {
		if _, ok := fn.Secrets[n]; !ok && !slices.Contains(fn.SecretNames, n) {
			out = append(out, n)
		}
	}
	return out
}

// DeliversSecrets reports true: this runtime delivers Function.Secrets and
// SecretNames (preview.SecretsRuntime).
func (c *Client) DeliversSecrets() bool { return true }
