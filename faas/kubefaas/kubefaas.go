// Package kubefaas is a preview.FunctionRuntime that runs each function as
// a Kubernetes Deployment and a ClusterIP Service of the same name in one
// namespace, without OpenFaaS, scaled through the Deployment's scale
// subresource (zero allowed), for teams whose previews live in their
// cluster.
//
// The pods run pull-request code, so they are hardened: non-root (user
// 65532), no privilege escalation, every capability dropped, the
// RuntimeDefault seccomp profile, a read-only root filesystem with an
// emptyDir at /tmp, no service-account token and no service links. A
// TCP readiness probe on the function's port (every second) says when a
// woken replica takes requests. The function listens on $PORT (8080); the
// Service maps port 80 to it.
//
// Ownership: the Deployment, the Service and the pod template carry
// Glimpse's ownership labels (the pod template without the commit and
// source hash, which change on every deploy) and glimpse.dev/function,
// the Service's selector. The function's annotations sit on the
// Deployment only, so that an annotation-only Apply restarts no replica.
// Secrets (preview.Function.Secrets and SecretNames) are Kubernetes
// Secrets mounted read-only at /var/openfaas/secrets (secrets.go).
// Objects without glimpse.dev/managed-by=glimpse are never changed or
// deleted (FailedPrecondition).
//
// Apply is create-or-update: the update carries the resourceVersion it
// read, so the generation check (preview.CheckGeneration) and the write
// are atomic; a concurrent write makes it read and decide again, a few
// times, before it answers Aborted. It keeps the current replica count.
// RemoveOlder deletes with a resourceVersion precondition, likewise.
//
// Resources: preview.Function.Resources (glimpse.yaml's
// function.resources) become the container's requests and limits, over
// Options.Resources; none by default.
//
// List reads the Deployments only (one list call) when every function
// listed has its replicas ready; pods are listed too only when some
// function is short of ready replicas, to say why (see List).
//
// URL (registered as kubefaas in preview.Runtimes):
//
//	kubefaas://NAMESPACE[?pull=Never|IfNotPresent|Always]
//	    [&networkPolicy=true[&from=KEY=VALUE,...][&fromNamespace=NS]
//	     [&egress=dns|internet|none][&except=CIDR,...]]
//
// networkPolicy=true fences every function with a NetworkPolicy
// (netpol.go): ingress only from the daemon's pods (from, default
// app.kubernetes.io/name=glimpse, in fromNamespace, default glimpse) on
// the function's port; egress only DNS (egress=dns, the default), DNS and
// non-private addresses except the CIDRs listed (egress=internet), or
// nothing (egress=none). It needs a CNI plugin that enforces NetworkPolicy.
//
// Credentials come from the kubeconfig named by KUBECONFIG, else the
// in-cluster service account, else ~/.kube/config (internal/kubeapi). It
// needs get, list, create, update and delete on deployments and services,
// get, create, update and delete on secrets, list on pods, and get and
// update on deployments/scale, in NAMESPACE; with networkPolicy=true also
// get, create, update and delete on networkpolicies.
package kubefaas

import (
	"context"
	"fmt"
	"maps"
	"math"
	"net/url"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"

	"github.com/glimpse-dev/glimpse/internal/kubeapi"
	"github.com/glimpse-dev/glimpse/preview"
)

// Scheme is the URL scheme this package registers in preview.Runtimes.
const Scheme = "kubefaas"

// LabelFunction names the function on its Deployment, Service and pods;
// it is the Service's and the Deployment's selector.
const LabelFunction = preview.LabelPrefix + "function"

// Port is the port a function listens on ($PORT); the Service exposes it
// as ServicePort.
const (
	Port        = 8080
	ServicePort = 80
)

// RunAsUser is the user id a function's container runs as.
const RunAsUser = 65532

// maxAttempts bounds how often a write that lost to a concurrent one is
// re-read and decided again.
const maxAttempts = 5

func init() {
	preview.Runtimes.Register(Scheme, openURL)
}

