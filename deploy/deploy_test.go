package deploy_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/glimpse-dev/glimpse/config"
	"github.com/glimpse-dev/glimpse/deploy"
	"github.com/glimpse-dev/glimpse/faas/kubefaas"
	"github.com/glimpse-dev/glimpse/ingress/k8singress"
	"github.com/glimpse-dev/glimpse/internal/kubeapi"
	"github.com/glimpse-dev/glimpse/internal/kubetest"
	"github.com/glimpse-dev/glimpse/internal/leader"
	"github.com/glimpse-dev/glimpse/internal/testenv"
	"github.com/glimpse-dev/glimpse/preview"
)

// One API server with RBAC authorization for the package.
func TestMain(m *testing.M) {
	// client-go's leader elector logs every attempt through klog.
	klog.LogToStderr(false)
	klog.SetOutput(io.Discard)
	code := m.Run()
	kubetest.StopShared()
	os.Exit(code)
}

const envKubectl = "GLIMPSE_KUBECTL_BIN"

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func objects(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	objs, err := deploy.Objects()
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func key(u *unstructured.Unstructured) string {
	return u.GetKind() + " " + u.GetNamespace() + "/" + u.GetName()
}

// TestManifests checks the manifests without a server: the objects the
// daemon needs are there, each namespaced one names its namespace, none
// carries Glimpse's ownership label (gc would take it for a preview's),
// the RBAC is namespaced, names no Secrets and no wildcards, and every
// GLIMPSE_SERVE_ variable the Deployment sets is one `glimpse serve` reads.
func TestManifests(t *testing.T) {
	var got []string
	for _, u := range objects(t) {
		got = append(got, key(u))
		if _, ok := u.GetLabels()[preview.LabelManagedBy]; ok {
			t.Errorf("%s carries %s: gc and the route informer would take it for a preview's", key(u), preview.LabelManagedBy)
		}
		switch u.GetKind() {
		case "Namespace":
			if u.GetLabels()["pod-security.kubernetes.io/enforce"] != "restricted" {
				t.Errorf("%s does not enforce the restricted Pod Security Standard", key(u))
			}
		case "ClusterRole", "ClusterRoleBinding":
			t.Errorf("%s: the daemon needs nothing cluster-wide", key(u))
		case "Role":
			var r rbacv1.Role
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &r); err != nil {
				t.Fatal(err)
			}
			for _, rule := range r.Rules {
				all := slices.Concat(rule.APIGroups, rule.Resources, rule.Verbs)
				if slices.Contains(all, "*") || slices.Contains(rule.Resources, "secrets") {
					t.Errorf("%s rule %+v: no wildcards, no secrets", key(u), rule)
				}
			}
		case "Deployment":
			// Every serve setting it passes is one `glimpse serve` reads.
			var d appsv1.Deployment
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &d); err != nil {
				t.Fatal(err)
			}
			for _, c := range d.Spec.Template.Spec.Containers {
				for _, e := range c.Env {
					if strings.HasPrefix(e.Name, "GLIMPSE_SERVE_") && !slices.ContainsFunc(config.ServeKeys, func(k config.ServeKey) bool { return k.Env == e.Name }) {
						t.Errorf("%s sets %s, which glimpse serve does not read", key(u), e.Name)
					}
				}
			}
		}
		switch u.GetKind() {
		case "Namespace", "ClusterRole", "ClusterRoleBinding":
		default:
			if ns := u.GetNamespace(); ns != deploy.Namespace && ns != deploy.FunctionsNamespace {
				t.Errorf("%s: namespace %q, want %s or %s", key(u), ns, deploy.Namespace, deploy.FunctionsNamespace)
			}
		}
	}
	for _, want := range []string{
		"Namespace /" + deploy.Namespace, "Namespace /" + deploy.FunctionsNamespace,
		"ServiceAccount glimpse/" + deploy.ServiceAccount,
		"Deployment glimpse/glimpse", "Service glimpse/" + deploy.EdgeService, "Ingress glimpse/glimpse-wildcard",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("no %s in %v", want, got)
		}
	}
}

