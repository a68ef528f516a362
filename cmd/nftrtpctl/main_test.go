package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/nftrtpproxy/nftrtpproxy/calls/sdprelay"
	"github.com/nftrtpproxy/nftrtpproxy/frontend/httpapi"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard/switchboardtest"
)

// daemon serves the API over loopback for a Manager on an in-memory
// dataplane and returns its URL and the Manager.
func daemon(t *testing.T) (string, *switchboard.Manager) {
	t.Helper()
	m, _ := switchboardtest.Manager(t, switchboardtest.Config(t, "30000-30099", ""))
	srv := httptest.NewServer(httpapi.NewServer(m, sdprelay.New(m), nil))
	t.Cleanup(srv.Close)
	return srv.URL, m
}

// ctl runs nftrtpctl against url with JSON output and returns what it
// printed. It writes the global flags with one dash, as earlier versions
// took them.
func ctl(t *testing.T, url string, args ...string) (string, error) {
	t.Helper()
	return ctlOut(t, append([]string{"-api", url, "-o", "json"}, args...)...)
}

// ctlOut runs nftrtpctl with args as they are and returns what it printed.
func ctlOut(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(args, strings.NewReader(""), &out, io.Discard)
	return out.String(), err
}

// ctlJSON runs nftrtpctl and decodes its output into v.
func ctlJSON(t *testing.T, url string, v any, args ...string) {
	t.Helper()
	out, err := ctl(t, url, args...)
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("%v: output is not the JSON expected: %v\n%s", args, err, out)
	}
}

