package closure

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// narBufSize is the NAR encoder's write buffer, also used to read file
// contents directly, so large files are read in large chunks.
const narBufSize = 1 << 20

// narEncoder streams a NAR to w through one reusable buffer.
type narEncoder struct {
	w    io.Writer
	buf  []byte
	n    int
	dbuf []byte // getdents buffer of the DirFS fast path
}

func newNarEncoder(w io.Writer) *narEncoder {
	return &narEncoder{w: w, buf: make([]byte, narBufSize)}
}

func (e *narEncoder) flush() error {
	if e.n == 0 {
		return nil
	}
	_, err := e.w.Write(e.buf[:e.n])
	e.n = 0
	return err
}

func (e *narEncoder) write(p []byte) error {
	for len(p) > 0 {
		if e.n == len(e.buf) {
			if err := e.flush(); err != nil {
				return err
			}
		}
		c := copy(e.buf[e.n:], p)
		e.n += c
		p = p[c:]
	}
	return nil
}

var zeros [8]byte

// str writes a NAR string: little-endian 64-bit length, bytes, zero padding
// to a multiple of 8.
func (e *narEncoder) str(s string) error {
	var l [8]byte
	binary.LittleEndian.PutUint64(l[:], uint64(len(s)))
	if err := e.write(l[:]); err != nil {
		return err
	}
	if err := e.writeString(s); err != nil {
		return err
	}
	return e.write(zeros[:pad8(uint64(len(s)))])
}

func (e *narEncoder) writeString(s string) error {
	for len(s) > 0 {
		if e.n == len(e.buf) {
			if err := e.flush(); err != nil {
				return err
			}
		}
		c := copy(e.buf[e.n:], s)
		e.n += c
		s = s[c:]
	}
	return nil
}

// strs writes several NAR strings.
func (e *narEncoder) strs(ss ...string) error {
	for _, s := range ss {
		if err := e.str(s); err != nil {
			return err
		}
	}
	return nil
}

func pad8(n uint64) uint64 { return (8 - n%8) % 8 }

// WriteNAR writes the NAR serialisation of the file tree at name in fsys to
// w, byte for byte what `nix-store --dump` writes for the same tree: entries
// in byte order, a regular file executable if its owner execute bit is set
// (as Nix tests S_IXUSR), symlinks stored, not followed. name is a path as
// fs.FS takes it, e.g. a store path's base name in DirFS(storeDir), or ".".
//
// fsys must implement fs.ReadLinkFS if the tree holds symlinks (DirFS,
// os.DirFS and image.FS do). Use DirFS rather than os.DirFS for a store on
// disk: os.DirFS refuses file names that are not UTF-8. Regular files are opened with fsys.Open and read in a single
// stream; one whose size changes while it is read is an error.
func WriteNAR(w io.Writer, fsys fs.FS, name string) error {
	e := newNarEncoder(w)
	if err := e.dump(fsys, name); err != nil {
		return err
	}
	return e.flush()
}

// dump writes one whole NAR, starting with the magic string.
func (e *narEncoder) dump(fsys fs.FS, name string) error {
	if d, ok := fsys.(DirFS); ok {
		return e.dumpDirFS(d, name)
	}
	fi, err := fs.Lstat(fsys, name)
	if err != nil {
		return err
	}
	if err := e.str("nix-archive-1"); err != nil {
		return err
	}
	return e.node(fsys, name, fi)
}

func (e *narEncoder) node(fsys fs.FS, name string, fi fs.FileInfo) error {
	mode := fi.Mode()
	switch {
	case mode.IsRegular():
		if err := e.strs("(", "type", "regular"); err != nil {
			return err
		}
		if mode&0o100 != 0 {
			if err := e.strs("executable", ""); err != nil {
				return err
			}
		}
		if err := e.str("contents"); err != nil {
			return err
		}
		if err := e.contents(fsys, name, fi.Size()); err != nil {
			return err
		}
		return e.str(")")
	case mode&fs.ModeSymlink != 0:
		target, err := fs.ReadLink(fsys, name)
		if err != nil {
			return err
		}
		return e.strs("(", "type", "symlink", "target", target, ")")
	case mode.IsDir():
		ents, err := fs.ReadDir(fsys, name)
		if err != nil {
			return err
		}
		if !slices.IsSortedFunc(ents, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) }) {
			slices.SortFunc(ents, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
		}
		if err := e.strs("(", "type", "directory"); err != nil {
			return err
		}
		for i, ent := range ents {
			n := ent.Name()
			if n == "" || n == "." || n == ".." || strings.ContainsAny(n, "/\x00") {
				return fmt.Errorf("%s: invalid directory entry name %q", name, n)
			}
			if i > 0 && ents[i-1].Name() == n {
				return fmt.Errorf("%s: duplicate directory entry %q", name, n)
			}
			child := path.Join(name, n)
			cfi, err := ent.Info()
			if err != nil {
				return err
			}
			if err := e.strs("entry", "(", "name", n, "node"); err != nil {
				return err
			}
			if err := e.node(fsys, child, cfi); err != nil {
				return err
			}
			if err := e.str(")"); err != nil {
				return err
			}
		}
		return e.str(")")
	default:
		return fmt.Errorf("%s: unsupported file type %v", name, mode.Type())
	}
}

