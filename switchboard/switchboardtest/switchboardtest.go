// Package switchboardtest starts switchboard Managers over the in-memory
// dataplane for tests of the packages built on them (front ends, SDP and
// call layers). Nothing here claims kernel behaviour.
package switchboardtest

import (
	"context"
	"fmt"
	"testing"

	"github.com/nftrtpproxy/nftrtpproxy/relay/relaytest"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// Config is a configuration with the switchboard "edge": gate-a "external"
// on 192.0.2.1 and gate-b "internal" on 10.0.0.1, both with ports, a state
// dir under the test's temporary directory, and extra TOML appended (keys
// of the switchboard, or further tables).
func Config(t testing.TB, ports, extra string) *switchboard.Config {
	t.Helper()
	cfg, err := switchboard.ParseConfig([]byte(fmt.Sprintf(`state-dir = %q
[[switchboard]]
name = "edge"
gate-a = { name = "external", address = "192.0.2.1", ports = %[2]q }
gate-b = { name = "internal", address = "10.0.0.1", ports = %[2]q }
%[3]s`, t.TempDir(), ports, extra)))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Manager starts a Manager for cfg over a new in-memory dataplane and closes
// it when the test ends.
func Manager(t testing.TB, cfg *switchboard.Config) (*switchboard.Manager, *relaytest.Memory) {
	t.Helper()
	mem := relaytest.NewMemory()
	m := switchboard.NewManager(cfg, mem, switchboard.Options{PickPort: InOrder})
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, mem
}

// InOrder is a switchboard.Options PickPort that makes a Manager hand out
// each gate's lowest free port pair, so tests can name the ports.
func InOrder(int) int { return 0 }
