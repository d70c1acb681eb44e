// Package function is a golang-http handler in the shape of faas-cli's
// template (faas-cli new --lang golang-http).
package function

import (
	"fmt"
	"net/http"

	handler "github.com/openfaas/templates-sdk/go-http"
)

// Handle a function invocation.
func Handle(req handler.Request) (handler.Response, error) {
	if req.QueryString == "fail=1" {
		return handler.Response{Body: []byte("the input was invalid")}, fmt.Errorf("invalid input")
	}
	return handler.Response{
		Body:       []byte(fmt.Sprintf("hello from golang-http: %s body=%q ctx=%v", req.Method, req.Body, req.Context().Err())),
		StatusCode: http.StatusAccepted,
		Header:     http.Header{"X-Served-By": []string{"golang-http"}},
	}, nil
}
