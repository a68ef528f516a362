package switchboard

import (
	cryptorand "crypto/rand"
	"fmt"
	"math/rand/v2"
)

// ports hands out RTP/RTCP port pairs (even port, next odd port) from one
// gate's range. A pair is chosen at random among the free ones (a ChaCha8
// generator, cryptographically strong, seeded from crypto/rand: as
// unpredictable as crypto/rand without its allocations and its lock), so
// that nobody can tell which ports the next call gets: a stranger who
// sprays a range has no better target than any other. Not safe for
// concurrent use; Manager serialises access.
type ports struct {
	first uint16 // first even port of the range
	used  []bool // by pair index
	free  int
	rng   *rand.Rand
	// pick returns a number in [0, n); nil means rng. Tests set it to
	// choose pairs in order.
	pick func(n int) int
}

func newPorts(r PortRange) *ports {
	first := r.First + r.First%2
	n := r.Pairs()
	var seed [32]byte
	_, _ = cryptorand.Read(seed[:]) // never fails on Linux since Go 1.24
	return &ports{first: first, used: make([]bool, n), free: n, rng: rand.New(rand.NewChaCha8(seed))}
}

// randomTries bounds the draws among all pairs before take counts through
// the free ones: each draw hits a free pair with probability free/pairs.
const randomTries = 16

// take allocates a free pair chosen uniformly at random and returns its RTP
// (even) port: a draw among all pairs that lands on a free one is taken
// (uniform among the free ones); a nearly full range takes the k-th free
// pair for a random k instead.
func (p *ports) take() (uint16, bool) {
	if p.free == 0 {
		return 0, false
	}
	idx := -1
	for range randomTries {
		if i := p.random(len(p.used)); !p.used[i] {
			idx = i
			break
		}
	}
	if idx < 0 {
		k := p.random(p.free)
		for i, u := range p.used {
			if !u {
				if k == 0 {
					idx = i
					break
				}
				k--
			}
		}
	}
	p.used[idx] = true
	p.free--
	return p.first + uint16(2*idx), true
}

func (p *ports) random(n int) int {
	if p.pick != nil {
		return p.pick(n)
	}
	return p.rng.IntN(n)
}

// claim marks the pair starting at rtp as used (restoring a session).
func (p *ports) claim(rtp uint16) error {
	idx, err := p.index(rtp)
	if err != nil {
		return err
	}
	if p.used[idx] {
		return fmt.Errorf("port %d is already in use", rtp)
	}
	p.used[idx] = true
	p.free--
	return nil
}

// release frees the pair starting at rtp; releasing a free pair is a no-op.
func (p *ports) release(rtp uint16) {
	if idx, err := p.index(rtp); err == nil && p.used[idx] {
		p.used[idx] = false
		p.free++
	}
}

func (p *ports) index(rtp uint16) (int, error) {
	if rtp < p.first || (rtp-p.first)%2 != 0 || int(rtp-p.first)/2 >= len(p.used) {
		return 0, fmt.Errorf("port %d is not an RTP port of the range", rtp)
	}
	return int(rtp-p.first) / 2, nil
}

// inUse is the number of pairs taken.
func (p *ports) inUse() int { return len(p.used) - p.free }
