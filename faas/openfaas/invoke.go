package openfaas

import (
	"net"
	"sync"

	"github.com/glimpse-dev/glimpse/preview"
)

// asleepSet remembers which functions the gateway last reported at zero
// replicas, from every status the client reads (Get, List, Scale's read
// back), so that Endpoint answers without a request.
type asleepSet struct{ m sync.Map } // name -> struct{}

func (s *asleepSet) note(name string, replicas uint64) {
	if replicas == 0 {
		s.m.Store(name, struct{}{})
	} else {
		s.m.Delete(name)
	}
}

func (s *asleepSet) forget(name string) { s.m.Delete(name) }

func (s *asleepSet) asleep(name string) bool {
	_, ok := s.m.Load(name)
	return ok
}

var _ preview.InvokeEndpointer = (*Client)(nil)

// Endpoint returns where the gateway invokes the named function:
// "host:port/function/NAME" (".NAMESPACE" appended when the client has a
// namespace), which the daemon's edge forwards to, so that it counts the
// function's requests and wakes it itself in front of a gateway it did not
// start. It does no I/O: a function the client last saw at zero replicas
// (in any status it read, including the idle controller's List and its own
// Scale) is FailedPrecondition, which makes the edge scale it up; any
// other is assumed to answer, and the gateway holds a request while a
// replica becomes available, as OpenFaaS gateways do after a scale from
// zero. An https gateway is Unimplemented: the edge forwards plain HTTP,
// so point the daemon at the gateway's in-cluster http address.
func (c *Client) Endpoint(name string) (string, error) {
	if c.base.Scheme != "http" {
		return "", preview.Errorf(preview.Unimplemented, "the edge forwards plain HTTP only; the gateway %s is https (give the daemon the gateway's http address)", c.base.Host)
	}
	if c.asleep.asleep(name) {
		return "", preview.Errorf(preview.FailedPrecondition, "function %s is scaled to zero", name)
	}
	host := c.base.Host
	if c.base.Port() == "" {
		host = net.JoinHostPort(c.base.Hostname(), "80")
	}
	path := c.base.Path + "/function/" + name
	if c.namespace != "" {
		path += "." + c.namespace
	}
	return host + path, nil
}
