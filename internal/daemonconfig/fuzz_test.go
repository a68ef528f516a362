package daemonconfig

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds the whole daemon configuration (every table, as the
// daemon reads it) with the examples as seeds: no panic, every refusal
// says something, and what parses names a state directory, switchboards
// and only configured switchboards as the default.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "examples", "*.toml"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(string(b))
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse([]byte(s))
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an empty error message")
			}
			return
		}
		if c.Config == nil || c.StateDir == "" || len(c.Switchboards) == 0 {
			t.Fatalf("accepted a configuration without state-dir or switchboards:\n%s", s)
		}
	})
}
