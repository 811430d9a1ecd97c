package fusefs

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"log"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/closurefs/closurefs/image"
	"github.com/closurefs/closurefs/internal/treetest"
	"golang.org/x/sys/unix"
)

// needFUSE skips the test unless it can mount FUSE file systems.
func needFUSE(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting FUSE needs root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
}

// dirXattrFS is image.FS over a directory (os.DirFS) plus its xattrs, the
// stand-in for an image reader.
type dirXattrFS struct {
	image.FS
	dir string
}

func (d dirXattrFS) Xattrs(name string) ([]image.Xattr, error) {
	p := filepath.Join(d.dir, name)
	return readXattrs(p)
}

func readXattrs(p string) ([]image.Xattr, error) {
	sz, err := unix.Llistxattr(p, nil)
	if err != nil || sz == 0 {
		return nil, nil
	}
	buf := make([]byte, sz)
	sz, err = unix.Llistxattr(p, buf)
	if err != nil {
		return nil, err
	}
	var xs []image.Xattr
	for _, k := range bytes.Split(buf[:sz], []byte{0}) {
		if len(k) == 0 {
			continue
		}
		v := make([]byte, 4096)
		n, err := unix.Lgetxattr(p, string(k), v)
		if err != nil {
			return nil, err
		}
		xs = append(xs, image.Xattr{Key: string(k), Value: v[:n]})
	}
	sort.Slice(xs, func(i, j int) bool { return xs[i].Key < xs[j].Key })
	return xs, nil
}

