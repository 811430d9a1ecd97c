//go:build linux

package rawsys

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestReadDir(t *testing.T) {
	dir := t.TempDir()
	// Enough entries, with long names, to take several getdents calls
	// through a small buffer.
	var want []string
	for i := range 300 {
		name := fmt.Sprintf("%03d-%s", i, strings.Repeat("n", i%250))
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		want = append(want, name)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	want = append(want, "sub")
	slices.Sort(want)

	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer Close(fd)
	var got []string
	types := map[string]byte{}
	if err := ReadDir(fd, make([]byte, 512), func(name []byte, dtype byte) {
		got = append(got, string(name))
		types[string(name)] = dtype
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("ReadDir gave %d names, want %d:\n got %q\nwant %q", len(got), len(want), got, want)
	}
	if types["sub"] != unix.DT_DIR || types[want[0]] != unix.DT_REG {
		t.Errorf("types: sub %d, %s %d; want DT_DIR and DT_REG", types["sub"], want[0], types[want[0]])
	}
}

func TestReadlinkat(t *testing.T) {
	dir := t.TempDir()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer Close(fd)
	for _, target := range []string{"a", strings.Repeat("d/", 200) + "end", "../x"} {
		name := fmt.Sprintf("l%d", len(target))
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
		got, err := Readlinkat(fd, name)
		if err != nil || got != target {
			t.Errorf("Readlinkat(%s) = %q, %v; want %q", name, got, err, target)
		}
	}
	if _, err := Readlinkat(fd, "missing"); err == nil {
		t.Error("Readlinkat of a missing name: no error")
	}
}
