//go:build unix

package h1

import (
	"errors"
	"net"
	"syscall"
	"unsafe"
)

type rawConn = syscall.RawConn

// rawConnOf returns the raw socket of a TCP connection, also of one
// wrapped by a type that embeds *net.TCPConn (a connection-limiting
// listener's, say), or nil.
func rawConnOf(nc net.Conn) rawConn {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	if _, tcp := nc.LocalAddr().(*net.TCPAddr); !tcp {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// sysRead and sysWrite are read(2) and write(2) on a non-blocking socket
// without telling the scheduler: they never block (EAGAIN instead), and
// skipping the syscall bookkeeping matters when system calls are slow (in
// a VM): the runtime's monitor otherwise wakes every 20µs to take back
// processors "stuck" in them, waking threads and costing more than the
// call.
func sysRead(fd uintptr, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if errno == syscall.EINTR {
			continue
		}
		if errno != 0 {
			return 0, errno
		}
		return int(n), nil
	}
}

func sysWrite(fd uintptr, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if errno == syscall.EINTR {
			continue
		}
		if errno != 0 {
			return 0, errno
		}
		return int(n), nil
	}
}

// rawStep runs inside RawConn.Read, after the poller has been armed: it
// first writes the pending request (returning false to wait for the
// response, which cannot have arrived before the request was written, so
// no readiness is lost), then reads once the socket is readable. A write
// that cannot complete at once is left for the caller to finish.
func (c *UpConn) rawStep(fd uintptr) bool {
	if c.wrote < len(c.out) {
		n, err := sysWrite(fd, c.out[c.wrote:])
		c.wrote += n
		if err != nil {
			c.werr = err
			return true
		}
		// All written: wait for the response (false). A partial write
		// is finished by the caller (true).
		return c.wrote < len(c.out)
	}
	n, err := sysRead(fd, c.rp)
	if err == syscall.EAGAIN {
		return false
	}
	c.rn, c.rerr = n, err
	return true
}

// readStep and writeStep are the raw read and write of a taken-over
// client connection (see conn.Read and connWriter).
func (fc *conn) readStep(fd uintptr) bool {
	n, err := sysRead(fd, fc.rp)
	if err == syscall.EAGAIN {
		return false
	}
	fc.rn, fc.rerr = n, err
	return true
}

func (fc *conn) writeStep(fd uintptr) bool {
	for fc.wrote < len(fc.wp) {
		n, err := sysWrite(fd, fc.wp[fc.wrote:])
		fc.wrote += n
		if err == syscall.EAGAIN {
			return false
		}
		if err != nil {
			fc.werr = err
			return true
		}
	}
	return true
}

// writevStep is writeStep for fc.wp followed by fc.wtail, sent with
// writev(2) so that both usually leave in one call.
func (fc *conn) writevStep(fd uintptr) bool {
	total := len(fc.wp) + len(fc.wtail)
	for fc.wrote < total {
		var iov [2]syscall.Iovec
		n := 0
		if fc.wrote < len(fc.wp) {
			iov[0].Base = &fc.wp[fc.wrote]
			iov[0].SetLen(len(fc.wp) - fc.wrote)
			n = 1
		}
		off := max(0, fc.wrote-len(fc.wp))
		iov[n].Base = &fc.wtail[off]
		iov[n].SetLen(len(fc.wtail) - off)
		n++
		r, _, errno := syscall.RawSyscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(n))
		switch errno {
		case 0:
			fc.wrote += int(r)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			fc.werr = errno
			return true
		}
	}
	return true
}

// alive reports whether an idle upstream connection is still open: a
// peek that would block means nothing (no EOF, no reset) has arrived.
func (c *UpConn) alive() bool {
	if c.br.Buffered() > 0 {
		return false // unsolicited bytes: the connection is out of step
	}
	if c.raw == nil {
		return true
	}
	ok := true
	var b [1]byte
	err := c.raw.Read(func(fd uintptr) bool {
		_, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
			uintptr(syscall.MSG_PEEK|syscall.MSG_DONTWAIT), 0, 0)
		ok = errno == syscall.EAGAIN
		return true
	})
	return err == nil && ok
}

func isAgain(err error) bool { return errors.Is(err, syscall.EAGAIN) }
