//go:build linux && integration

package hostcheck

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/internal/netlab"
	"github.com/nftrtpproxy/nftrtpproxy/internal/netns"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// router builds a lab and returns its router namespace and an fd of it.
func router(t *testing.T) (*netlab.Lab, int) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("kernel test: needs root to create network namespaces")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lab, err := netlab.New(ctx, netlab.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lab.Close() })
	f, err := os.Open(lab.Router.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return lab, int(f.Fd())
}

// in runs a command in the router, failing the test on error.
func in(t *testing.T, lab *netlab.Lab, name string, args ...string) {
	t.Helper()
	if _, err := lab.Router.Run(context.Background(), name, args...); err != nil {
		t.Fatal(err)
	}
}

// only returns the findings of check.
func only(fs []Finding, check string) []Finding {
	var out []Finding
	for _, f := range fs {
		if f.Check == check {
			out = append(out, f)
		}
	}
	return out
}

// provoke runs the checks before and after change and wants check to be
// silent before and to report wantSev with a message containing what after.
func provoke(t *testing.T, cfg *switchboard.Config, fd int, check string, change func(), wantSev Severity, what string) {
	t.Helper()
	ctx := context.Background()
	if fs := only(Run(ctx, cfg, Options{NetNS: fd}), check); len(fs) != 0 {
		t.Fatalf("before provoking: %v", fs)
	}
	change()
	fs := only(Run(ctx, cfg, Options{NetNS: fd}), check)
	if len(fs) == 0 {
		t.Fatalf("no %s finding after provoking it", check)
	}
	t.Logf("%s", fs[0])
	if fs[0].Severity != wantSev || !strings.Contains(fs[0].What, what) {
		t.Errorf("finding %q, want %s with %q", fs[0], wantSev, what)
	}
}

func TestKernelChecks(t *testing.T) {
	lab, fd := router(t)
	gates := func(first, last uint16) *switchboard.Config {
		return config(board("edge", lab.RouterExtAddr.String(), lab.RouterIntAddr.String(), first, last))
	}
	cfg := gates(20000, 21999)
	if fs := Run(context.Background(), cfg, Options{NetNS: fd}); len(fs) != 0 {
		t.Fatalf("the lab's router has findings: %v", fs)
	}
	t.Run("a gate address the router lacks refuses", func(t *testing.T) {
		bad := config(board("edge", "198.51.100.7", lab.RouterIntAddr.String(), 20000, 21999))
		fs := only(Run(context.Background(), bad, Options{NetNS: fd}), "gate-address")
		if len(fs) != 1 || fs[0].Severity != Refuse || !strings.Contains(fs[0].What, "198.51.100.7 is not an address of this host") {
			t.Fatalf("findings %v, want one refusal naming 198.51.100.7", fs)
		}
		t.Logf("%s", fs[0])
	})
	t.Run("a range in the ephemeral ports warns until reserved", func(t *testing.T) {
		eph := gates(30000, 39999)
		in(t, lab, "sysctl", "-w", "net.ipv4.ip_local_port_range=50000 60999")
		provoke(t, eph, fd, "ephemeral-ports", func() {
			in(t, lab, "sysctl", "-w", "net.ipv4.ip_local_port_range=32768 60999")
		}, Warn, "overlap the kernel's ephemeral ports 32768-60999")
		in(t, lab, "sysctl", "-w", "net.ipv4.ip_local_reserved_ports=30000-39999")
		if fs := only(Run(context.Background(), eph, Options{NetNS: fd}), "ephemeral-ports"); len(fs) != 0 {
			t.Errorf("after reserving the range: %v", fs)
		}
	})
	t.Run("a drop policy in another table's forward chain warns until the fix", func(t *testing.T) {
		provoke(t, cfg, fd, "forward-drop", func() {
			in(t, lab, "nft", "add table ip fw; add chain ip fw fw_forward { type filter hook forward priority 0; policy drop; }")
		}, Warn, "chain ip fw fw_forward (hook forward) has policy drop")
		fs := only(Run(context.Background(), cfg, Options{NetNS: fd}), "forward-drop")
		fix, _, _ := strings.Cut(fs[0].Fix, " (with iptables")
		in(t, lab, "sh", "-c", fix)
		if fs := only(Run(context.Background(), cfg, Options{NetNS: fd}), "forward-drop"); len(fs) != 0 {
			t.Errorf("after %q: %v", fix, fs)
		}
		in(t, lab, "nft", "delete table ip fw")
	})
	t.Run("a drop-all rule in another table's forward chain warns", func(t *testing.T) {
		provoke(t, cfg, fd, "forward-drop", func() {
			in(t, lab, "nft", "add table inet fw2; add chain inet fw2 fw_forward { type filter hook forward priority 0; }; add rule inet fw2 fw_forward counter drop")
		}, Warn, "chain inet fw2 fw_forward (hook forward) has a rule dropping every packet")
		in(t, lab, "nft", "delete table inet fw2")
	})
	t.Run("forwarding off warns", func(t *testing.T) {
		provoke(t, cfg, fd, "forwarding", func() { in(t, lab, "sysctl", "-w", "net.ipv4.ip_forward=0") },
			Warn, `net.ipv4.ip_forward is "0"`)
		in(t, lab, "sysctl", "-w", "net.ipv4.ip_forward=1")
		v6 := config(board("v6", lab.RouterExtAddr6.String(), lab.RouterIntAddr6.String(), 20000, 21999))
		provoke(t, v6, fd, "forwarding", func() { in(t, lab, "sysctl", "-w", "net.ipv6.conf.all.forwarding=0") },
			Warn, `net.ipv6.conf.all.forwarding is "0"`)
		in(t, lab, "sysctl", "-w", "net.ipv6.conf.all.forwarding=1")
	})
	t.Run("conntrack accounting and events off warn", func(t *testing.T) {
		provoke(t, cfg, fd, "conntrack-acct", func() { in(t, lab, "sysctl", "-w", "net.netfilter.nf_conntrack_acct=0") },
			Warn, "counters stay at zero")
		provoke(t, cfg, fd, "conntrack-events", func() { in(t, lab, "sysctl", "-w", "net.netfilter.nf_conntrack_events=2") },
			Warn, "never report their end")
	})
	t.Run("ranges needing more flows than nf_conntrack_max warn", func(t *testing.T) {
		// nf_conntrack_max is read-only in a namespace other than the
		// first: the configuration grows past it instead.
		v, err := netns.ReadSysctls(fd, sysConntrackMax)
		if err != nil {
			t.Fatal(err)
		}
		limit, err := strconv.Atoi(v[sysConntrackMax])
		if err != nil {
			t.Fatalf("%s: %v", sysConntrackMax, err)
		}
		big := &switchboard.Config{}
		perBoard := FlowsPerSession * switchboard.PortRange{First: 1024, Last: 65535}.Pairs()
		for i := 0; i <= limit/perBoard; i++ {
			big.Switchboards = append(big.Switchboards,
				board("sb"+strconv.Itoa(i), lab.RouterExtAddr.String(), lab.RouterIntAddr.String(), 1024, 65535))
		}
		fs := only(Run(context.Background(), big, Options{NetNS: fd}), "conntrack-max")
		if len(fs) != 1 || !strings.Contains(fs[0].What, "nf_conntrack_max is "+v[sysConntrackMax]) {
			t.Fatalf("findings %v, want one naming the limit %d", fs, limit)
		}
		t.Logf("%s", fs[0])
	})
}
