package replication

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
	"github.com/redis/go-redis/v9"
)

// Snapshotter hands out every session's record (switchboard.Manager).
type Snapshotter interface {
	Snapshot(fn func(recs map[string][]byte)) error
}

// change is one committed session change waiting for Redis.
type change struct {
	id  string
	rec []byte // nil: deleted
}

// Publisher writes the active router's session changes to Redis. It is the
// Manager's switchboard.Replica: Committed only queues, so Redis down or
// slow never blocks a request. Run writes the queue. Safe for concurrent
// use.
type Publisher struct {
	rdb   redis.UniversalClient
	keys  keys
	limit int
	log   *slog.Logger

	mu       sync.Mutex
	queue    []change
	stale    bool // the queue lost changes, or Redis lost writes: snapshot
	epoch    string
	seq      uint64
	lastErr  error
	lastSync time.Time
	ready    chan struct{} // signalled when the queue grows
}

var _ switchboard.Replica = (*Publisher)(nil)

// streamLen bounds the change stream (approximately): a standby further
// behind resynchronises from the snapshot anyway.
const streamLen = 100000

// keepChunk bounds the commands of one pipeline of a snapshot.
const keepChunk = 1000

// heartbeat is how often an idle publisher checks that Redis still holds
// its snapshot (a restarted Redis may have come back empty).
const heartbeat = time.Second

// NewPublisher returns a publisher writing with rdb under prefix, queueing
// at most limit changes.
func NewPublisher(rdb redis.UniversalClient, prefix string, limit int, log *slog.Logger) *Publisher {
	return &Publisher{rdb: rdb, keys: keys(prefix), limit: limit, log: orDiscard(log),
		stale: true, ready: make(chan struct{}, 1)}
}

// Committed queues a committed change; it never blocks. A change beyond the
// queue's limit empties the queue and asks Run for a snapshot.
func (p *Publisher) Committed(id string, rec []byte) {
	p.mu.Lock()
	if len(p.queue) >= p.limit {
		if !p.stale {
			p.log.Warn("replication queue full; the standby gets a snapshot once Redis keeps up", "limit", p.limit)
		}
		p.queue, p.stale = nil, true
	} else {
		if isDelete(rec) {
			rec = nil
		}
		p.queue = append(p.queue, change{id: id, rec: rec})
	}
	p.mu.Unlock()
	select {
	case p.ready <- struct{}{}:
	default:
	}
}

// isDelete reports whether rec is a journal "del" record.
func isDelete(rec []byte) bool {
	var r struct {
		Op string `json:"op"`
	}
	return json.Unmarshal(rec, &r) == nil && r.Op == "del"
}

// Run writes queued changes to Redis until ctx is done, starting with a
// snapshot of snap. After a failed write it retries, with a new snapshot,
// backing off up to a second. It returns nil on cancel.
func (p *Publisher) Run(ctx context.Context, snap Snapshotter) error {
	p.mu.Lock()
	p.stale = true
	p.mu.Unlock()
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	const firstBackoff = 50 * time.Millisecond
	backoff := firstBackoff
	for {
		err := p.step(ctx, snap)
		if ctx.Err() != nil {
			return nil
		}
		pending := p.note(err)
		ready, wait := p.ready, (<-chan time.Time)(nil)
		if err != nil {
			ready, wait = nil, time.After(backoff)
			backoff = min(2*backoff, time.Second)
		} else {
			backoff = firstBackoff
			if pending {
				continue
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ready:
		case <-wait:
		case <-tick.C:
			if err == nil {
				p.checkEpoch(ctx)
			}
		}
	}
}

// note records the outcome of a step and reports whether work is pending.
// A failed write may have lost changes: the next step writes a snapshot.
func (p *Publisher) note(err error) (pending bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case err != nil && p.lastErr == nil:
		p.log.Warn("replication to redis failed; calls go on, the standby is behind", "err", err)
	case err == nil && p.lastErr != nil:
		p.log.Info("replication to redis resumed", "epoch", p.epoch)
	}
	p.lastErr = err
	if err != nil {
		p.stale = true
	}
	return p.stale || len(p.queue) > 0
}

// step writes a snapshot if one is due, else the queued changes.
func (p *Publisher) step(ctx context.Context, snap Snapshotter) error {
	p.mu.Lock()
	stale := p.stale
	p.mu.Unlock()
	if stale {
		return p.snapshot(ctx, snap)
	}
	return p.flush(ctx)
}

// checkEpoch asks for a snapshot when Redis no longer holds this
// publisher's epoch (it restarted without its data, or another router
// wrote one).
func (p *Publisher) checkEpoch(ctx context.Context) {
	got, err := p.rdb.Get(ctx, p.keys.epoch()).Result()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil && got == p.epoch {
		return
	}
	if err != nil && err != redis.Nil {
		p.lastErr = err
	} else {
		p.log.Warn("redis lost the replicated sessions; writing a snapshot", "epoch", p.epoch, "found", got)
	}
	p.stale = true
	select {
	case p.ready <- struct{}{}:
	default:
	}
}

