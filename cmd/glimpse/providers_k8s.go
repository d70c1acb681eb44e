package main

// The Kubernetes providers register their URL schemes: kubefaas://NS (a
// Deployment and Service per function) and k8s-ingress://NS (an Ingress
// per preview).
import (
	_ "github.com/glimpse-dev/glimpse/faas/kubefaas"
	_ "github.com/glimpse-dev/glimpse/ingress/k8singress"
)
