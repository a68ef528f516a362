package relay

import "testing"

func TestSetSizeLeavesHeadroomAndRoundsUp(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		ports int
		want  uint32
	}{
		{0, minSetSize},
		{200, minSetSize},
		{205, minSetSize}, // 205 + 51 fits
		{206, 512},        // 206 + 51 does not
		{10000, 16384},    // 12,500
		{13107, 16384},    // 16,383
		{13108, 32768},    // 16,385
		{65536, 131072},
	} {
		if got := setSize(c.ports); got != c.want {
			t.Errorf("setSize(%d) = %d, want %d", c.ports, got, c.want)
		}
	}
}