// Options configure a Runtime; the zero value takes the defaults.
type Options struct {
	// PullPolicy of the function's container; "" means IfNotPresent.
	// Never fits a node whose images were imported by hand.
	PullPolicy corev1.PullPolicy
	// Resources of the function's container (requests and limits) for
	// every function; a field that preview.Function.Resources sets (from
	// glimpse.yaml's function.resources) replaces the one here, except
	// that the limits here are ceilings (the pull request cannot raise
	// them: above one is InvalidArgument). The zero value sets none, so a
	// function without resources of its own gets the namespace's
	// LimitRange defaults, if any.
	Resources corev1.ResourceRequirements
	// NetworkPolicy, when set, gives every function a NetworkPolicy that
	// admits only the daemon's pods and denies egress but DNS (netpol.go).
	// nil writes none.
	NetworkPolicy *NetworkPolicyOptions
}

// Runtime runs functions as Deployments in one namespace. It is safe for
// concurrent use and keeps no state besides its client.
type Runtime struct {
	client    kubernetes.Interface
	namespace string
	opts      Options
}

// Client is the Kubernetes client the runtime deploys through.
func (r *Runtime) Client() kubernetes.Interface { return r.client }

// Namespace is the namespace the runtime deploys to.
func (r *Runtime) Namespace() string { return r.namespace }

// New returns a Runtime deploying to namespace through client. opts may
// be nil.
func New(client kubernetes.Interface, namespace string, opts *Options) (*Runtime, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	switch o.PullPolicy {
	case "":
		o.PullPolicy = corev1.PullIfNotPresent
	case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		return nil, preview.Errorf(preview.InvalidArgument, "pull policy %q: want Always, IfNotPresent or Never", o.PullPolicy)
	}
	if errs := validation.IsDNS1123Label(namespace); len(errs) > 0 {
		return nil, preview.Errorf(preview.InvalidArgument, "namespace %q: %s", namespace, errs[0])
	}
	if o.NetworkPolicy != nil {
		np, err := o.NetworkPolicy.withDefaults()
		if err != nil {
			return nil, err
		}
		o.NetworkPolicy = &np
	}
	return &Runtime{client: client, namespace: namespace, opts: o}, nil
}

func openURL(ctx context.Context, u *url.URL, o *preview.OpenOptions) (preview.FunctionRuntime, error) {
	q, err := preview.QueryParams(u, "pull", "networkPolicy", "from", "fromNamespace", "egress", "except")
	if err != nil {
		return nil, err
	}
	np, err := networkPolicyOptions(q)
	if err != nil {
		return nil, err
	}
	if np != nil { // checked before credentials are looked for
		if _, err := np.withDefaults(); err != nil {
			return nil, err
		}
	}
	if u.Path != "" && u.Path != "/" {
		return nil, preview.Errorf(preview.InvalidArgument, "the namespace is the URL's host (kubefaas://NAMESPACE), not a path")
	}
	cfg, err := kubeapi.Config(o)
	if err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, preview.Errorf(preview.InvalidArgument, "kubernetes client: %v", err)
	}
	return New(client, u.Host, &Options{PullPolicy: corev1.PullPolicy(q.Get("pull")), NetworkPolicy: np})
}

func (r *Runtime) what(name string) string {
	return fmt.Sprintf("deployment %s/%s", r.namespace, name)
}

