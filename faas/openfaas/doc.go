// Package openfaas is a preview.FunctionRuntime that drives any OpenFaaS
// gateway (faas-netes, faasd, or Glimpse's own localfaas gateway) over its
// REST API with the request and response types of
// github.com/openfaas/faas-provider/types. It registers the URL scheme
// openfaas://host:port?namespace=ns&tls=true; the credentials come from the
// environment, OPENFAAS_USERNAME (default admin) and OPENFAAS_PASSWORD.
package openfaas
