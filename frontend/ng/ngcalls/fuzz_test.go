package ngcalls_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/calls"
	"github.com/nftrtpproxy/nftrtpproxy/calls/sdprelay"
	"github.com/nftrtpproxy/nftrtpproxy/frontend/ng"
	"github.com/nftrtpproxy/nftrtpproxy/frontend/ng/ngcalls"
	"github.com/nftrtpproxy/nftrtpproxy/frontend/ng/ngtest"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard/switchboardtest"
	"github.com/zeebo/bencode"
)

// FuzzDatagram sends request dictionaries through the ng server, the call
// table and the Manager to the in-memory dataplane: the server never
// panics, every request is answered with a dictionary carrying a result,
// and a request answered "error" leaves the sessions and legs as they were.
func FuzzDatagram(f *testing.F) {
	files, _ := filepath.Glob("../testdata/*")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, req := range []map[string]any{kamailioOffer("c1"), {"command": "delete", "call-id": "c1", "from-tag": "alice"}} {
		b, _ := bencode.EncodeBytes(req)
		f.Add(b)
	}
	cfg := switchboardtest.Config(f, "30000-30009", "")
	m, mem := switchboardtest.Manager(f, cfg)
	c := calls.New(m, sdprelay.New(m), cfg.Switchboards, "edge")
	addr := ngtest.Serve(f, ngcalls.New(c), ng.Options{})
	conn, err := net.DialUDP("udp", nil, addr.(*net.UDPAddr))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { conn.Close() })
	buf := make([]byte, 1<<16)
	n := 0
	f.Fuzz(func(t *testing.T, body []byte) {
		n++
		cookie := fmt.Sprint("fuzz_", n)
		before := switchboardtest.Snapshot(t, m, mem)
		if _, err := conn.Write(append([]byte(cookie+" "), body...)); err != nil {
			t.Skip(err) // larger than a datagram
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		k, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("%q: no reply: %v", body, err)
		}
		dict, ok := bytes.CutPrefix(buf[:k], []byte(cookie+" "))
		if !ok {
			t.Fatalf("%q: reply %q without the cookie", body, buf[:k])
		}
		var reply map[string]any
		if err := decodeReply(dict, &reply); err != nil || reply["result"] == nil {
			t.Fatalf("%q: reply %q is not a dictionary with a result: %v", body, dict, err)
		}
		if reply["result"] == "error" {
			if after := switchboardtest.Snapshot(t, m, mem); after != before {
				t.Fatalf("%q answered %v changed the state:\nbefore:\n%s\nafter:\n%s", body, reply, before, after)
			}
		}
	})
}

func decodeReply(b []byte, v *map[string]any) error {
	if len(b) > 0 && b[0] == '{' {
		return json.Unmarshal(b, v)
	}
	return bencode.DecodeBytes(b, v)
}
