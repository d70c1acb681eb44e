package s3assets

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

	"github.com/glimpse-dev/glimpse/preview"
)

// opError is a short, one-line message over the SDK's error, which stays
// reachable with errors.As (smithy.APIError, *awshttp.ResponseError).
type opError struct {
	msg string
	err error
}

func (e *opError) Error() string { return e.msg }
func (e *opError) Unwrap() error { return e.err }

// apiStatus returns the HTTP status and S3 error code of an SDK error,
// zero values when there was no response.
func apiStatus(err error) (status int, code string) {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	return status, code
}

// classify gives an SDK error its preview code and a one-line message
// naming what was attempted: NotFound for a missing key, FailedPrecondition
// for a missing bucket, PermissionDenied for refused credentials,
// ResourceExhausted for throttling, Unavailable for 5xx answers and for a
// store that could not be reached.
func (d *driver) classify(err error, what string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return preview.WithCode(preview.Canceled, &opError{msg: what + ": " + context.Canceled.Error(), err: err})
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return preview.WithCode(preview.DeadlineExceeded, &opError{msg: what + ": " + context.DeadlineExceeded.Error(), err: err})
	}
	status, code := apiStatus(err)
	if status == 0 && code == "" {
		var ne net.Error
		if !errors.As(err, &ne) {
			// No request went out (a client-side failure).
			return preview.WithCode(preview.Internal, &opError{msg: fmt.Sprintf("%s: %v", what, err), err: err})
		}
		// No answer: the connection failed. Name the endpoint and the
		// innermost network error, not the SDK's retry narrative.
		var cause error = ne
		var oe *net.OpError
		if errors.As(err, &oe) {
			cause = oe
		}
		return preview.WithCode(preview.Unavailable, &opError{msg: fmt.Sprintf("%s: %s unreachable: %v", what, d.endpoint, cause), err: err})
	}
	var c preview.Code
	switch code {
	case "NoSuchKey", "NotFound":
		c = preview.NotFound
	case "NoSuchBucket":
		return preview.WithCode(preview.FailedPrecondition, &opError{msg: fmt.Sprintf("%s: bucket %q does not exist on %s", what, d.bucket, d.endpoint), err: err})
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "AllAccessDisabled":
		c = preview.PermissionDenied
	case "SlowDown", "Throttling", "ThrottlingException", "TooManyRequests", "RequestLimitExceeded":
		c = preview.ResourceExhausted
	case "InternalError", "ServiceUnavailable", "RequestTimeout", "ConditionalRequestConflict":
		// ConditionalRequestConflict (409): a concurrent conditional
		// write is in progress; nothing happened, retry.
		c = preview.Unavailable
	case "BadDigest", "XAmzContentSHA256Mismatch", "InvalidDigest":
		// The store refused content that does not match its checksum.
		c = preview.InvalidArgument
	default:
		switch {
		case status == http.StatusNotFound:
			c = preview.NotFound
		case status == http.StatusForbidden || status == http.StatusUnauthorized:
			c = preview.PermissionDenied
		case status == http.StatusTooManyRequests:
			c = preview.ResourceExhausted
		case status == http.StatusPreconditionFailed:
			c = preview.FailedPrecondition
		case status == http.StatusNotImplemented:
			c = preview.Unimplemented
		case status >= 500:
			c = preview.Unavailable
		case status >= 400:
			c = preview.InvalidArgument
		default:
			c = preview.Internal
		}
	}
	if code == "" {
		code = http.StatusText(status)
	}
	msg := fmt.Sprintf("%s: %s (HTTP %d)", what, code, status)
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorMessage() != "" && ae.ErrorMessage() != code {
		msg = fmt.Sprintf("%s: %s: %s (HTTP %d)", what, code, ae.ErrorMessage(), status)
	}
	return preview.WithCode(c, &opError{msg: msg, err: err})
}