var addrs = cmpopts.EquateComparable(netip.Addr{}, netip.AddrPort{})

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func TestAllocWithIDPrintsOnlyTheID(t *testing.T) {
	t.Parallel()
	url, m := daemon(t)
	out, err := ctl(t, url, "alloc", "-switchboard", "edge", "-a", "192.0.2.10:4000", "-a-rtcp", "192.0.2.10:4009",
		"-b", "10.0.0.10:5000", "-ringing", "-label", "call-id=c1", "-label", "from-tag=f1", "-id")
	if err != nil {
		t.Fatal(err)
	}
	id, ok := strings.CutSuffix(out, "\n")
	if !ok || strings.ContainsAny(id, " \n{") || id == "" {
		t.Fatalf("printed %q, want one id on a line", out)
	}
	s, err := m.Get(id)
	if err != nil {
		t.Fatalf("the printed id: %v", err)
	}
	want := switchboard.Peer{Signalled: switchboard.Endpoint{RTP: ap("192.0.2.10:4000"), RTCP: ap("192.0.2.10:4009")}, LearnUntil: s.A.LearnUntil}
	if diff := cmp.Diff(want, s.A, addrs); diff != "" {
		t.Errorf("a (-want +got):\n%s", diff)
	}
	if s.B.Signalled.RTP != ap("10.0.0.10:5000") || s.State != switchboard.Ringing {
		t.Errorf("b %s, state %s", s.B.Signalled.RTP, s.State)
	}
	if diff := cmp.Diff(map[string]string{"call-id": "c1", "from-tag": "f1"}, s.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
}

func TestCommandsAgainstADaemon(t *testing.T) {
	t.Parallel()
	url, m := daemon(t)
	var s switchboard.Session
	ctlJSON(t, url, &s, "alloc", "-switchboard", "edge", "-a", "192.0.2.10:4000", "-ringing")
	if s.ID == "" || s.GateA != ap("192.0.2.1:30000") || s.State != switchboard.Ringing {
		t.Fatalf("alloc printed %+v", s)
	}

	ctlJSON(t, url, &s, "update", s.ID, "-b", "10.0.0.11:6000", "-b-rtcp", "10.0.0.11:6009")
	if s.B.Signalled != (switchboard.Endpoint{RTP: ap("10.0.0.11:6000"), RTCP: ap("10.0.0.11:6009")}) {
		t.Errorf("update printed b %+v", s.B.Signalled)
	}
	ctlJSON(t, url, &s, "adjust-timeout", s.ID, "learning")
	if s.State != switchboard.Active {
		t.Errorf("adjust-timeout learning: state %s, want active", s.State)
	}
	ctlJSON(t, url, &s, "adjust-timeout", s.ID, "ringing")
	if s.State != switchboard.Ringing {
		t.Errorf("adjust-timeout ringing: state %s", s.State)
	}

	var d switchboard.Details
	ctlJSON(t, url, &d, "show", s.ID)
	if d.ID != s.ID || len(d.Legs) != 4 || d.Legs[0].Peer != ap("10.0.0.11:6000") {
		t.Errorf("show printed %+v", d)
	}

	var l []*switchboard.Session
	ctlJSON(t, url, &l, "list")
	if diff := cmp.Diff(m.List(), l, addrs); diff != "" {
		t.Errorf("list (-want +got):\n%s", diff)
	}

	var r []switchboard.Route
	ctlJSON(t, url, &r, "find", "internal", "external")
	if diff := cmp.Diff([]switchboard.Route{{Switchboard: "edge", Direction: switchboard.BToA}}, r); diff != "" {
		t.Errorf("find (-want +got):\n%s", diff)
	}

	var v []httpapi.SwitchboardView
	ctlJSON(t, url, &v, "switchboards")
	if len(v) != 1 || v[0].Name != "edge" || v[0].GateB.Ports != "30000-30099" {
		t.Errorf("switchboards printed %+v", v)
	}

	var deleted map[string]string
	ctlJSON(t, url, &deleted, "delete", s.ID)
	if diff := cmp.Diff(map[string]string{"deleted": s.ID}, deleted); diff != "" {
		t.Errorf("delete (-want +got):\n%s", diff)
	}
	if len(m.List()) != 0 {
		t.Errorf("%d sessions after delete", len(m.List()))
	}
}

func TestDaemonErrorsAreNotUsageErrors(t *testing.T) {
	t.Parallel()
	url, _ := daemon(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"show", "nope"}, `session "nope": no such session (HTTP 404)`},
		{[]string{"delete", "nope"}, `session "nope": no such session (HTTP 404)`},
		{[]string{"alloc", "-switchboard", "core"}, `switchboard "core": no such switchboard (HTTP 404)`},
		{[]string{"adjust-timeout", "nope", "later"}, `session "nope": no such session (HTTP 404)`},
		{[]string{"find", "external", "mars"}, `no switchboard joins "external" and "mars": no such switchboard (HTTP 404)`},
	} {
		out, err := ctl(t, url, tc.args...)
		var r runError
		if !errors.As(err, &r) {
			t.Errorf("%v: %v is not a runError (exit status 1)", tc.args, err)
		}
		if diff := cmp.Diff(tc.want, errString(err)); diff != "" || out != "" {
			t.Errorf("%v: printed %q, error (-want +got):\n%s", tc.args, out, diff)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	url, m := daemon(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"a missing command", nil, "missing command; nftrtpctl -h lists them"},
		{"an unknown command", []string{"frobnicate"}, `unknown command "frobnicate" for "nftrtpctl"`},
		{"an unknown global flag", []string{"--colour", "list"}, "unknown flag: --colour"},
		{"an unknown output format", []string{"-o", "xml", "list"}, `-o "xml": want table or json`},
		{"an -a value without a port", []string{"alloc", "-switchboard", "edge", "-a", "192.0.2.10"},
			`invalid argument "192.0.2.10" for "-a, --a" flag: want IP:PORT ([IPv6]:PORT): "192.0.2.10"`},
		{"an -a-rtcp value that is a name", []string{"alloc", "-switchboard", "edge", "-a-rtcp", "phone:4001"},
			`invalid argument "phone:4001" for "--a-rtcp" flag: want IP:PORT ([IPv6]:PORT): "phone:4001"`},
		{"a label without a value", []string{"alloc", "-switchboard", "edge", "-label", "call-id"},
			`invalid argument "call-id" for "--label" flag: want KEY=VALUE: "call-id"`},
		{"alloc without a switchboard", []string{"alloc", "-a", "192.0.2.10:4000"}, "alloc needs -switchboard NAME"},
		{"update without an id", []string{"update", "-b", "10.0.0.10:5000"}, "update needs a session id first: update ID [-a IP:PORT] [-b IP:PORT]"},
		{"update with a bad -b", []string{"update", "x", "-b", "10.0.0.10"}, `invalid argument "10.0.0.10" for "-b, --b" flag: want IP:PORT ([IPv6]:PORT): "10.0.0.10"`},
		{"show without an id", []string{"show"}, "show needs one session id"},
		{"delete with two ids", []string{"delete", "x", "y"}, "delete needs one session id"},
		{"find with one gate", []string{"find", "external"}, "find needs two gates: FROM TO (names or addresses)"},
		{"adjust-timeout without a state", []string{"adjust-timeout", "x"}, "adjust-timeout needs: ID active|learning|ringing"},
		{"terminate without a call-id", []string{"terminate"}, "terminate needs one Call-ID"},
		{"count with an argument", []string{"count", "edge"}, "count takes no arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := ctl(t, url, tc.args...)
			var r runError
			if err == nil || errors.As(err, &r) {
				t.Fatalf("error %v, want a usage error (exit status 2)", err)
			}
			if diff := cmp.Diff(tc.want, err.Error()); diff != "" || out != "" {
				t.Errorf("printed %q, error (-want +got):\n%s", out, diff)
			}
		})
	}
	if n := len(m.List()); n != 0 {
		t.Errorf("usage errors made %d sessions", n)
	}
}

