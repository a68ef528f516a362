package switchboard

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Replication configures a router pair ([replication]; package
// replication). A zero Redis address disables it.
type Replication struct {
	// Redis is the host:port of the Redis server both routers use.
	Redis string
	// KeyPrefix starts every key the pair writes (default "nftrtpproxy:"),
	// so that pairs can share a Redis server.
	KeyPrefix string
	// RoleAddresses are the addresses whose presence on this router makes
	// it the active one (keepalived moves them). Default: every gate
	// address of the switchboards and every specific address the UDP
	// control sockets bind (a standby binds them only on takeover).
	RoleAddresses []netip.Addr
	// Queue bounds the changes waiting for Redis; beyond it the publisher
	// drops them and writes a full snapshot once Redis keeps up.
	Queue int
	// Timeout bounds each Redis command.
	Timeout time.Duration
}

// Enabled reports whether the configuration asks for a router pair.
func (r Replication) Enabled() bool { return r.Redis != "" }

type rawReplication struct {
	Redis         string    `toml:"redis"`
	KeyPrefix     *string   `toml:"key-prefix"`
	RoleAddresses []string  `toml:"role-addresses"`
	Queue         *int      `toml:"queue"`
	Timeout       *duration `toml:"timeout"`
}

// Replication defaults.
const (
	DefaultKeyPrefix        = "nftrtpproxy:"
	DefaultReplicationQueue = 65536
	defaultRedisTimeout     = time.Second
)

// validate turns r into Replication; gates are the switchboards' gate
// addresses, the default role addresses.
func (r rawReplication) validate(sbs []*Switchboard, ctl Control) (Replication, error) {
	if r.Redis == "" {
		if r.KeyPrefix != nil || r.RoleAddresses != nil || r.Queue != nil || r.Timeout != nil {
			return Replication{}, fmt.Errorf("replication: \"redis\" is required")
		}
		return Replication{}, nil // no pair: the zero value
	}
	c := Replication{Redis: r.Redis, KeyPrefix: DefaultKeyPrefix, Queue: DefaultReplicationQueue, Timeout: defaultRedisTimeout}
	if r.KeyPrefix != nil {
		c.KeyPrefix = *r.KeyPrefix
	}
	if r.Queue != nil {
		if *r.Queue < 1 {
			return c, fmt.Errorf("replication: queue %d: want at least 1", *r.Queue)
		}
		c.Queue = *r.Queue
	}
	if r.Timeout != nil {
		if *r.Timeout == 0 {
			return c, fmt.Errorf("replication: timeout: want more than zero")
		}
		c.Timeout = time.Duration(*r.Timeout)
	}
	for _, s := range r.RoleAddresses {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return c, fmt.Errorf("replication: role-addresses: invalid address %q", s)
		}
		c.RoleAddresses = append(c.RoleAddresses, a)
	}
	if r.RoleAddresses == nil {
		c.RoleAddresses = defaultRoleAddresses(sbs, ctl)
	}
	if len(c.RoleAddresses) == 0 {
		return c, fmt.Errorf("replication: role-addresses: want at least one address")
	}
	return c, nil
}

// defaultRoleAddresses are the gate addresses and the specific (not
// loopback, not wildcard) addresses of the UDP control sockets, each once.
func defaultRoleAddresses(sbs []*Switchboard, ctl Control) []netip.Addr {
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	add := func(a netip.Addr) {
		if a.IsValid() && !a.IsLoopback() && !a.IsUnspecified() && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	for _, sb := range sbs {
		add(sb.A.Addr)
		add(sb.B.Addr)
	}
	rtpproxy, _ := strings.CutPrefix(ctl.RTPProxy, "udp:")
	for _, hp := range []string{ctl.NG, ctl.LRKProxy, rtpproxy} {
		if ap, err := netip.ParseAddrPort(hp); err == nil {
			add(ap.Addr().Unmap())
		}
	}
	return out
}
