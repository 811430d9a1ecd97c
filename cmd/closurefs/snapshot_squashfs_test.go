package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestSnapshotSquashfsCLI(t *testing.T) {
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "a"), bytes.Repeat([]byte("closurefs "), 50000), 0o644)
	os.Mkdir(filepath.Join(src, "d"), 0o755)
	os.WriteFile(filepath.Join(src, "d", "b"), []byte("b\n"), 0o755)
	os.Symlink("../a", filepath.Join(src, "d", "l"))
	out := t.TempDir()

	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"ok", []string{"-c", "gzip", "-b", "4K"}, 0, ""},
		{"default", nil, 0, ""},
		{"lzo", []string{"-c", "lzo"}, 2, "lzo is not supported"},
		{"bad-block", []string{"-b", "3000"}, 2, "power of two"},
		{"big-block", []string{"-b", "2M"}, 2, "power of two"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := filepath.Join(out, tc.name+".sqfs")
			var stderr bytes.Buffer
			args := append([]string{"snapshot", "-q", "-t", "squashfs", "--dir", src, "-o", img}, tc.args...)
			code := run(args, &env{stdin: strings.NewReader(""), stdout: &bytes.Buffer{}, stderr: &stderr})
			if code != tc.code {
				t.Fatalf("exit %d, want %d: %s", code, tc.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.msg) {
				t.Errorf("stderr %q does not mention %q", stderr.String(), tc.msg)
			}
			_, err := os.Stat(img)
			if tc.code == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if _, err := exec.LookPath("unsquashfs"); err == nil {
					x := filepath.Join(t.TempDir(), "x")
					if b, err := exec.Command("unsquashfs", "-d", x, img).CombinedOutput(); err != nil {
						t.Fatalf("unsquashfs: %v\n%s", err, b)
					}
					got, _ := os.ReadFile(filepath.Join(x, "a"))
					want, _ := os.ReadFile(filepath.Join(src, "a"))
					if !bytes.Equal(got, want) {
						t.Error("extracted file differs")
					}
				}
			} else if err == nil {
				t.Errorf("%s exists after a failed run", img)
			}
		})
	}
	// Nothing but the images is left in the output directory: no temp files.
	ents, _ := os.ReadDir(out)
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".sqfs") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
	if len(ents) != 2 {
		t.Errorf("%d files in the output directory, want 2", len(ents))
	}
}
