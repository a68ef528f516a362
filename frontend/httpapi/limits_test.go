package httpapi

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard/switchboardtest"
)

func TestBodiesOtherThanJSONAreRefused415(t *testing.T) {
	t.Parallel()
	a := newAPI(t, true)
	body := `{"switchboard":"edge","a":{"rtp":"192.0.2.10:4000"}}`
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"} {
		code, msg := a.rawAs(t, "POST", "/v1/sessions", ct, body)
		if code != http.StatusUnsupportedMediaType || !strings.Contains(msg, "want application/json") {
			t.Errorf("content type %q: %d %q, want 415 naming application/json", ct, code, msg)
		}
	}
	if n := len(a.m.List()); n != 0 {
		t.Fatalf("refused bodies allocated %d sessions", n)
	}
	if code, msg := a.rawAs(t, "POST", "/v1/sessions", "application/json; charset=utf-8", body); code != http.StatusCreated {
		t.Errorf("application/json with a charset: %d %q", code, msg)
	}
}

func TestLabelLimitsAreRefused400WithTheLimitNamed(t *testing.T) {
	t.Parallel()
	a := newAPI(t, false)
	code, _ := a.raw(t, "POST", "/v1/sessions", `{"switchboard":"edge","labels":{"ref":"1"}}`)
	if code != http.StatusCreated {
		t.Fatalf("alloc: %d", code)
	}
	id := a.m.List()[0].ID
	var labels []string
	for i := range switchboard.MaxLabels {
		labels = append(labels, fmt.Sprintf(`"k%d":"v"`, i))
	}
	code, msg := a.raw(t, "PATCH", "/v1/sessions/"+id, `{"labels":{`+strings.Join(labels, ",")+`}}`)
	if code != http.StatusBadRequest || !strings.Contains(msg, "above the limit of 32 per session") {
		t.Errorf("PATCH past the label count: %d %q", code, msg)
	}
	code, msg = a.raw(t, "PATCH", "/v1/sessions/"+id, `{"labels":{"ref":"`+strings.Repeat("x", switchboard.MaxLabelBytes)+`"}}`)
	if code != http.StatusBadRequest || !strings.Contains(msg, "above the limit of 1024 per label") {
		t.Errorf("PATCH with a large label: %d %q", code, msg)
	}
	if l := a.m.List()[0].Labels; len(l) != 1 || l["ref"] != "1" {
		t.Errorf("labels after the refused PATCHes: %v", l)
	}
}

func TestMaxSessionsIsRefused503WithTheLimitNamed(t *testing.T) {
	t.Parallel()
	m, _ := switchboardtest.Manager(t, switchboardtest.Config(t, "30000-30009", "max-sessions = 1\n"))
	srv := newServed(t, NewServer(m, nil, nil))
	a := &api{url: "http://" + srv}
	a.raw(t, "POST", "/v1/sessions", `{"switchboard":"edge"}`)
	code, msg := a.raw(t, "POST", "/v1/sessions", `{"switchboard":"edge"}`)
	if code != http.StatusServiceUnavailable || !strings.Contains(msg, "max-sessions 1") {
		t.Errorf("alloc on a full switchboard: %d %q, want 503 naming max-sessions", code, msg)
	}
}

// newServed runs s on a loopback listener until the test ends and returns
// its address.
func newServed(t *testing.T, s *Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return l.Addr().String()
}

func TestRunCapsConnectionsAndClosesSilentOnes(t *testing.T) {
	t.Parallel()
	m, _ := switchboardtest.Manager(t, switchboardtest.Config(t, "30000-30009", ""))
	addr := newServed(t, NewServer(m, nil, nil))
	var held []net.Conn
	for range MaxConns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	// The next connection is not served while MaxConns are held ...
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("connection %d was served (%d bytes) while %d were held", MaxConns+1, n, MaxConns)
	}
	// ... and is once a silent one is closed by its header timeout.
	c.SetReadDeadline(time.Now().Add(ReadHeaderTimeout + 5*time.Second))
	if n, err := c.Read(make([]byte, 1)); err != nil || n != 1 {
		t.Errorf("connection %d after the silent ones timed out: %v", MaxConns+1, err)
	}
	_ = held
}