// contents writes a regular file's contents as a NAR string, reading it
// straight into the encoder's buffer.
func (e *narEncoder) contents(fsys fs.FS, name string, size int64) error {
	if size < 0 {
		return fmt.Errorf("%s: negative size %d", name, size)
	}
	var l [8]byte
	binary.LittleEndian.PutUint64(l[:], uint64(size))
	if err := e.write(l[:]); err != nil {
		return err
	}
	f, err := fsys.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := e.copyContents(f, name, size); err != nil {
		return err
	}
	// A file that grew is caught here: there must be no more data.
	var one [1]byte
	if r, _ := f.Read(one[:]); r > 0 {
		return fmt.Errorf("%s: file grew while being read", name)
	}
	return e.write(zeros[:pad8(uint64(size))])
}

// copyContents reads size bytes of name from r straight into the encoder's
// buffer.
func (e *narEncoder) copyContents(r io.Reader, name string, size int64) error {
	left := size
	for left > 0 {
		if e.n == len(e.buf) {
			if err := e.flush(); err != nil {
				return err
			}
		}
		dst := e.buf[e.n:]
		if int64(len(dst)) > left {
			dst = dst[:left]
		}
		k, err := r.Read(dst)
		e.n += k
		left -= int64(k)
		if err == io.EOF && left > 0 {
			return fmt.Errorf("%s: file shrank while being read (%d bytes missing)", name, left)
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("reading %s: %w", name, err)
		}
	}
	return nil
}

// countingHash is a SHA-256 that also counts the bytes written.
type countingHash struct {
	h hash.Hash
	n uint64
}

func (c *countingHash) Write(p []byte) (int, error) {
	c.n += uint64(len(p))
	return c.h.Write(p)
}

// NarHasher computes NAR hashes and sizes, reusing its buffers from one
// call to the next. It is not safe for concurrent use; use one per worker.
type NarHasher struct {
	ch  countingHash
	enc *narEncoder
}

// NewNarHasher returns a NarHasher.
func NewNarHasher() *NarHasher {
	h := &NarHasher{ch: countingHash{h: sha256.New()}}
	h.enc = newNarEncoder(&h.ch)
	return h
}

// Hash returns the SHA-256 digest and the length of the NAR serialisation
// of name in fsys. If extra is not nil it also receives the NAR bytes.
func (h *NarHasher) Hash(fsys fs.FS, name string, extra io.Writer) (digest [32]byte, size uint64, err error) {
	h.ch.h.Reset()
	h.ch.n = 0
	h.enc.n = 0
	h.enc.w = &h.ch
	if extra != nil {
		h.enc.w = io.MultiWriter(&h.ch, extra)
	}
	if err := h.enc.dump(fsys, name); err != nil {
		return digest, 0, err
	}
	if err := h.enc.flush(); err != nil {
		return digest, 0, err
	}
	h.ch.h.Sum(digest[:0])
	return digest, h.ch.n, nil
}

// HashNAR returns the SHA-256 digest and length of the NAR serialisation
// of name in fsys.
func HashNAR(fsys fs.FS, name string) (digest [32]byte, size uint64, err error) {
	return NewNarHasher().Hash(fsys, name, nil)
}

// NarResult is the NAR hash and size of one path.
type NarResult struct {
	Hash [32]byte
	Size uint64
}

// HashOptions controls HashPaths.
type HashOptions struct {
	// Jobs is the number of paths hashed at once; 0 or less means 1.
	Jobs int
	// Progress, if not nil, is called after each path with the path's index
	// and NAR size. It may be called from several goroutines at once.
	Progress func(i int, size uint64)
	// Stop, if not nil, is checked between paths; a non-nil result aborts.
	Stop func() error
}

// HashPaths returns the NAR hash and size of each of names in fsys, in
// the order of names, hashing opt.Jobs paths in parallel. The first error
// (in the order of names) is returned, naming the path.
func HashPaths(fsys fs.FS, names []string, opt HashOptions) ([]NarResult, error) {
	res := make([]NarResult, len(names))
	errs := make([]error, len(names))
	parallel(len(names), opt.Jobs, func() func(i int) bool {
		h := NewNarHasher()
		return func(i int) bool {
			if opt.Stop != nil {
				if err := opt.Stop(); err != nil {
					errs[i] = err
					return false
				}
			}
			d, n, err := h.Hash(fsys, names[i], nil)
			if err != nil {
				errs[i] = fmt.Errorf("hashing %s: %w", names[i], err)
				return false
			}
			res[i] = NarResult{d, n}
			if opt.Progress != nil {
				opt.Progress(i, n)
			}
			return true
		}
	})
	if err := firstErr(errs); err != nil {
		return nil, err
	}
	return res, nil
}

func firstErr(errs []error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
