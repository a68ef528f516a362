package lrkproxy

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/nftrtpproxy/nftrtpproxy/switchboard/switchboardtest"
)

// Behind a 1:1 NAT the module is told the advertised addresses (it writes
// them into the SDP) and names the gates by them in S; the session and the
// kernel use the local ones.
func TestTheModuleIsToldTheAdvertisedAddresses(t *testing.T) {
	h := &harness{cfg: switchboardtest.Config(t, "30000-30011", "")}
	h.cfg.Switchboards[0].A.Advertise = a("203.0.113.7")
	h.m, h.mem = switchboardtest.Manager(t, h.cfg)
	h.serve(t)
	var c NodeConfig
	if err := c.UnmarshalBinary(bytes.TrimPrefix(h.exchange(t, moduleConfig), []byte("4711_1 G "))); err != nil {
		t.Fatal(err)
	}
	if c.ExternalIP != a("203.0.113.7") || c.InternalIP != a("10.0.0.1") {
		t.Errorf("config external %s internal %s, want the advertised 203.0.113.7 and 10.0.0.1", c.ExternalIP, c.InternalIP)
	}
	set := strings.Replace(moduleSet, "192.0.2.1", "203.0.113.7", 1)
	if set == moduleSet {
		t.Fatal("the module's S names no 192.0.2.1 to replace")
	}
	if got := string(h.exchange(t, set)); got != set+"OK" {
		t.Fatalf("reply %q, want the request and OK", got)
	}
	ss := h.sessions(t)
	if len(ss) != 1 || fmt.Sprint(ss[0].GateA, " ", ss[0].GateB) != "192.0.2.1:30002 10.0.0.1:30000" {
		t.Errorf("sessions %+v, want one on the local gates 192.0.2.1:30002 and 10.0.0.1:30000", ss)
	}
}
