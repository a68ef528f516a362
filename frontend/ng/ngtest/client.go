package ngtest

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/frontend/ng"
	"github.com/zeebo/bencode"
)

// Serve runs an ng server for b on a loopback UDP port until the test
// ends, failing the test if Run returns an error, and returns its address.
func Serve(t testing.TB, b ng.Backend, opts ng.Options) net.Addr {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ng.NewServer(pc, b, opts).Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ng server: Run: %v", err)
		}
	})
	return pc.LocalAddr()
}

// Client speaks to an ng server over UDP as Kamailio does.
type Client struct {
	t    testing.TB
	conn *net.UDPConn
	buf  []byte // reused by Read, so that benchmarks measure the server
	// body and rd decode replies without a 4 KiB bufio.Reader per reply
	// (bencode.DecodeBytes makes one): a quarter of a benchmark's garbage.
	body bytes.Reader
	rd   *bufio.Reader
}

// Dial returns a client of the server at addr, closed when the test ends.
func Dial(t testing.TB, addr net.Addr) *Client {
	t.Helper()
	conn, err := net.DialUDP("udp", nil, addr.(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &Client{t: t, conn: conn}
}

// Send writes the datagram "<cookie> <body>".
func (c *Client) Send(cookie string, body []byte) {
	c.t.Helper()
	if _, err := c.conn.Write(append([]byte(cookie+" "), body...)); err != nil {
		c.t.Fatal(err)
	}
}

// Read waits up to 5 s for the next datagram and returns its dictionary,
// failing the test unless it starts with cookie.
func (c *Client) Read(cookie string) []byte {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if c.buf == nil {
		c.buf = make([]byte, 65536)
	}
	n, err := c.conn.Read(c.buf)
	if err != nil {
		c.t.Fatalf("reading the reply to %q: %v", cookie, err)
	}
	dict, ok := bytes.CutPrefix(c.buf[:n], []byte(cookie+" "))
	if !ok {
		c.t.Fatalf("reply %q does not start with cookie %q", c.buf[:n], cookie)
	}
	return bytes.Clone(dict)
}

// Exchange sends body under cookie and returns the reply's dictionary.
func (c *Client) Exchange(cookie string, body []byte) []byte {
	c.t.Helper()
	c.Send(cookie, body)
	return c.Read(cookie)
}

// Do bencodes req (a map or an *ng.Request), exchanges it under cookie and
// returns the decoded reply.
func (c *Client) Do(cookie string, req any) map[string]any {
	c.t.Helper()
	var body []byte
	var err error
	if r, ok := req.(*ng.Request); ok {
		body, err = r.Encode()
	} else {
		body, err = bencode.EncodeBytes(req)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	var reply map[string]any
	c.body.Reset(c.Exchange(cookie, body))
	if c.rd == nil {
		c.rd = bufio.NewReader(&c.body)
	}
	c.rd.Reset(&c.body)
	if err := bencode.NewDecoder(c.rd).Decode(&reply); err != nil {
		c.t.Fatalf("decoding the reply to %q: %v", cookie, err)
	}
	return reply
}
