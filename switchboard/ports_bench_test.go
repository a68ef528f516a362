package switchboard

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkPortsTakeRelease measures one RTP/RTCP pair taken and released
// on a gate of 32,256 pairs (ports 1024-65535) that is empty or already
// holds a share of live sessions. The free pairs of a filled gate are
// scattered (calls end in random order), so take searches from where it
// left off: the cost of a full gate is the price of going round the range.
func BenchmarkPortsTakeRelease(b *testing.B) {
	for _, pct := range []int{0, 50, 90, 99} {
		b.Run(fmt.Sprintf("used=%d%%", pct), func(b *testing.B) {
			p := scatteredPorts(b, PortRange{First: 1024, Last: 65535}, pct)
			b.ReportAllocs()
			for b.Loop() {
				port, ok := p.take()
				if !ok {
					b.Fatal("ran out of ports")
				}
				p.release(port)
			}
		})
	}
}

// scatteredPorts returns a gate with pct percent of its pairs in use: all
// taken, then a random (seeded) selection released.
func scatteredPorts(b *testing.B, r PortRange, pct int) *ports {
	b.Helper()
	p := newPorts(r)
	taken := make([]uint16, 0, len(p.used))
	for {
		port, ok := p.take()
		if !ok {
			break
		}
		taken = append(taken, port)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(taken), func(i, j int) { taken[i], taken[j] = taken[j], taken[i] })
	for _, port := range taken[:len(taken)*(100-pct)/100] {
		p.release(port)
	}
	if p.free == 0 {
		b.Fatalf("gate of %d pairs left with no free pair at %d%% used", len(p.used), pct)
	}
	return p
}
