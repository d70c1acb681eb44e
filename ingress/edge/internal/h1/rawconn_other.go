//go:build !unix

package h1

import "net"

// rawConn is unused where raw socket calls are not implemented.
type rawConn interface {
	Read(func(fd uintptr) bool) error
	Write(func(fd uintptr) bool) error
}

func rawConnOf(net.Conn) rawConn { return nil }

func (c *UpConn) rawStep(uintptr) bool   { return true }
func (fc *conn) readStep(uintptr) bool   { return true }
func (fc *conn) writeStep(uintptr) bool  { return true }
func (fc *conn) writevStep(uintptr) bool { return true }

func (c *UpConn) alive() bool { return c.br.Buffered() == 0 }

func isAgain(error) bool { return false }
