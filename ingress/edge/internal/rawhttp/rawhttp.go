// Package rawhttp is a test client that speaks HTTP/1.1 over one TCP
// connection byte by byte, for the tests of the edge's connection handling
// (keep-alive, pipelining, takeover, limits) where net/http's client would
// hide what the server did to the connection.
package rawhttp

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
)

// Client is one connection to a server. Its methods fail the test on an
// I/O error; it is not safe for concurrent use.
type Client struct {
	T    testing.TB
	Conn net.Conn      // the connection, for deadlines and raw writes
	R    *bufio.Reader // what the server sent, buffered
}

// Dial connects to addr; the connection is closed when the test ends.
func Dial(t testing.TB, addr string) *Client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &Client{T: t, Conn: c, R: bufio.NewReader(c)}
}

// Send writes s as it is.
func (c *Client) Send(s string) {
	c.T.Helper()
	if _, err := io.WriteString(c.Conn, s); err != nil {
		c.T.Fatal(err)
	}
}

// Read reads one response to a request of method and its whole body.
func (c *Client) Read(method string) (*http.Response, string) {
	c.T.Helper()
	resp, err := http.ReadResponse(c.R, &http.Request{Method: method})
	if err != nil {
		c.T.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.T.Fatal(err)
	}
	return resp, string(b)
}

// Get sends a body-less GET of path for host a.localhost and reads the
// answer.
func (c *Client) Get(path string) (*http.Response, string) {
	c.T.Helper()
	c.Send("GET " + path + " HTTP/1.1\r\nHost: a.localhost\r\n\r\n")
	return c.Read("GET")
}

// Closed reports whether the server closed the connection (EOF or reset
// before any further byte).
func (c *Client) Closed() bool {
	_, err := c.R.ReadByte()
	return err != nil
}
