package sdp_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/nftrtpproxy/nftrtpproxy/sdp"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.sdp from the current output")

// TestGolden rewrites every testdata/<case>.input.sdp with goldenRewrite
// and compares the result with <case>.golden.sdp. It also checks that
// rewriting the output again changes nothing, that every untargeted line is
// kept byte for byte, and that the output parses to what was asked for.
func TestGolden(t *testing.T) {
	t.Parallel()
	inputs, err := filepath.Glob("testdata/*.input.sdp")
	if err != nil || len(inputs) < 25 {
		t.Fatalf("want at least 25 golden cases, found %d (%v)", len(inputs), err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".input.sdp")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testGolden(t, name, in)
		})
	}
}

func testGolden(t *testing.T, name, in string) {
	input := readFile(t, in)
	before := parse(t, input)
	r := goldenRewrite(name, before)
	got := rewrite(t, before, r)
	goldenPath := filepath.Join("testdata", name+".golden.sdp")
	if *update {
		if err := os.WriteFile(goldenPath, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(string(readFile(t, goldenPath)), string(got)); diff != "" {
		t.Errorf("output differs from %s (-want +got):\n%s", goldenPath, diff)
	}
	after := parse(t, got)
	if again := rewrite(t, after, r); string(again) != string(got) {
		t.Errorf("rewrite is not idempotent (-first +second):\n%s", cmp.Diff(string(got), string(again)))
	}
	if err := checkUntouched(input, got, r.RemoveICE); err != nil {
		t.Error(err)
	}
	if err := checkRewritten(before, after, r); err != nil {
		t.Error(err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parse(t *testing.T, b []byte) *sdp.Session {
	t.Helper()
	s, err := sdp.Parse(b)
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, b)
	}
	return s
}

func rewrite(t *testing.T, s *sdp.Session, r sdp.Rewrite) []byte {
	t.Helper()
	b, err := s.Rewrite(r)
	if err != nil {
		t.Fatalf("Rewrite: %v", err)
	}
	return b
}
