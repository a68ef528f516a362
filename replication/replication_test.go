package replication

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/nftrtpproxy/nftrtpproxy/relay"
	"github.com/nftrtpproxy/nftrtpproxy/relay/relaytest"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
	"github.com/redis/go-redis/v9"
)

const config = `state-dir = %q
[[switchboard]]
name = "edge"
gate-a = { address = "192.0.2.1", ports = "30000-30099" }
gate-b = { address = "10.0.0.1", ports = "30000-30099" }
`

const prefix = "t:"

// router is a Manager over an in-memory dataplane.
type router struct {
	m   *switchboard.Manager
	mem *relaytest.Memory
}

func newRouter(t *testing.T, opts switchboard.Options) *router {
	t.Helper()
	cfg, err := switchboard.ParseConfig(fmt.Appendf(nil, config, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	r := &router{mem: relaytest.NewMemory()}
	r.m = switchboard.NewManager(cfg, r.mem, opts)
	if err := r.m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.m.Close() })
	return r
}

func (r *router) legs(t *testing.T) []relay.Leg {
	t.Helper()
	l, err := r.mem.Legs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(l, func(i, j int) bool { return l[i].Mark < l[j].Mark })
	return l
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// lab is an active router publishing and a standby following through one
// Redis.
type lab struct {
	redis           *miniredis.Miniredis
	pub             *Publisher
	fol             *Follower
	active, standby *router
	cancel          context.CancelFunc
	done            chan struct{}
}

func newLab(t *testing.T, queue int) *lab {
	t.Helper()
	l := &lab{redis: miniredis.RunT(t)}
	client := func() *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: l.redis.Addr(), DialTimeout: 200 * time.Millisecond,
			ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond, MaxRetries: -1})
		t.Cleanup(func() { c.Close() })
		return c
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	l.pub = NewPublisher(client(), prefix, queue, log.With("side", "pub"))
	l.fol = NewFollower(client(), prefix, log.With("side", "fol"))
	l.active = newRouter(t, switchboard.Options{Replica: l.pub})
	l.standby = newRouter(t, switchboard.Options{Standby: true})
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel, l.done = cancel, make(chan struct{})
	go func() {
		defer close(l.done)
		done := make(chan struct{})
		go func() { _ = l.fol.Run(ctx, l.standby.m); close(done) }()
		_ = l.pub.Run(ctx, l.active.m)
		<-done
	}()
	t.Cleanup(l.stop)
	return l
}

func (l *lab) stop() {
	l.cancel()
	<-l.done
}

func (l *lab) alloc(t *testing.T, peer string) *switchboard.Session {
	t.Helper()
	s, err := l.active.m.Alloc(context.Background(), switchboard.AllocRequest{Switchboard: "edge",
		A: switchboard.Endpoint{RTP: netip.MustParseAddrPort(peer)}, B: switchboard.Endpoint{RTP: netip.MustParseAddrPort("10.0.0.77:5000")},
		Labels: map[string]string{"call": peer}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// waitInSync waits until the standby reports in sync and holds the
// active's legs.
func (l *lab) waitInSync(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		want, got := l.active.legs(t), l.standby.legs(t)
		d := cmp.Diff(want, got, cmp.Comparer(func(a, b relay.Leg) bool { return a == b }))
		if d == "" && l.fol.Status().InSync && l.pub.Status().InSync {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("standby not in sync (publisher %+v, follower %+v); legs (-active +standby):\n%s", l.pub.Status(), l.fol.Status(), d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sessionKeys are the session keys in Redis.
func (l *lab) sessionKeys() []string {
	var out []string
	for _, k := range l.redis.Keys() {
		if strings.HasPrefix(k, prefix+"session:") {
			out = append(out, strings.TrimPrefix(k, prefix+"session:"))
		}
	}
	sort.Strings(out)
	return out
}

func ids(ss []*switchboard.Session) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.ID)
	}
	sort.Strings(out)
	return out
}

func TestStandbyFollowsEveryChange(t *testing.T) {
	l := newLab(t, 100)
	ctx := context.Background()
	s := l.alloc(t, "192.0.2.10:4000")
	gone := l.alloc(t, "192.0.2.11:4000")
	l.waitInSync(t)
	mark := relay.Mark(4*s.Index + 2) // b-side RTP, from another port (NAT): learned at once
	l.active.m.Learn(l.active.mem.NewFlow(relay.Flow{Mark: mark, Src: netip.MustParseAddrPort("10.0.0.77:9000"), Dst: s.GateB}))
	if err := l.active.m.Delete(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	l.waitInSync(t)
	got, err := l.standby.m.Get(s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.B.Learned.RTP != netip.MustParseAddrPort("10.0.0.77:9000") {
		t.Errorf("standby's learned source = %v, want 10.0.0.77:9000", got.B.Learned.RTP)
	}
	if d := cmp.Diff([]string{s.ID}, l.sessionKeys()); d != "" {
		t.Errorf("session keys in redis (-want +got):\n%s", d)
	}
}

func TestStandbyResynchronisesAfterAGap(t *testing.T) {
	l := newLab(t, 100)
	l.alloc(t, "192.0.2.10:4000")
	l.waitInSync(t)
	// Lose a change: the stream entry vanishes, the key stays.
	l.redis.Del(prefix + "changes")
	l.alloc(t, "192.0.2.11:4000")
	l.alloc(t, "192.0.2.12:4000")
	l.waitInSync(t)
	if got := len(l.standby.m.List()); got != 3 {
		t.Errorf("standby holds %d sessions, want 3", got)
	}
}

func TestRedisDownBlocksNoRequestAndReplicationCatchesUp(t *testing.T) {
	l := newLab(t, 100)
	first := l.alloc(t, "192.0.2.10:4000")
	l.waitInSync(t)
	addr := l.redis.Addr()
	l.redis.Close()
	start := time.Now()
	during := l.alloc(t, "192.0.2.11:4000")
	if err := l.active.m.Delete(context.Background(), first.ID); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Errorf("requests with redis down took %v", took)
	}
	deadline := time.Now().Add(3 * time.Second)
	for l.fol.Status().InSync || l.pub.Status().InSync {
		if time.Now().After(deadline) {
			t.Fatalf("redis down, yet in sync: publisher %+v, follower %+v", l.pub.Status(), l.fol.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Redis returns empty, as a restarted server without persistence.
	l.redis = miniredis.NewMiniRedis()
	if err := l.redis.StartAddr(addr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.redis.Close)
	l.waitInSync(t)
	if d := cmp.Diff([]string{during.ID}, ids(l.standby.m.List())); d != "" {
		t.Errorf("standby's sessions (-want +got):\n%s", d)
	}
}

func TestAFullQueueBecomesASnapshot(t *testing.T) {
	l := newLab(t, 1)
	l.waitInSync(t)
	l.redis.SetError("LOADING slow") // every command fails until cleared
	for i := range 5 {
		l.alloc(t, fmt.Sprintf("192.0.2.%d:4000", 20+i))
	}
	if q := l.pub.Status().Queued; q > 1 {
		t.Errorf("queue holds %d changes, limit 1", q)
	}
	l.redis.SetError("")
	l.waitInSync(t)
	if got := len(l.sessionKeys()); got != 5 {
		t.Errorf("redis holds %d session keys, want 5", got)
	}
}
