package switchboard

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const pairBase = `state-dir = "/tmp/x"
[[switchboard]]
name = "edge"
gate-a = { address = "192.0.2.1", ports = "30000-30003" }
gate-b = { address = "10.0.0.1", ports = "30000-30003" }
`

func TestReplicationConfig(t *testing.T) {
	a := netip.MustParseAddr
	for _, tc := range []struct {
		name, toml string
		want       Replication
		err        string
	}{
		{name: "no section leaves replication off", toml: "", want: Replication{}},
		{name: "role addresses default to the gate addresses", toml: `[replication]
redis = "10.9.0.1:6379"`,
			want: Replication{Redis: "10.9.0.1:6379", KeyPrefix: DefaultKeyPrefix, Queue: DefaultReplicationQueue,
				Timeout: time.Second, RoleAddresses: []netip.Addr{a("192.0.2.1"), a("10.0.0.1")}}},
		{name: "a control socket's specific address is a role address too", toml: `[control]
ng = "192.0.2.5:2223"
lrkproxy = "127.0.0.1:22333"
[replication]
redis = "10.9.0.1:6379"`,
			want: Replication{Redis: "10.9.0.1:6379", KeyPrefix: DefaultKeyPrefix, Queue: DefaultReplicationQueue,
				Timeout: time.Second, RoleAddresses: []netip.Addr{a("192.0.2.1"), a("10.0.0.1"), a("192.0.2.5")}}},
		{name: "every setting is read", toml: `[replication]
redis = "r:1"
key-prefix = "p:"
role-addresses = ["192.0.2.1"]
queue = 10
timeout = "250ms"`,
			want: Replication{Redis: "r:1", KeyPrefix: "p:", Queue: 10, Timeout: 250 * time.Millisecond,
				RoleAddresses: []netip.Addr{a("192.0.2.1")}}},
		{name: "settings without redis are refused", toml: "[replication]\nqueue = 5", err: `replication: "redis" is required`},
		{name: "a bad role address is named", toml: "[replication]\nredis = \"r:1\"\nrole-addresses = [\"vip\"]",
			err: `replication: role-addresses: invalid address "vip"`},
		{name: "an empty queue is refused", toml: "[replication]\nredis = \"r:1\"\nqueue = 0", err: "replication: queue 0: want at least 1"},
		{name: "unknown keys are refused", toml: "[replication]\nredis = \"r:1\"\nredis-addr = \"x\"", err: `unknown key "replication.redis-addr"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig(fmt.Appendf(nil, "%s%s", pairBase, tc.toml))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, c.Replication, addrs); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}
