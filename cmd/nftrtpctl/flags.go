package main

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
	"github.com/spf13/cobra"
)

// addrFlag is an optional IP:PORT flag (a pflag.Value).
type addrFlag struct {
	ap  netip.AddrPort
	set bool
}

func (f *addrFlag) String() string {
	if !f.set {
		return ""
	}
	return f.ap.String()
}

func (f *addrFlag) Set(s string) error {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return fmt.Errorf("want IP:PORT ([IPv6]:PORT): %q", s)
	}
	f.ap, f.set = ap, true
	return nil
}

func (f *addrFlag) Type() string { return "IP:PORT" }

// endpoint is the peer given by an RTP and an RTCP flag; zero when neither
// was given.
func (f addrFlag) endpoint(rtcp addrFlag) switchboard.Endpoint {
	return switchboard.Endpoint{RTP: f.ap, RTCP: rtcp.ap}
}

// endpointFlags are the peer addresses of alloc and update.
type endpointFlags struct{ a, b, aRTCP, bRTCP addrFlag }

func (e *endpointFlags) register(c *cobra.Command) {
	fs := c.Flags()
	fs.VarP(&e.a, "a", "a", "a-side peer RTP address IP:PORT")
	fs.VarP(&e.b, "b", "b", "b-side peer RTP address IP:PORT")
	fs.Var(&e.aRTCP, "a-rtcp", "a-side peer RTCP address (default: RTP port + 1)")
	fs.Var(&e.bRTCP, "b-rtcp", "b-side peer RTCP address (default: RTP port + 1)")
}

// labelsFlag collects repeated KEY=VALUE flags (a pflag.Value).
type labelsFlag map[string]string

func (l labelsFlag) String() string {
	kv := make([]string, 0, len(l))
	for k, v := range l {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

func (l labelsFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE: %q", s)
	}
	l[k] = v
	return nil
}

func (l labelsFlag) Type() string { return "KEY=VALUE" }
