package main

import (
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/nftrtpproxy/nftrtpproxy/replication"
)

func TestReplicationShowsTheRoleAndSync(t *testing.T) {
	// A node that has not run yet: standby, not in sync (its Redis is
	// never dialled).
	n := replication.NewNode(replication.Config{Redis: "127.0.0.1:1", KeyPrefix: "x:", Queue: 1,
		RoleAddresses: []netip.Addr{netip.MustParseAddr("192.0.2.1")}}, nil)
	t.Cleanup(func() { n.Close() })
	srv := httptest.NewServer(n)
	t.Cleanup(srv.Close)
	var st replication.Status
	ctlJSON(t, srv.URL, &st, "replication")
	if st.Role != "standby" || st.InSync || st.Follower == nil {
		t.Errorf("status %+v, want a standby not in sync", st)
	}
	out, err := ctlOut(t, "-api", srv.URL, "replication")
	if err != nil || !strings.Contains(out, "role     standby") || !strings.Contains(out, "in sync  false") {
		t.Errorf("table: %v\n%s", err, out)
	}
}
