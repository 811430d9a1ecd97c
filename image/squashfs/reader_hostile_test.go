package squashfs

import (
	"bytes"
	"encoding/binary"
	"io"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
)

func TestSynthImage(t *testing.T) {
	r, err := Open(bytes.NewReader(basicSynth().image()))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"hello": "hello", "link": "hello", "sub/tail": "abc"} {
		got, err := fs.ReadFile(r, name)
		if err != nil || string(got) != want {
			t.Errorf("ReadFile(%s) = %q, %v; want %q", name, got, err, want)
		}
	}
	if err := fstest.TestFS(r, "hello", "link", "sub/tail"); err != nil {
		t.Fatal(err)
	}
}

// walkAll walks r with generous budgets; see walkBudget.
func walkAll(r *Reader) error { return walkBudget(r, 20000, 64<<20) }

// walkBudget visits the entries of r through the Reader API, reading
// files (at most 1 MiB of each, maxRead bytes in all) and xattrs, and
// returns the first error.
func walkBudget(r *Reader, maxEntries int, maxRead int64) error {
	root, err := r.Inode(r.RootRef())
	if err != nil {
		return err
	}
	var firstErr error
	note := func(err error) {
		if firstErr == nil && err != nil {
			firstErr = err
		}
	}
	visited := 0
	var read int64
	stack := []*Inode{root}
	buf := make([]byte, 64<<10)
	for len(stack) > 0 && visited < maxEntries {
		dir := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		d, err := r.OpenDir(dir)
		if err != nil {
			note(err)
			continue
		}
		for visited < maxEntries {
			e, err := d.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				note(err)
				break
			}
			visited++
			if _, err := r.Lookup(dir, e.Name); err != nil {
				note(err)
			}
			in, err := r.EntryInode(dir, e)
			if err != nil {
				note(err)
				continue
			}
			_, err = r.InodeXattrs(in)
			note(err)
			switch {
			case in.isDir():
				stack = append(stack, in)
			case in.isFile():
				fd, err := r.FileData(in)
				if err != nil {
					note(err)
					continue
				}
				for off := int64(0); off < min(fd.Size(), 1<<20) && read < maxRead; {
					n, err := fd.ReadAt(buf, off)
					off += int64(n)
					read += int64(n)
					if err != nil {
						if err != io.EOF {
							note(err)
						}
						break
					}
				}
				// A read near the end exercises block list walking.
				if fd.Size() > 1 {
					_, err := fd.ReadAt(buf[:1], fd.Size()-1)
					if err != io.EOF {
						note(err)
					}
				}
			}
		}
	}
	return firstErr
}

