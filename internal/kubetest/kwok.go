package kubetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// FakeNodePods is how many pods kwok's fake node takes (its allocatable
// pods; its cpu and memory are large enough for as many small pods).
const FakeNodePods = 10000

// kwokAnnotation marks the nodes this cluster's kwok manages (and only
// those: a real node in the same cluster stays the kubelet's).
const kwokAnnotation = "kwok.x-k8s.io/node"

// startFakeNode starts, as ../shared/TESTBED.md's "control plane with fake
// nodes" recipe says, kube-controller-manager, kube-scheduler and kwok
// (with the stages file EnvKwokStages names), creates one Node for kwok to
// manage, and returns once kwok reports it Ready.
func (c *Cluster) startFakeNode(ctx context.Context) error {
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	// Client-side rate limits raised from 20 (controller manager) and 50
	// (scheduler) requests a second, which would take minutes to create
	// and place a thousand pods.
	if err := c.startControllers(ctx, ports[0], ports[1], "--kube-api-qps", "500", "--kube-api-burst", "1000"); err != nil {
		return err
	}
	kwok, err := c.run(ctx, "kwok", os.Getenv(EnvKwok),
		"--kubeconfig", c.Kubeconfig,
		"--config", os.Getenv(EnvKwokStages),
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector", kwokAnnotation+"=fake",
	)
	if err != nil {
		return err
	}
	id := make([]byte, 4)
	if _, err := rand.Read(id); err != nil {
		return err
	}
	c.FakeNodeName = "kwok-" + hex.EncodeToString(id)
	cs, err := kubernetes.NewForConfig(c.Config())
	if err != nil {
		return err
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("10000"),
		corev1.ResourceMemory: resource.MustParse("64Ti"),
		corev1.ResourcePods:   resource.MustParse(strconv.Itoa(FakeNodePods)),
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        c.FakeNodeName,
			Annotations: map[string]string{kwokAnnotation: "fake"},
			Labels:      map[string]string{"type": "kwok", corev1.LabelHostname: c.FakeNodeName},
		},
		Status: corev1.NodeStatus{Capacity: capacity, Allocatable: capacity},
	}
	if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create fake node: %w", err)
	}
	for {
		if n, err := cs.CoreV1().Nodes().Get(ctx, c.FakeNodeName, metav1.GetOptions{}); err == nil {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					return nil
				}
			}
		}
		if err := c.wait(ctx, kwok, 100*time.Millisecond); err != nil {
			return fmt.Errorf("fake node %s not Ready: %w", c.FakeNodeName, err)
		}
	}
}
