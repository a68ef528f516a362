package conffile

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestOwnersDecodeTheirKeysAndTheRestIsUnknown(t *testing.T) {
	t.Parallel()
	f, err := Parse([]byte("a = \"x\"\nb = 3\n[t]\nd = \"2s\"\ne = 1\n[u]\nv = 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	var a string
	var tab struct {
		D Duration `toml:"d"`
	}
	missing := "kept"
	for key, v := range map[string]any{"a": &a, "t": &tab, "absent": &missing} {
		if err := f.Decode(key, v); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
	}
	if a != "x" || time.Duration(tab.D) != 2*time.Second || missing != "kept" {
		t.Errorf("a %q, t.d %v, absent %q", a, time.Duration(tab.D), missing)
	}
	if diff := cmp.Diff(`unknown key "b", "t.e", "u", "u.v"`, errString(f.Unknown())); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestADecodingErrorComesBeforeUnknownKeys(t *testing.T) {
	t.Parallel()
	f, err := Parse([]byte("x = 1\n[t]\nd = \"soon\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	var tab struct {
		D Duration `toml:"d"`
	}
	want := `line 3: invalid duration "soon" (want "10s" or seconds)`
	if diff := cmp.Diff(want, errString(f.Decode("t", &tab))); diff != "" {
		t.Errorf("Decode (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, errString(f.Unknown())); diff != "" {
		t.Errorf("Unknown (-want +got):\n%s", diff)
	}
}

func TestASyntaxErrorNamesItsLine(t *testing.T) {
	t.Parallel()
	_, err := Parse([]byte("a = 1\nb = \n"))
	if diff := cmp.Diff(`line 2: expected value but found '\n' instead`, errString(err)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
