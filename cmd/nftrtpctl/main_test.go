package main

import (
	"bytes"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nftrtpproxy/nftrtpproxy/httpapi"
	"github.com/nftrtpproxy/nftrtpproxy/sdprelay"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard/switchboardtest"
)

func daemonURL(t *testing.T) string {
	t.Helper()
	m, _ := switchboardtest.Manager(t, switchboardtest.Config(t, "30000-30099", ""))
	srv := httptest.NewServer(httpapi.NewServer(m, sdprelay.New(m), nil))
	t.Cleanup(srv.Close)
	return srv.URL
}

func ctl(t *testing.T, url string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(append([]string{"-api", url}, args...), &out)
	return out.String(), err
}

func TestCommandsAgainstADaemon(t *testing.T) {
	url := daemonURL(t)
	id, err := ctl(t, url, "alloc", "-switchboard", "edge", "-a", "192.0.2.10:4000", "-b", "10.0.0.10:5000", "-ringing", "-id")
	if err != nil {
		t.Fatal(err)
	}
	id = strings.TrimSpace(id)
	for _, args := range [][]string{
		{"update", id, "-b", "10.0.0.11:6000"},
		{"adjust-timeout", id, "learning"},
		{"show", id},
		{"list"},
		{"find", "external", "internal"},
		{"switchboards"},
	} {
		out, err := ctl(t, url, args...)
		if err != nil || !strings.HasPrefix(out, "{") && !strings.HasPrefix(out, "[") {
			t.Errorf("%v: %v\n%s", args, err, out)
		}
	}
	if out, _ := ctl(t, url, "show", id); !strings.Contains(out, `"10.0.0.11:6000"`) || !strings.Contains(out, `"active"`) {
		t.Errorf("show after update and adjust-timeout:\n%s", out)
	}
	if _, err := ctl(t, url, "delete", id); err != nil {
		t.Fatal(err)
	}
	if _, err := ctl(t, url, "show", id); err == nil || !strings.Contains(err.Error(), "no such session") {
		t.Errorf("show after delete: %v", err)
	}
}

func TestAllocFromSDPFile(t *testing.T) {
	url := daemonURL(t)
	f := filepath.Join(t.TempDir(), "offer.sdp")
	if err := os.WriteFile(f, []byte("v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := ctl(t, url, "alloc", "-switchboard", "edge", "-sdp", f, "-from", "a", "-print-sdp")
	if err != nil || !strings.Contains(out, "c=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0\r\n") {
		t.Fatalf("alloc -sdp: %v\n%q", err, out)
	}
}

func TestUsageErrors(t *testing.T) {
	url := daemonURL(t)
	for _, args := range [][]string{{}, {"frobnicate"}, {"alloc", "-switchboard", "edge", "-a", "192.0.2.10"}, {"alloc"}, {"show"}, {"find", "x"}} {
		_, err := ctl(t, url, args...)
		var u usageError
		if !errors.As(err, &u) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}
