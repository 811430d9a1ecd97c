package image

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestUnixMode checks the conversion against the kernel's st_mode of real
// files, and that FileMode inverts it.
func TestUnixMode(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	os.WriteFile(file, nil, 0o644)
	os.Chmod(file, 0o4755|os.ModeSetuid)
	os.Mkdir(filepath.Join(dir, "d"), 0o755)
	os.Chmod(filepath.Join(dir, "d"), os.ModeSticky|0o1777)
	os.Symlink("f", filepath.Join(dir, "l"))
	syscall.Mkfifo(filepath.Join(dir, "p"), 0o600)
	for _, name := range []string{"f", "d", "l", "p"} {
		p := filepath.Join(dir, name)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := UnixMode(fi.Mode())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want := fi.Sys().(*syscall.Stat_t).Mode; got != want {
			t.Errorf("%s: UnixMode(%v) = %#o, kernel says %#o", name, fi.Mode(), got, want)
		}
		if back := FileMode(got); back != fi.Mode() {
			t.Errorf("%s: FileMode(%#o) = %v, want %v", name, got, back, fi.Mode())
		}
	}
	if _, err := UnixMode(fs.ModeIrregular); err == nil {
		t.Error("UnixMode(ModeIrregular) succeeded")
	}
}
