package notify

import (
	"bufio"
	"context"
	"encoding/xml"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nftrtpproxy/nftrtpproxy/calls"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// rpcServer records the XML-RPC calls it receives; the first fail calls
// are answered 500.
type rpcServer struct {
	mu    sync.Mutex
	calls [][]string // method, params...
	fail  int
	reply string
	got   chan struct{}
}

func (s *rpcServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var c struct {
		Method string   `xml:"methodName"`
		Params []string `xml:"params>param>value>string"`
	}
	b, _ := io.ReadAll(r.Body)
	if err := xml.Unmarshal(b, &c); err != nil || r.Header.Get("Content-Type") != "text/xml" {
		http.Error(w, "bad call", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail > 0 {
		s.fail--
		http.Error(w, "busy", http.StatusInternalServerError)
		return
	}
	s.calls = append(s.calls, append([]string{c.Method}, c.Params...))
	io.WriteString(w, s.reply)
	s.got <- struct{}{}
}

func startNotifier(t *testing.T, cfg Config) *Notifier {
	t.Helper()
	n := New(cfg, Options{Backoff: 10 * time.Millisecond, Timeout: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return n
}

func ended(reason switchboard.EndReason, labels map[string]string) switchboard.Ended {
	return switchboard.Ended{Session: &switchboard.Session{ID: "s1", Switchboard: "edge", Labels: labels},
		Reason: reason, At: time.Now()}
}

var ngCall = map[string]string{"owner": "calls", "call-id": "c1@host", "offerer-tag": "ft", "answerer-tag": "tt"}

func wait(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("no notification within 5 s")
	}
}

func TestKamailioFormatTerminatesTheDialogOncePerCallAfterRetries(t *testing.T) {
	rpc := &rpcServer{fail: 2, got: make(chan struct{}, 4), reply: "<methodResponse><params></params></methodResponse>"}
	srv := httptest.NewServer(rpc)
	defer srv.Close()
	n := startNotifier(t, Config{XMLRPCURL: srv.URL + "/RPC2", XMLRPCFormat: XMLRPCKamailio})
	n.SessionEnded(ended(switchboard.EndMediaTimeout, ngCall))
	n.SessionEnded(ended(switchboard.EndMediaTimeout, ngCall)) // the call's second stream
	n.SessionEnded(ended(switchboard.EndDeleted, map[string]string{"call-id": "c2", "offerer-tag": "a", "answerer-tag": "b"}))
	wait(t, rpc.got)
	time.Sleep(100 * time.Millisecond)
	rpc.mu.Lock()
	defer rpc.mu.Unlock()
	want := [][]string{{"dlg.terminate_dlg", "c1@host", "ft", "tt"}}
	if diff := cmp.Diff(want, rpc.calls); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

func TestTeardownFormatNamesTheCallIDEvenUnanswered(t *testing.T) {
	rpc := &rpcServer{got: make(chan struct{}, 4)}
	srv := httptest.NewServer(rpc)
	defer srv.Close()
	n := startNotifier(t, Config{XMLRPCURL: srv.URL, XMLRPCFormat: XMLRPCTeardown})
	n.SessionEnded(ended(switchboard.EndRingingTimeout, map[string]string{"call-id": "c3", "offerer-tag": "ft"}))
	wait(t, rpc.got)
	rpc.mu.Lock()
	defer rpc.mu.Unlock()
	if diff := cmp.Diff([][]string{{"teardown", "c3"}}, rpc.calls); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

func TestAFaultIsRetriedUnlessTheDialogIsGone(t *testing.T) {
	for _, tc := range []struct {
		name, fault string
		wantErr     bool
	}{
		{"dialog not found is done", "<methodResponse><fault><value><string>Dialog not found</string></value></fault></methodResponse>", false},
		{"another fault fails", "<methodResponse><fault><value><string>busy</string></value></fault></methodResponse>", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, tc.fault) }))
			defer srv.Close()
			n := New(Config{}, Options{})
			err := n.post(context.Background(), srv.URL, []byte("<methodCall/>"))
			if (err != nil) != tc.wantErr {
				t.Errorf("post = %v, want error: %v", err, tc.wantErr)
			}
		})
	}
}

func TestRTPProxyNotificationWritesTheTagToTheNotifySocket(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ network, addr, sock string }{
		{"tcp", "127.0.0.1:0", "tcp:"},
		{"unix", filepath.Join(dir, "timeout.sock"), "unix:"},
	} {
		t.Run(tc.network, func(t *testing.T) {
			l, err := net.Listen(tc.network, tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			got := make(chan string, 1)
			go func() {
				c, err := l.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				line, _ := bufio.NewReader(c).ReadString('\n')
				got <- line
			}()
			n := startNotifier(t, Config{})
			n.SessionEnded(ended(switchboard.EndMediaTimeout, map[string]string{"rtpproxy-call-id": "r1",
				calls.LabelNotifySocket: tc.sock + l.Addr().String(), calls.LabelNotifyTag: "1234%3A5678"}))
			select {
			case line := <-got:
				if line != "1234:5678\n" {
					t.Errorf("notification %q, want %q", line, "1234:5678\n")
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no notification within 5 s")
			}
		})
	}
}

func TestAFullQueueDropsRatherThanBlocks(t *testing.T) {
	n := New(Config{XMLRPCURL: "http://127.0.0.1:9/", XMLRPCFormat: XMLRPCTeardown}, Options{QueueLength: 2})
	done := make(chan struct{})
	go func() {
		for i := range 10 {
			n.SessionEnded(ended(switchboard.EndMediaTimeout, map[string]string{"call-id": string(rune('a' + i))}))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("SessionEnded blocked on a full queue")
	}
	if len(n.queue) != 2 {
		t.Errorf("%d queued, want the queue's 2", len(n.queue))
	}
}

func TestBadNotifySocketsAreNamed(t *testing.T) {
	for _, sock := range []string{"udp:127.0.0.1:9", "tcp:nohost"} {
		if _, _, err := notifyAddr(sock); err == nil {
			t.Errorf("notifyAddr(%q) accepted", sock)
		}
	}
}
