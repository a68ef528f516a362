package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/nftrtpproxy/nftrtpproxy/calls/sdprelay"
	"github.com/nftrtpproxy/nftrtpproxy/relay"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard/switchboardtest"
)

// fuzzRoutes are the requests that carry a body; in the path and the
// body, $ID stands for the id of the session the fuzzed API starts with.
var fuzzRoutes = []struct{ method, path string }{
	{"POST", "/v1/sessions"},
	{"PATCH", "/v1/sessions/$ID"},
	{"POST", "/v1/sessions/$ID/timeout"},
	{"POST", "/v1/sdp/alloc"},
	{"POST", "/v1/sdp/update"},
	{"DELETE", "/v1/sessions/$ID"},
}

// FuzzRequestBodies sends a body to one of the API's routes, over the
// in-memory dataplane with one session installed. Whatever the body, the
// handler does not panic and answers in JSON; a refusal is a 4xx (or 503
// for a request that needs more ports than are left), names what was
// wrong, and leaves the sessions and the dataplane's legs as they were.
func FuzzRequestBodies(f *testing.F) {
	seeds := []struct {
		route int
		id    string
		body  string
	}{
		{0, "", `{"switchboard":"edge","a":{"rtp":"192.0.2.10:4000"},"b":{"rtp":"10.0.0.10:5000"},"ringing":true,"labels":{"call-id":"x"}}`},
		{0, "", `{"switchboard":"edge","a":{"rtp":"[2001:db8::1]:4000"}}`},
		{0, "", `{"switchboard":"nope"}`},
		{1, "$ID", `{"b":{"rtp":"10.0.0.11:5002","hold":true},"answer":true,"labels":{"k":"v"}}`},
		{1, "no-such", `{}`},
		{2, "$ID", `{"state":"ringing"}`},
		{2, "$ID", `{"state":"frozen"}`},
		{4, "", `{"from":"b","sdp":"` + jsonString(strings.ReplaceAll(offer, "192.0.2.10", "10.0.0.10")) + `","sessions":["$ID"]}`},
		{5, "$ID", ``},
	}
	for _, s := range seeds {
		f.Add(uint8(s.route), s.id, []byte(s.body))
	}
	inputs, _ := filepath.Glob("../../sdp/testdata/*.input.sdp")
	for _, p := range append(inputs, "") {
		sdp := offer
		if p != "" {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			sdp = string(b)
		}
		f.Add(uint8(3), "", []byte(`{"switchboard":"edge","from":"a","sdp":"`+jsonString(sdp)+`","ringing":true,"remove_ice":true}`))
	}
	f.Fuzz(func(t *testing.T, route uint8, id string, body []byte) {
		m, mem := switchboardtest.Manager(t, switchboardtest.Config(t, "30000-30007", ""))
		s, err := m.Alloc(context.Background(), switchboard.AllocRequest{Switchboard: "edge"})
		if err != nil {
			t.Fatal(err)
		}
		rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
		if id == "" {
			id = "$ID"
		}
		path := strings.Replace(rt.path, "$ID", strings.ReplaceAll(id, "$ID", s.ID), 1)
		body = bytes.ReplaceAll(body, []byte("$ID"), []byte(s.ID))
		sessions, legs := m.List(), memLegs(t, mem)

		req := httptest.NewRequest(rt.method, "/", bytes.NewReader(body))
		req.URL.Path = path // any id, even one no client could send
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		NewServer(m, sdprelay.New(m), nil).ServeHTTP(w, req)

		if ct := w.Header().Get("Content-Type"); ct != "application/json" && !fromMux(w.Code) {
			t.Errorf("%s %s: %d with content type %q", rt.method, path, w.Code, ct)
		}
		if w.Code < 300 {
			if !json.Valid(w.Body.Bytes()) {
				t.Errorf("%s %s: %d with a body that is not JSON: %q", rt.method, path, w.Code, w.Body)
			}
			return
		}
		if w.Code >= 500 && w.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s %s %q: %d %s, want a 4xx for a bad request", rt.method, path, body, w.Code, w.Body)
		}
		if diff := cmp.Diff(sessions, m.List(), cmpopts.EquateComparable(netipTypes...)); diff != "" {
			t.Errorf("%s %s %q: %d, but the sessions changed (-before +after):\n%s", rt.method, path, body, w.Code, diff)
		}
		if diff := cmp.Diff(legs, memLegs(t, mem), cmpopts.EquateComparable(netipTypes...)); diff != "" {
			t.Errorf("%s %s %q: %d, but the legs changed (-before +after):\n%s", rt.method, path, body, w.Code, diff)
		}
	})
}

// fromMux reports whether code may come from the request router rather
// than a handler (a path with a slash in its id, or one to clean).
func fromMux(code int) bool {
	switch code {
	case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

var netipTypes = []any{ap("0.0.0.0:0").Addr(), ap("0.0.0.0:0")}

func memLegs(t *testing.T, mem interface {
	Legs(context.Context) ([]relay.Leg, error)
}) []relay.Leg {
	t.Helper()
	l, err := mem.Legs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// jsonString is s quoted for a JSON string, without the quotes.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}
