package ng

import (
	"sync"
	"time"
)

// replyCache remembers the reply to each request by sender and cookie, so
// that a retransmission (Kamailio resends the same datagram, same cookie,
// up to rtpengine_retr times, by default 5, a second apart) is answered
// without executing the command again. An entry exists from the moment the
// first copy arrives: copies that arrive while it is processed are parked
// and answered when it completes, one reply per copy, as rtpengine does.
//
// Entries leave after ttl, or oldest first when max are held or their
// bytes (sender, cookie and reply, plus entryOverhead each) exceed budget;
// an entry that leaves while in flight still answers the copies parked on
// it.
// arrive is called from one goroutine (the read loop) with a clock that
// does not go back; complete from any. Safe for concurrent use.
type replyCache struct {
	ttl       time.Duration
	max       int
	budget    int
	maxParked int

	mu      sync.Mutex
	bytes   int // held by the entries, as size counts them
	entries map[cacheKey]*cacheEntry
	queue   []*cacheEntry // by arrival, oldest at head
	head    int
}

type cacheKey struct{ from, cookie string }

type cacheEntry struct {
	key    cacheKey
	at     time.Time
	reply  []byte // the whole reply datagram; nil while in flight
	parked int    // copies that arrived in flight
	size   int    // bytes counted against the budget
}

// entryOverhead approximates what an entry costs beyond its strings: the
// entry, its map slot and its queue slot.
const entryOverhead = 128

// verdict says what to do with an arriving datagram.
type verdict int

const (
	execute verdict = iota // the first copy: process it, then complete the entry
	replay                 // answered before: send the cached reply
	park                   // in flight: complete will answer this copy too
	drop                   // in flight with maxParked copies parked already
)

func newReplyCache(ttl time.Duration, max, budget, maxParked int) *replyCache {
	return &replyCache{ttl: ttl, max: max, budget: budget, maxParked: maxParked, entries: map[cacheKey]*cacheEntry{}}
}

// arrive looks k up at time now. For replay it returns the reply; for
// execute the new entry, which the caller must complete.
func (c *replyCache) arrive(k cacheKey, now time.Time) (verdict, *cacheEntry, []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(now)
	if e := c.entries[k]; e != nil {
		switch {
		case e.reply != nil:
			return replay, e, e.reply
		case e.parked < c.maxParked:
			e.parked++
			return park, e, nil
		}
		return drop, e, nil
	}
	e := &cacheEntry{key: k, at: now, size: entryOverhead + len(k.from) + len(k.cookie)}
	for len(c.entries) > 0 && (len(c.entries) >= c.max || c.bytes+e.size > c.budget) {
		c.pop()
	}
	c.entries[k] = e
	c.bytes += e.size
	c.queue = append(c.queue, e)
	return execute, e, nil
}

// complete stores the reply of an entry arrive returned for execute and
// returns how many parked copies to answer besides the first.
func (c *replyCache) complete(e *cacheEntry, reply []byte) (parked int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e.reply, parked, e.parked = reply, e.parked, 0
	if c.entries[e.key] == e {
		e.size += len(reply)
		c.bytes += len(reply)
		for c.bytes > c.budget && c.head < len(c.queue) {
			c.pop()
		}
	}
	return parked
}

// expire drops the entries older than ttl.
func (c *replyCache) expire(now time.Time) {
	for c.head < len(c.queue) && now.Sub(c.queue[c.head].at) >= c.ttl {
		c.pop()
	}
}

// pop drops the oldest entry.
func (c *replyCache) pop() {
	e := c.queue[c.head]
	c.queue[c.head] = nil
	c.head++
	if c.entries[e.key] == e {
		delete(c.entries, e.key)
		c.bytes -= e.size
	}
	if c.head > len(c.queue)/2 && c.head > 64 { // reuse the space behind
		n := copy(c.queue, c.queue[c.head:])
		clear(c.queue[n:])
		c.queue, c.head = c.queue[:n], 0
	}
}

// len returns the number of entries held and their bytes.
func (c *replyCache) len() (entries, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries), c.bytes
}
