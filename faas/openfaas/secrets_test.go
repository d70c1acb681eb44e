package openfaas

import (
	"strings"
	"testing"

	"github.com/glimpse-dev/glimpse/faas/openfaas/openfaastest"
)

// Apply writes the function's own secrets through /system/secrets, the
// deployment names them, and Remove deletes them, on both providers'
// answers (faasd: 200 on write, 500 on deleting a missing one).
func TestOwnedSecretsFollowTheFunction(t *testing.T) {
	t.Parallel()
	for _, p := range []openfaastest.Provider{openfaastest.FaasNetes, openfaastest.Faasd} {
		t.Run(p.String(), func(t *testing.T) {
			t.Parallel()
			ctx := ctxT(t)
			s := emulate(t, openfaastest.Options{Provider: p})
			c := clientFor(t, s, nil)
			fn := testFn("hello-pr-7")
			fn.Secrets = map[string]string{"hello-pr-7-database-url": "postgres://r:pw@db/x"}
			if err := c.Apply(ctx, fn); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if v, ok := s.Secret("", fn.Name, "hello-pr-7-database-url"); !ok || v != "postgres://r:pw@db/x" {
				t.Fatalf("the function would see %q (%v)", v, ok)
			}
			for _, call := range s.Calls() {
				if strings.Contains(call.Path, "pw") {
					t.Fatalf("a request path carries the value: %+v", call)
				}
			}
			if err := c.Remove(ctx, fn.Name); err != nil {
				t.Fatalf("Remove: %v", err)
			}
			if names := s.SecretNames(""); len(names) != 0 {
				t.Fatalf("secrets left after Remove: %v", names)
			}
			if err := c.deleteSecrets(ctx, []string{"hello-pr-7-database-url"}); err != nil {
				t.Fatalf("deleting a secret already gone: %v, want success", err)
			}
		})
	}
}