// Apply creates fn's Deployment (one replica) and Service, or updates
// them to match fn, as the package comment says, in this order: the
// Secret of fn's own values (secrets.go), the NetworkPolicy (netpol.go;
// with the option, else a Glimpse policy of that name is deleted), the
// Deployment, the Secret's and the policy's owner references, the
// Service. A Service, Deployment, Secret or NetworkPolicy of that name
// that is not Glimpse's, or a SecretNames Secret that does not exist,
// refuses it (FailedPrecondition) before the Deployment is written. On a
// partial failure (the Deployment written, the Service not) a repeated
// Apply completes it; a Secret or policy written for a Deployment never
// created is found by its labels and removed by Remove.
func (r *Runtime) Apply(ctx context.Context, fn preview.Function) error {
	if err := fn.Validate(); err != nil {
		return err
	}
	dep, err := r.deployment(fn)
	if err != nil {
		return err
	}
	// A Service of that name that is not Glimpse's refuses the Apply
	// before anything is written.
	svc, err := r.client.CoreV1().Services(r.namespace).Get(ctx, fn.Name, metav1.GetOptions{})
	if err == nil && !kubeapi.Owned(svc.Labels) {
		return kubeapi.NotOwned(fmt.Sprintf("service %s/%s", r.namespace, fn.Name))
	}
	if err := kubeapi.Classify(ctx, err, fmt.Sprintf("service %s/%s", r.namespace, fn.Name)); err != nil && !preview.IsNotFound(err) {
		return err
	}
	if err := r.checkHeldSecrets(ctx, fn); err != nil {
		return err
	}
	// The function's own Secret is written before the pods that mount it,
	// its NetworkPolicy before the pods it fences.
	var own *corev1.Secret
	if len(fn.Secrets) > 0 {
		if own, err = r.applySecret(ctx, fn, dep.Labels); err != nil {
			return err
		}
	}
	var policy *networkingv1.NetworkPolicy
	if r.opts.NetworkPolicy != nil {
		if policy, err = r.applyNetworkPolicy(ctx, fn.Name, dep.Labels); err != nil {
			return err
		}
	} else if err := r.removeNetworkPolicy(ctx, fn.Name); err != nil {
		return err
	}
	var written, prev *appsv1.Deployment
	api := r.client.AppsV1().Deployments(r.namespace)
	for attempt := 1; ; attempt++ {
		cur, err := api.Get(ctx, fn.Name, metav1.GetOptions{})
		prev = nil
		switch {
		case err == nil:
			prev = cur
			if !kubeapi.Owned(cur.Labels) {
				return kubeapi.NotOwned(r.what(fn.Name))
			}
			if err := preview.CheckGeneration(statusOf(cur).Function, fn); err != nil {
				return err
			}
			next := dep.DeepCopy()
			next.ResourceVersion = cur.ResourceVersion
			next.Spec.Replicas = cur.Spec.Replicas
			// Keep what Kubernetes itself annotated (the Deployment
			// controller's revision), so an unchanged Apply writes nothing.
			for k, v := range cur.Annotations {
				if isSystemKey(k) {
					if next.Annotations == nil {
						next.Annotations = map[string]string{}
					}
					next.Annotations[k] = v
				}
			}
			written, err = api.Update(ctx, next, metav1.UpdateOptions{FieldManager: kubeapi.FieldManager})
		case preview.IsNotFound(kubeapi.Classify(ctx, err, "")):
			written, err = api.Create(ctx, dep, metav1.CreateOptions{FieldManager: kubeapi.FieldManager})
		}
		err = kubeapi.Classify(ctx, err, r.what(fn.Name))
		if c := preview.CodeOf(err); (c == preview.Aborted || c == preview.AlreadyExists) && attempt < maxAttempts {
			continue // a concurrent write: read again and decide again
		}
		if preview.CodeOf(err) == preview.AlreadyExists {
			err = preview.WithCode(preview.Aborted, err)
		}
		if err != nil {
			return err
		}
		break
	}
	if policy != nil {
		if err := r.ownNetworkPolicy(ctx, policy, written); err != nil {
			return err
		}
	}
	switch {
	case own != nil:
		if err := r.ownSecret(ctx, own, written); err != nil {
			return err
		}
	case prev != nil && usesOwnSecret(prev):
		// The function no longer has values of its own: its Secret goes
		// once no pod template names it.
		if err := r.removeSecret(ctx, fn.Name); err != nil {
			return err
		}
	}
	return r.applyService(ctx, fn.Name, dep.Labels)
}

