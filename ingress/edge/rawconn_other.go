//go:build !unix

package edge

import "net"

// rawConn is unused where raw socket calls are not implemented.
type rawConn interface {
	Read(func(fd uintptr) bool) error
	Write(func(fd uintptr) bool) error
}

func rawConnOf(net.Conn) rawConn { return nil }

func (c *upConn) rawStep(uintptr) bool      { return true }
func (fc *fastConn) readStep(uintptr) bool  { return true }
func (fc *fastConn) writeStep(uintptr) bool { return true }

func (c *upConn) alive() bool { return c.br.Buffered() == 0 }

func isAgain(error) bool { return false }
