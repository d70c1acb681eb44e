package main

// The Kubernetes providers register their URL schemes: kubefaas://NS (a
// Deployment and Service per function), k8s-ingress://NS (an Ingress per
// preview) and k8s-gateway://NS?gateway=NAME (a Gateway API HTTPRoute
// per preview), both routers also route sources for `glimpse serve`.
import (
	_ "github.com/glimpse-dev/glimpse/faas/kubefaas"
	_ "github.com/glimpse-dev/glimpse/ingress/k8singress"
)
