package main

import (
	"bytes"
	"encoding/json"
	"io/fs"
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

// infoJSON is what the inspect test reads of info --json.
type infoJSON struct {
	Format     string   `json:"format"`
	Compressor string   `json:"compressor"`
	BlockSize  int      `json:"block_size"`
	Inodes     int      `json:"inodes"`
	MinKernel  string   `json:"min_kernel"`
	Algorithms []string `json:"algorithms"`
}

// TestInspect runs ls, cat and info on images made by the reference
// tools, and on a truncated or damaged copy of each.
func TestInspect(t *testing.T) {
	for _, c := range []struct {
		name, tool string
		args       func(src, img string) []string
		infoText   []string
		infoOK     func(i infoJSON) bool
		damage     func(b []byte) []byte
		damageErr  string
	}{
		{
			name: "squashfs", tool: "mksquashfs",
			args: func(src, img string) []string {
				return []string{src, img, "-noappend", "-quiet", "-no-progress", "-comp", "zstd", "-b", "4096", "-all-root"}
			},
			infoText:  []string{"compressor:      zstd", "block size:      4096"},
			infoOK:    func(i infoJSON) bool { return i.Format == "squashfs" && i.Compressor == "zstd" && i.BlockSize == 4096 },
			damage:    func(b []byte) []byte { return b[:len(b)/2] },
			damageErr: "squashfs:",
		},
		{
			name: "erofs", tool: "mkfs.erofs",
			args: func(src, img string) []string {
				return []string{"-zlz4hc", "-Eztailpacking", "-T0", "--all-root", img, src}
			},
			infoText: []string{"format:          erofs", "min kernel:      Linux 5.17 (ztailpacking)", "compression:     lz4"},
			infoOK: func(i infoJSON) bool {
				return i.Format == "erofs" && i.BlockSize == 4096 && i.MinKernel == "5.17" && strings.Join(i.Algorithms, ",") == "lz4"
			},
			damage:    func(b []byte) []byte { b[1024+12] = 40; return b }, // block size bits
			damageErr: "block size",
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := exec.LookPath(c.tool); err != nil {
				t.Skipf("%s not installed", c.tool)
			}
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			src := t.TempDir()
			must(os.MkdirAll(filepath.Join(src, "a", "b"), 0o755))
			must(os.WriteFile(filepath.Join(src, "a", "b", "hello"), []byte("hello, world\n"), 0o644))
			top := strings.Repeat("0123456789", 50000)
			must(os.WriteFile(filepath.Join(src, "top"), []byte(top), 0o755))
			must(os.Symlink("a/b/hello", filepath.Join(src, "link")))
			// ".." after a symlink goes up from where the symlink leads:
			// a/s/.. is a/b, a/t leads to a/b/hello.
			must(os.MkdirAll(filepath.Join(src, "a", "b", "c"), 0o755))
			must(os.Symlink("b/c", filepath.Join(src, "a", "s")))
			must(os.Symlink("s/../hello", filepath.Join(src, "a", "t")))
			img := filepath.Join(t.TempDir(), "img."+c.name)
			if out, err := exec.Command(c.tool, c.args(src, img)...).CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", c.tool, err, out)
			}

			out, stderr, code := runCLI("ls", img)
			if code != 0 || out != "a\nlink\ntop\n" {
				t.Errorf("ls = %q, %q, %d", out, stderr, code)
			}
			out, _, code = runCLI("ls", "-R", img, "/a")
			if code != 0 || out != "b\nb/c\nb/hello\ns\nt\n" {
				t.Errorf("ls -R /a = %q, %d", out, code)
			}
			out, _, code = runCLI("ls", "-l", img, "link")
			if code != 0 || !strings.HasPrefix(out, "lrwxrwxrwx") || !strings.HasSuffix(out, "link -> a/b/hello\n") {
				t.Errorf("ls -l link = %q, %d", out, code)
			}
			out, _, code = runCLI("ls", "--json", img, "a/b/hello")
			var ent lsEntry
			if code != 0 || json.Unmarshal([]byte(out), &ent) != nil || ent.Path != "a/b/hello" || ent.Size != 13 || ent.Type != "regular file" || ent.Nlink != 1 {
				t.Errorf("ls --json = %q (%+v), %d", out, ent, code)
			}

			out, _, code = runCLI("cat", img, "link", "/a/b/hello")
			if code != 0 || out != "hello, world\nhello, world\n" {
				t.Errorf("cat = %q, %d", out, code)
			}
			for _, p := range []string{"a/s/../hello", "a/t", "/a/./s/../../t", "a/s/../../../link"} {
				if out, stderr, code := runCLI("cat", img, p); code != 0 || out != "hello, world\n" {
					t.Errorf("cat %s = %q, %q, %d", p, out, stderr, code)
				}
			}
			if out, _, code := runCLI("ls", img, "a/s/.."); code != 0 || out != "c\nhello\n" {
				t.Errorf("ls a/s/.. = %q, %d", out, code)
			}
			if _, stderr, code := runCLI("cat", img, "a/b/hello/"); code != 1 || !strings.Contains(stderr, "not a directory") {
				t.Errorf("cat of a file with a trailing slash: %q, %d", stderr, code)
			}
			out, _, code = runCLI("cat", img, "top")
			if code != 0 || out != top {
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
			if _, _, code = runCLI("cat", img); code != 2 {
				t.Errorf("cat without PATH: exit %d, want 2", code)
			}

			out, _, code = runCLI("info", img)
			for _, s := range c.infoText {
				if code != 0 || !strings.Contains(out, s) {
					t.Errorf("info = %q, %d; want %q in it", out, code, s)
				}
			}
			out, _, code = runCLI("info", "--json", img)
			var inf infoJSON
			if code != 0 || json.Unmarshal([]byte(out), &inf) != nil || inf.Inodes != 9 || !c.infoOK(inf) {
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
			bad := filepath.Join(t.TempDir(), "bad."+c.name)
			must(os.WriteFile(bad, c.damage(data), 0o644))
			_, stderr, code = runCLI("ls", bad)
			if code != 1 || !strings.Contains(stderr, c.damageErr) || !strings.Contains(stderr, bad) {
				t.Errorf("ls of a damaged image: %q, %d", stderr, code)
			}
		})
	}
}

func TestLsMode(t *testing.T) {
	for _, tc := range []struct {
		m    fs.FileMode
		want string
	}{
		{0o644, "-rw-r--r--"},
		{fs.ModeDir | 0o755, "drwxr-xr-x"},
		{fs.ModeSymlink | 0o777, "lrwxrwxrwx"},
		{fs.ModeSetuid | 0o755, "-rwsr-xr-x"},
		{fs.ModeSetgid | 0o644, "-rw-r-Sr--"},
		{fs.ModeDir | fs.ModeSticky | 0o777, "drwxrwxrwt"},
		{fs.ModeDir | fs.ModeSticky | 0o770, "drwxrwx--T"},
		{fs.ModeDevice | fs.ModeCharDevice | 0o666, "crw-rw-rw-"},
		{fs.ModeDevice | 0o660, "brw-rw----"},
		{fs.ModeNamedPipe | 0o600, "prw-------"},
		{fs.ModeSocket | 0o755, "srwxr-xr-x"},
		{0, "----------"},
	} {
		if got := lsMode(tc.m); got != tc.want {
			t.Errorf("lsMode(%v) = %s, want %s", tc.m, got, tc.want)
		}
	}
}
