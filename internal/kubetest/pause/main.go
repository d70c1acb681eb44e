// Command pause is the sandbox ("pause") process of internal/kubetest's
// node: it holds a pod's namespaces and exits on SIGTERM or SIGINT. It is
// built static and packed FROM scratch, since no image can be pulled here.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
