package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Applier takes the active router's changes (switchboard.Manager as a
// standby).
type Applier interface {
	ApplyReplica(ctx context.Context, rec []byte) error
	ReplaceReplica(ctx context.Context, recs [][]byte) error
}

// Follower keeps a standby's sessions in step with what the active
// router publishes. Safe for concurrent use.
type Follower struct {
	rdb  redis.UniversalClient
	keys keys
	log  *slog.Logger

	mu      sync.Mutex
	inSync  bool
	epoch   string
	seq     uint64
	applied int
	lastErr error
	since   time.Time // when inSync last changed
}

// block is how long one XREAD waits for changes.
const block = time.Second

// errResync: the stream does not continue what the follower applied.
var errResync = errors.New("resynchronising")

// NewFollower returns a follower reading with rdb under prefix.
func NewFollower(rdb redis.UniversalClient, prefix string, log *slog.Logger) *Follower {
	return &Follower{rdb: rdb, keys: keys(prefix), log: orDiscard(log), since: time.Now()}
}

// Run follows the stream until ctx is done, resynchronising from the
// snapshot at the start and whenever it lost track. It returns nil on
// cancel.
func (f *Follower) Run(ctx context.Context, to Applier) error {
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		err := f.follow(ctx, to)
		if ctx.Err() != nil {
			break
		}
		f.setSync(false, err)
		if errors.Is(err, errResync) {
			backoff = 50 * time.Millisecond
			continue
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
	f.setSync(false, nil)
	return nil
}

// follow resynchronises, then applies changes until it loses track.
func (f *Follower) follow(ctx context.Context, to Applier) error {
	last, err := f.resync(ctx, to)
	if err != nil {
		return err
	}
	for {
		streams, err := f.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{f.keys.stream(), last}, Count: 1000, Block: block}).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return fmt.Errorf("replication: read changes: %w", err)
		}
		for _, s := range streams {
			for _, m := range s.Messages {
				if err := f.apply(ctx, to, m); err != nil {
					return err
				}
				last = m.ID
			}
		}
	}
}

// resync replaces the standby's sessions with the snapshot in Redis and
// returns the stream position to follow from. Changes after that position
// may already be in the snapshot; applying them again is harmless, since
// each carries a whole session. Without a complete snapshot (no active
// router wrote one, or Redis restarted empty) the standby keeps its
// sessions and waits for the active router's next one.
func (f *Follower) resync(ctx context.Context, to Applier) (string, error) {
	epoch, err := f.rdb.Get(ctx, f.keys.epoch()).Result()
	if errors.Is(err, redis.Nil) {
		return f.awaitSnapshot(ctx)
	}
	if err != nil {
		return "", fmt.Errorf("replication: read epoch: %w", err)
	}
	last, seq, err := f.tail(ctx, epoch)
	if err != nil {
		return "", err
	}
	recs, err := f.sessions(ctx)
	if err != nil {
		return "", err
	}
	if err := to.ReplaceReplica(ctx, recs); err != nil {
		return "", fmt.Errorf("replication: apply snapshot: %w", err)
	}
	f.mu.Lock()
	f.epoch, f.seq = epoch, seq
	f.mu.Unlock()
	f.setSync(true, nil)
	f.log.Info("standby resynchronised from the snapshot", "sessions", len(recs), "epoch", epoch)
	return last, nil
}

// tail returns the stream's last entry and its sequence number in epoch
// (zero if it belongs to another).
func (f *Follower) tail(ctx context.Context, epoch string) (string, uint64, error) {
	msgs, err := f.rdb.XRevRangeN(ctx, f.keys.stream(), "+", "-", 1).Result()
	if err != nil {
		return "", 0, fmt.Errorf("replication: read changes: %w", err)
	}
	if len(msgs) == 0 {
		return "0", 0, nil
	}
	m := msgs[0]
	if field(m, "epoch") != epoch {
		return m.ID, 0, nil
	}
	seq, _ := strconv.ParseUint(field(m, "seq"), 10, 64)
	return m.ID, seq, nil
}

// awaitSnapshot waits a while for the next entry, then has the caller
// look for a snapshot again.
func (f *Follower) awaitSnapshot(ctx context.Context) (string, error) {
	f.setSync(false, errors.New("redis holds no snapshot yet"))
	err := f.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{f.keys.stream(), "$"}, Count: 1, Block: block}).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("replication: wait for a snapshot: %w", err)
	}
	return "", errResync // look for the epoch again
}

// sessions reads every session key.
func (f *Follower) sessions(ctx context.Context) ([][]byte, error) {
	var names []string
	iter := f.rdb.Scan(ctx, 0, f.keys.session("*"), 1000).Iterator()
	for iter.Next(ctx) {
		names = append(names, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("replication: list sessions: %w", err)
	}
	recs := make([][]byte, 0, len(names))
	for len(names) > 0 {
		n := min(len(names), keepChunk)
		vals, err := f.rdb.MGet(ctx, names[:n]...).Result()
		if err != nil {
			return nil, fmt.Errorf("replication: read sessions: %w", err)
		}
		for _, v := range vals {
			if s, ok := v.(string); ok { // a key deleted since the scan is nil
				recs = append(recs, []byte(s))
			}
		}
		names = names[n:]
	}
	return recs, nil
}

// apply applies one stream entry, or reports errResync when it does not
// follow the last one applied.
func (f *Follower) apply(ctx context.Context, to Applier, m redis.XMessage) error {
	epoch, op := field(m, "epoch"), field(m, "op")
	seq, err := strconv.ParseUint(field(m, "seq"), 10, 64)
	f.mu.Lock()
	want, cur := f.seq+1, f.epoch
	f.mu.Unlock()
	switch {
	case op == "sync":
		f.log.Info("the active router wrote a snapshot", "epoch", epoch)
		return errResync
	case err != nil || epoch != cur || seq != want:
		f.log.Warn("replication gap; resynchronising", "epoch", epoch, "seq", field(m, "seq"), "want_epoch", cur, "want_seq", want)
		return errResync
	}
	rec := []byte(field(m, "rec"))
	if op == "del" {
		rec = fmt.Appendf(nil, `{"op":"del","id":%q}`, field(m, "id"))
	}
	if err := to.ApplyReplica(ctx, rec); err != nil {
		return fmt.Errorf("replication: apply change %d of %s: %w", seq, epoch, err)
	}
	f.mu.Lock()
	f.seq = seq
	f.applied++
	f.mu.Unlock()
	return nil
}

func field(m redis.XMessage, name string) string {
	s, _ := m.Values[name].(string)
	return s
}

func (f *Follower) setSync(in bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if in != f.inSync {
		f.since = time.Now()
		if !in && err != nil && !errors.Is(err, errResync) {
			f.log.Warn("standby not in sync with the active router", "err", err)
		}
	}
	f.inSync = in
	if !errors.Is(err, errResync) {
		f.lastErr = err
	}
}

// FollowerStatus is what a follower reports.
type FollowerStatus struct {
	// InSync: the standby holds every change the active router published.
	InSync  bool      `json:"in_sync"`
	Since   time.Time `json:"since"`
	Epoch   string    `json:"epoch,omitempty"`
	Seq     uint64    `json:"seq"`
	Applied int       `json:"applied"`
	LastErr string    `json:"last_error,omitempty"`
}

// Status reports whether the standby follows the active router.
func (f *Follower) Status() FollowerStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := FollowerStatus{InSync: f.inSync, Since: f.since, Epoch: f.epoch, Seq: f.seq, Applied: f.applied}
	if f.lastErr != nil {
		s.LastErr = f.lastErr.Error()
	}
	return s
}