func TestAllocAndUpdateFromAnSDPFile(t *testing.T) {
	t.Parallel()
	url, m := daemon(t)
	dir := t.TempDir()
	offer := filepath.Join(dir, "offer.sdp")
	writeFile(t, offer, "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n")
	out, err := ctl(t, url, "alloc", "-switchboard", "edge", "-sdp", offer, "-from", "a", "-label", "call-id=c9", "-print-sdp")
	if err != nil || !strings.Contains(out, "c=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0\r\n") {
		t.Fatalf("alloc -sdp: %v\n%q", err, out)
	}
	l := m.List()
	if len(l) != 1 || l[0].A.Signalled.RTP != ap("192.0.2.10:4000") || l[0].Labels["call-id"] != "c9" {
		t.Fatalf("sessions after alloc -sdp: %+v", l)
	}
	answer := filepath.Join(dir, "answer.sdp")
	writeFile(t, answer, "v=0\r\no=- 2 2 IN IP4 10.0.0.10\r\ns=-\r\nc=IN IP4 10.0.0.10\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n")
	var res sdprelay.Result
	ctlJSON(t, url, &res, "update", l[0].ID, "-sdp", answer, "-from", "b")
	if len(res.Sessions) != 1 || res.Sessions[0] != l[0].ID || !strings.Contains(res.SDP, "m=audio 30000 RTP/AVP 0\r\n") {
		t.Errorf("update -sdp printed %+v", res)
	}
	if s, _ := m.Get(l[0].ID); s.B.Signalled.RTP != ap("10.0.0.10:5000") {
		t.Errorf("b after the answer: %s", s.B.Signalled.RTP)
	}
	_, err = ctl(t, url, "alloc", "-switchboard", "edge", "-sdp", offer, "-source", "somewhere")
	if diff := cmp.Diff(`-source "somewhere": want an IP address`, errString(err)); diff != "" {
		t.Errorf("-source (-want +got):\n%s", diff)
	}
	if _, err := ctl(t, url, "alloc", "-switchboard", "edge", "-sdp", filepath.Join(dir, "missing.sdp")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing SDP file: %v", err)
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestAnUnreachableDaemonIsNamed(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	l.Close()
	if _, err := ctl(t, url, "list"); err == nil || !strings.HasPrefix(err.Error(), "daemon at "+url+": ") {
		t.Errorf("error %v, want one naming the daemon's address", err)
	}
}

// Not parallel: it sets the environment.
func TestTheAPIAddressComesFromTheEnvironment(t *testing.T) {
	url, _ := daemon(t)
	t.Setenv("NFTRTPCTL_API", url)
	out, err := ctlOut(t, "-o", "json", "list")
	if err != nil || strings.TrimSpace(out) != "[]" {
		t.Errorf("list via NFTRTPCTL_API: %v, printed %q", err, out)
	}
}
