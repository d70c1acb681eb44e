// Package handler stands in for github.com/openfaas/templates-sdk/go-http
// in tests: the request and response types of the golang-http template.
package handler

import (
	"context"
	"net/http"
)

// Response is what a golang-http Handle returns.
type Response struct {
	Body       []byte
	Header     http.Header
	StatusCode int
}

// Request is what a golang-http Handle receives.
type Request struct {
	Body        []byte
	Header      http.Header
	QueryString string
	Method      string
	Host        string
	ctx         context.Context
}

// Context returns the request's context.
func (r *Request) Context() context.Context {
	if r.ctx == nil {
		return context.Background()
	}
	return r.ctx
}

// WithContext sets the request's context.
func (r *Request) WithContext(ctx context.Context) { r.ctx = ctx }
