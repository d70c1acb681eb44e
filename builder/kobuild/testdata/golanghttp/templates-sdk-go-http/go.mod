// A stand-in for github.com/openfaas/templates-sdk/go-http, which the module
// proxy here refuses: the same package name and the types the golang-http
// template's handlers use (Request, Response), wired in with a replace.
module github.com/openfaas/templates-sdk/go-http

go 1.21
