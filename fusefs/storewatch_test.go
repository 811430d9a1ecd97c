package fusefs

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestStoreWatch(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"aaa-kept", "bbb-deleted", "ccc-renamed", "ddd-tree"} {
		if err := os.MkdirAll(filepath.Join(dir, n, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	w := newStoreWatch(dir)
	if w == nil {
		t.Skip("inotify is not available here")
	}
	defer w.close()
	if names, all := w.removed(); len(names) != 0 || all {
		t.Fatalf("before any change: %q, all=%v", names, all)
	}
	// Changes below a store path are not reported; removals at the top are.
	os.RemoveAll(filepath.Join(dir, "ddd-tree", "sub"))
	os.RemoveAll(filepath.Join(dir, "bbb-deleted"))
	os.Rename(filepath.Join(dir, "ccc-renamed"), filepath.Join(t.TempDir(), "trash"))
	os.Mkdir(filepath.Join(dir, "eee-new"), 0o755)
	names, all := w.removed()
	slices.Sort(names)
	if !slices.Equal(names, []string{"bbb-deleted", "ccc-renamed"}) || all {
		t.Errorf("after deleting and renaming: %q, all=%v; want bbb-deleted and ccc-renamed", names, all)
	}
	if names, all := w.removed(); len(names) != 0 || all {
		t.Errorf("events reported twice: %q, all=%v", names, all)
	}
	// The directory itself going away means anything may be gone.
	os.RemoveAll(dir)
	if _, all := w.removed(); !all || !w.dead {
		t.Errorf("after removing the directory: all=%v dead=%v, want both", all, w.dead)
	}
}