// applyService creates the function's Service, or brings an existing one
// of Glimpse's to the wanted labels and ports.
func (r *Runtime) applyService(ctx context.Context, name string, labels map[string]string) error {
	want := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: r.namespace, Labels: labels},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: map[string]string{LabelFunction: name},
			Ports: []corev1.ServicePort{{
				Name: "http", Protocol: corev1.ProtocolTCP, Port: ServicePort, TargetPort: intstr.FromInt32(Port),
			}},
		},
	}
	what := fmt.Sprintf("service %s/%s", r.namespace, name)
	api := r.client.CoreV1().Services(r.namespace)
	for attempt := 1; ; attempt++ {
		cur, err := api.Get(ctx, name, metav1.GetOptions{})
		switch {
		case err == nil:
			if !kubeapi.Owned(cur.Labels) {
				return kubeapi.NotOwned(what)
			}
			if maps.Equal(cur.Labels, want.Labels) && maps.Equal(cur.Spec.Selector, want.Spec.Selector) &&
				len(cur.Spec.Ports) == 1 && cur.Spec.Ports[0].Port == ServicePort && cur.Spec.Ports[0].TargetPort == want.Spec.Ports[0].TargetPort {
				return nil
			}
			next := cur.DeepCopy()
			next.Labels, next.Spec.Selector, next.Spec.Ports = want.Labels, want.Spec.Selector, want.Spec.Ports
			_, err = api.Update(ctx, next, metav1.UpdateOptions{FieldManager: kubeapi.FieldManager})
		case preview.IsNotFound(kubeapi.Classify(ctx, err, "")):
			_, err = api.Create(ctx, want, metav1.CreateOptions{FieldManager: kubeapi.FieldManager})
		}
		err = kubeapi.Classify(ctx, err, what)
		if c := preview.CodeOf(err); (c == preview.Aborted || c == preview.AlreadyExists) && attempt < maxAttempts {
			continue
		}
		return err
	}
}

// deployment renders fn (validated) as its Deployment, one replica.
func (r *Runtime) deployment(fn preview.Function) (*appsv1.Deployment, error) {
	labels, err := kubeapi.Labels(fn.Labels.With(LabelFunction, fn.Name))
	if err != nil {
		return nil, preview.WithCode(preview.InvalidArgument, fmt.Errorf("function %s: %w", fn.Name, err))
	}
	podLabels := map[string]string{}
	for k, v := range labels {
		if k != preview.LabelCommit && k != preview.LabelSourceHash {
			podLabels[k] = v
		}
	}
	for k := range fn.Annotations {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return nil, preview.Errorf(preview.InvalidArgument, "function %s: annotation key %q: %s", fn.Name, k, errs[0])
		}
	}
	env := []corev1.EnvVar{{Name: "PORT", Value: fmt.Sprint(Port)}}
	keys := make([]string, 0, len(fn.Env))
	for k := range fn.Env {
		if k == "PORT" {
			return nil, preview.Errorf(preview.InvalidArgument, "function %s: PORT is set by the runtime (%d)", fn.Name, Port)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys) // a stable order, so an unchanged Apply rolls nothing out
	for _, k := range keys {
		env = append(env, corev1.EnvVar{Name: k, Value: fn.Env[k]})
	}
	res, err := r.resources(fn)
	if err != nil {
		return nil, err
	}
	one := int32(1)
	yes, no := true, false
	uid := int64(RunAsUser)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: fn.Name, Namespace: r.namespace, Labels: labels, Annotations: fn.Annotations},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{LabelFunction: fn.Name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
				Spec: corev1.PodSpec{
					AutomountServiceAccountToken: &no,
					EnableServiceLinks:           &no,
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   &yes,
						RunAsUser:      &uid,
						RunAsGroup:     &uid,
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Containers: []corev1.Container{{
						Name:            "function",
						Image:           fn.Image,
						ImagePullPolicy: r.opts.PullPolicy,
						Env:             env,
						Ports:           []corev1.ContainerPort{{Name: "http", ContainerPort: Port, Protocol: corev1.ProtocolTCP}},
						Resources:       res,
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:     corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(Port)}},
							PeriodSeconds:    1,
							FailureThreshold: 3,
						},
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: &no,
							ReadOnlyRootFilesystem:   &yes,
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
						VolumeMounts: []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}},
					}},
					Volumes: []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
				},
			},
		},
	}
	addSecrets(&d.Spec.Template, fn)
	return d, nil
}

