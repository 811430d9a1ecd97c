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

func TestInspectErofs(t *testing.T) {
	if _, err := exec.LookPath("mkfs.erofs"); err != nil {
		t.Skip("mkfs.erofs not installed")
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
	top := bytes.Repeat([]byte("0123456789"), 50000)
	must(os.WriteFile(filepath.Join(src, "top"), top, 0o755))
	must(os.Symlink("a/b/hello", filepath.Join(src, "link")))
	img := filepath.Join(t.TempDir(), "img.erofs")
	if out, err := exec.Command("mkfs.erofs", "-zlz4hc", "-Eztailpacking", "-T0", "--all-root", img, src).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.erofs: %v\n%s", err, out)
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
	if code != 0 || !strings.HasSuffix(out, "link -> a/b/hello\n") {
		t.Errorf("ls -l link = %q, %d", out, code)
	}
	out, _, code = runCLI("cat", img, "link", "/a/b/hello")
	if code != 0 || out != "hello, world\nhello, world\n" {
		t.Errorf("cat = %q, %d", out, code)
	}
	out, _, code = runCLI("cat", img, "top")
	if code != 0 || out != string(top) {
		t.Errorf("cat top: %d bytes, code %d", len(out), code)
	}
	out, stderr, code = runCLI("cat", img, "missing")
	if code != 1 || !strings.Contains(stderr, "missing") {
		t.Errorf("cat missing = %q, %q, %d", out, stderr, code)
	}

	out, _, code = runCLI("info", img)
	if code != 0 || !strings.Contains(out, "format:          erofs") || !strings.Contains(out, "min kernel:      Linux 5.17 (ztailpacking)") ||
		!strings.Contains(out, "compression:     lz4") {
		t.Errorf("info = %q, %d", out, code)
	}
	out, _, code = runCLI("info", "--json", img)
	var inf struct {
		Format     string   `json:"format"`
		BlockSize  int      `json:"block_size"`
		Inodes     int      `json:"inodes"`
		MinKernel  string   `json:"min_kernel"`
		Algorithms []string `json:"algorithms"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &inf) != nil || inf.Format != "erofs" || inf.BlockSize != 4096 ||
		inf.Inodes != 6 || inf.MinKernel != "5.17" || strings.Join(inf.Algorithms, ",") != "lz4" {
		t.Errorf("info --json = %q (%+v), %d", out, inf, code)
	}

	bad := filepath.Join(t.TempDir(), "bad.erofs")
	b, _ := os.ReadFile(img)
	b[1024+12] = 40 // block size bits
	must(os.WriteFile(bad, b, 0o644))
	_, stderr, code = runCLI("info", bad)
	if code != 1 || !strings.Contains(stderr, "bad.erofs") || !strings.Contains(stderr, "block size") {
		t.Errorf("info of a corrupt image = %q, %d", stderr, code)
	}
}
