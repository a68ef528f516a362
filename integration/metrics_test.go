//go:build linux && integration

package integration

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/internal/netlab"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// metricsConfig serves metrics in the router namespace.
func metricsConfig(lab *netlab.Lab, stateDir string) string {
	return strings.Replace(labConfig(lab, stateDir, ""), `http = "127.0.0.1:7780"`,
		"http = \"127.0.0.1:7780\"\nmetrics = \"127.0.0.1:9780\"", 1)
}

// scrape fetches the daemon's metrics: sample values by name and labels.
func scrape(t *testing.T, lab *netlab.Lab) map[string]float64 {
	t.Helper()
	resp, err := lab.Router.HTTPClient().Get("http://127.0.0.1:9780/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

const (
	sessionsActive = `nftrtpproxy_sessions{state="active",switchboard="edge"}`
	packetsAToB    = `nftrtpproxy_relayed_packets_total{direction="a-to-b",switchboard="edge"}`
	packetsBToA    = `nftrtpproxy_relayed_packets_total{direction="b-to-a",switchboard="edge"}`
)

// The README's scrape: during a call the session is counted and its
// packets rise with the media (conntrack's counters, read at scrape time);
// after the delete the end is counted by reason, the packets stay (the
// destroyed flows' final counters), and the log has the call's line.
func TestMetricsScrapeDuringACall(t *testing.T) {
	lab := newLab(t)
	d := startDaemon(t, lab, metricsConfig(lab, t.TempDir()))
	a := newPeer(t, lab.Caller, lab.CallerAddr, 4000)
	b := newPeer(t, lab.Callee, lab.CalleeAddr, 5000)
	s, err := d.api.Alloc(ctx(t), switchboard.AllocRequest{Switchboard: "edge", A: a.endpoint(), B: b.endpoint()})
	if err != nil {
		t.Fatal(err)
	}
	a.send(t, s.GateA, 10, false)
	expect(t, "callee", b.rtpR, s.GateB, 10)
	first := scrape(t, lab)
	if first[sessionsActive] != 1 || first[packetsAToB] != 10 {
		t.Errorf("first scrape: %d active sessions, %v packets a-to-b; want 1 and 10", int(first[sessionsActive]), first[packetsAToB])
	}
	a.send(t, s.GateA, 20, false)
	b.send(t, s.GateB, 5, false)
	expect(t, "callee", b.rtpR, s.GateB, 30)
	expect(t, "caller", a.rtpR, s.GateA, 5)
	second := scrape(t, lab)
	for _, k := range slices.Sorted(maps.Keys(second)) {
		if strings.HasPrefix(k, "nftrtpproxy_") && !strings.Contains(k, "_bucket") {
			t.Logf("%s %v", k, second[k]) // the README's scrape
		}
	}
	if second[packetsAToB] != 30 || second[packetsBToA] != 5 {
		t.Errorf("second scrape: packets a-to-b %v, b-to-a %v; want 30 and 5", second[packetsAToB], second[packetsBToA])
	}
	if n := second[`nftrtpproxy_requests_total{command="post /v1/sessions",protocol="http"}`]; n != 1 {
		t.Errorf("alloc requests counted: %v, want 1", n)
	}
	if n := second[`nftrtpproxy_kernel_transaction_seconds_count`]; n < 1 {
		t.Errorf("kernel transactions timed: %v", n)
	}
	if err := d.api.Delete(ctx(t), s.ID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	var after map[string]float64
	for {
		after = scrape(t, lab)
		if after[`nftrtpproxy_session_ends_total{reason="deleted",switchboard="edge"}`] == 1 && after[packetsAToB] == 30 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if after[sessionsActive] != 0 || after[packetsAToB] != 30 || after[packetsBToA] != 5 {
		t.Errorf("after delete: %v active, packets a-to-b %v, b-to-a %v; want 0, 30, 5",
			after[sessionsActive], after[packetsAToB], after[packetsBToA])
	}
	want := fmt.Sprintf("packets_a_to_b=30 bytes_a_to_b=%d packets_b_to_a=5", int(after[`nftrtpproxy_relayed_bytes_total{direction="a-to-b",switchboard="edge"}`]))
	for deadline := time.Now().Add(3 * time.Second); !strings.Contains(d.logText(), "call ended"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			break
		}
	}
	if log := d.logText(); !strings.Contains(log, want) || !strings.Contains(log, "reason=deleted") {
		t.Errorf("no call ended line with %q in the log:\n%s", want, log)
	}
}