// resources are the function's container resources: Options.Resources
// with every field fn.Resources sets (validated) taken from fn. The
// operator's limits are ceilings the pull request's glimpse.yaml cannot
// lift: a request or limit above one is InvalidArgument, and so is a
// request above the limit it ends up with (which the API server would
// refuse with its own message).
func (r *Runtime) resources(fn preview.Function) (corev1.ResourceRequirements, error) {
	out := *r.opts.Resources.DeepCopy()
	for _, f := range []struct {
		list *corev1.ResourceList
		name corev1.ResourceName
		key  string
		v    string
	}{
		{&out.Requests, corev1.ResourceCPU, "requests.cpu", fn.Resources.Requests.CPU},
		{&out.Requests, corev1.ResourceMemory, "requests.memory", fn.Resources.Requests.Memory},
		{&out.Limits, corev1.ResourceCPU, "limits.cpu", fn.Resources.Limits.CPU},
		{&out.Limits, corev1.ResourceMemory, "limits.memory", fn.Resources.Limits.Memory},
	} {
		if f.v == "" {
			continue
		}
		q, err := resource.ParseQuantity(f.v)
		if err != nil {
			return out, preview.Errorf(preview.InvalidArgument, "function %s: resources.%s: %q is not a quantity", fn.Name, f.key, f.v)
		}
		if *f.list == nil {
			*f.list = corev1.ResourceList{}
		}
		(*f.list)[f.name] = q
	}
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if ceiling, ok := r.opts.Resources.Limits[name]; ok {
			for _, l := range []struct {
				list corev1.ResourceList
				kind string
			}{{out.Requests, "requests"}, {out.Limits, "limits"}} {
				if q, ok := l.list[name]; ok && q.Cmp(ceiling) > 0 {
					return out, preview.Errorf(preview.InvalidArgument, "function %s: resources.%s.%s %s is above the runtime's limit of %s", fn.Name, l.kind, name, q.String(), ceiling.String())
				}
			}
		}
		req, hasReq := out.Requests[name]
		lim, hasLim := out.Limits[name]
		if hasReq && hasLim && req.Cmp(lim) > 0 {
			return out, preview.Errorf(preview.InvalidArgument, "function %s: resources.requests.%s %s is above its limit %s", fn.Name, name, req.String(), lim.String())
		}
	}
	return out, nil
}

// reportedResources is a container's resources as preview.Resources.
func reportedResources(c corev1.ResourceRequirements) preview.Resources {
	str := func(l corev1.ResourceList, n corev1.ResourceName) string {
		if q, ok := l[n]; ok {
			return q.String()
		}
		return ""
	}
	return preview.Resources{
		Requests: preview.ResourceList{CPU: str(c.Requests, corev1.ResourceCPU), Memory: str(c.Requests, corev1.ResourceMemory)},
		Limits:   preview.ResourceList{CPU: str(c.Limits, corev1.ResourceCPU), Memory: str(c.Limits, corev1.ResourceMemory)},
	}
}

// statusOf reads a function's status back from its Deployment.
func statusOf(d *appsv1.Deployment) preview.FunctionStatus {
	st := preview.FunctionStatus{
		Function: preview.Function{
			Name:        d.Name,
			Labels:      preview.Labels(d.Labels).Clone(),
			Annotations: map[string]string{},
		},
		AvailableReplicas: int(d.Status.AvailableReplicas),
		CreatedAt:         d.CreationTimestamp.Time,
	}
	if d.Spec.Replicas != nil {
		st.Replicas = int(*d.Spec.Replicas)
	}
	for k, v := range d.Annotations {
		if !isSystemKey(k) {
			st.Annotations[k] = v
		}
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name != "function" {
			continue
		}
		st.Image = c.Image
		st.Resources = reportedResources(c.Resources)
		for _, e := range c.Env {
			if e.Name == "PORT" {
				continue
			}
			if st.Env == nil {
				st.Env = map[string]string{}
			}
			st.Env[e.Name] = e.Value
		}
	}
	return st
}

// get reads name's Deployment; NotFound when missing, FailedPrecondition
// when it is not Glimpse's.
func (r *Runtime) get(ctx context.Context, name string) (*appsv1.Deployment, error) {
	if err := preview.ValidateDNSLabel(name); err != nil {
		return nil, preview.Errorf(preview.InvalidArgument, "function name %q: %v", name, err)
	}
	d, err := r.client.AppsV1().Deployments(r.namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, kubeapi.Classify(ctx, err, r.what(name))
	}
	if !kubeapi.Owned(d.Labels) {
		return nil, kubeapi.NotOwned(r.what(name))
	}
	return d, nil
}

// Get returns the function's status from its Deployment, or NotFound,
// with LastError, Restarts and StartedAt from its pods (a second read).
func (r *Runtime) Get(ctx context.Context, name string) (preview.FunctionStatus, error) {
	d, err := r.get(ctx, name)
	if err != nil {
		return preview.FunctionStatus{}, err
	}
	st := statusOf(d)
	pods, err := r.pods(ctx, preview.Labels{LabelFunction: name})
	if err != nil {
		return preview.FunctionStatus{}, err
	}
	podStatus(&st, pods[name])
	return st, nil
}

