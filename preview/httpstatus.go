package preview

import "net/http"

// HTTPStatus returns the HTTP status an API answers for an error code
// (Glimpse's admin APIs use it; CodeOfHTTPStatus is its inverse).
func HTTPStatus(c Code) int {
	switch c {
	case InvalidArgument:
		return http.StatusBadRequest
	case NotFound:
		return http.StatusNotFound
	case AlreadyExists:
		return http.StatusConflict
	case FailedPrecondition:
		return http.StatusPreconditionFailed
	case PermissionDenied:
		return http.StatusForbidden
	case ResourceExhausted:
		return http.StatusTooManyRequests
	case Canceled:
		return 499 // client closed request, as nginx logs it
	case DeadlineExceeded:
		return http.StatusGatewayTimeout
	case Unimplemented:
		return http.StatusNotImplemented
	case Unavailable:
		return http.StatusServiceUnavailable
	case Aborted:
		return http.StatusConflict // as Kubernetes answers a resourceVersion conflict
	}
	return http.StatusInternalServerError
}

// CodeOfHTTPStatus returns the error code for an HTTP error status
// answered by a server that gave no code of its own; the inverse of
// HTTPStatus where it can be. Clients of other APIs call it after their
// API-specific cases.
func CodeOfHTTPStatus(status int) Code {
	switch status {
	case http.StatusBadRequest, http.StatusUnprocessableEntity, http.StatusRequestEntityTooLarge:
		return InvalidArgument
	case http.StatusUnauthorized, http.StatusForbidden:
		return PermissionDenied
	case http.StatusNotFound:
		return NotFound
	case http.StatusConflict:
		return AlreadyExists
	case http.StatusPreconditionFailed:
		return FailedPrecondition
	case http.StatusTooManyRequests:
		return ResourceExhausted
	case 499:
		return Canceled
	case http.StatusGatewayTimeout:
		return DeadlineExceeded
	case http.StatusMethodNotAllowed, http.StatusNotImplemented:
		return Unimplemented
	case http.StatusBadGateway, http.StatusServiceUnavailable:
		return Unavailable
	}
	if status >= 500 {
		return Internal
	}
	return Unknown
}