// makeTree writes a test tree: nested directories, empty, small and
// multi-megabyte files, symlinks (relative, absolute, dangling), an
// executable, an xattr, and a directory of many entries.
func makeTree(t testing.TB, dir string, many int) {
	t.Helper()
	rng := rand.New(rand.NewSource(1))
	write := func(name string, size int, mode os.FileMode) {
		b := make([]byte, size)
		rng.Read(b)
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
	}
	write("empty", 0, 0o644)
	write("small", 100, 0o644)
	write("bin/exe", 5000, 0o755)
	write("big", 3<<20+17, 0o444)
	write("a/b/c/deep", 4096, 0o600)
	for _, l := range [][2]string{{"../small", "a/rel"}, {"/nix/store/x", "abs"}, {"nowhere", "dangling"}, {"bin", "dirlink"}} {
		if err := os.Symlink(l[0], filepath.Join(dir, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Setxattr(filepath.Join(dir, "small"), "user.test", []byte("value"), 0); err != nil {
		t.Logf("no user xattrs here: %v", err)
	}
	if many > 0 {
		m := filepath.Join(dir, "many")
		os.Mkdir(m, 0o755)
		for i := 0; i < many; i++ {
			f, err := os.Create(filepath.Join(m, fmt.Sprintf("entry-%06d", i)))
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
	}
}

func TestImageMountDirFS(t *testing.T) {
	needFUSE(t)
	src := t.TempDir()
	makeTree(t, src, 5000)
	root, err := NewImageRoot(dirXattrFS{os.DirFS(src).(image.FS), src}, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	mnt := t.TempDir()
	var logBuf syncBuffer
	server, err := Mount(mnt, root, root.StableAttr(), MountOptions{FsName: src, CachedDirs: true, Logger: log.New(&logBuf, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	defer server.Unmount()
	treetest.Compare(t, mnt, src, treetest.Options{Ino: true, Nlink: true, DirSize: true, Mtime: true, Owner: true, Xattrs: true})
	// The comparison read "big" (3 MiB) in 1 MiB reads: answered without a
	// failed splice, which go-fuse would log.
	if l := logBuf.String(); l != "" {
		t.Errorf("the daemon logged:\n%s", l)
	}

	// Writes fail with EROFS.
	if err := os.WriteFile(filepath.Join(mnt, "new"), nil, 0o644); !errorIs(err, syscall.EROFS) {
		t.Errorf("create: got %v, want EROFS", err)
	}
	if _, err := os.OpenFile(filepath.Join(mnt, "small"), os.O_WRONLY, 0); !errorIs(err, syscall.EROFS) {
		t.Errorf("open for writing: got %v, want EROFS", err)
	}
	// Inode numbers are stable across a second lookup after the kernel
	// forgets the entries.
	var st1, st2 syscall.Stat_t
	syscall.Lstat(filepath.Join(mnt, "a/b/c/deep"), &st1)
	os.WriteFile("/proc/sys/vm/drop_caches", []byte("2"), 0)
	syscall.Lstat(filepath.Join(mnt, "a/b/c/deep"), &st2)
	if st1.Ino != st2.Ino || st1.Ino == 0 {
		t.Errorf("inode numbers differ: %d, %d", st1.Ino, st2.Ino)
	}
	var sfs syscall.Statfs_t
	if err := syscall.Statfs(mnt, &sfs); err != nil || sfs.Blocks != 256 {
		t.Errorf("statfs: %v, %d blocks, want 256", err, sfs.Blocks)
	}
	// Seeking in a big directory: read in small getdents batches, then
	// rewind and compare.
	f, err := os.Open(filepath.Join(mnt, "many"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	for {
		ns, err := f.Readdirnames(100)
		names = append(names, ns...)
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if len(names) != 5000 {
		t.Errorf("many: %d entries, want 5000", len(names))
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	again, err := f.Readdirnames(-1)
	if err != nil || len(again) != len(names) {
		t.Errorf("after rewind: %d entries, %v", len(again), err)
	}
}

func errorIs(err error, errno syscall.Errno) bool {
	for err != nil {
		if e, ok := err.(syscall.Errno); ok {
			return e == errno
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

// TestImageMountCachedDirs checks the zero-message opendir of immutable
// mounts: after the first OPENDIR (answered ENOSYS) the kernel sends none,
// and concurrent, interrupted and repeated listings of small and big
// directories stay complete and correct.
func TestImageMountCachedDirs(t *testing.T) {
	needFUSE(t)
	src := t.TempDir()
	makeTree(t, src, 3000)
	root, err := NewImageRoot(dirXattrFS{os.DirFS(src).(image.FS), src}, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var logBuf syncBuffer
	mnt := t.TempDir()
	server, err := Mount(mnt, root, root.StableAttr(), MountOptions{FsName: src, CachedDirs: true,
		Debug: true, Logger: log.New(&logBuf, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	defer server.Unmount()

	want := listAll(t, src)
	// An interrupted listing leaves a handle behind; later listings of
	// the same directory must not pick it up at the wrong offset.
	f, err := os.Open(filepath.Join(mnt, "many"))
	if err != nil {
		t.Fatal(err)
	}
	if ns, err := f.Readdirnames(100); err != nil || len(ns) != 100 {
		t.Fatalf("partial listing: %d names, %v", len(ns), err)
	}
	f.Close()
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := 0; round < 2; round++ {
				if got := listAll(t, mnt); !reflect.DeepEqual(got, want) {
					errs <- fmt.Sprintf("listing differs from the source: %d dirs vs %d", len(got), len(want))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if got := listAll(t, mnt)["many"]; len(got) != 3000 {
		t.Errorf("many: %d entries, want 3000", len(got))
	}
	log := logBuf.String()
	if n := strings.Count(log, ": OPENDIR "); n != 1 {
		t.Errorf("kernel sent %d OPENDIR requests, want 1 (answered ENOSYS)", n)
	}
	if n := strings.Count(log, ": RELEASEDIR "); n != 0 {
		t.Errorf("kernel sent %d RELEASEDIR requests, want 0", n)
	}
	if !strings.Contains(log, ": READDIRPLUS ") && !strings.Contains(log, ": READDIR ") {
		t.Error("no READDIR requests logged: is the debug log format still \"rx N: OP\"?")
	}
}

// listAll returns the sorted entry names of every directory below dir,
// keyed by path relative to dir.
func listAll(t testing.TB, dir string) map[string][]string {
	out := map[string][]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		ents, err := os.ReadDir(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		names := make([]string, len(ents))
		for i, e := range ents {
			names[i] = e.Name() + ":" + e.Type().String()
		}
		sort.Strings(names)
		out[rel] = names
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	return out
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSpareProcs checks that a SpareProcs mount leaves the process with
// procsPerReader processors per request reader, and none changed where
// GOMAXPROCS is set in the environment; the mount serves files either way.
func TestSpareProcs(t *testing.T) {
	needFUSE(t)
	src := t.TempDir()
	makeTree(t, src, 10)
	for _, tc := range []struct {
		name string
		env  string // GOMAXPROCS in the environment, "" for unset
		want func(before int) int
	}{
		{"default", "", func(int) int { return spareProcs(fuseReaders()) }},
		{"environment", "3", func(before int) int { return before }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := runtime.GOMAXPROCS(0)
			defer runtime.GOMAXPROCS(before)
			t.Setenv("GOMAXPROCS", tc.env)
			if tc.env == "" {
				os.Unsetenv("GOMAXPROCS")
			}
			root, err := NewImageRoot(dirXattrFS{os.DirFS(src).(image.FS), src}, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			mnt := t.TempDir()
			server, err := Mount(mnt, root, root.StableAttr(), MountOptions{FsName: src, SpareProcs: true})
			if err != nil {
				t.Fatal(err)
			}
			defer server.Unmount()
			if got, want := runtime.GOMAXPROCS(0), tc.want(before); got != want {
				t.Errorf("GOMAXPROCS after the mount: %d, want %d", got, want)
			}
			treetest.Compare(t, mnt, src, treetest.Options{})
		})
	}
}
