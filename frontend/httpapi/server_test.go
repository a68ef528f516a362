package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/nftrtpproxy/nftrtpproxy/calls/sdprelay"
	"github.com/nftrtpproxy/nftrtpproxy/relay/relaytest"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard/switchboardtest"
)

// api is the API served over loopback for a Manager on an in-memory
// dataplane whose gates have two port pairs each (30000 and 30002).
type api struct {
	c   *Client
	url string
	m   *switchboard.Manager
	mem *relaytest.Memory
}

func newAPI(t *testing.T, withSDP bool) *api {
	t.Helper()
	m, mem := switchboardtest.Manager(t, switchboardtest.Config(t, "30000-30003", ""))
	var sdp SDP
	if withSDP {
		sdp = sdprelay.New(m)
	}
	srv := httptest.NewServer(NewServer(m, sdp, nil))
	t.Cleanup(srv.Close)
	return &api{c: &Client{Base: srv.URL}, url: srv.URL, m: m, mem: mem}
}

// raw sends a JSON body to path and returns the status and the error
// body, if any.
func (a *api) raw(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	return a.rawAs(t, method, path, "application/json", body)
}

// rawAs is raw with the body's content type.
func (a *api) rawAs(t *testing.T, method, path, ctype, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, a.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: content type %q", method, path, ct)
	}
	var e ErrorBody
	if resp.StatusCode >= 300 {
		if err := json.Unmarshal(b, &e); err != nil {
			t.Errorf("%s %s: error body %q is not JSON: %v", method, path, b, err)
		}
	}
	return resp.StatusCode, e.Error
}