// pods lists the live Glimpse pods matching selector, by function. Pods
// carry no commit or source-hash label (see the package comment), so
// those keys are left out of the pod query.
func (r *Runtime) pods(ctx context.Context, selector preview.Labels) (map[string][]corev1.Pod, error) {
	podSel := selector.Clone()
	delete(podSel, preview.LabelCommit)
	delete(podSel, preview.LabelSourceHash)
	s, err := kubeapi.Selector(podSel)
	if err != nil {
		return nil, err
	}
	list, err := r.client.CoreV1().Pods(r.namespace).List(ctx, metav1.ListOptions{LabelSelector: s})
	if err != nil {
		return nil, kubeapi.Classify(ctx, err, "pods in "+r.namespace)
	}
	out := map[string][]corev1.Pod{}
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out[p.Labels[LabelFunction]] = append(out[p.Labels[LabelFunction]], p)
		}
	}
	return out, nil
}

// podStatus fills LastError, Restarts and StartedAt from the function's
// live pods: LastError is the reason its container cannot start or keeps
// crashing (ErrImageNeverPull, CrashLoopBackOff, ...), on one line.
func podStatus(st *preview.FunctionStatus, pods []corev1.Pod) {
	for _, p := range pods {
		for _, cs := range p.Status.ContainerStatuses {
			if cs.Name != "function" {
				continue
			}
			st.Restarts += int(cs.RestartCount)
			if run := cs.State.Running; run != nil && run.StartedAt.After(st.StartedAt) {
				st.StartedAt = run.StartedAt.Time
			}
			if w := cs.State.Waiting; w != nil && w.Reason != "" && w.Reason != "ContainerCreating" && w.Reason != "PodInitializing" {
				msg := w.Reason
				if w.Message != "" {
					msg += ": " + w.Message
				}
				if t := cs.LastTerminationState.Terminated; t != nil {
					msg += fmt.Sprintf(" (last exit code %d", t.ExitCode)
					if t.Reason != "" {
						msg += ", " + t.Reason
					}
					msg += ")"
				}
				st.LastError = strings.Join(strings.Fields(msg), " ")
			}
		}
	}
}

// List returns the functions whose labels match selector; only
// Glimpse's Deployments are listed. When every listed function has the
// replicas it wants ready (the quiet case: the idle controller's every
// cycle), that is one list call, of the Deployments, whose status says
// how many replicas are available; LastError, Restarts and StartedAt,
// which only pods know, are then left empty. When some function is short
// of ready replicas (starting, crash-looping, an image that cannot be
// pulled), a second list reads the pods and fills those fields for every
// function, as Get does for one.
func (r *Runtime) List(ctx context.Context, selector preview.Labels) ([]preview.FunctionStatus, error) {
	sel, err := kubeapi.Selector(selector)
	if err != nil {
		return nil, err
	}
	list, err := r.client.AppsV1().Deployments(r.namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, kubeapi.Classify(ctx, err, "deployments in "+r.namespace)
	}
	var pods map[string][]corev1.Pod
	for i := range list.Items {
		if !settled(&list.Items[i]) {
			if pods, err = r.pods(ctx, selector); err != nil {
				return nil, err
			}
			break
		}
	}
	out := make([]preview.FunctionStatus, 0, len(list.Items))
	for i := range list.Items {
		st := statusOf(&list.Items[i])
		podStatus(&st, pods[st.Name])
		out = append(out, st)
	}
	return out, nil
}

// settled reports whether d's status says its pods are all as wanted: the
// Deployment controller has seen its latest spec and every wanted replica
// is updated and ready, with none unavailable. Only an unsettled
// Deployment's pods can say more (why a replica does not start).
func settled(d *appsv1.Deployment) bool {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	st := d.Status
	return st.ObservedGeneration >= d.Generation && st.UnavailableReplicas == 0 &&
		st.ReadyReplicas >= want && st.UpdatedReplicas >= want
}

