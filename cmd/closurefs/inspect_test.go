package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runCLI runs closurefs with args and returns stdout, stderr and the exit code.
func runCLI(args ...string) (string, string, int) {
	var out, errb bytes.Buffer
	code := run(args, &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb})
	return out.String(), errb.String(), code
}

func TestInspectSquashfs(t *testing.T) {
	if _, err := exec.LookPath("mksquashfs"); err != nil {
		t.Skip("mksquashfs not installed")
	}
	src := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "a", "b"), 0o755))
	must(os.WriteFile(filepath.Join(src, "a", "b", "hello"), []byte("hello, world\n"), 0o644))
	must(os.WriteFile(filepath.Join(src, "top"), bytes.Repeat([]byte("0123456789"), 50000), 0o755))
	must(os.Symlink("a/b/hello", filepath.Join(src, "link")))
	img := filepath.Join(t.TempDir(), "img.sqfs")
	if out, err := exec.Command("mksquashfs", src, img, "-noappend", "-quiet", "-no-progress", "-comp", "zstd", "-b", "4096", "-all-root").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, out)
	}

	out, stderr, code := runCLI("ls", img)
	if code != 0 || out != "a\nlink\ntop\n" {
		t.Errorf("ls = %q, %q, %d", out, stderr, code)
	}
	out, _, code = runCLI("ls", "-R", img, "/a")
	if code != 0 || out != "b\nb/hello\n" {
		t.Errorf("ls -R /a = %q, %d", out, code)
	}
	out, _, code = runCLI("ls", "-l", img, "link")
	if code != 0 || !strings.HasPrefix(out, "Lrwxrwxrwx") || !strings.HasSuffix(out, "link -> a/b/hello\n") {
		t.Errorf("ls -l link = %q, %d", out, code)
	}
	out, _, code = runCLI("ls", "--json", img, "a/b")
	var ent lsEntry
	if code != 0 || json.Unmarshal([]byte(out), &ent) != nil || ent.Path != "a/b/hello" || ent.Size != 13 || ent.Type != "regular file" || ent.Nlink != 1 {
		t.Errorf("ls --json = %q (%+v), %d", out, ent, code)
	}

	out, _, code = runCLI("cat", img, "link", "/a/b/hello")
	if code != 0 || out != "hello, world\nhello, world\n" {
		t.Errorf("cat = %q, %d", out, code)
	}
	out, _, code = runCLI("cat", img, "top")
	if code != 0 || out != strings.Repeat("0123456789", 50000) {
		t.Errorf("cat top: %d bytes, code %d", len(out), code)
	}
	_, stderr, code = runCLI("cat", img, "missing")
	if code != 1 || !strings.Contains(stderr, "missing") || !strings.Contains(stderr, img) {
		t.Errorf("cat missing: %q, %d", stderr, code)
	}
	_, stderr, code = runCLI("cat", img, "a")
	if code != 1 || !strings.Contains(stderr, "not a regular file") {
		t.Errorf("cat dir: %q, %d", stderr, code)
	}
	_, _, code = runCLI("cat", img)
	if code != 2 {
		t.Errorf("cat without PATH: exit %d, want 2", code)
	}

	out, _, code = runCLI("info", img)
	if code != 0 || !strings.Contains(out, "compressor:      zstd") || !strings.Contains(out, "block size:      4096") {
		t.Errorf("info = %q, %d", out, code)
	}
	out, _, code = runCLI("info", "--json", img)
	var inf struct {
		Format     string `json:"format"`
		Compressor string `json:"compressor"`
		BlockSize  int    `json:"block_size"`
		Inodes     int    `json:"inodes"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &inf) != nil || inf.Format != "squashfs" || inf.Compressor != "zstd" || inf.BlockSize != 4096 || inf.Inodes != 6 {
		t.Errorf("info --json = %q (%+v), %d", out, inf, code)
	}

	// Not an image; a damaged image.
	junk := filepath.Join(t.TempDir(), "junk")
	must(os.WriteFile(junk, []byte("this is not an image"), 0o644))
	_, stderr, code = runCLI("info", junk)
	if code != 1 || !strings.Contains(stderr, "not a recognised image") {
		t.Errorf("info junk: %q, %d", stderr, code)
	}
	data, err := os.ReadFile(img)
	must(err)
	bad := filepath.Join(t.TempDir(), "bad")
	must(os.WriteFile(bad, data[:len(data)/2], 0o644))
	_, stderr, code = runCLI("ls", bad)
	if code != 1 || !strings.Contains(stderr, "squashfs:") {
		t.Errorf("ls truncated image: %q, %d", stderr, code)
	}
}
