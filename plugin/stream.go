package plugin

import (
	"context"
	"errors"
	"io"
	"strconv"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"

	pb "github.com/glimpse-dev/glimpse/plugin/proto"
	"github.com/glimpse-dev/glimpse/preview"
)

// chunkStream is the receiving end of a stream of chunks (a blob, a file).
type chunkStream interface {
	Recv() (*pb.Chunk, error)
}

// openStream starts a stream of chunks with start and returns a reader over
// it. It waits for the first chunk (or the end) so that an error of the
// other side, such as NotFound, is returned by openStream itself rather
// than by the first Read. The body is never held whole: each Read takes
// what one chunk holds. Close ends the stream.
func openStream(ctx context.Context, name string, start func(context.Context) (chunkStream, error)) (io.ReadCloser, error) {
	sctx, cancel := context.WithCancel(ctx)
	s, err := start(sctx)
	if err != nil {
		cancel()
		return nil, fromStatus(ctx, name, err)
	}
	r := &chunkReader{ctx: ctx, name: name, s: s, cancel: cancel}
	first, err := s.Recv()
	switch {
	case errors.Is(err, io.EOF):
		r.eof = true
	case err != nil:
		cancel()
		return nil, fromStatus(ctx, name, err)
	default:
		r.buf = first.Data
	}
	return r, nil
}

type chunkReader struct {
	ctx    context.Context
	name   string
	s      chunkStream
	cancel context.CancelFunc
	buf    []byte
	eof    bool
	err    error
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.eof {
			return 0, io.EOF
		}
		if r.err != nil {
			return 0, r.err
		}
		c, err := r.s.Recv()
		if errors.Is(err, io.EOF) {
			r.eof = true
			continue
		}
		if err != nil {
			r.err = fromStatus(r.ctx, r.name, err)
			continue
		}
		r.buf = c.Data
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// Close ends the stream; reading after Close fails.
func (r *chunkReader) Close() error {
	r.cancel()
	if !r.eof && r.err == nil {
		r.err = preview.Errorf(preview.FailedPrecondition, "read after close")
	}
	r.buf = nil
	return nil
}

// filesServer is the host's Files service: during a Publish through a
// plugin it serves the publish call's open function, under a token that is
// valid only while that call runs.
type filesServer struct {
	pb.UnimplementedFilesServer
	next  atomic.Uint64
	mu    sync.Mutex
	opens map[string]func(string) (io.ReadCloser, error)
}

func newFilesServer() *filesServer {
	return &filesServer{opens: map[string]func(string) (io.ReadCloser, error){}}
}

// register makes open reachable under the returned token until release.
func (f *filesServer) register(open func(string) (io.ReadCloser, error)) (token string, release func()) {
	token = strconv.FormatUint(f.next.Add(1), 10)
	f.mu.Lock()
	f.opens[token] = open
	f.mu.Unlock()
	return token, func() {
		f.mu.Lock()
		delete(f.opens, token)
		f.mu.Unlock()
	}
}

func (f *filesServer) Open(req *pb.OpenFileRequest, stream pb.Files_OpenServer) error {
	f.mu.Lock()
	open, ok := f.opens[req.Token]
	f.mu.Unlock()
	if !ok {
		return toStatus(preview.Errorf(preview.FailedPrecondition, "open %s: the publish call has ended", req.Path))
	}
	rc, err := open(req.Path)
	if err != nil {
		return toStatus(err)
	}
	defer rc.Close()
	return toStatus(sendChunks(rc, stream.Send))
}

// filesBroker starts the host's Files service on the session's broker once
// and returns its broker id.
func (s *session) filesBroker() (uint32, *filesServer) {
	s.filesOnce.Do(func() {
		s.files = newFilesServer()
		s.filesID = s.broker.NextId()
		go s.broker.AcceptAndServe(s.filesID, func(opts []grpc.ServerOption) *grpc.Server {
			srv := grpc.NewServer(opts...)
			pb.RegisterFilesServer(srv, s.files)
			return srv
		})
	})
	return s.filesID, s.files
}
