package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCommitAndAbort(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "out.img")
	os.WriteFile(target, []byte("old"), 0o644)

	f, err := Create(target, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("partial")
	f.Abort()
	if b, _ := os.ReadFile(target); string(b) != "old" {
		t.Fatalf("after Abort target = %q, want old content", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("after Abort %d files in dir, want 1", len(ents))
	}

	f, err = Create(target, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("new")
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	f.Abort() // no effect after Commit
	if b, _ := os.ReadFile(target); string(b) != "new" {
		t.Fatalf("after Commit target = %q, want new", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("after Commit %d files in dir, want 1", len(ents))
	}
}

func TestCreateInMissingDir(t *testing.T) {
	if _, err := Create(filepath.Join(t.TempDir(), "no", "such", "x"), 0o644); err == nil {
		t.Fatal("Create in a missing directory succeeded")
	}
}

// TestCreateTargets: a symlink is written through (also a dangling one),
// and what is not a regular file is refused and left alone.
func TestCreateTargets(t *testing.T) {
	dir := t.TempDir()
	write := func(path string) error {
		f, err := Create(path, 0o644)
		if err != nil {
			return err
		}
		f.WriteString("image")
		return f.Commit()
	}
	real := filepath.Join(dir, "real.img")
	os.WriteFile(real, []byte("old"), 0o644)
	os.Symlink("real.img", filepath.Join(dir, "link"))
	os.Symlink("sub/new.img", filepath.Join(dir, "dangling"))
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	for link, file := range map[string]string{"link": real, "dangling": filepath.Join(dir, "sub", "new.img")} {
		if err := write(filepath.Join(dir, link)); err != nil {
			t.Fatalf("%s: %v", link, err)
		}
		if b, _ := os.ReadFile(file); string(b) != "image" {
			t.Errorf("through %s: %s holds %q", link, file, b)
		}
		if fi, err := os.Lstat(filepath.Join(dir, link)); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("%s is no longer a symlink", link)
		}
	}
	for _, p := range []string{filepath.Join(dir, "sub"), "/dev/null"} {
		before, _ := os.Lstat(p)
		if err := write(p); err == nil {
			t.Errorf("writing %s succeeded", p)
		}
		if after, err := os.Lstat(p); err != nil || after.Mode() != before.Mode() {
			t.Errorf("%s changed: %v", p, err)
		}
	}
	loop := filepath.Join(dir, "loop")
	os.Symlink("loop", loop)
	if err := write(loop); err == nil {
		t.Error("writing through a symlink loop succeeded")
	}
}
