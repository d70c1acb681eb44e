package kubetest_test

import (
	"context"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/glimpse-dev/glimpse/internal/kubetest"
	"github.com/glimpse-dev/glimpse/internal/testenv"
)

// TestControlPlane starts etcd and kube-apiserver, reaches them through
// both Config and the kubeconfig file, and checks that Stop removes the
// cluster's directory and ends its processes.
func TestControlPlane(t *testing.T) {
	testenv.Require(t, kubetest.EnvEtcd, "etcd binary")
	testenv.Require(t, kubetest.EnvAPIServer, "kube-apiserver binary")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	c, err := kubetest.Start(ctx, kubetest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("control plane ready in %v", time.Since(start).Round(time.Millisecond))
	t.Cleanup(c.Stop)

	ns := c.Namespace(t)
	cs := c.Client(t)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "probe"}, Data: map[string]string{"k": "v"}}
	if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create through Config: %v", err)
	}
	kc, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	kc.Timeout = 10 * time.Second
	// The kubeconfig verifies the server's certificate with CAFile.
	if kc.TLSClientConfig.Insecure || kc.TLSClientConfig.CAFile != c.CAFile {
		t.Fatalf("kubeconfig TLS = %+v, want verification with %s", kc.TLSClientConfig, c.CAFile)
	}
	cs2, err := kubernetes.NewForConfig(kc)
	if err != nil {
		t.Fatal(err)
	}
	got, err := cs2.CoreV1().ConfigMaps(ns).Get(ctx, "probe", metav1.GetOptions{})
	if err != nil || got.Data["k"] != "v" {
		t.Fatalf("read back = %+v, %v", got, err)
	}

	c.Stop()
	if _, err := os.Stat(c.Dir); !os.IsNotExist(err) {
		t.Fatalf("after Stop, %s: %v; want it removed", c.Dir, err)
	}
	if _, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err == nil {
		t.Fatal("API server still answers after Stop")
	}
	c.Stop() // idempotent
}