var addrs = cmpopts.EquateComparable(netip.Addr{}, netip.AddrPort{})

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func TestEveryOperationOverHTTP(t *testing.T) {
	t.Parallel()
	a := newAPI(t, false)
	ctx := context.Background()
	peerA, peerB := switchboard.Endpoint{RTP: ap("192.0.2.10:4000")}, switchboard.Endpoint{RTP: ap("10.0.0.10:5000")}

	s, err := a.c.Alloc(ctx, switchboard.AllocRequest{Switchboard: "edge", A: peerA, Ringing: true, Labels: map[string]string{"call-id": "c1"}})
	if err != nil {
		t.Fatal(err)
	}
	if s.GateA != ap("192.0.2.1:30000") || s.GateB != ap("10.0.0.1:30000") || s.State != switchboard.Ringing || s.Labels["call-id"] != "c1" {
		t.Errorf("alloc: %+v", s)
	}
	want, _ := a.m.Get(s.ID)
	if diff := cmp.Diff(want, s, addrs); diff != "" {
		t.Errorf("alloc reply against the manager (-want +got):\n%s", diff)
	}

	if s, err = a.c.Update(ctx, s.ID, switchboard.UpdateRequest{B: &peerB}); err != nil || s.B.Signalled.RTP != peerB.RTP {
		t.Errorf("update: %v, b %v", err, s.B.Signalled)
	}
	if s, err = a.c.AdjustTimeout(ctx, s.ID, switchboard.Active); err != nil || s.State != switchboard.Active || !s.Expires.IsZero() {
		t.Errorf("adjust-timeout: %v, %s until %v", err, s.State, s.Expires)
	}

	d, err := a.c.Show(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range d.Legs {
		names = append(names, l.Name)
	}
	if diff := cmp.Diff([]string{"a-rtp", "a-rtcp", "b-rtp", "b-rtcp"}, names); diff != "" || d.ID != s.ID || d.Legs[0].Peer != peerB.RTP {
		t.Errorf("show: %+v, leg names (-want +got):\n%s", d, diff)
	}

	l, err := a.c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a.m.List(), l, addrs); diff != "" || len(l) != 1 {
		t.Errorf("list (-want +got):\n%s", diff)
	}

	r, err := a.c.Find(ctx, "192.0.2.1", "internal")
	if diff := cmp.Diff([]switchboard.Route{{Switchboard: "edge", Direction: switchboard.AToB}}, r); err != nil || diff != "" {
		t.Errorf("find: %v (-want +got):\n%s", err, diff)
	}

	v, err := a.c.Switchboards(ctx)
	wantV := []SwitchboardView{{Name: "edge",
		GateA: Gate{Name: "external", Address: "192.0.2.1", Ports: "30000-30003"},
		GateB: Gate{Name: "internal", Address: "10.0.0.1", Ports: "30000-30003"}}}
	if diff := cmp.Diff(wantV, v); err != nil || diff != "" {
		t.Errorf("switchboards: %v (-want +got):\n%s", err, diff)
	}

	if err := a.c.Delete(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if l, err := a.c.List(ctx); err != nil || len(l) != 0 {
		t.Errorf("list after delete: %v, %d sessions", err, len(l))
	}
	if legs, _ := a.mem.Legs(ctx); len(legs) != 0 {
		t.Errorf("%d legs after delete", len(legs))
	}
}

func TestErrorsHaveTheirStatusAndNameWhatWasWrong(t *testing.T) {
	t.Parallel()
	a := newAPI(t, false)
	s, err := a.c.Alloc(context.Background(), switchboard.AllocRequest{Switchboard: "edge"})
	if err != nil {
		t.Fatal(err)
	}
	id := s.ID
	for _, tc := range []struct {
		name, method, path, body string
		code                     int
		want                     string
	}{
		{"showing an unknown session", "GET", "/v1/sessions/nope", "", 404, `session "nope": no such session`},
		{"updating an unknown session", "PATCH", "/v1/sessions/nope", `{}`, 404, `session "nope": no such session`},
		{"answering an unknown session", "POST", "/v1/sessions/nope/timeout", `{"state":"active"}`, 404, `session "nope": no such session`},
		{"deleting an unknown session", "DELETE", "/v1/sessions/nope", "", 404, `session "nope": no such session`},
		{"an unknown switchboard", "POST", "/v1/sessions", `{"switchboard":"core"}`, 404, `switchboard "core": no such switchboard`},
		{"finding gates no switchboard joins", "GET", "/v1/find?from=external&to=mars", "", 404, `no switchboard joins "external" and "mars": no such switchboard`},
		{"an unknown JSON field", "POST", "/v1/sessions", `{"switchboard":"edge","colour":"red"}`, 400, `request body: json: unknown field "colour"`},
		{"an unknown field of an endpoint", "POST", "/v1/sessions", `{"switchboard":"edge","a":{"video":"x"}}`, 400, `request body: endpoint: json: unknown field "video"`},
		{"a malformed address", "POST", "/v1/sessions", `{"switchboard":"edge","a":{"rtp":"192.0.2.10"}}`, 400, `request body: rtp "192.0.2.10": want IP:PORT ([IPv6]:PORT)`},
		{"a malformed address in an update", "PATCH", "/v1/sessions/" + id, `{"b":{"rtcp":"10.0.0.10:x"}}`, 400, `request body: rtcp "10.0.0.10:x": want IP:PORT ([IPv6]:PORT)`},
		{"a body that is no JSON", "POST", "/v1/sessions", `switchboard=edge`, 400, `request body: invalid character 's' looking for beginning of value`},
		{"an empty body", "POST", "/v1/sessions", ``, 400, `request body: EOF`},
		{"a peer of the wrong family", "POST", "/v1/sessions", `{"switchboard":"edge","b":{"rtp":"[2001:db8::10]:5000"}}`, 400,
			`switchboard "edge": invalid request: b [2001:db8::10]:5000: address family differs from the switchboard's gates (10.0.0.1)`},
		{"an unknown timeout state", "POST", "/v1/sessions/" + id + "/timeout", `{"state":"later"}`, 400,
			`session ` + id + `: invalid request: timeout "later" is neither "ringing" nor "active"`},
		{"find without gates", "GET", "/v1/find?from=external", "", 400, `invalid request: find needs two gates (names or addresses)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, msg := a.raw(t, tc.method, tc.path, tc.body)
			if code != tc.code {
				t.Errorf("status %d, want %d", code, tc.code)
			}
			if diff := cmp.Diff(tc.want, msg); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
	if l := a.m.List(); len(l) != 1 || l[0].ID != id {
		t.Errorf("refused requests changed the sessions: %v", l)
	}
}

func TestExhaustedPortsAre503(t *testing.T) {
	t.Parallel()
	a := newAPI(t, false)
	ctx := context.Background()
	for range 2 {
		if _, err := a.c.Alloc(ctx, switchboard.AllocRequest{Switchboard: "edge"}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := a.c.Alloc(ctx, switchboard.AllocRequest{Switchboard: "edge"})
	want := &StatusError{Code: http.StatusServiceUnavailable, Message: `switchboard "edge": gate-a 192.0.2.1 ports 30000-30003: no free port pair`}
	if diff := cmp.Diff(want, asStatus(err)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(`switchboard "edge": gate-a 192.0.2.1 ports 30000-30003: no free port pair (HTTP 503)`, err.Error()); diff != "" {
		t.Errorf("client error text (-want +got):\n%s", diff)
	}
}

func TestAKernelFailureIs500AndChangesNothing(t *testing.T) {
	t.Parallel()
	a := newAPI(t, false)
	a.mem.FailNext(errors.New("relay: apply: operation not permitted"))
	_, err := a.c.Alloc(context.Background(), switchboard.AllocRequest{Switchboard: "edge"})
	se := asStatus(err)
	if se == nil || se.Code != http.StatusInternalServerError || !strings.HasSuffix(se.Message, ": relay: apply: operation not permitted") {
		t.Errorf("error %v, want a 500 naming the kernel's error", err)
	}
	if l := a.m.List(); len(l) != 0 {
		t.Errorf("%d sessions after the failure", len(l))
	}
}

func asStatus(err error) *StatusError {
	var se *StatusError
	if errors.As(err, &se) {
		return se
	}
	return nil
}

func TestClientReportsAnUnreachableDaemonAndNonJSONErrors(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + l.Addr().String()
	l.Close()
	c := &Client{Base: base}
	if _, err := c.List(context.Background()); err == nil || !strings.HasPrefix(err.Error(), "daemon at "+base+": ") {
		t.Errorf("unreachable daemon: %v", err)
	}
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "bad gateway", http.StatusBadGateway)
	}))
	defer plain.Close()
	c = &Client{Base: plain.URL + "/", HTTP: plain.Client()}
	err = c.Delete(context.Background(), "x")
	if diff := cmp.Diff(&StatusError{Code: 502, Message: "bad gateway"}, asStatus(err)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestSDPEndpointsExistOnlyWithAnSDPLayer(t *testing.T) {
	t.Parallel()
	a := newAPI(t, false)
	_, err := a.c.AllocSDP(context.Background(), sdprelay.Request{Switchboard: "edge", From: switchboard.SideA, SDP: offer})
	if se := asStatus(err); se == nil || se.Code != http.StatusNotFound {
		t.Errorf("SDP alloc without an SDP layer: %v, want 404", err)
	}
}

const offer = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"

func TestAllocAndUpdateFromSDP(t *testing.T) {
	t.Parallel()
	a := newAPI(t, true)
	ctx := context.Background()
	res, err := a.c.AllocSDP(ctx, sdprelay.Request{Switchboard: "edge", From: switchboard.SideA, SDP: offer})
	if err != nil || len(res.Sessions) != 1 || !strings.Contains(res.SDP, "c=IN IP4 10.0.0.1\r\n") {
		t.Fatalf("sdp alloc: %v %+v", err, res)
	}
	answer := strings.ReplaceAll(offer, "192.0.2.10", "10.0.0.10")
	res, err = a.c.UpdateSDP(ctx, sdprelay.Request{From: switchboard.SideB, SDP: answer, Sessions: res.Sessions})
	if err != nil || !strings.Contains(res.SDP, "c=IN IP4 192.0.2.1\r\n") {
		t.Fatalf("sdp update: %v %+v", err, res)
	}
	_, err = a.c.AllocSDP(ctx, sdprelay.Request{Switchboard: "edge", From: switchboard.SideA, SDP: strings.Replace(offer, "4000", "70000", 1)})
	if se := asStatus(err); se == nil || se.Code != http.StatusBadRequest || !strings.Contains(se.Message, `sdp: line 6: invalid port "70000"`) {
		t.Errorf("bad SDP: %v, want 400 naming the line", err)
	}
}

func TestRunServesUntilCancelled(t *testing.T) {
	t.Parallel()
	m, _ := switchboardtest.Manager(t, switchboardtest.Config(t, "30000-30003", ""))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- NewServer(m, nil, nil).Run(ctx, l) }()
	resp, err := http.Get("http://" + l.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"status": "ok"`) {
		t.Errorf("healthz: %d %s", resp.StatusCode, b)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run returned %v on cancel, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
