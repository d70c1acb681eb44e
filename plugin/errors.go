package plugin

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/glimpse-dev/glimpse/plugin/proto"
	"github.com/glimpse-dev/glimpse/preview"
)

// grpcCodes maps preview's codes to gRPC's; the names are the same.
var grpcCodes = map[preview.Code]codes.Code{
	preview.Unknown:            codes.Unknown,
	preview.NotFound:           codes.NotFound,
	preview.AlreadyExists:      codes.AlreadyExists,
	preview.InvalidArgument:    codes.InvalidArgument,
	preview.FailedPrecondition: codes.FailedPrecondition,
	preview.PermissionDenied:   codes.PermissionDenied,
	preview.ResourceExhausted:  codes.ResourceExhausted,
	preview.Canceled:           codes.Canceled,
	preview.DeadlineExceeded:   codes.DeadlineExceeded,
	preview.Unimplemented:      codes.Unimplemented,
	preview.Unavailable:        codes.Unavailable,
	preview.Internal:           codes.Internal,
	preview.Aborted:            codes.Aborted,
}

// sentinels are the preview errors that callers test for with errors.Is,
// by the name ErrorInfo.reason carries.
var sentinels = map[string]error{
	"StaleGeneration": preview.ErrStaleGeneration,
	"Superseded":      preview.ErrSuperseded,
}

// wireError is an error received from a plugin: its message, and the
// sentinel it wrapped in the plugin, if any.
type wireError struct {
	msg      string
	sentinel error
}

func (e *wireError) Error() string { return e.msg }
func (e *wireError) Unwrap() error { return e.sentinel }

// toStatus turns a provider's error into the gRPC status a plugin returns:
// the gRPC code of its preview code, and an ErrorInfo detail with the code's
// name, its retryability and the message. nil stays nil.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	code := preview.CodeOf(err)
	gc, ok := grpcCodes[code]
	if !ok {
		gc = codes.Unknown
	}
	msg := oneLine(err.Error())
	st := status.New(gc, msg)
	info := &pb.ErrorInfo{Code: code.String(), Message: msg, Retryable: code.Retryable()}
	for name, s := range sentinels {
		if errors.Is(err, s) {
			info.Reason = name
		}
	}
	if withInfo, derr := st.WithDetails(info); derr == nil {
		st = withInfo
	}
	return st.Err()
}

// fromStatus turns the error of a gRPC call into a classified preview
// error. A status with an ErrorInfo keeps the plugin's code and message;
// one without (the transport failed, the plugin crashed) is classified by
// its gRPC code, and ctx's own end wins over both so that a cancelled
// caller always sees Canceled or DeadlineExceeded.
func fromStatus(ctx context.Context, name string, err error) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return preview.WithCode(preview.CodeOf(cerr), cerr)
	}
	st, ok := status.FromError(err)
	if !ok {
		return preview.Errorf(preview.Unavailable, "plugin %s: %s", name, oneLine(err.Error()))
	}
	for _, d := range st.Details() {
		if info, ok := d.(*pb.ErrorInfo); ok {
			code, known := preview.ParseCode(info.Code)
			if !known {
				// A code this host does not know: keep what it promises.
				code = preview.Unknown
				if info.Retryable {
					code = preview.Unavailable
				}
			}
			return &preview.Error{Code: code, Err: &wireError{msg: info.Message, sentinel: sentinels[info.Reason]}}
		}
	}
	code := preview.Unknown
	for c, g := range grpcCodes {
		if g == st.Code() {
			code = c
		}
	}
	if st.Code() == codes.Unavailable || st.Code() == codes.Canceled && ctx.Err() == nil {
		// The connection broke (the plugin exited or crashed).
		return preview.Errorf(preview.Unavailable, "plugin %s: connection lost: %s", name, oneLine(st.Message()))
	}
	return preview.Errorf(code, "plugin %s: %s", name, oneLine(st.Message()))
}

// oneLine keeps the first line of s.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	return s
}
