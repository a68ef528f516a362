package hostcheck

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

func config(boards ...*switchboard.Switchboard) *switchboard.Config {
	return &switchboard.Config{Switchboards: boards}
}

func board(name, a, b string, first, last uint16) *switchboard.Switchboard {
	r := switchboard.PortRange{First: first, Last: last}
	return &switchboard.Switchboard{Name: name,
		A: switchboard.Gate{Name: "a", Addr: netip.MustParseAddr(a), Ports: r},
		B: switchboard.Gate{Name: "b", Addr: netip.MustParseAddr(b), Ports: r}}
}

// healthy is a host where every check passes for edge().
func healthy() Readings {
	return Readings{
		Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("10.0.0.1"),
			netip.MustParseAddr("2001:db8:a::1")},
		Sysctls: map[string]string{
			sysIPForward: "1", sysIP6Forward: "1", sysNonlocal4: "0", sysNonlocal6: "0",
			sysPortRange: "32768\t60999", sysReservedPorts: "", sysConntrackMax: "262144",
			sysConntrackAcct: "1", sysConntrackEvent: "1",
		},
		Chains: []Chain{{Family: "ip", Table: "filter", Name: "FORWARD"}},
	}
}

func edge() *switchboard.Config { return config(board("edge", "192.0.2.1", "10.0.0.1", 20000, 21999)) }

// checks returns the check name and severity of each finding.
func checks(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Severity.String()+" "+f.Check)
	}
	return out
}

func TestEvaluate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		cfg    *switchboard.Config
		change func(*Readings)
		want   []string
	}{
		{"a healthy host has no findings", edge(), func(*Readings) {}, nil},
		{"a gate address the host lacks refuses", edge(), func(r *Readings) { r.Addrs = r.Addrs[1:] },
			[]string{"refuse gate-address"}},
		{"a missing address under ip_nonlocal_bind only warns", edge(), func(r *Readings) {
			r.Addrs = r.Addrs[1:]
			r.Sysctls[sysNonlocal4] = "1"
		}, []string{"warn gate-address"}},
		{"unread addresses skip the address check", edge(), func(r *Readings) {
			r.Addrs = nil
			r.Problems = []string{"addresses: boom"}
		}, []string{"warn unreadable"}},
		{"a range inside the ephemeral ports warns once per gate",
			config(board("edge", "192.0.2.1", "10.0.0.1", 30000, 39999)), func(*Readings) {},
			[]string{"warn ephemeral-ports", "warn ephemeral-ports"}},
		{"reserved ports silence the ephemeral check",
			config(board("edge", "192.0.2.1", "10.0.0.1", 30000, 39999)), func(r *Readings) {
				r.Sysctls[sysReservedPorts] = "8080,30000-35000,35001-39999"
			}, nil},
		{"IPv4 forwarding off warns", edge(), func(r *Readings) { r.Sysctls[sysIPForward] = "0" },
			[]string{"warn forwarding"}},
		{"IPv6 forwarding off does not matter to IPv4 gates", edge(), func(r *Readings) { r.Sysctls[sysIP6Forward] = "0" }, nil},
		{"IPv6 forwarding off warns for an IPv6 gate",
			config(board("v6", "2001:db8:a::1", "2001:db8:a::1", 20000, 21999)), func(r *Readings) { r.Sysctls[sysIP6Forward] = "0" },
			[]string{"warn forwarding"}},
		{"a drop policy in another table warns", edge(), func(r *Readings) { r.Chains[0].PolicyDrop = true },
			[]string{"warn forward-drop"}},
		{"a drop-all rule in another table warns", edge(), func(r *Readings) { r.Chains[0].DropsAll = true },
			[]string{"warn forward-drop"}},
		{"a drop policy that accepts the relay's marks is fine", edge(), func(r *Readings) {
			r.Chains[0].PolicyDrop, r.Chains[0].AcceptsRelay = true, true
		}, nil},
		{"an ip6 drop policy does not matter to IPv4 gates", edge(), func(r *Readings) {
			r.Chains[0].Family, r.Chains[0].PolicyDrop = "ip6", true
		}, nil},
		{"missing conntrack warns once", edge(), func(r *Readings) {
			delete(r.Sysctls, sysConntrackAcct)
			delete(r.Sysctls, sysConntrackEvent)
		}, []string{"warn conntrack"}},
		{"accounting and events off warn", edge(), func(r *Readings) {
			r.Sysctls[sysConntrackAcct], r.Sysctls[sysConntrackEvent] = "0", "2"
		}, []string{"warn conntrack-acct", "warn conntrack-events"}},
		{"a conntrack limit below the ranges' need warns", edge(), func(r *Readings) { r.Sysctls[sysConntrackMax] = "7999" },
			[]string{"warn conntrack-max"}},
		{"a conntrack limit at the need is fine", edge(), func(r *Readings) { r.Sysctls[sysConntrackMax] = "8000" }, nil},
		{"refusals come first", edge(), func(r *Readings) {
			r.Sysctls[sysIPForward] = "0"
			r.Addrs = nil
			r.Addrs = []netip.Addr{}
		}, []string{"refuse gate-address", "refuse gate-address", "warn forwarding"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := healthy()
			tc.change(&r)
			got := Evaluate(tc.cfg, r)
			if diff := cmp.Diff(tc.want, checks(got)); diff != "" {
				t.Errorf("findings (-want +got):\n%s\n%v", diff, got)
			}
			for _, f := range got {
				if f.What == "" || f.Fix == "" {
					t.Errorf("finding %q lacks a message or a fix", f.Check)
				}
			}
		})
	}
}