// TestKustomize checks that kubectl's kustomize (what `kubectl apply -k
// deploy/` reads) renders exactly the objects deploy.Objects decodes, and
// that `kubectl apply -k` itself installs them on a real API server.
func TestKustomize(t *testing.T) {
	testenv.Require(t, envKubectl, "kubectl binary (.ci/steps/50-kubernetes.sh builds it)")
	out, err := exec.CommandContext(ctxT(t), os.Getenv(envKubectl), "kustomize", ".").Output()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v", err)
	}
	var rendered []string
	d := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	for {
		var u unstructured.Unstructured
		if err := d.Decode(&u.Object); err != nil {
			break
		}
		if len(u.Object) > 0 {
			rendered = append(rendered, key(&u))
		}
	}
	var ours []string
	for _, u := range objects(t) {
		ours = append(ours, key(u))
	}
	sort.Strings(rendered)
	sort.Strings(ours)
	if !slices.Equal(rendered, ours) {
		t.Fatalf("kubectl kustomize renders\n%v\ndeploy.Objects decodes\n%v", rendered, ours)
	}

	c := kubetest.Shared(t, kubetest.Options{Authorization: "RBAC"})
	apply, err := exec.CommandContext(ctxT(t), os.Getenv(envKubectl), "--kubeconfig", c.Kubeconfig,
		"apply", "--server-side", "-k", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl apply -k: %v\n%s", err, apply)
	}
	if n := strings.Count(string(apply), "serverside-applied"); n != len(ours) {
		t.Fatalf("kubectl apply -k applied %d objects, want %d:\n%s", n, len(ours), apply)
	}
}

// install applies every manifest to the package's RBAC cluster as the
// admin (server-side apply, as `kubectl apply --server-side -k` does),
// twice: the second apply changes nothing. It returns the admin clientset
// and one authenticated as the daemon's service account with a token from
// the TokenRequest API, as its pod would hold.
func install(t *testing.T) (admin, daemon kubernetes.Interface, c *kubetest.Cluster) {
	t.Helper()
	c = kubetest.Shared(t, kubetest.Options{Authorization: "RBAC"})
	ctx := ctxT(t)
	first := c.Apply(t, objects(t)...)
	for i, got := range c.Apply(t, objects(t)...) {
		if was := first[i].GetResourceVersion(); got.GetResourceVersion() != was {
			t.Errorf("second apply of %s changed it (resourceVersion %s -> %s)", key(got), was, got.GetResourceVersion())
		}
	}
	admin = c.Client(t)
	cfg, err := c.ServiceAccountConfig(ctx, deploy.Namespace, deploy.ServiceAccount)
	if err != nil {
		t.Fatal(err)
	}
	daemon, err = kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The API server's RBAC authorizer reads Roles and bindings from a
	// cache: wait until it has the new ones (one granted access).
	probe := access{ns: deploy.FunctionsNamespace, group: "discovery.k8s.io", resource: "endpointslices", verb: "watch"}
	for deadline := time.Now().Add(10 * time.Second); !allowed(t, daemon, probe); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the daemon still cannot %s 10s after the RBAC was applied", probe)
		}
	}
	return admin, daemon, c
}

// access is one request the daemon's service account makes or must not.
type access struct {
	ns, group, resource, sub, name, verb string
}

func (a access) String() string {
	r := a.resource
	if a.sub != "" {
		r += "/" + a.sub
	}
	if a.group != "" {
		r += "." + a.group
	}
	if a.name != "" {
		r += " " + a.name
	}
	return a.verb + " " + r + " in " + a.ns
}

func allowed(t *testing.T, cs kubernetes.Interface, a access) bool {
	t.Helper()
	r, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctxT(t), &authorizationv1.SelfSubjectAccessReview{
		Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: a.ns, Group: a.group, Resource: a.resource, Subresource: a.sub, Name: a.name, Verb: a.verb,
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("access review of %s: %v", a, err)
	}
	return r.Status.Allowed
}

