module handler/function

go 1.21

require github.com/openfaas/templates-sdk/go-http v0.0.0

replace github.com/openfaas/templates-sdk/go-http => ../templates-sdk-go-http
