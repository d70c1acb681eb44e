package kubefaas

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/glimpse-dev/glimpse/internal/kubeapi"
	"github.com/glimpse-dev/glimpse/preview"
)

// Secrets, the Kubernetes way, at the OpenFaaS path.
//
// A function's own values (preview.Function.Secrets, which Glimpse
// supplies) live in one Secret per function, SecretName(function), one key
// per secret, with the function's ownership labels and an owner reference
// to its Deployment, so that Kubernetes' garbage collector removes it with
// the Deployment even when Glimpse does not (Remove deletes it itself).
// Function.SecretNames are Secrets that already exist in the namespace
// (kubectl create secret generic NAME --from-literal=NAME=VALUE, the shape
// faas-cli secret create gives them on faas-netes); Apply checks that each
// exists (FailedPrecondition otherwise) and never writes or deletes them.
//
// Both are mounted read-only, as one projected volume, at
// preview.SecretsDir (/var/openfaas/secrets): every key of each Secret is
// the file /var/openfaas/secrets/<key>, mode 0444, so the same function
// code reads them on OpenFaaS and here. Values are never in the pod's
// environment, labels or annotations; the pod template carries only
// preview.SecretsHash of them (annotation preview.AnnotationSecretsHash),
// so a changed value rolls the pods and an unchanged Apply rolls nothing.
// A changed value of a SecretNames Secret reaches running pods when the
// kubelet next syncs the volume (about a minute), or at their next start.
//
// RBAC: get, create, update and delete on secrets in the namespace for
// Apply; Remove without them leaves the Secret to the garbage collector
// (its owner reference), so the in-cluster daemon's gc needs none.

// SecretName is the name of the Secret that holds function's own values
// (Function.Secrets).
func SecretName(function string) string { return function + "-secrets" }

// secretsVolume is the name of the projected volume mounted at
// preview.SecretsDir.
const secretsVolume = "secrets"

// secretsMode is the mode of the secret files: read-only, readable by the
// function's non-root user.
const secretsMode int32 = 0o444

// addSecrets mounts fn's secrets (validated) into the pod template and
// annotates it with their hash; a function without secrets is unchanged.
func addSecrets(spec *corev1.PodTemplateSpec, fn preview.Function) {
	hash := preview.SecretsHash(fn)
	if hash == "" {
		return
	}
	var sources []corev1.VolumeProjection
	if len(fn.Secrets) > 0 {
		sources = append(sources, corev1.VolumeProjection{Secret: &corev1.SecretProjection{
			LocalObjectReference: corev1.LocalObjectReference{Name: SecretName(fn.Name)},
		}})
	}
	names := append([]string(nil), fn.SecretNames...)
	sort.Strings(names) // a stable order, so an unchanged Apply rolls nothing out
	for _, n := range names {
		sources = append(sources, corev1.VolumeProjection{Secret: &corev1.SecretProjection{
			LocalObjectReference: corev1.LocalObjectReference{Name: n},
		}})
	}
	mode := secretsMode
	spec.Annotations = map[string]string{preview.AnnotationSecretsHash: hash}
	spec.Spec.Volumes = append(spec.Spec.Volumes, corev1.Volume{
		Name:         secretsVolume,
		VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: sources, DefaultMode: &mode}},
	})
	c := &spec.Spec.Containers[0]
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: secretsVolume, MountPath: preview.SecretsDir, ReadOnly: true})
}

// usesOwnSecret reports whether d's pods mount the function's own Secret.
func usesOwnSecret(d *appsv1.Deployment) bool {
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name != secretsVolume || v.Projected == nil {
			continue
		}
		for _, s := range v.Projected.Sources {
			if s.Secret != nil && s.Secret.Name == SecretName(d.Name) {
				return true
			}
		}
	}
	return false
}

func (r *Runtime) secretWhat(name string) string {
	return fmt.Sprintf("secret %s/%s", r.namespace, name)
}

// checkHeldSecrets checks that every Secret fn.SecretNames names exists:
// FailedPrecondition for the first that does not.
func (r *Runtime) checkHeldSecrets(ctx context.Context, fn preview.Function) error {
	for _, n := range fn.SecretNames {
		_, err := r.client.CoreV1().Secrets(r.namespace).Get(ctx, n, metav1.GetOptions{})
		err = kubeapi.Classify(ctx, err, r.secretWhat(n))
		if preview.IsNotFound(err) {
			return preview.Errorf(preview.FailedPrecondition, "function %s: secret %s does not exist in namespace %s (create it first, such as kubectl create secret generic %s --from-literal=%s=VALUE)", fn.Name, n, r.namespace, n, n)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// applySecret creates or updates the Secret of fn's own values (fn has
// some) with labels, keeping its owner references, and returns it as
// written. One of that name that is not Glimpse's is FailedPrecondition.
// An unchanged Secret is not written.
func (r *Runtime) applySecret(ctx context.Context, fn preview.Function, labels map[string]string) (*corev1.Secret, error) {
	name := SecretName(fn.Name)
	data := make(map[string][]byte, len(fn.Secrets))
	for k, v := range fn.Secrets {
		data[k] = []byte(v)
	}
	want := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: r.namespace, Labels: labels},
		Type:       corev1.SecretTypeOpaque,
		Data:       data,
	}
	return applyCompanion(ctx, r.client.CoreV1().Secrets(r.namespace), r.secretWhat(name), want,
		func(cur *corev1.Secret) bool {
			return maps.Equal(cur.Labels, labels) && maps.EqualFunc(cur.Data, data, bytes.Equal)
		},
		func(next *corev1.Secret) { next.Labels, next.Data, next.StringData = labels, data, nil })
}

// ownSecret makes dep the owner of s (its Secret), so that the garbage
// collector deletes s with dep; a Secret already owned by dep is not
// written.
func (r *Runtime) ownSecret(ctx context.Context, s *corev1.Secret, dep *appsv1.Deployment) error {
	return ownCompanion(ctx, r.client.CoreV1().Secrets(r.namespace), r.secretWhat(s.Name), s, dep)
}

// removeSecret deletes the Secret of function's own values if it is
// Glimpse's; a missing one is success. Credentials that may not read
// Secrets (the in-cluster daemon's, which runs gc without access to any
// Secret) are no error either: the garbage collector deletes the Secret
// with the Deployment that owns it.
func (r *Runtime) removeSecret(ctx context.Context, function string) error {
	name := SecretName(function)
	return removeCompanion(ctx, r.client.CoreV1().Secrets(r.namespace), r.secretWhat(name), name)
}

// DeliversSecrets reports true: this runtime delivers Function.Secrets and
// SecretNames as files in preview.SecretsDir (preview.SecretsRuntime).
func (r *Runtime) DeliversSecrets() bool { return true }