// TestRBAC installs deploy/ on a real kube-apiserver with RBAC
// authorization and checks, as the daemon's service account, every access
// the providers and the daemon need (SelfSubjectAccessReview), then the
// ones it must not have: Secrets anywhere, other namespaces, RBAC,
// pods/exec, other Leases, anything cluster-wide.
func TestRBAC(t *testing.T) {
	_, daemon, _ := install(t)
	ns, fns := deploy.Namespace, deploy.FunctionsNamespace
	var can []access
	for _, v := range []string{"get", "list", "watch", "create", "update", "delete"} {
		can = append(can,
			access{ns: ns, group: "networking.k8s.io", resource: "ingresses", verb: v},
			access{ns: fns, group: "apps", resource: "deployments", verb: v},
			access{ns: fns, resource: "services", verb: v})
	}
	can = append(can,
		// k8singress's server-side apply is a patch.
		access{ns: ns, group: "networking.k8s.io", resource: "ingresses", verb: "patch"},
		access{ns: fns, group: "apps", resource: "deployments", sub: "scale", verb: "get"},
		access{ns: fns, group: "apps", resource: "deployments", sub: "scale", verb: "update"},
		access{ns: fns, resource: "pods", verb: "get"},
		access{ns: fns, resource: "pods", verb: "list"},
		access{ns: fns, group: "discovery.k8s.io", resource: "endpointslices", verb: "get"},
		access{ns: fns, group: "discovery.k8s.io", resource: "endpointslices", verb: "list"},
		access{ns: fns, group: "discovery.k8s.io", resource: "endpointslices", verb: "watch"},
		access{ns: fns, group: "networking.k8s.io", resource: "networkpolicies", verb: "get"},
		access{ns: fns, group: "networking.k8s.io", resource: "networkpolicies", verb: "create"},
		access{ns: fns, group: "networking.k8s.io", resource: "networkpolicies", verb: "update"},
		access{ns: fns, group: "networking.k8s.io", resource: "networkpolicies", verb: "delete"},
		access{ns: ns, group: "coordination.k8s.io", resource: "leases", verb: "create"},
		access{ns: ns, group: "coordination.k8s.io", resource: "leases", name: deploy.LeaseName, verb: "get"},
		access{ns: ns, group: "coordination.k8s.io", resource: "leases", name: deploy.LeaseName, verb: "update"},
	)
	cannot := []access{
		{ns: fns, group: "apps", resource: "deployments", verb: "deletecollection"},
		{ns: fns, resource: "pods", verb: "create"},
		{ns: fns, resource: "pods", sub: "exec", verb: "create"},
		{ns: fns, resource: "pods", sub: "log", verb: "get"},
		{ns: fns, resource: "configmaps", verb: "get"},
		{ns: fns, group: "networking.k8s.io", resource: "ingresses", verb: "create"},
		{ns: ns, group: "networking.k8s.io", resource: "networkpolicies", verb: "create"},
		{ns: fns, group: "networking.k8s.io", resource: "networkpolicies", verb: "list"},
		{ns: ns, group: "apps", resource: "deployments", verb: "update"},
		{ns: ns, resource: "services", verb: "update"},
		{ns: ns, resource: "serviceaccounts", sub: "token", name: deploy.ServiceAccount, verb: "create"},
		{ns: ns, group: "coordination.k8s.io", resource: "leases", name: "someone-else", verb: "update"},
		{ns: ns, group: "coordination.k8s.io", resource: "leases", verb: "list"},
		{ns: ns, group: "rbac.authorization.k8s.io", resource: "roles", verb: "update"},
		{ns: ns, group: "rbac.authorization.k8s.io", resource: "rolebindings", verb: "create"},
		{ns: "kube-system", group: "coordination.k8s.io", resource: "leases", verb: "update"},
		{ns: "default", group: "apps", resource: "deployments", verb: "create"},
		{ns: "default", group: "networking.k8s.io", resource: "ingresses", verb: "list"},
		{resource: "namespaces", verb: "create"},
		{resource: "nodes", verb: "list"},
		{group: "rbac.authorization.k8s.io", resource: "clusterrolebindings", verb: "create"},
		{resource: "users", verb: "impersonate"},
	}
	for _, n := range []string{ns, fns, "default", "kube-system"} {
		for _, v := range []string{"get", "list", "watch", "create", "update", "delete"} {
			cannot = append(cannot, access{ns: n, resource: "secrets", verb: v})
		}
	}
	for _, a := range can {
		if !allowed(t, daemon, a) {
			t.Errorf("the daemon cannot %s; it needs to", a)
		}
	}
	for _, a := range cannot {
		if allowed(t, daemon, a) {
			t.Errorf("the daemon can %s; it must not", a)
		}
	}
	t.Logf("checked %d accesses the daemon needs and %d it must not have, as system:serviceaccount:%s:%s", len(can), len(cannot), ns, deploy.ServiceAccount)

	// A refused read is classified PermissionDenied, one line.
	for _, n := range []string{ns, fns} {
		ctx := ctxT(t)
		_, err := daemon.CoreV1().Secrets(n).List(ctx, metav1.ListOptions{})
		err = kubeapi.Classify(ctx, err, "secrets in "+n)
		if preview.CodeOf(err) != preview.PermissionDenied || strings.Contains(err.Error(), "\n") {
			t.Errorf("list secrets in %s as the daemon: %v, want PermissionDenied on one line", n, err)
		}
	}
}