func TestHostileImages(t *testing.T) {
	le := binary.LittleEndian
	good := basicSynth().image()
	patch := func(f func(b []byte) []byte) []byte {
		return f(bytes.Clone(good))
	}
	sbPatch := func(off int, v uint64, size int) []byte {
		return patch(func(b []byte) []byte {
			switch size {
			case 2:
				le.PutUint16(b[off:], uint16(v))
			case 4:
				le.PutUint32(b[off:], uint32(v))
			case 8:
				le.PutUint64(b[off:], v)
			}
			return b
		})
	}
	synthWith := func(edit func(s *synth)) []byte {
		s := basicSynth()
		edit(s)
		return s.image()
	}
	// The root lists an entry pointing back to the root.
	rootCycle := func(s *synth) {
		ents := []synthEntry{{"loop", s.root, 1, TypeDir}}
		l := synthListing(ents...)
		s.dirs = append(s.dirs, l...)
		// Rewrite the root inode: listing at the new entries.
		rootOff := int(s.root & 0xffff)
		sub := len(s.dirs) - len(l)
		s.inodes = synthDir(s.inodes[:rootOff], 1, 0, 0, uint16(sub), len(l), 3)
	}
	// "sub" lists itself.
	selfCycle := func(s *synth) {
		s2 := basicSynth()
		subOff := bytes.Index(s2.inodes, synthDir(nil, 4, 1, 0, 0, 8+4+12, 2))
		if subOff < 0 {
			panic("sub inode not found")
		}
		l := synthListing(synthEntry{"again", synthRef(subOff), 4, TypeDir})
		start := len(s.dirs)
		s.dirs = append(s.dirs, l...)
		copy(s.inodes[subOff:], synthDir(nil, 4, 1, 0, uint16(start), len(l), 2))
	}
	for _, tc := range []struct {
		name string
		img  []byte
		want string // substring of the error
		walk bool   // error appears when walking, not at Open
	}{
		{"empty", nil, "reading superblock", false},
		{"truncated superblock", good[:50], "reading superblock", false},
		{"truncated image", good[:len(good)-20], "truncated", false},
		{"bad magic", sbPatch(0, 0x12345678, 4), "bad magic", false},
		{"bad version", sbPatch(28, 3, 2), "unsupported version 3.0", false},
		{"block size too small", patch(func(b []byte) []byte { le.PutUint32(b[12:], 2048); le.PutUint16(b[22:], 11); return b }), "block size 2048 out of range", false},
		{"block size not power of two", sbPatch(12, 5000, 4), "block size 5000", false},
		{"block log mismatch", sbPatch(22, 13, 2), "block log 13 does not match", false},
		{"unknown compressor", sbPatch(20, 9, 2), "unknown compressor id 9", false},
		{"lzo", sbPatch(20, 3, 2), "unsupported compressor lzo", false},
		{"bytes used too small", sbPatch(40, 10, 8), "smaller than the superblock", false},
		{"id table past end", sbPatch(48, uint64(len(good))+100, 8), "id table at", false},
		{"inode table past end", sbPatch(64, 1<<40, 8), "inode table at", false},
		{"dir table before inode table", sbPatch(72, SuperblockSize+1, 8), "does not precede", false},
		{"root ref outside inode table", sbPatch(32, 1<<40, 8), "root inode reference", false},
		{"zero inodes", sbPatch(4, 0, 4), "inode count is 0", false},
		{"fragments without table", patch(func(b []byte) []byte { le.PutUint64(b[80:], NoTable); return b }), "fragments but no fragment table", false},
		{"id count past index", sbPatch(26, 5000, 2), "id table", false},
		{"metadata length too big", patch(func(b []byte) []byte {
			it := le.Uint64(b[64:])
			le.PutUint16(b[it:], 0x8000|0x7fff)
			return b
		}), "bad on-disk size 32767", false},
		{"metadata block corrupt", patch(func(b []byte) []byte {
			it := le.Uint64(b[64:])
			h := le.Uint16(b[it:])
			le.PutUint16(b[it:], h&0x7fff) // claims compressed: not zlib
			return b
		}), "zlib", false},
		{"root is a file", synthWith(func(s *synth) { s.root = 0 }), "is not a directory", false},
		{"root points back to itself", synthWith(rootCycle), "points back to the root", true},
		{"directory lists itself", synthWith(selfCycle), "listed by two directories", true},
		{"entry out of order", synthWith(func(s *synth) {
			i := bytes.Index(s.dirs, []byte("link"))
			copy(s.dirs[i:], "aaaa")
		}), "out of order", true},
		{"entry name with slash", synthWith(func(s *synth) {
			i := bytes.Index(s.dirs, []byte("link"))
			copy(s.dirs[i:], "l/nk")
		}), "invalid entry name", true},
		{"entry type mismatch", synthWith(func(s *synth) {
			i := bytes.Index(s.dirs, []byte("link"))
			le.PutUint16(s.dirs[i-4:], TypeFile)
		}), "has type 3, the directory says 2", true},
		{"uid index out of range", synthWith(func(s *synth) {
			le.PutUint16(s.inodes[4:], 7)
		}), "uid/gid index 7/0 out of range", true},
		{"data block past end", synthWith(func(s *synth) {
			le.PutUint32(s.inodes[16:], 1<<30) // "hello" data start
		}), "past the end of the image", true},
		{"block size field too big", synthWith(func(s *synth) {
			le.PutUint32(s.inodes[32:], 8192|blockUncompressed)
		}), "exceeds the block size", true},
		{"fragment index out of range", synthWith(func(s *synth) {
			i := bytes.Index(s.inodes, synthFile(nil, 5, 0, 3, 0, 0))
			le.PutUint32(s.inodes[i+20:], 7)
		}), "fragment index 7 out of range", true},
		{"fragment tail past block", synthWith(func(s *synth) {
			i := bytes.Index(s.inodes, synthFile(nil, 5, 0, 3, 0, 0))
			le.PutUint32(s.inodes[i+24:], 2)
		}), "past the end of fragment 0", true},
		{"symlink too long", synthWith(func(s *synth) {
			i := bytes.Index(s.inodes, []byte("hello"))
			le.PutUint32(s.inodes[i-4:], 1<<20)
		}), "symlink target length 1048576 too long", true},
		{"listing size overrun", synthWith(func(s *synth) {
			rootOff := int(s.root & 0xffff)
			le.PutUint16(s.inodes[rootOff+16+8:], 20)
		}), "overruns the directory size", true},
		{"header count too big", synthWith(func(s *synth) {
			i := len(s.dirs) - (12 + 3*8 + len("hello") + len("link") + len("sub"))
			le.PutUint32(s.dirs[i:], 300)
		}), "header with 301 entries", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Open(bytes.NewReader(tc.img))
			if err == nil {
				if !tc.walk {
					t.Fatalf("Open succeeded, want error containing %q", tc.want)
				}
				err = walkAll(r)
				if err == nil {
					err = fstest.TestFS(r)
				}
			} else if tc.walk {
				t.Fatalf("Open: %v (want it to fail only on walking)", err)
			}
			t.Log(err)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "squashfs: ") {
				t.Errorf("error %q does not start with squashfs:", err)
			}
		})
	}
	if err := walkAll(mustOpen(t, good)); err != nil {
		t.Fatalf("walking the good image: %v", err)
	}
}

func mustOpen(t *testing.T, img []byte) *Reader {
	t.Helper()
	r, err := Open(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	return r
}
