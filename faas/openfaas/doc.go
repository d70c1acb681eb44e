// Package openfaas is a preview.FunctionRuntime that drives an OpenFaaS
// gateway over its REST API (/system/functions, /system/function/{name},
// /system/scale-function/{name}) with the request and response types of
// github.com/openfaas/faas-provider/types: the OpenFaaS CE gateway in front
// of faas-netes or faasd, either provider directly, OpenFaaS Standard/Pro,
// or Glimpse's own localfaas gateway. It papers over where those differ:
// "already exists" as 500 (faas-netes) or 400 (faasd), 404 bodies, the
// namespace read from the query or the body (it sends both), and the
// Community Edition's refusal to scale to zero, which Scale reports as the
// clamped count and ScaleExact as a *ClampedError (ErrZeroRefused), or,
// in a cluster, works around by scaling faas-netes' Deployment itself
// (Options.ScaleDeployments, kubescale.go). Only idempotent requests (GET,
// PUT, DELETE) are retried, with backoff.
//
// It registers the URL scheme
// openfaas://host:port?namespace=ns&tls=true&timeout=2m&scaleDeployments=true.
// Credentials never ride in the URL: see ResolveCredentials
// (OPENFAAS_USERNAME, OPENFAAS_PASSWORD, OPENFAAS_PASSWORD_FILE, or the
// login faas-cli saved); OPENFAAS_CA_FILE adds certificate authorities for
// tls=true. Subpackage openfaastest emulates faas-netes and faasd for tests.
package openfaas
