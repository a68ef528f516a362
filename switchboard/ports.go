package switchboard

import "fmt"

// ports hands out RTP/RTCP port pairs (even port, next odd port) from one
// gate's range. It goes round the range rather than reusing the lowest free
// pair, so a pair released by one call is the last to serve the next: late
// packets of an old call do not land in a new one. Not safe for concurrent
// use; Manager serialises access.
type ports struct {
	first uint16 // first even port of the range
	used  []bool // by pair index
	next  int    // where the next search starts
	free  int
}

func newPorts(r PortRange) *ports {
	first := r.First + r.First%2
	n := r.Pairs()
	return &ports{first: first, used: make([]bool, n), free: n}
}

// take allocates the next free pair and returns its RTP (even) port.
func (p *ports) take() (uint16, bool) {
	if p.free == 0 {
		return 0, false
	}
	for i := range p.used {
		idx := (p.next + i) % len(p.used)
		if !p.used[idx] {
			p.used[idx] = true
			p.free--
			p.next = (idx + 1) % len(p.used)
			return p.first + uint16(2*idx), true
		}
	}
	return 0, false
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
