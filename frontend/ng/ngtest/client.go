package ngtest

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/frontend/ng"
	"github.com/nftrtpproxy/nftrtpproxy/internal/ctlsock"
	"github.com/zeebo/bencode"
)

// Serve runs an ng server for b on a loopback UDP port until the test
// ends, failing the test if Run returns an error, and returns its address.
func Serve(t testing.TB, b ng.Backend, opts ng.Options) net.Addr {
	t.Helper()
	return ServeSockets(t, b, opts, 1)
}

// ServeSockets is Serve on n sockets sharing the port, one worker each, as
// the daemon serves ng.
func ServeSockets(t testing.TB, b ng.Backend, opts ng.Options, n int) net.Addr {
	t.Helper()
	conns, err := ctlsock.ListenUDPGroup(context.Background(), "127.0.0.1:0", n)
	if err != nil {
		t.Fatal(err)
	}
	if n > 1 {
		opts.Concurrency = n
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ng.NewServer(conns, b, opts).Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ng server: Run: %v", err)
		}
	})
	return conns[0].LocalAddr()
}

// Client speaks to an ng server over UDP as Kamailio does.
type Client struct {
	t    testing.TB
	conn *net.UDPConn
	buf  []byte // reused by Read, so that benchmarks measure the server
	out  []byte // reused by Send
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
	c.out = append(append(append(c.out[:0], cookie...), ' '), body...)
	if _, err := c.conn.Write(c.out); err != nil {
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

// ResultOf returns the "result" of a bencoded reply dictionary without
// decoding the rest of it (a benchmark's client should cost little next
// to the server it measures); "" when it has none or is not bencode.
func ResultOf(dict []byte) string {
	if len(dict) == 0 || dict[0] != 'd' {
		return ""
	}
	for b := dict[1:]; len(b) > 0 && b[0] != 'e'; {
		key, n := bencodeString(b)
		if n == 0 {
			return ""
		}
		b = b[n:]
		if key == "result" {
			v, _ := bencodeString(b)
			return v
		}
		if n = skipBencode(b); n == 0 {
			return ""
		}
		b = b[n:]
	}
	return ""
}

// bencodeString reads the string at the start of b and the bytes it took;
// 0 when there is none.
func bencodeString(b []byte) (string, int) {
	colon := bytes.IndexByte(b, ':')
	if colon < 1 {
		return "", 0
	}
	n, err := strconv.Atoi(string(b[:colon]))
	if err != nil || n < 0 || n > len(b)-colon-1 {
		return "", 0
	}
	return string(b[colon+1 : colon+1+n]), colon + 1 + n
}

// skipBencode returns the length of the value at the start of b; 0 when it
// is malformed.
func skipBencode(b []byte) int {
	if len(b) == 0 {
		return 0
	}
	switch b[0] {
	case 'i':
		return bytes.IndexByte(b, 'e') + 1
	case 'l', 'd':
		i := 1
		for i < len(b) && b[i] != 'e' {
			n := skipBencode(b[i:])
			if n == 0 {
				return 0
			}
			i += n
		}
		if i >= len(b) {
			return 0
		}
		return i + 1
	}
	_, n := bencodeString(b)
	return n
}