// flush writes the queued changes in one MULTI/EXEC: each change's key and
// stream entry, numbered on from the last.
func (p *Publisher) flush(ctx context.Context) error {
	p.mu.Lock()
	batch, epoch, seq := p.queue, p.epoch, p.seq
	p.queue = nil
	p.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	_, err := p.rdb.TxPipelined(ctx, func(tx redis.Pipeliner) error {
		for _, c := range batch {
			seq++
			op := "put"
			if c.rec == nil {
				op = "del"
				tx.Del(ctx, p.keys.session(c.id))
			} else {
				tx.Set(ctx, p.keys.session(c.id), c.rec, 0)
			}
			tx.XAdd(ctx, &redis.XAddArgs{Stream: p.keys.stream(), MaxLen: streamLen, Approx: true,
				Values: []any{"epoch", epoch, "seq", strconv.FormatUint(seq, 10), "op", op, "id", c.id, "rec", c.rec}})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("replication: publish %d changes: %w", len(batch), err)
	}
	p.mu.Lock()
	p.seq = seq
	p.mu.Unlock()
	return nil
}

// snapshot writes every session under a new epoch: the keys first, stale
// keys deleted, then the epoch key and a "sync" entry, so that a standby
// that sees the entry finds the whole snapshot. The queue is emptied while
// the Manager is locked: every queued change is in the snapshot.
func (p *Publisher) snapshot(ctx context.Context, snap Snapshotter) error {
	var recs map[string][]byte
	err := snap.Snapshot(func(r map[string][]byte) {
		recs = r
		p.mu.Lock()
		p.queue, p.stale = nil, false
		p.mu.Unlock()
	})
	if err != nil {
		return err
	}
	epoch := newEpoch()
	fail := func(err error) error {
		p.mu.Lock()
		p.stale = true
		p.mu.Unlock()
		return fmt.Errorf("replication: snapshot of %d sessions: %w", len(recs), err)
	}
	if err := p.deleteStale(ctx, recs); err != nil {
		return fail(err)
	}
	if err := p.writeAll(ctx, recs); err != nil {
		return fail(err)
	}
	_, err = p.rdb.TxPipelined(ctx, func(tx redis.Pipeliner) error {
		tx.Set(ctx, p.keys.epoch(), epoch, 0)
		tx.XAdd(ctx, &redis.XAddArgs{Stream: p.keys.stream(), MaxLen: streamLen, Approx: true,
			Values: []any{"epoch", epoch, "seq", "0", "op", "sync"}})
		return nil
	})
	if err != nil {
		return fail(err)
	}
	p.mu.Lock()
	p.epoch, p.seq, p.lastSync = epoch, 0, time.Now()
	p.mu.Unlock()
	p.log.Info("replication snapshot written", "sessions", len(recs), "epoch", epoch)
	return nil
}

// deleteStale deletes the session keys of sessions not in recs.
func (p *Publisher) deleteStale(ctx context.Context, recs map[string][]byte) error {
	var stale []string
	iter := p.rdb.Scan(ctx, 0, p.keys.session("*"), 1000).Iterator()
	for iter.Next(ctx) {
		if _, ok := recs[p.keys.idOf(iter.Val())]; !ok {
			stale = append(stale, iter.Val())
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	for len(stale) > 0 {
		n := min(len(stale), keepChunk)
		if err := p.rdb.Del(ctx, stale[:n]...).Err(); err != nil {
			return err
		}
		stale = stale[n:]
	}
	return nil
}

// writeAll sets every session's key, in pipelines of keepChunk.
func (p *Publisher) writeAll(ctx context.Context, recs map[string][]byte) error {
	pipe := p.rdb.Pipeline()
	for id, rec := range recs {
		pipe.Set(ctx, p.keys.session(id), rec, 0)
		if pipe.Len() >= keepChunk {
			if _, err := pipe.Exec(ctx); err != nil {
				return err
			}
		}
	}
	_, err := pipe.Exec(ctx)
	return err
}

// PublisherStatus is what a publisher reports.
type PublisherStatus struct {
	// InSync: Redis holds every committed change.
	InSync  bool   `json:"in_sync"`
	Epoch   string `json:"epoch,omitempty"`
	Seq     uint64 `json:"seq"`
	Queued  int    `json:"queued"`
	LastErr string `json:"last_error,omitempty"`
}

// Status reports whether Redis holds every committed change.
func (p *Publisher) Status() PublisherStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := PublisherStatus{InSync: !p.stale && p.lastErr == nil && len(p.queue) == 0,
		Epoch: p.epoch, Seq: p.seq, Queued: len(p.queue)}
	if p.lastErr != nil {
		s.LastErr = p.lastErr.Error()
	}
	return s
}

func newEpoch() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