// TestProviders runs the providers the daemon composes, as its service
// account, through what they do: k8s-ingress:// in glimpse (and the
// wildcard Ingress is not taken for a route), kubefaas:// in
// glimpse-functions (apply, get, list, scale to zero and back, remove),
// leader election on its Lease, and watches on what the daemon's
// informers follow.
func TestProviders(t *testing.T) {
	admin, daemon, _ := install(t)
	ctx := ctxT(t)
	labels := preview.OwnerLabels("", preview.Target{App: "hello", PR: 7, Commit: "abc1234"})

	router, err := k8singress.New(daemon, deploy.Namespace, nil)
	if err != nil {
		t.Fatal(err)
	}
	host := "pr-7.hello.previews.example.com"
	rt, err := router.SetRoute(ctx, preview.Route{Host: host, AssetPrefix: "hello/pr-7/abc1234", Function: "hello-pr-7",
		FunctionPaths: []string{"/graphql"}, Labels: labels, Generation: 1, ClaimedCommit: "abc1234", Served: 1})
	if err != nil {
		t.Fatalf("SetRoute as the daemon: %v", err)
	}
	rt.Generation, rt.Served = 2, 2
	if _, err := router.SetRoute(ctx, rt); err != nil {
		t.Fatalf("SetRoute update as the daemon: %v", err)
	}
	if got, err := router.Route(ctx, host); err != nil || got.Generation != 2 {
		t.Fatalf("Route as the daemon: %+v, %v", got, err)
	}
	routes, err := router.Routes(ctx, preview.Selector(preview.AnyOwner, "", 0))
	if err != nil {
		t.Fatalf("Routes as the daemon: %v", err)
	}
	if len(routes) != 1 || routes[0].Host != host {
		t.Fatalf("Routes = %+v, want only %s (not the wildcard Ingress)", routes, host)
	}
	if err := router.DeleteRoute(ctx, host); err != nil {
		t.Fatalf("DeleteRoute as the daemon: %v", err)
	}

	// As daemon.yaml runs it: networkPolicy=true, with the defaults.
	rtm, err := kubefaas.New(daemon, deploy.FunctionsNamespace, &kubefaas.Options{NetworkPolicy: &kubefaas.NetworkPolicyOptions{}})
	if err != nil {
		t.Fatal(err)
	}
	fn := preview.Function{Name: "hello-pr-7", Image: "glimpse.test/hello:1", Labels: labels}
	if err := rtm.Apply(ctx, fn); err != nil {
		t.Fatalf("Apply as the daemon: %v", err)
	}
	if err := rtm.Apply(ctx, fn); err != nil {
		t.Fatalf("second Apply as the daemon: %v", err)
	}
	if _, err := rtm.Get(ctx, fn.Name); err != nil {
		t.Fatalf("Get as the daemon: %v", err)
	}
	if l, err := rtm.List(ctx, preview.Selector(preview.AnyOwner, "", 0)); err != nil || len(l) != 1 {
		t.Fatalf("List as the daemon: %+v, %v", l, err)
	}
	for _, n := range []int{0, 1, 0} {
		if got, err := rtm.Scale(ctx, fn.Name, n); err != nil || got != n {
			t.Fatalf("Scale(%d) as the daemon: %d, %v", n, got, err)
		}
	}

	// The function's pods pass the functions namespace's restricted Pod
	// Security Standard, and so do the daemon's (a server-side dry run of
	// each pod template; a pod running as root is refused, so the check
	// is live).
	dep, err := admin.AppsV1().Deployments(deploy.FunctionsNamespace).Get(ctx, fn.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	daemonDep, err := admin.AppsV1().Deployments(deploy.Namespace).Get(ctx, "glimpse", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The "default" service account a pod runs as is the controller
	// manager's to create; this cluster has none.
	if _, err := admin.CoreV1().ServiceAccounts(deploy.FunctionsNamespace).Create(ctx,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	dryRun := func(ns string, spec corev1.PodSpec) error {
		_, err := admin.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "psa-"}, Spec: spec},
			metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err
	}
	if err := dryRun(deploy.FunctionsNamespace, dep.Spec.Template.Spec); err != nil {
		t.Errorf("kubefaas's pod in %s: %v", deploy.FunctionsNamespace, err)
	}
	if err := dryRun(deploy.Namespace, daemonDep.Spec.Template.Spec); err != nil {
		t.Errorf("the daemon's pod in %s: %v", deploy.Namespace, err)
	}
	root := int64(0)
	bad := *daemonDep.Spec.Template.Spec.DeepCopy()
	bad.SecurityContext.RunAsUser, bad.SecurityContext.RunAsNonRoot = &root, nil
	if err := dryRun(deploy.Namespace, bad); err == nil {
		t.Errorf("a pod running as root was admitted in %s: the restricted standard is not enforced", deploy.Namespace)
	}

	// Function secrets need secrets access, which deploy/ does not grant
	// (rbac.yaml says how to add it): one line naming the refusal.
	withSecret := fn
	withSecret.Name, withSecret.Secrets = "hello-pr-8", map[string]string{"api-key": "s3cr3t"}
	if err := rtm.Apply(ctx, withSecret); preview.CodeOf(err) != preview.PermissionDenied || strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("Apply with a secret as the daemon: %v, want PermissionDenied on one line, without the value", err)
	}
	pol, err := admin.NetworkingV1().NetworkPolicies(deploy.FunctionsNamespace).Get(ctx, fn.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the function's NetworkPolicy: %v", err)
	}
	if len(pol.Spec.Ingress) != 1 || len(pol.Spec.Ingress[0].From) != 1 || pol.Spec.Ingress[0].From[0].PodSelector.MatchLabels["app.kubernetes.io/name"] != "glimpse" {
		t.Errorf("the NetworkPolicy does not let in just the daemon's pods: %+v", pol.Spec.Ingress)
	}
	if ls := daemonDep.Spec.Template.Labels; ls["app.kubernetes.io/name"] != "glimpse" {
		t.Errorf("the daemon's pods are labelled %v: the NetworkPolicy's default lets in app.kubernetes.io/name=glimpse", ls)
	}

	if err := rtm.Remove(ctx, fn.Name); err != nil {
		t.Fatalf("Remove as the daemon: %v", err)
	}
	if _, err := admin.NetworkingV1().NetworkPolicies(deploy.FunctionsNamespace).Get(ctx, fn.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the NetworkPolicy is left after Remove: %v", err)
	}

	// Leader election on the daemon's Lease: it leads, and releases the
	// Lease when stopped.
	lctx, stop := context.WithCancel(ctx)
	led := make(chan struct{})
	ran := make(chan error, 1)
	go func() {
		ran <- leader.Run(lctx, leader.Config{Client: daemon, Namespace: deploy.Namespace, Name: deploy.LeaseName, Identity: "daemon-0",
			LeaseDuration: 2 * time.Second, RenewDeadline: time.Second, RetryPeriod: 250 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
			func(ctx context.Context) { close(led); <-ctx.Done() })
	}()
	select {
	case <-led:
	case err := <-ran:
		t.Fatalf("leader election as the daemon: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the daemon does not lead its Lease after 10s")
	}
	stop()
	if err := <-ran; err != nil {
		t.Fatalf("leader.Run as the daemon = %v", err)
	}
	l, err := admin.CoordinationV1().Leases(deploy.Namespace).Get(ctx, deploy.LeaseName, metav1.GetOptions{})
	if err != nil || (l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "") {
		t.Fatalf("the daemon's Lease after it stopped: %+v, %v; want it released", l, err)
	}

	// The informers' watches: routes, functions, endpoint slices.
	for what, w := range map[string]func() (interface{ Stop() }, error){
		"ingresses": func() (interface{ Stop() }, error) {
			return daemon.NetworkingV1().Ingresses(deploy.Namespace).Watch(ctx, metav1.ListOptions{})
		},
		"deployments": func() (interface{ Stop() }, error) {
			return daemon.AppsV1().Deployments(deploy.FunctionsNamespace).Watch(ctx, metav1.ListOptions{})
		},
		"endpointslices": func() (interface{ Stop() }, error) {
			return daemon.DiscoveryV1().EndpointSlices(deploy.FunctionsNamespace).Watch(ctx, metav1.ListOptions{})
		},
	} {
		wi, err := w()
		if err != nil {
			t.Errorf("watch %s as the daemon: %v", what, err)
			continue
		}
		wi.Stop()
	}
}
