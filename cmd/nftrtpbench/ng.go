package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/internal/netlab"
	"github.com/zeebo/bencode"
)

// ngClient speaks rtpengine's ng protocol over UDP: a datagram
// "<cookie> <bencoded dict>" answered by "<cookie> <bencoded dict>". It is
// a tiny independent client (not the repository's ng package), so the
// same requests drive rtpengine and nftrtpproxy. Not safe for concurrent
// use: one per load client.
type ngClient struct {
	conn   *net.UDPConn
	prefix string
	seq    int
	buf    []byte
	// took, when set, collects how long each request took.
	took *[]time.Duration
}

// ngTimeout is how long a request waits for its reply before it is sent
// again (same cookie: the server answers a retransmission from its cache).
const ngTimeout = 2 * time.Second

func dialNG(ns *netlab.NS, server netip.AddrPort) (*ngClient, error) {
	var conn *net.UDPConn
	err := ns.Do(func() error {
		var err error
		conn, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(server))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ng %s: %w", server, err)
	}
	return &ngClient{conn: conn, prefix: fmt.Sprintf("%d.%s", os.Getpid(), netlab.RandomSuffix()), buf: make([]byte, 65536)}, nil
}

func (c *ngClient) Close() error { return c.conn.Close() }

// do sends req and returns the reply dictionary, or the server's
// error-reason as an error.
func (c *ngClient) do(ctx context.Context, req map[string]any) (map[string]any, error) {
	c.seq++
	cookie := c.prefix + "." + strconv.Itoa(c.seq)
	msg, err := ngEncode(cookie, req)
	if err != nil {
		return nil, err
	}
	if c.took != nil {
		defer func(t time.Time) { *c.took = append(*c.took, time.Since(t)) }(time.Now())
	}
	for try := 0; try < 3; try++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if _, err := c.conn.Write(msg); err != nil {
			return nil, err
		}
		deadline := time.Now().Add(ngTimeout)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		reply, err := c.read(cookie, deadline)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return ngResult(req["command"], reply)
	}
	return nil, fmt.Errorf("ng %v: no reply after 3 tries of %s", req["command"], ngTimeout)
}

// read waits for the reply carrying cookie, skipping late replies to
// earlier requests.
func (c *ngClient) read(cookie string, deadline time.Time) (map[string]any, error) {
	if err := c.conn.SetReadDeadline(deadline); err != nil {
		return nil, err
	}
	for {
		n, err := c.conn.Read(c.buf)
		if err != nil {
			return nil, err
		}
		got, dict, err := ngDecode(c.buf[:n])
		if err != nil {
			return nil, err
		}
		if got == cookie {
			return dict, nil
		}
	}
}

// ngEncode frames a request.
func ngEncode(cookie string, dict map[string]any) ([]byte, error) {
	body, err := bencode.EncodeBytes(dict)
	if err != nil {
		return nil, fmt.Errorf("ng: encode: %w", err)
	}
	return append([]byte(cookie+" "), body...), nil
}

// ngDecode splits a reply into its cookie and dictionary.
func ngDecode(msg []byte) (string, map[string]any, error) {
	cookie, body, ok := bytes.Cut(msg, []byte(" "))
	if !ok || len(cookie) == 0 {
		return "", nil, fmt.Errorf("ng: reply %q has no cookie", truncate(msg, 40))
	}
	var dict map[string]any
	if err := bencode.DecodeBytes(body, &dict); err != nil {
		return "", nil, fmt.Errorf("ng: reply %q: %w", truncate(body, 40), err)
	}
	return string(cookie), dict, nil
}

