package localfaas

import (
	"bufio"
	"context"
	"errors"
	"io"
	"io/fs"
	"math"
	"os"
	"strings"
	"time"

	"github.com/glimpse-dev/glimpse/preview"
)

// A function's log (home/functions/logs/<name>.log) holds one line per line
// the function wrote to stdout or stderr, prefixed with the time the
// runtime received it: "2026-12-01T09:06:04.123456789Z text". Lines longer
// than maxLogLine are split. The runtime's own line before each start
// ("... --- localfaas ...: starting ...") is in the file but not in Logs.

const maxLogLine = 64 << 10

// logFollowInterval is how often a following Logs looks for new lines.
var logFollowInterval = 100 * time.Millisecond

func logStamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// parseLogLine splits a log line into its time and text; a line without a
// time (written before logs were stamped) has the zero time.
func parseLogLine(l string) (time.Time, string) {
	ts, text, ok := strings.Cut(l, " ")
	if ok && len(ts) >= len("2006-01-02T15:04:05Z") && ts[4] == '-' {
		if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			return t, text
		}
	}
	return time.Time{}, l
}

// logCopy copies the process's output from r to log, each line prefixed
// with the time it arrived, until every writer of the pipe has closed it.
// It closes both.
func logCopy(log, r *os.File) {
	defer log.Close()
	defer r.Close()
	br := bufio.NewReaderSize(r, maxLogLine)
	var buf []byte
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			buf = append(buf[:0], logStamp(time.Now())...)
			buf = append(buf, ' ')
			buf = append(buf, line...)
			if buf[len(buf)-1] != '\n' {
				buf = append(buf, '\n')
			}
			log.Write(buf)
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// awaitLogged waits, briefly, until the exited process's output is in its
// log (a descendant that left its process group may hold the pipe open).
func (p *process) awaitLogged() {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-p.logged:
	case <-t.C:
	}
}

var _ preview.LogReader = (*Runtime)(nil)

// Logs delivers the function's output from its log file (see
// preview.LogReader): the lines written since opts.Since, the last
// opts.Tail of them, and with opts.Follow new lines within
// logFollowInterval of being written, across restarts, until ctx ends or
// the function is removed. Every line's Instance is the function's name
// (it has one replica). Lines are stamped when the runtime received them;
// a line the process has not finished (no newline yet) waits for it.
func (r *Runtime) Logs(ctx context.Context, name string, opts preview.LogOptions, fn func(preview.LogLine) error) error {
	if _, err := r.Get(ctx, name); err != nil {
		return err
	}
	path := r.logPath(name)
	var (
		f   *os.File
		off int64
	)
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	deliver := func(l string) (preview.LogLine, bool) {
		t, text := parseLogLine(l)
		if strings.HasPrefix(text, logHeader) {
			return preview.LogLine{}, false
		}
		if !opts.Since.IsZero() && (t.IsZero() || t.Before(opts.Since)) {
			return preview.LogLine{}, false
		}
		return preview.LogLine{Function: name, Instance: name, Time: t, Text: text}, true
	}
	// reopen (re)opens the log when it appeared, was replaced or truncated.
	reopen := func() error {
		fi, err := os.Stat(path)
		if errors.Is(err, fs.ErrNotExist) {
			if f != nil {
				f.Close()
				f, off = nil, 0
			}
			return nil
		}
		if err != nil {
			return preview.WithCode(preview.Internal, err)
		}
		if f != nil {
			if cur, err := f.Stat(); err == nil && os.SameFile(cur, fi) {
				if fi.Size() < off {
					off = 0 // truncated when the log grew too big
				}
				return nil
			}
			f.Close()
			f, off = nil, 0
		}
		nf, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return preview.WithCode(preview.Internal, err)
		}
		f = nf
		return nil
	}

	if err := reopen(); err != nil {
		return err
	}
	if f != nil {
		var ring []preview.LogLine
		start := 0
		var err error
		off, err = scanLog(f, 0, func(l string) error {
			ll, ok := deliver(l)
			switch {
			case !ok:
			case opts.Tail <= 0:
				return fn(ll)
			case len(ring) < opts.Tail:
				ring = append(ring, ll)
			default:
				ring[start] = ll
				start = (start + 1) % opts.Tail
			}
			return ctx.Err()
		})
		if err != nil {
			return err
		}
		for i := range ring {
			if err := fn(ring[(start+i)%len(ring)]); err != nil {
				return err
			}
		}
	}
	if !opts.Follow {
		return nil
	}
	tick := time.NewTicker(logFollowInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		r.mu.RLock()
		_, exists := r.fns[name]
		r.mu.RUnlock()
		if !exists {
			return nil
		}
		if err := reopen(); err != nil {
			return err
		}
		if f == nil {
			continue
		}
		var err error
		off, err = scanLog(f, off, func(l string) error {
			if ll, ok := deliver(l); ok {
				return fn(ll)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
}

// scanLog calls each with the complete lines of f from off to its current
// end, and returns the offset after the last one: a line still being
// written is left for the next call.
func scanLog(f *os.File, off int64, each func(line string) error) (int64, error) {
	br := bufio.NewReaderSize(io.NewSectionReader(f, off, math.MaxInt64-off), maxLogLine+128)
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case err == nil:
			off += int64(len(line))
			if err := each(string(line[:len(line)-1])); err != nil {
				return off, err
			}
		case errors.Is(err, bufio.ErrBufferFull):
			off += int64(len(line))
			if err := each(string(line)); err != nil {
				return off, err
			}
		case errors.Is(err, io.EOF):
			return off, nil
		default:
			return off, preview.WithCode(preview.Internal, err)
		}
	}
}
