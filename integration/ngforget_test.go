//go:build linux && integration

package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/internal/netlab"
)

// ngTimeoutConfig is the ng lab configuration with short ringing and media
// timeouts.
func ngTimeoutConfig(lab *netlab.Lab, stateDir string) string {
	return strings.Replace(ngConfig(lab, stateDir), "name = \"edge\"\n",
		"name = \"edge\"\nringing-timeout = \"2s\"\nmedia-timeout = \"2s\"\n", 1)
}

func ngSDP(addr string, port int) string {
	return fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 %[1]s\r\ns=-\r\nc=IN IP4 %[1]s\r\nt=0 0\r\nm=audio %[2]d RTP/AVP 0\r\n", addr, port)
}

// ngKnows reports whether query, list and statistics still show call.
func ngKnows(t *testing.T, lab *netlab.Lab, call string, seq *int) (query, list bool, sessions string) {
	t.Helper()
	*seq++
	q := ngCall(t, lab, fmt.Sprintf("f_%d", *seq), map[string]any{"command": "query", "call-id": call})
	*seq++
	l := ngCall(t, lab, fmt.Sprintf("f_%d", *seq), map[string]any{"command": "list"})
	*seq++
	s := ngCall(t, lab, fmt.Sprintf("f_%d", *seq), map[string]any{"command": "statistics"})
	cur := s["statistics"].(map[string]any)["currentstatistics"].(map[string]any)
	return q["result"] == "ok", strings.Contains(fmt.Sprint(l["calls"]), call), fmt.Sprint(cur["sessionsown"])
}

// expectForgotten polls until query, list and statistics no longer show
// call, within limit.
func expectForgotten(t *testing.T, lab *netlab.Lab, call string, limit time.Duration) {
	t.Helper()
	seq := 0
	if q, l, n := ngKnows(t, lab, call, &seq); !q || !l || n != "1" {
		t.Fatalf("right after set-up: query ok %v, listed %v, %s own sessions; want true, true, 1", q, l, n)
	}
	deadline := time.Now().Add(limit)
	for {
		q, l, n := ngKnows(t, lab, call, &seq)
		if !q && !l && n == "0" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v after set-up: query ok %v, listed %v, %s own sessions; want the call gone", limit, q, l, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A never-answered offer is gone from query, list and statistics right
// after its ringing timeout ends its session.
func TestNGForgetsACallItsRingingTimeoutEnded(t *testing.T) {
	lab := newLab(t)
	startDaemon(t, lab, ngTimeoutConfig(lab, t.TempDir()))
	offer := ngCall(t, lab, "r_1", map[string]any{"command": "offer", "call-id": "ringing-1", "from-tag": "alice",
		"sdp": ngSDP(lab.CallerAddr.String(), 4000), "direction": []string{"external", "internal"}, "flags": []string{"trust-address"}})
	if offer["result"] != "ok" {
		t.Fatalf("offer: %v", offer)
	}
	expectForgotten(t, lab, "ringing-1", 3500*time.Millisecond)
}

// An answered call without media is gone from query, list and statistics
// right after its media timeout ends its session.
func TestNGForgetsACallItsMediaTimeoutEnded(t *testing.T) {
	lab := newLab(t)
	startDaemon(t, lab, ngTimeoutConfig(lab, t.TempDir()))
	req := map[string]any{"command": "offer", "call-id": "silent-1", "from-tag": "alice",
		"sdp": ngSDP(lab.CallerAddr.String(), 4000), "direction": []string{"external", "internal"}, "flags": []string{"trust-address"}}
	if r := ngCall(t, lab, "m_1", req); r["result"] != "ok" {
		t.Fatalf("offer: %v", r)
	}
	req["command"], req["to-tag"], req["sdp"] = "answer", "bob", ngSDP(lab.CalleeAddr.String(), 5000)
	if r := ngCall(t, lab, "m_2", req); r["result"] != "ok" {
		t.Fatalf("answer: %v", r)
	}
	expectForgotten(t, lab, "silent-1", 3500*time.Millisecond)
}
