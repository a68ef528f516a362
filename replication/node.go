package replication

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
	"github.com/redis/go-redis/v9"
)

// Manager is what a Node drives: a switchboard.Manager created with
// Options.Standby and the Node's Replica.
type Manager interface {
	Snapshotter
	Applier
	Promote()
	Demote()
}

var _ Manager = (*switchboard.Manager)(nil)

// Node is one router of a pair: active while it holds the role addresses,
// standby otherwise. Safe for concurrent use.
type Node struct {
	addrs []netip.Addr
	rdb   *redis.Client
	pub   *Publisher
	fol   *Follower
	log   *slog.Logger

	mu     sync.Mutex
	active bool
	since  time.Time
}

// NewNode returns a node for cfg; it connects to Redis lazily, so a Redis
// that is down does not stop the daemon from starting.
func NewNode(cfg Config, log *slog.Logger) *Node {
	log = orDiscard(log).With("part", "replication")
	rdb := redis.NewClient(&redis.Options{Addr: cfg.Redis, DialTimeout: cfg.Timeout,
		ReadTimeout: cfg.Timeout, WriteTimeout: cfg.Timeout, MaxRetries: -1, PoolSize: 4})
	return &Node{addrs: cfg.RoleAddresses, rdb: rdb, log: log, since: time.Now(),
		pub: NewPublisher(rdb, cfg.KeyPrefix, cfg.Queue, log),
		fol: NewFollower(rdb, cfg.KeyPrefix, log)}
}

// Replica is what the Manager hands its committed changes to.
func (n *Node) Replica() switchboard.Replica { return n.pub }

// Run drives mgr in the role the router's addresses give it until ctx is
// done. While active it runs the publisher and active(ctx) (the Manager's
// timers and the control front ends, which restore their call tables from
// the sessions' labels when they start); on losing the addresses it
// cancels that context, waits for active to return, demotes the Manager and
// follows the new active router. An error from active ends Run. It returns
// nil on cancel.
func (n *Node) Run(ctx context.Context, mgr Manager, active func(ctx context.Context) error) error {
	roles := make(chan bool, 1)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go func() {
		_ = watchRole(watchCtx, n.addrs, func(a bool) {
			select {
			case <-roles: // only the latest role counts
			default:
			}
			roles <- a
		})
	}()
	var t *term
	defer func() { t.stop() }()
	for {
		var ended <-chan error
		if t != nil {
			ended = t.done
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-ended:
			return err
		case a := <-roles:
			if t != nil && a == n.Active() {
				continue
			}
			t.stop()
			t = n.begin(ctx, mgr, a, active)
		}
	}
}

// term is one spell in a role.
type term struct {
	cancel context.CancelFunc
	done   chan error
}

func (t *term) stop() {
	if t == nil {
		return
	}
	t.cancel()
	<-t.done
}

// begin enters the active or standby role.
func (n *Node) begin(ctx context.Context, mgr Manager, active bool, run func(context.Context) error) *term {
	n.mu.Lock()
	n.active, n.since = active, time.Now()
	n.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	t := &term{cancel: cancel, done: make(chan error, 1)}
	if !active {
		mgr.Demote()
		n.log.Info("standby: following the active router")
		go func() { t.done <- n.fol.Run(ctx, mgr) }()
		return t
	}
	mgr.Promote()
	n.log.Info("active: this router holds the role addresses", "addresses", fmt.Sprint(n.addrs))
	go func() {
		pub := make(chan error, 1)
		go func() { pub <- n.pub.Run(ctx, mgr) }()
		err := run(ctx)
		cancel()
		<-pub
		t.done <- err
	}()
	return t
}

// Active reports whether the router holds the role addresses.
func (n *Node) Active() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.active
}

// InSync reports whether replication is complete: on the active router,
// Redis holds every committed change; on the standby, the standby holds
// every change the active router published.
func (n *Node) InSync() bool {
	if n.Active() {
		return n.pub.Status().InSync
	}
	return n.fol.Status().InSync
}

// Status is a router's replication state as GET /v1/replication shows it.
type Status struct {
	Role   string    `json:"role"` // "active" or "standby"
	Since  time.Time `json:"since"`
	InSync bool      `json:"in_sync"`
	// Publisher is the active router's view; Follower the standby's.
	Publisher *PublisherStatus `json:"publisher,omitempty"`
	Follower  *FollowerStatus  `json:"follower,omitempty"`
}

// Status reports the router's role and whether it is in sync.
func (n *Node) Status() Status {
	n.mu.Lock()
	st := Status{Role: "standby", Since: n.since}
	active := n.active
	n.mu.Unlock()
	if active {
		p := n.pub.Status()
		st.Role, st.InSync, st.Publisher = "active", p.InSync, &p
	} else {
		f := n.fol.Status()
		st.InSync, st.Follower = f.InSync, &f
	}
	return st
}

// ServeHTTP answers GET /v1/replication with Status as JSON.
func (n *Node) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(n.Status())
}

// Close closes the Redis client.
func (n *Node) Close() error { return n.rdb.Close() }
