package preview

import (
	"context"
	"strings"
)

// InvokeEndpointer is the optional ability of a FunctionRuntime to say
// where a function answers HTTP requests, so that an edge which did not
// start the function (the daemon in front of an OpenFaaS gateway or a
// Kubernetes Service) can forward to it, count its activity and wake it.
// faas/localfaas answers with a replica's loopback port, faas/openfaas with
// the gateway's /function/NAME.
type InvokeEndpointer interface {
	// Endpoint returns where requests for the named function go: "host:port"
	// of a replica, or "host:port/PATH" (an address followed by a path
	// prefix, such as "gateway:8080/function/hello-pr-42"), which the
	// caller puts before each request's path; SplitEndpoint takes the two
	// apart. The address speaks plain HTTP/1.1.
	//
	// Endpoint is called for every request: it does no network I/O and
	// answers from what the runtime already knows. Errors: NotFound when
	// no such function is deployed, FailedPrecondition when it is scaled
	// to zero (the caller wakes it with Scale), Unavailable when it is
	// starting. It is safe for concurrent use.
	Endpoint(name string) (endpoint string, err error)
}

// EndpointWaiter is the optional ability of an InvokeEndpointer to wait
// for a starting function: WaitEndpoint blocks until a replica of name is
// ready, then returns what Endpoint would, or ctx's error. After a scale
// from zero, callers use it instead of polling Endpoint.
type EndpointWaiter interface {
	WaitEndpoint(ctx context.Context, name string) (endpoint string, err error)
}

// SplitEndpoint splits an endpoint from InvokeEndpointer into the address
// to connect to and the path prefix ("" when there is none): for
// "gateway:8080/function/hello" it returns "gateway:8080" and
// "/function/hello".
func SplitEndpoint(endpoint string) (addr, pathPrefix string) {
	if i := strings.IndexByte(endpoint, '/'); i >= 0 {
		return endpoint[:i], strings.TrimSuffix(endpoint[i:], "/")
	}
	return endpoint, ""
}
