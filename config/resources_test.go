package config

import (
	"strings"
	"testing"

	"github.com/glimpse-dev/glimpse/preview"
)

// function.resources is read from glimpse.yaml, validated with its key
// path, and filled in from the stack file's limits and requests where
// glimpse.yaml leaves a field empty.
func TestFunctionResources(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, yaml, stack string
		want              preview.Resources
		err               string
	}{
		{name: "glimpse.yaml",
			yaml: "app: hello\nfunction:\n  resources: {requests: {cpu: 100m, memory: 64Mi}, limits: {cpu: 500m, memory: 128Mi}}\n",
			want: preview.Resources{Requests: preview.ResourceList{CPU: "100m", Memory: "64Mi"}, Limits: preview.ResourceList{CPU: "500m", Memory: "128Mi"}}},
		{name: "none", yaml: "app: hello\nfunction: {}\n"},
		{name: "bad quantity",
			yaml: "app: hello\nfunction:\n  resources: {limits: {memory: 128MB}}\n",
			err:  `glimpse.yaml: function.resources.limits.memory: "128MB" is not a quantity such as 64Mi or 1Gi (bytes)`},
		{name: "request above limit",
			yaml: "app: hello\nfunction:\n  resources: {requests: {cpu: \"2\"}, limits: {cpu: \"1\"}}\n",
			err:  "glimpse.yaml: function.resources.requests.cpu: 2 is more than limits.cpu (1)"},
		{name: "unknown key",
			yaml: "app: hello\nfunction:\n  resources: {limits: {gpu: 1}}\n",
			err:  "function.resources.limits.gpu"},
		{name: "stack file",
			yaml:  "app: hello\nfunction:\n  stack: stack.yml\n  resources: {limits: {memory: 256Mi}}\n",
			stack: "version: 1.0\nprovider: {name: openfaas}\nfunctions:\n  hello:\n    lang: dockerfile\n    handler: ./function\n    image: x\n    limits: {memory: 128Mi, cpu: 500m}\n    requests: {memory: 64Mi}\n",
			want:  preview.Resources{Requests: preview.ResourceList{Memory: "64Mi"}, Limits: preview.ResourceList{CPU: "500m", Memory: "256Mi"}}},
		{name: "bad stack quantity",
			yaml:  "app: hello\nfunction:\n  stack: stack.yml\n",
			stack: "version: 1.0\nprovider: {name: openfaas}\nfunctions:\n  hello:\n    lang: dockerfile\n    handler: ./function\n    image: x\n    requests: {cpu: lots}\n",
			err:   `stack.yml: functions.hello.requests.cpu: "lots" is not a quantity`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			write(t, dir, "glimpse.yaml", tc.yaml)
			write(t, dir, "function/main.go", "package main")
			if tc.stack != "" {
				write(t, dir, "stack.yml", tc.stack)
			}
			f, err := load(dir, lookupFrom(nil))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), "\n") || preview.CodeOf(err) != preview.InvalidArgument {
					t.Fatalf("load = %v, want one line containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.Function.Resources != tc.want {
				t.Fatalf("resources %+v, want %+v", f.Function.Resources, tc.want)
			}
		})
	}
}