// ngResult turns a reply whose result is not ok (or pong) into an error.
func ngResult(command any, reply map[string]any) (map[string]any, error) {
	switch res, _ := reply["result"].(string); res {
	case "ok", "pong":
		return reply, nil
	case "":
		return nil, fmt.Errorf("ng %v: reply without result", command)
	default:
		reason, _ := reply["error-reason"].(string)
		return nil, fmt.Errorf("ng %v: %s: %s", command, res, reason)
	}
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// ngCall is one call driven over ng: an offer from the caller's side
// (gate names dirA → dirB), an answer from the callee's, a delete.
type ngCall struct {
	id, fromTag, toTag string
	caller, callee     netip.AddrPort
	dirA, dirB         string
}

// setup sends the offer and the answer and returns where the caller must
// send (the relay's address in the answer's SDP) and where the callee must
// send (in the offer's SDP).
func (k ngCall) setup(ctx context.Context, c *ngClient) (toRelayA, toRelayB netip.AddrPort, err error) {
	offer, err := c.do(ctx, map[string]any{"command": "offer", "call-id": k.id, "from-tag": k.fromTag,
		"sdp": sdpFor(k.caller, "caller"), "direction": []string{k.dirA, k.dirB}, "flags": []string{"trust-address"}})
	if err != nil {
		return toRelayA, toRelayB, err
	}
	if toRelayB, err = replyMedia(offer); err != nil {
		return toRelayA, toRelayB, err
	}
	answer, err := c.do(ctx, map[string]any{"command": "answer", "call-id": k.id, "from-tag": k.fromTag, "to-tag": k.toTag,
		"sdp": sdpFor(k.callee, "callee"), "flags": []string{"trust-address"}})
	if err != nil {
		return toRelayA, toRelayB, err
	}
	toRelayA, err = replyMedia(answer)
	return toRelayA, toRelayB, err
}

func (k ngCall) delete(ctx context.Context, c *ngClient) error {
	_, err := c.do(ctx, map[string]any{"command": "delete", "call-id": k.id, "from-tag": k.fromTag})
	return err
}

func replyMedia(reply map[string]any) (netip.AddrPort, error) {
	sdp, _ := reply["sdp"].(string)
	return sdpMedia(sdp)
}

// sdpFor is a one-stream PCMU offer or answer for a peer at ap.
func sdpFor(ap netip.AddrPort, user string) string {
	a := ap.Addr().String()
	return "v=0\r\no=" + user + " 1 1 IN IP4 " + a + "\r\ns=-\r\nc=IN IP4 " + a + "\r\nt=0 0\r\n" +
		"m=audio " + strconv.Itoa(int(ap.Port())) + " RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
}

// sdpMedia returns the first audio stream's address and port of an SDP:
// its media-level c= line, else the session-level one.
func sdpMedia(sdp string) (netip.AddrPort, error) {
	var session, media string
	port, inAudio, sessionLevel := -1, false, true
	for line := range strings.Lines(sdp) {
		line = strings.TrimRight(line, "\r\n")
		switch {
		case strings.HasPrefix(line, "m=") && port >= 0:
			return parseAddrPort(cmp.Or(media, session), port)
		case strings.HasPrefix(line, "m=audio "):
			f := strings.Fields(line)
			p, err := strconv.Atoi(f[min(1, len(f)-1)])
			if err != nil || len(f) < 2 {
				return netip.AddrPort{}, fmt.Errorf("sdp: %q: invalid port", line)
			}
			port, inAudio, sessionLevel = p, true, false
		case strings.HasPrefix(line, "m="):
			inAudio, sessionLevel = false, false
		case strings.HasPrefix(line, "c=IN IP4 ") && inAudio:
			media = strings.TrimSpace(line[len("c=IN IP4 "):])
		case strings.HasPrefix(line, "c=IN IP4 ") && sessionLevel:
			session = strings.TrimSpace(line[len("c=IN IP4 "):])
		}
	}
	return parseAddrPort(cmp.Or(media, session), port)
}

func parseAddrPort(addr string, port int) (netip.AddrPort, error) {
	a, err := netip.ParseAddr(addr)
	if err != nil || port <= 0 || port > 65535 {
		return netip.AddrPort{}, fmt.Errorf("sdp: no audio address and port (c=%q, port %d)", addr, port)
	}
	return netip.AddrPortFrom(a, uint16(port)), nil
}