// Scale sets the Deployment's replicas through its scale subresource and
// returns the count accepted (replicas: nothing clamps). The write is
// conditional on the version read with the ownership check.
func (r *Runtime) Scale(ctx context.Context, name string, replicas int) (int, error) {
	if replicas < 0 || replicas > math.MaxInt32 {
		return 0, preview.Errorf(preview.InvalidArgument, "function %s: replicas %d: must be 0 or more", name, replicas)
	}
	for attempt := 1; ; attempt++ {
		d, err := r.get(ctx, name)
		if err != nil {
			return 0, err
		}
		s := &autoscalingv1.Scale{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: r.namespace, ResourceVersion: d.ResourceVersion},
			Spec:       autoscalingv1.ScaleSpec{Replicas: int32(replicas)},
		}
		got, err := r.client.AppsV1().Deployments(r.namespace).UpdateScale(ctx, name, s, metav1.UpdateOptions{FieldManager: kubeapi.FieldManager})
		err = kubeapi.Classify(ctx, err, r.what(name)+" scale")
		if preview.CodeOf(err) == preview.Aborted && attempt < maxAttempts {
			continue
		}
		if err != nil {
			return 0, err
		}
		return int(got.Spec.Replicas), nil
	}
}

// Remove deletes the function's Deployment (its pods go with it), Service,
// the Secret of its own values and its NetworkPolicy; a missing function
// is success. When a
// delete fails after the Deployment's, a repeated Remove finishes it.
func (r *Runtime) Remove(ctx context.Context, name string) error {
	_, err := r.removeIf(ctx, name, func(*appsv1.Deployment) bool { return true })
	return err
}

// RemoveOlder removes the function if its generation is below below, the
// check and the delete atomic (a resourceVersion precondition).
func (r *Runtime) RemoveOlder(ctx context.Context, name string, below int64) (bool, error) {
	return r.removeIf(ctx, name, func(d *appsv1.Deployment) bool { return preview.GenerationOf(d.Annotations) < below })
}

func (r *Runtime) removeIf(ctx context.Context, name string, ok func(*appsv1.Deployment) bool) (bool, error) {
	for attempt := 1; ; attempt++ {
		d, err := r.get(ctx, name)
		if preview.IsNotFound(err) {
			return false, r.removeRest(ctx, name)
		}
		if err != nil {
			return false, err
		}
		if !ok(d) {
			return false, nil
		}
		bg := metav1.DeletePropagationBackground
		err = r.client.AppsV1().Deployments(r.namespace).Delete(ctx, name, metav1.DeleteOptions{
			Preconditions:     &metav1.Preconditions{UID: &d.UID, ResourceVersion: &d.ResourceVersion},
			PropagationPolicy: &bg,
		})
		err = kubeapi.Classify(ctx, err, r.what(name))
		if preview.CodeOf(err) == preview.Aborted && attempt < maxAttempts {
			continue
		}
		if err := preview.IgnoreNotFound(err); err != nil {
			return false, err
		}
		return true, r.removeRest(ctx, name)
	}
}

// removeRest deletes what a function has besides its Deployment, once the
// Deployment is gone: its Service, the Secret of its own values and its
// NetworkPolicy (each only if Glimpse's). It tries each and returns the
// first failure.
func (r *Runtime) removeRest(ctx context.Context, name string) error {
	errSvc := r.removeService(ctx, name)
	errSec := r.removeSecret(ctx, name)
	errPol := r.removeNetworkPolicy(ctx, name)
	for _, err := range []error{errSvc, errSec, errPol} {
		if err != nil {
			return err
		}
	}
	return nil
}

// removeService deletes the function's Service if it is Glimpse's.
func (r *Runtime) removeService(ctx context.Context, name string) error {
	what := fmt.Sprintf("service %s/%s", r.namespace, name)
	api := r.client.CoreV1().Services(r.namespace)
	s, err := api.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return preview.IgnoreNotFound(kubeapi.Classify(ctx, err, what))
	}
	if !kubeapi.Owned(s.Labels) {
		return nil // not ours: left alone
	}
	err = api.Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &s.UID}})
	return preview.IgnoreNotFound(kubeapi.Classify(ctx, err, what))
}

// isSystemKey reports whether an annotation key is one Kubernetes' own
// components write (deployment.kubernetes.io/revision), which Get does not
// report and Apply keeps.
func isSystemKey(k string) bool {
	return strings.Contains(k, "kubernetes.io/")
}
