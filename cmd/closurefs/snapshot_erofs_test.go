package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
