package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/glimpse-dev/glimpse/preview"
)

// Ticks of the progress display: the TTY line is redrawn every second;
// plain output says a step is still running every plainEvery.
const (
	ttyEvery   = time.Second
	plainEvery = 10 * time.Second
)

// progress renders a Pipeline's events on a command's stderr. Each
// finished step is one line ("  ok   build    12.3s  message"), as is each
// log line of a step. While steps run:
//
//   - on a terminal, one line at the bottom is redrawn every second
//     ("  build 12s, assets 3s...") and erased before any other line;
//   - elsewhere (CI logs, a pipe), a line when a step starts and one every
//     10 s that it is still running; no control characters at all.
//
// Marks are coloured only on a terminal and only when NO_COLOR is unset
// (https://no-color.org) and TERM is not "dumb". Event and Close are safe
// for concurrent use (the pipeline emits from parallel steps while the
// ticker redraws); after Close, Event still prints finished steps but
// nothing ticks.
type progress struct {
	mu      sync.Mutex
	w       io.Writer
	tty     bool
	color   bool
	running []runningStep // in start order
	drawn   bool          // the ticker line is on screen
	closed  bool
	stop    chan struct{}
	done    chan struct{}
}

type runningStep struct {
	name      string
	start     time.Time
	lastPlain time.Time // last "still running" line (plain output)
}

// newProgress returns the display for w; isTTY says whether w is a
// terminal (see isTerminal) and getenv reads NO_COLOR and TERM. It starts
// its ticker; call Close when the command is done.
func newProgress(w io.Writer, isTTY bool, getenv func(string) string) *progress {
	p := &progress{
		w: w, tty: isTTY,
		color: isTTY && getenv("NO_COLOR") == "" && getenv("TERM") != "dumb",
		stop:  make(chan struct{}), done: make(chan struct{}),
	}
	every := plainEvery
	if isTTY {
		every = ttyEvery
	}
	go p.tick(every)
	return p
}

// stderrProgress is newProgress for a command's stderr.
func stderrProgress(w io.Writer) *progress {
	return newProgress(w, isTerminal(w), os.Getenv)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func (p *progress) tick(every time.Duration) {
	defer close(p.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case now := <-t.C:
			p.mu.Lock()
			if p.tty {
				p.draw(now)
			} else {
				for i := range p.running {
					s := &p.running[i]
					if now.Sub(s.lastPlain) >= plainEvery {
						s.lastPlain = now
						fmt.Fprintf(p.w, "  ...  %-7s %7s  still running\n", s.name, now.Sub(s.start).Round(time.Second))
					}
				}
			}
			p.mu.Unlock()
		}
	}
}

// Event renders one pipeline event (Pipeline.OnEvent).
func (p *progress) Event(e preview.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	switch e.State {
	case preview.EventStarted:
		p.running = append(p.running, runningStep{name: e.Step, start: now, lastPlain: now})
		if p.tty {
			p.draw(now)
		} else {
			fmt.Fprintf(p.w, "  ...  %s\n", e.Step)
		}
		return
	case preview.EventLog:
		p.line(now, fmt.Sprintf("  %-7s | %s", e.Step, e.Message))
		return
	}
	for i, s := range p.running {
		if s.name == e.Step {
			p.running = append(p.running[:i], p.running[i+1:]...)
			break
		}
	}
	mark := map[preview.EventState]string{preview.EventDone: "ok  ", preview.EventSkipped: "skip", preview.EventFailed: "FAIL"}[e.State]
	if p.color {
		mark = map[preview.EventState]string{preview.EventDone: "\x1b[32m", preview.EventSkipped: "\x1b[2m", preview.EventFailed: "\x1b[31m"}[e.State] + mark + "\x1b[0m"
	}
	p.line(now, fmt.Sprintf("  %s %-7s %7s  %s", mark, e.Step, e.Elapsed.Round(time.Millisecond), oneLine(e.Message)))
}

// line prints s above the ticker line.
func (p *progress) line(now time.Time, s string) {
	p.erase()
	fmt.Fprintln(p.w, s)
	if p.tty {
		p.draw(now)
	}
}

func (p *progress) erase() {
	if p.drawn {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.drawn = false
	}
}

// draw redraws the ticker line (TTY only): the running steps with their
// elapsed seconds.
func (p *progress) draw(now time.Time) {
	p.erase()
	if len(p.running) == 0 || p.closed {
		return
	}
	parts := make([]string, len(p.running))
	for i, s := range p.running {
		parts[i] = fmt.Sprintf("%s %s", s.name, now.Sub(s.start).Round(time.Second))
	}
	fmt.Fprintf(p.w, "  %s...", strings.Join(parts, ", "))
	p.drawn = true
}

// Close stops the ticker and erases its line. It is idempotent.
func (p *progress) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.erase()
	p.mu.Unlock()
	close(p.stop)
	<-p.done
}
