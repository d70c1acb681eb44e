// Package deploy holds the manifests that run Glimpse's daemon in a
// Kubernetes cluster, as plain YAML that `kubectl apply -k deploy/` takes:
// the namespaces glimpse (the daemon, its per-preview Ingresses, its
// leader-election Lease) and glimpse-functions (the previews' functions),
// the daemon's service account with least-privilege Roles, the Deployment
// of `glimpse serve` and its edge Service, and a wildcard Ingress to the
// edge. The files are embedded (Files) and decoded by Objects, so that
// tests create exactly what kustomize renders.
//
// The objects carry app.kubernetes.io labels, not Glimpse's ownership
// labels: they are installed by the operator, and gc and the route
// informer, which select glimpse.dev/managed-by=glimpse, must never take
// them for a preview's.
package deploy

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// Namespaces and names the manifests use, for code that must agree with
// them (the daemon's defaults, tests).
const (
	Namespace          = "glimpse"
	FunctionsNamespace = "glimpse-functions"
	ServiceAccount     = "glimpse"
	EdgeService        = "glimpse-edge"
	LeaseName          = "glimpse-leader"
)

// Files holds kustomization.yaml and the manifests it lists.
//
//go:embed *.yaml
var Files embed.FS

// kustomization is the part of kustomization.yaml Objects understands.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
}

// Objects decodes the manifests kustomization.yaml lists, in its order
// (every file's documents in file order). It understands only a
// kustomization's resources: any other field (images, patches, a
// namespace override, ...) is an error, so that what Objects returns is
// what kustomize renders. It reads only the embedded files and has no
// side effects.
func Objects() ([]*unstructured.Unstructured, error) {
	raw, err := Files.ReadFile("kustomization.yaml")
	if err != nil {
		return nil, err
	}
	var k kustomization
	if err := utilyaml.UnmarshalStrict(raw, &k); err != nil {
		return nil, fmt.Errorf("kustomization.yaml: %v", err)
	}
	var out []*unstructured.Unstructured
	for _, f := range k.Resources {
		b, err := Files.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("kustomization.yaml lists %s: %v", f, err)
		}
		d := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
		for i := 1; ; i++ {
			var m map[string]any
			if err := d.Decode(&m); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return nil, fmt.Errorf("%s, document %d: %v", f, i, err)
			}
			if len(m) == 0 {
				continue
			}
			u := &unstructured.Unstructured{Object: m}
			if u.GetKind() == "" || u.GetAPIVersion() == "" || u.GetName() == "" {
				return nil, fmt.Errorf("%s, document %d: want apiVersion, kind and metadata.name", f, i)
			}
			out = append(out, u)
		}
	}
	return out, nil
}
