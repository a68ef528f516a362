package main

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckAcceptsTheShippedConfigs(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"../../examples/nftrtpproxy.toml", "../../examples/demo.toml"} {
		var out bytes.Buffer
		// The host running the test may lack the examples' gate
		// addresses: a refusal of the host is not the config's fault.
		if err := check(path, &out, discard); err != nil && !errors.Is(err, errRefused) {
			t.Errorf("%s: %v", path, err)
		}
		if want := "nftrtpproxy: " + path + ": configuration valid ("; !strings.HasPrefix(out.String(), want) {
			t.Errorf("%s: printed %q, want %q...", path, out.String(), want)
		}
	}
}

func TestCheckNamesWhatIsWrong(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(path, []byte("[[switchboard]]\nname = \"edge\"\ncolour = \"red\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := check(path, &out, discard)
	if err == nil || !strings.Contains(err.Error(), path) || out.Len() != 0 {
		t.Errorf("error %v (want one naming %s), printed %q", err, path, out.String())
	}
}

func TestVersionFallsBackToTheBuildInfo(t *testing.T) {
	if version != "" {
		t.Skipf("built with -X main.version=%s", version)
	}
	if v := versionString(); v == "" {
		t.Error("no version without -ldflags")
	}
}

var discard = slog.New(slog.DiscardHandler)
