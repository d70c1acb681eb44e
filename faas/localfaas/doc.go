// Package localfaas is a preview.FunctionRuntime that runs functions as
// local processes on the machine of the Glimpse daemon. Apply pulls the
// function's OCI image, extracts its layers once per image digest into the
// daemon's home, and starts the image's entrypoint binary straight from the
// extracted tree with PORT set to a loopback port the runtime chose. It is
// not a container runtime: the process shares the host's kernel, users,
// network and file system, which suits the statically linked Go binaries
// that ko and the examples build. The runtime supervises the processes
// (restart with backoff, no-downtime updates, scale between zero and one),
// persists its desired state so a restarted daemon brings the functions
// back, and serves the OpenFaaS gateway API (GatewayHandler) so that the
// openfaas client and faas-cli can drive it.
package localfaas
