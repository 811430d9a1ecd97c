// Package treetest compares directory trees on disk, for tests that check
// an image mount, an extraction or a FUSE view against the tree it was
// made from.
package treetest

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Options chooses what Compare looks at beyond the file type and
// permission bits, the size and contents of regular files, symlink
// targets and the names in each directory.
type Options struct {
	Nlink    bool // link counts of everything
	DirNlink bool // link counts of directories
	// NlinkOne expects every non-directory of got to have one link (hard
	// links dereferenced).
	NlinkOne bool
	DirSize  bool // sizes of directories
	Ino      bool // inode numbers, relative to the root's
	Owner    bool // uid and gid
	// RootOwned expects every entry of got to belong to uid and gid 0.
	RootOwned bool
	Mtime     bool // modification times, to the nanosecond
	Xattrs    bool // extended attributes and their values
	Rdev      bool // device numbers
	// Only, if set, restricts the comparison to this entry of the top
	// directory (and what is below it).
	Only string
	// MinEntries fails the comparison if want has fewer entries.
	MinEntries int
}

// Entry is what Compare records of one path.
type Entry struct {
	Mode     uint32
	Size     int64
	Nlink    uint64
	UID, GID uint32
	Mtime    int64
	Ino      uint64
	Rdev     uint64
	Target   string
	Digest   [32]byte
	Xattrs   string
	Names    string // a directory's entry names, sorted, joined by "/"
}

// Scan returns the Entry of every path below dir (dir itself is "."),
// recording what o asks for.
func Scan(dir string, o Options) (map[string]Entry, error) {
	m := make(map[string]Entry)
	var root unix.Stat_t
	if err := unix.Lstat(dir, &root); err != nil {
		return nil, err
	}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if o.Only != "" && rel != "." && strings.Split(rel, string(filepath.Separator))[0] != o.Only {
			if fi.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if o.Only != "" && rel == "." {
			return nil // the top directory holds more than Only
		}
		st := fi.Sys().(*syscall.Stat_t)
		e := Entry{Mode: st.Mode, Size: st.Size}
		if o.Nlink || (o.DirNlink && fi.IsDir()) {
			e.Nlink = uint64(st.Nlink)
		}
		if o.Owner {
			e.UID, e.GID = st.Uid, st.Gid
		}
		if o.Mtime {
			e.Mtime = st.Mtim.Nano()
		}
		if o.Ino {
			e.Ino = st.Ino - root.Ino
		}
		if o.Rdev {
			e.Rdev = st.Rdev
		}
		switch {
		case fi.IsDir():
			if !o.DirSize {
				e.Size = 0
			}
			ents, err := os.ReadDir(p)
			if err != nil {
				return err
			}
			names := make([]string, len(ents))
			for i, d := range ents {
				names[i] = d.Name()
			}
			sort.Strings(names)
			e.Names = strings.Join(names, "/")
		case fi.Mode()&os.ModeSymlink != 0:
			if e.Target, err = os.Readlink(p); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			copy(e.Digest[:], h.Sum(nil))
		}
		if o.Xattrs {
			e.Xattrs = XattrString(p)
		}
		m[rel] = e
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Compare fails t unless got holds the same tree as want, as far as o
// looks.
func Compare(t testing.TB, got, want string, o Options) {
	t.Helper()
	g, err := Scan(got, o)
	if err != nil {
		t.Fatal(err)
	}
	w, err := Scan(want, o)
	if err != nil {
		t.Fatal(err)
	}
	bad := 0
	report := func(format string, args ...any) {
		t.Helper()
		t.Errorf(format, args...)
		if bad++; bad > 10 {
			t.Fatal("too many differences")
		}
	}
	paths := make([]string, 0, len(w))
	for p := range w {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		ge, ok := g[p]
		we := w[p]
		switch {
		case !ok:
			report("%s: missing from %s", p, got)
		case ge != we:
			report("%s: got %+v\nwant %+v", p, ge, we)
		}
	}
	for p := range g {
		if _, ok := w[p]; !ok {
			report("%s: only in %s", p, got)
		}
	}
	if o.NlinkOne || o.RootOwned {
		checkGot(t, got, o, report)
	}
	if len(w) < o.MinEntries {
		t.Fatalf("compared only %d entries of %s, want at least %d", len(w), want, o.MinEntries)
	}
}

// checkGot checks what o expects of got alone.
func checkGot(t testing.TB, got string, o Options, report func(string, ...any)) {
	t.Helper()
	top := got
	if o.Only != "" {
		top = filepath.Join(got, o.Only)
	}
	err := filepath.Walk(top, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		if o.NlinkOne && !fi.IsDir() && st.Nlink != 1 {
			report("%s: nlink %d, want 1 (hard links dereferenced)", p, st.Nlink)
		}
		if o.RootOwned && (st.Uid != 0 || st.Gid != 0) {
			report("%s: owner %d:%d, want 0:0", p, st.Uid, st.Gid)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// XattrString lists p's extended attributes and their values, sorted, as
// "key=value;...". A file system without xattr support has none.
func XattrString(p string) string {
	buf := make([]byte, 1<<16)
	n, err := unix.Llistxattr(p, buf)
	if errors.Is(err, unix.ENOTSUP) {
		return ""
	}
	if err != nil {
		return "error: " + err.Error()
	}
	var kv []string
	for _, k := range strings.Split(string(buf[:n]), "\x00") {
		if k == "" {
			continue
		}
		v := make([]byte, 1<<16)
		vn, err := unix.Lgetxattr(p, k, v)
		if err != nil {
			kv = append(kv, k+": "+err.Error())
			continue
		}
		kv = append(kv, k+"="+string(v[:vn]))
	}
	sort.Strings(kv)
	return strings.Join(kv, ";")
}
