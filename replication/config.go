package replication

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/internal/conffile"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// Config configures a router pair: the [replication] table of the daemon's
// configuration. A zero Redis address disables it.
type Config struct {
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
func (c Config) Enabled() bool { return c.Redis != "" }

type rawConfig struct {
	Redis         string             `toml:"redis"`
	KeyPrefix     *string            `toml:"key-prefix"`
	RoleAddresses []string           `toml:"role-addresses"`
	Queue         *int               `toml:"queue"`
	Timeout       *conffile.Duration `toml:"timeout"`
}

// Replication defaults.
const (
	DefaultKeyPrefix = "nftrtpproxy:"
	DefaultQueue     = 65536
	defaultTimeout   = time.Second
)

// DecodeConfig decodes and validates the [replication] table of f; errors
// start with "replication: ". The default role addresses are the gate
// addresses of sbs and the specific (not loopback, not wildcard) addresses
// in control, the addresses the UDP control sockets bind.
func DecodeConfig(f *conffile.File, sbs []*switchboard.Switchboard, control []netip.Addr) (Config, error) {
	var r rawConfig
	if err := f.Decode("replication", &r); err != nil {
		return Config{}, err
	}
	c, err := r.validate(sbs, control)
	if err != nil {
		return Config{}, fmt.Errorf("replication: %w", err)
	}
	return c, nil
}

func (r rawConfig) validate(sbs []*switchboard.Switchboard, control []netip.Addr) (Config, error) {
	if r.Redis == "" {
		if r.KeyPrefix != nil || r.RoleAddresses != nil || r.Queue != nil || r.Timeout != nil {
			return Config{}, errors.New(`"redis" is required`)
		}
		return Config{}, nil // no pair: the zero value
	}
	c := Config{Redis: r.Redis, KeyPrefix: DefaultKeyPrefix, Queue: DefaultQueue, Timeout: defaultTimeout}
	if r.KeyPrefix != nil {
		c.KeyPrefix = *r.KeyPrefix
	}
	if r.Queue != nil {
		if *r.Queue < 1 {
			return c, fmt.Errorf("queue %d: want at least 1", *r.Queue)
		}
		c.Queue = *r.Queue
	}
	if r.Timeout != nil {
		if *r.Timeout == 0 {
			return c, errors.New("timeout: want more than zero")
		}
		c.Timeout = time.Duration(*r.Timeout)
	}
	for _, s := range r.RoleAddresses {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return c, fmt.Errorf("role-addresses: invalid address %q", s)
		}
		c.RoleAddresses = append(c.RoleAddresses, a)
	}
	if r.RoleAddresses == nil {
		c.RoleAddresses = defaultRoleAddresses(sbs, control)
	}
	if len(c.RoleAddresses) == 0 {
		return c, errors.New("role-addresses: want at least one address")
	}
	return c, nil
}

// defaultRoleAddresses are the gate addresses and the specific (not
// loopback, not wildcard) control addresses, each once.
func defaultRoleAddresses(sbs []*switchboard.Switchboard, control []netip.Addr) []netip.Addr {
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
	for _, a := range control {
		add(a.Unmap())
	}
	return out
}