func TestEphemeralFixReservesEveryGateRange(t *testing.T) {
	t.Parallel()
	cfg := config(board("edge", "192.0.2.1", "10.0.0.1", 40000, 40999), board("core", "192.0.2.1", "10.0.0.1", 41000, 42999))
	r := healthy()
	r.Sysctls[sysReservedPorts] = "8080,40500-41500"
	fs := Evaluate(cfg, r)
	if len(fs) == 0 {
		t.Fatal("no finding for ranges inside the ephemeral ports")
	}
	want := "sysctl -w net.ipv4.ip_local_reserved_ports=8080,40000-42999"
	if !strings.HasPrefix(fs[0].Fix, want) {
		t.Errorf("fix %q, want it to start %q", fs[0].Fix, want)
	}
	if !strings.Contains(fs[0].What, "in 500 ports") {
		t.Errorf("what %q: want the 500 unreserved ports of 40000-40999 counted", fs[0].What)
	}
}

func TestMaxFlows(t *testing.T) {
	t.Parallel()
	// 30000-39999 holds 5000 pairs; the smaller gate of "small" 500.
	cfg := config(board("big", "192.0.2.1", "10.0.0.1", 30000, 39999), board("small", "192.0.2.1", "10.0.0.1", 40000, 40999))
	cfg.Switchboards[1].B.Ports = switchboard.PortRange{First: 41000, Last: 41999}
	cfg.Switchboards[1].A.Ports = switchboard.PortRange{First: 40000, Last: 40999}
	if got, want := MaxFlows(Gates(cfg)), FlowsPerSession*(5000+500); got != want {
		t.Errorf("MaxFlows = %d, want %d", got, want)
	}
}

func TestParsePortList(t *testing.T) {
	t.Parallel()
	got, ok := parsePortList("8080,30000-39999\n")
	if diff := cmp.Diff([]portRange{{8080, 8080}, {30000, 39999}}, got, cmp.AllowUnexported(portRange{})); !ok || diff != "" {
		t.Errorf("parsePortList (-want +got):\n%s", diff)
	}
	if _, ok := parsePortList("30000-x"); ok {
		t.Error("parsePortList accepted 30000-x")
	}
}
