package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/nftrtpproxy/nftrtpproxy/sdprelay"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard/switchboardtest"
)

// newAPI serves the API over loopback for a Manager on an in-memory dataplane.
func newAPI(t *testing.T) (*Client, *httptest.Server) {
	t.Helper()
	m, _ := switchboardtest.Manager(t, switchboardtest.Config(t, "30000-30003", ""))
	srv := httptest.NewServer(NewServer(m, sdprelay.New(m), nil))
	t.Cleanup(srv.Close)
	return &Client{Base: srv.URL}, srv
}

func statusOfErr(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

func TestEveryOperationOverHTTP(t *testing.T) {
	c, _ := newAPI(t)
	ctx := context.Background()
	a, b := switchboard.Endpoint{RTP: mustAP("192.0.2.10:4000")}, switchboard.Endpoint{RTP: mustAP("10.0.0.10:5000")}
	s, err := c.Alloc(ctx, switchboard.AllocRequest{Switchboard: "edge", A: a, Ringing: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.GateA.String() != "192.0.2.1:30000" || s.State != switchboard.Ringing {
		t.Errorf("alloc: %+v", s)
	}
	if s, err = c.Update(ctx, s.ID, switchboard.UpdateRequest{B: &b}); err != nil || s.B.Signalled.RTP != b.RTP {
		t.Errorf("update: %v %+v", err, s)
	}
	if s, err = c.AdjustTimeout(ctx, s.ID, switchboard.Active); err != nil || s.State != switchboard.Active {
		t.Errorf("adjust-timeout: %v %+v", err, s)
	}
	if d, err := c.Show(ctx, s.ID); err != nil || len(d.Legs) != 4 || d.ID != s.ID {
		t.Errorf("show: %v %+v", err, d)
	}
	if l, err := c.List(ctx); err != nil || len(l) != 1 {
		t.Errorf("list: %v %d", err, len(l))
	}
	if r, err := c.Find(ctx, "external", "internal"); err != nil || len(r) != 1 || r[0].Direction != switchboard.AToB {
		t.Errorf("find: %v %v", err, r)
	}
	if v, err := c.Switchboards(ctx); err != nil || len(v) != 1 || v[0].GateA.Ports != "30000-30003" {
		t.Errorf("switchboards: %v %+v", err, v)
	}
	if err := c.Delete(ctx, s.ID); err != nil {
		t.Errorf("delete: %v", err)
	}
	if _, err := c.Show(ctx, s.ID); statusOfErr(err) != http.StatusNotFound {
		t.Errorf("show after delete: %v, want 404", err)
	}
}

func TestErrorStatusesNameWhatWasWrong(t *testing.T) {
	c, srv := newAPI(t)
	ctx := context.Background()
	post := func(body string) (int, string) {
		resp, err := http.Post(srv.URL+"/v1/sessions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = fmt.Fprint(&b, resp.Status)
		buf := make([]byte, 4096)
		n, _ := resp.Body.Read(buf)
		return resp.StatusCode, string(buf[:n])
	}
	for _, tc := range []struct {
		name, body, want string
		code             int
	}{
		{"an unknown field", `{"switchboard":"edge","colour":"red"}`, `unknown field \"colour\"`, 400},
		{"a malformed address", `{"switchboard":"edge","a":{"rtp":"192.0.2.10"}}`, `rtp \"192.0.2.10\": want IP:PORT`, 400},
		{"an unknown switchboard", `{"switchboard":"core"}`, `switchboard \"core\": no such switchboard`, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := post(tc.body)
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Errorf("got %d %s, want %d containing %s", code, body, tc.code, tc.want)
			}
		})
	}
	for range 2 {
		if _, err := c.Alloc(ctx, switchboard.AllocRequest{Switchboard: "edge"}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.Alloc(ctx, switchboard.AllocRequest{Switchboard: "edge"})
	if statusOfErr(err) != http.StatusServiceUnavailable || !strings.Contains(err.Error(), "no free port pair") {
		t.Errorf("exhausted: %v, want 503 saying so", err)
	}
}

func TestAllocAndUpdateFromSDP(t *testing.T) {
	c, _ := newAPI(t)
	ctx := context.Background()
	offer := "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
	res, err := c.AllocSDP(ctx, sdprelay.Request{Switchboard: "edge", From: sdprelay.SideA, SDP: offer})
	if err != nil || len(res.Sessions) != 1 || !strings.Contains(res.SDP, "c=IN IP4 10.0.0.1\r\n") {
		t.Fatalf("sdp alloc: %v %+v", err, res)
	}
	answer := strings.ReplaceAll(offer, "192.0.2.10", "10.0.0.10")
	res, err = c.UpdateSDP(ctx, sdprelay.Request{From: sdprelay.SideB, SDP: answer, Sessions: res.Sessions})
	if err != nil || !strings.Contains(res.SDP, "c=IN IP4 192.0.2.1\r\n") {
		t.Fatalf("sdp update: %v %+v", err, res)
	}
	_, err = c.AllocSDP(ctx, sdprelay.Request{Switchboard: "edge", From: sdprelay.SideA, SDP: strings.Replace(offer, "4000", "70000", 1)})
	if statusOfErr(err) != http.StatusBadRequest || !strings.Contains(err.Error(), `sdp: line 6: invalid port "70000"`) {
		t.Errorf("bad SDP: %v", err)
	}
}

func mustAP(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
