package main

import (
	"bytes"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/closurefs/closurefs/integration/fixture"
)

func TestSnapshotErofsFlags(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(filepath.Join(src, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "d", "f"), bytes.Repeat([]byte("closurefs "), 5000), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "a.img")
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"-Ebogus"}, 2, `unsupported extended option "bogus"`},
		{[]string{"-zlzo"}, 2, "unsupported compressor"},
		{[]string{"-zlz4hc,level=x"}, 2, "bad level"},
		{[]string{"-U", "not-a-uuid"}, 2, "not a UUID"},
		{[]string{"-C", "5000", "-zlz4hc"}, 2, "physical cluster size"},
		{[]string{"-zlz4hc,level=12", "-Eztailpacking,fragments", "-C65536", "--mount-point=/nix/store"}, 0, ""},
		{[]string{"-zlz4hc", "-Eztailpacking", "-Efragments", "-U", "01234567-89ab-cdef-0123-456789abcdef", "-L", "x"}, 0, ""},
	} {
		args := append([]string{"snapshot", "-q", "--dir", src, "-o", img}, tc.args...)
		_, stderr, code := runCLI(args...)
		if code != tc.code || !strings.Contains(stderr, tc.msg) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d with %q", tc.args, code, stderr, tc.code, tc.msg)
		}
	}
	// The last image: label and UUID as given.
	if out, err := exec.Command("blkid", "-p", img).CombinedOutput(); err == nil {
		if !strings.Contains(string(out), `LABEL="x"`) || !strings.Contains(string(out), `UUID="01234567-89ab-cdef-0123-456789abcdef"`) {
			t.Errorf("blkid -p: %s", out)
		}
	} else {
		t.Logf("blkid: %v %s", err, out)
	}
	// Failed runs leave nothing behind but the image of the last good run.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("directory holds %d entries, want src and a.img", len(ents))
	}
}

// TestSnapshotErofsInterrupt sends SIGINT while `snapshot` writes the
// fixture's closure and checks that it stops with "interrupted, nothing
// written" and leaves nothing in the output directory (the temporary
// file is removed). The time from the signal to the return is logged.
func TestSnapshotErofsInterrupt(t *testing.T) {
	if testing.Short() {
		t.Skip("fixture build skipped in -short mode")
	}
	f := fixture.Get(t)
	// While this is registered, SIGINT never kills the test binary, even
	// if it arrived after snapshot's own handler is gone.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	defer signal.Stop(sig)
	dir := t.TempDir()
	type result struct {
		stderr string
		code   int
	}
	done := make(chan result, 1)
	go func() {
		// Slow settings, so that the write is caught in the middle.
		_, stderr, code := runCLI("snapshot", "-q", "-zzstd,level=19", "-C1048576", "-o", filepath.Join(dir, "img"), f.Root)
		done <- result{stderr, code}
	}()
	var sent time.Time
	var r result
wait:
	for {
		select {
		case r = <-done:
			break wait
		case <-time.After(5 * time.Millisecond):
		}
		if !sent.IsZero() {
			continue
		}
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if fi, err := e.Info(); err == nil && fi.Size() >= 1<<20 {
				sent = time.Now()
				if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if sent.IsZero() {
		t.Fatalf("snapshot finished (exit %d, %q) before the interrupt", r.code, r.stderr)
	}
	t.Logf("snapshot returned %v after SIGINT", time.Since(sent))
	if r.code == 0 || !strings.Contains(r.stderr, "interrupted, nothing written") {
		t.Errorf("interrupted snapshot: exit %d, stderr %q", r.code, r.stderr)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("interrupted snapshot left %d files, e.g. %s", len(ents), ents[0].Name())
	}
}
