package main

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/nftrtpproxy/nftrtpproxy/calls/sdprelay"
	"github.com/nftrtpproxy/nftrtpproxy/frontend/httpapi"
	"github.com/nftrtpproxy/nftrtpproxy/relay"
	"github.com/nftrtpproxy/nftrtpproxy/relay/relaytest"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard/switchboardtest"
)

// daemonMem is daemon with the in-memory dataplane, whose flows a test sets.
func daemonMem(t *testing.T) (string, *switchboard.Manager, *relaytest.Memory) {
	t.Helper()
	m, mem := switchboardtest.Manager(t, switchboardtest.Config(t, "30000-30099", ""))
	srv := httptest.NewServer(httpapi.NewServer(m, sdprelay.New(m), nil))
	t.Cleanup(srv.Close)
	return srv.URL, m, mem
}

func alloc(t *testing.T, m *switchboard.Manager, state switchboard.State, labels map[string]string) *switchboard.Session {
	t.Helper()
	s, err := m.Alloc(context.Background(), switchboard.AllocRequest{Switchboard: "edge", Ringing: state == switchboard.Ringing, Labels: labels})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestHelpListsTheCommandsAndSucceeds(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}} {
		out, err := ctlOut(t, args...)
		if err != nil {
			t.Errorf("%v: %v, want success (exit status 0)", args, err)
		}
		for _, cmd := range []string{"alloc", "update", "adjust-timeout", "delete", "terminate", "show", "list", "count", "totals", "find", "switchboards"} {
			if !strings.Contains(out, "\n  "+cmd+" ") {
				t.Errorf("%v: help does not list %q:\n%s", args, cmd, out)
			}
		}
	}
}

func TestTablesAreTheDefaultOutput(t *testing.T) {
	t.Parallel()
	url, m, _ := daemonMem(t)
	s := alloc(t, m, switchboard.Ringing, map[string]string{"call-id": "c1"})
	addr := strings.TrimPrefix(url, "http://") // host:port works as well as a URL
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"list"}, []string{"ID  ", "SWITCHBOARD", s.ID + "  edge ", "ringing", "192.0.2.1:30000", "call-id=c1"}},
		{[]string{"show", s.ID}, []string{"id:", s.ID, "state:", "ringing", "LEG", "a-rtp", "b-rtcp"}},
		{[]string{"switchboards"}, []string{"edge", "external", "192.0.2.1", "30000-30099", "internal"}},
		{[]string{"find", "external", "internal"}, []string{"edge", "a-to-b"}},
		{[]string{"count"}, []string{"SWITCHBOARD  RINGING  ACTIVE  SESSIONS", "edge", "total"}},
	} {
		out, err := ctlOut(t, append([]string{"--api", addr}, tc.args...)...)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v: no %q in\n%s", tc.args, w, out)
			}
		}
	}
}

func TestCountIsPerSwitchboardAndState(t *testing.T) {
	t.Parallel()
	url, m, _ := daemonMem(t)
	alloc(t, m, switchboard.Ringing, nil)
	alloc(t, m, switchboard.Active, nil)
	alloc(t, m, switchboard.Active, nil)
	var n Count
	ctlJSON(t, url, &n, "count")
	want := Count{Sessions: 3, Switchboards: map[string]map[string]int{"edge": {"ringing": 1, "active": 2}}}
	if diff := cmp.Diff(want, n); diff != "" {
		t.Errorf("count (-want +got):\n%s", diff)
	}
	out, err := ctlOut(t, "--api", url, "count")
	if err != nil || !strings.Contains(out, "edge         1        2       3\n") || !strings.Contains(out, "total                         3\n") {
		t.Errorf("count table: %v\n%s", err, out)
	}
}

func TestTotalsSumTheLegsOfEverySession(t *testing.T) {
	t.Parallel()
	url, m, mem := daemonMem(t)
	s1 := alloc(t, m, switchboard.Active, nil)
	s2 := alloc(t, m, switchboard.Active, nil)
	mem.SetFlows(
		relay.Flow{Mark: relay.Mark(4 * s1.Index), Packets: 10, Bytes: 1720},
		relay.Flow{Mark: relay.Mark(4*s1.Index + 2), Packets: 7, Bytes: 1204},
		relay.Flow{Mark: relay.Mark(4*s2.Index + 3), Packets: 1, Bytes: 80},
	)
	var got Totals
	ctlJSON(t, url, &got, "totals")
	want := Totals{Total: Traffic{Sessions: 2, Packets: 18, Bytes: 3004},
		Switchboards: map[string]Traffic{"edge": {Sessions: 2, Packets: 18, Bytes: 3004}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("totals (-want +got):\n%s", diff)
	}
}

func TestTerminateDeletesEverySessionOfTheCall(t *testing.T) {
	t.Parallel()
	url, m, _ := daemonMem(t)
	ng1 := alloc(t, m, switchboard.Active, map[string]string{"call-id": "c1@host", "owner": "calls"})
	lrk := alloc(t, m, switchboard.Active, map[string]string{"lrkproxy-call-id": "c1@host"})
	other := alloc(t, m, switchboard.Active, map[string]string{"call-id": "c2@host"})
	unlabelled := alloc(t, m, switchboard.Active, map[string]string{"x-call-id-like": "c1@host"})
	var got map[string][]string
	ctlJSON(t, url, &got, "terminate", "c1@host")
	want := []string{ng1.ID, lrk.ID}
	if want[0] > want[1] {
		want[0], want[1] = want[1], want[0]
	}
	if diff := cmp.Diff(map[string][]string{"deleted": want}, got); diff != "" {
		t.Errorf("terminate (-want +got):\n%s", diff)
	}
	var left []string
	for _, s := range m.List() {
		left = append(left, s.ID)
	}
	if diff := cmp.Diff([]string{other.ID, unlabelled.ID}, left, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("sessions left (-want +got):\n%s", diff)
	}
	_, err := ctl(t, url, "terminate", "c1@host")
	var r runError
	if !errors.As(err, &r) || err.Error() != `call "c1@host": no session carries the Call-ID` {
		t.Errorf("terminating it again: %v, want a runError naming the call", err)
	}
}
