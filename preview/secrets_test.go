package preview

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestValidateSecretName(t *testing.T) {
	for name, ok := range map[string]bool{
		"db-url": true, "hello-pr-1-database-url": true, "a.b": true, "x": true, strings.Repeat("a", 253): true,
		"": false, "DB": false, "-a": false, "a-": false, "a/b": false, "..": false, "a_b": false, strings.Repeat("a", 254): false,
	} {
		if err := ValidateSecretName(name); (err == nil) != ok || (err != nil && CodeOf(err) != InvalidArgument) {
			t.Errorf("ValidateSecretName(%q) = %v, want ok=%v", name, err, ok)
		}
	}
}

func TestSecretsHash(t *testing.T) {
	f := Function{Name: "hello-pr-1", Image: "i", Secrets: map[string]string{"a": "1", "b": "2"}, SecretNames: []string{"y", "x"}}
	h := SecretsHash(f)
	if !strings.HasPrefix(h, "sha256:") || len(h) != len("sha256:")+64 {
		t.Fatalf("SecretsHash = %q", h)
	}
	same := f
	same.SecretNames = []string{"x", "y"}
	if SecretsHash(same) != h {
		t.Fatal("SecretsHash depends on the order of SecretNames")
	}
	for _, change := range []func(*Function){
		func(g *Function) { g.Secrets = map[string]string{"a": "1", "b": "3"} },
		func(g *Function) { g.Secrets = map[string]string{"a": "1", "c": "2"} },
		func(g *Function) { g.SecretNames = []string{"x"} },
		func(g *Function) { g.Name = "hello-pr-2" },
	} {
		g := f
		change(&g)
		if SecretsHash(g) == h {
			t.Fatalf("SecretsHash(%+v) did not change", g)
		}
	}
	if SecretsHash(Function{Name: "x"}) != "" {
		t.Fatal("SecretsHash of a function without secrets is not empty")
	}
	if err := (Function{Name: "a", Image: "i", Secrets: map[string]string{"s": "v"}, SecretNames: []string{"s"}}).Validate(); CodeOf(err) != InvalidArgument {
		t.Fatalf("a secret given twice: %v, want InvalidArgument", err)
	}
	if b, _ := json.Marshal(f); strings.Contains(string(b), `"a"`) || !strings.Contains(string(b), `"secretNames"`) {
		t.Fatalf("Function marshals as %s: values must never be marshalled", b)
	}
}
