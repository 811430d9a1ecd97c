package erofs

import (
	"bytes"
	"encoding/binary"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"testing"
)

// rdFixChecksum recomputes the superblock checksum of img in place so
// that fuzzed images get past it and exercise the rest of the reader.
func rdFixChecksum(img []byte) {
	if len(img) < SuperOffset+SuperSize {
		return
	}
	bits := img[SuperOffset+12]
	if bits < rdMinBlkBits || bits > rdMaxBlkBits {
		return
	}
	n := 1 << bits
	if n > SuperOffset {
		n -= SuperOffset
	}
	if SuperOffset+n > len(img) {
		return
	}
	blk := img[SuperOffset : SuperOffset+n]
	binary.LittleEndian.PutUint32(blk[4:], SuperChecksum(blk))
}

// rdFuzzSeeds returns small images made by mkfs.erofs (when installed) of
// a tiny tree, one per layout family, plus the committed corpus.
func rdFuzzSeeds(f *testing.F) [][]byte { return rdFuzzSeedsT(f) }

func rdFuzzSeedsT(f testing.TB) [][]byte {
	bin, err := exec.LookPath("mkfs.erofs")
	if err != nil {
		return nil
	}
	src := f.TempDir()
	files := map[string]string{
		"a":         "hello",
		"d/b":       string(bytes.Repeat([]byte("compressible "), 800)),
		"d/c":       string(bytes.Repeat([]byte("0123456789abcdef"), 400)),
		"d/e/empty": "",
	}
	for name, data := range files {
		p := filepath.Join(src, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(data), 0o644)
	}
	os.Symlink("d/b", filepath.Join(src, "l"))
	var out [][]byte
	for i, args := range [][]string{
		{"-x1"},
		{"-zlz4hc", "-Eztailpacking"},
		{"-zlz4", "-C16384"},
		{"--chunksize=4096"},
		{"-zlz4", "-Elegacy-compress"},
	} {
		img := filepath.Join(f.TempDir(), "seed.img")
		a := append(append([]string{"-T0", "-d0", "-b1024"}, args...), img, src)
		if i == 0 {
			a = append(append([]string{"-T0", "-d0"}, args...), img, src)
		}
		if err := exec.Command(bin, a...).Run(); err != nil {
			// Older mkfs.erofs may lack -b; retry with the default.
			a = append(append([]string{"-T0", "-d0"}, args...), img, src)
			if err := exec.Command(bin, a...).Run(); err != nil {
				continue
			}
		}
		if b, err := os.ReadFile(img); err == nil {
			out = append(out, b)
		}
	}
	return out
}

// rdFuzzOpen opens a fuzzed image with a small cache.
func rdFuzzOpen(img []byte) (*Reader, error) {
	img = append([]byte(nil), img...)
	rdFixChecksum(img)
	return OpenOptions(bytes.NewReader(img), ReaderOptions{CacheBytes: 16 << 20})
}

func FuzzSuperblock(f *testing.F) {
	for _, s := range rdFuzzSeeds(f) {
		f.Add(s[:min(len(s), 8192)])
	}
	f.Fuzz(func(t *testing.T, img []byte) {
		rd, err := rdFuzzOpen(img)
		if err != nil {
			return
		}
		_ = rd.Info()
		rd.Stat(".")
		rd.ReadDir(".")
	})
}

func FuzzInode(f *testing.F) {
	for _, s := range rdFuzzSeeds(f) {
		for nid := uint64(0); nid < 48; nid += 3 {
			f.Add(s, nid)
		}
	}
	f.Fuzz(func(t *testing.T, img []byte, nid uint64) {
		rd, err := rdFuzzOpen(img)
		if err != nil {
			return
		}
		in, err := rd.readInode(nid)
		if err != nil {
			return
		}
		fi := &rdFileInfo{"x", in}
		_ = fi.Mode()
		_ = fi.Sys()
		rd.xattrs(in)
		buf := make([]byte, 4096)
		switch {
		case in.isSymlink():
			rd.readLink(in)
		case in.isDir():
			rd.readDir(in)
			rd.lookup(in, "a")
		default:
			rd.readAt(in, buf, 0)
			if in.size > 1 {
				rd.readAt(in, buf, in.size/2)
				rd.readAt(in, buf[:1], in.size-1)
			}
		}
	})
}

func FuzzDirectory(f *testing.F) {
	for _, s := range rdFuzzSeeds(f) {
		f.Add(s, "d/b")
		f.Add(s, "l")
	}
	f.Fuzz(func(t *testing.T, img []byte, name string) {
		rd, err := rdFuzzOpen(img)
		if err != nil {
			return
		}
		es, _ := rd.ReadDir(".")
		for _, e := range es {
			e.Info()
			e.Type()
			if e.IsDir() {
				rd.ReadDir(e.Name())
			}
		}
		if fs.ValidPath(name) {
			rd.Lstat(name)
			rd.Stat(name)
			rd.ReadLink(name)
			rd.Xattrs(name)
		}
	})
}

// FuzzReadFile walks the whole image and reads every file, within a
// budget of entries and bytes so that huge (sparse or deduplicated)
// hostile files end in bounded time.
func FuzzReadFile(f *testing.F) {
	for _, s := range rdFuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, img []byte) {
		rd, err := rdFuzzOpen(img)
		if err != nil {
			return
		}
		rdWalkAll(rd, 1000, 4<<20)
	})
}

// rdWalkAll visits up to maxEntries entries of rd and reads up to
// maxBytes of file data, returning the first error.
func rdWalkAll(rd *Reader, maxEntries int, maxBytes int64) error {
	var first error
	note := func(err error) {
		if err != nil && err != io.EOF && first == nil {
			first = err
		}
	}
	entries := 0
	buf := make([]byte, 64<<10)
	var walk func(dir string)
	walk = func(dir string) {
		es, err := rd.ReadDir(dir)
		note(err)
		for _, e := range es {
			if entries++; entries > maxEntries {
				return
			}
			p := path.Join(dir, e.Name())
			fi, err := rd.Lstat(p)
			note(err)
			if err != nil {
				continue
			}
			rd.Xattrs(p)
			switch {
			case fi.IsDir():
				walk(p)
			case fi.Mode()&fs.ModeSymlink != 0:
				_, err := rd.ReadLink(p)
				note(err)
			case fi.Mode().IsRegular():
				fl, err := rd.Open(p)
				note(err)
				if err != nil {
					continue
				}
				ra := fl.(io.ReaderAt)
				for off := int64(0); off < fi.Size() && maxBytes > 0; {
					n, err := ra.ReadAt(buf, off)
					maxBytes -= int64(len(buf))
					off += int64(n)
					if err != nil {
						note(err)
						break
					}
				}
				fl.Close()
			}
		}
	}
	walk(".")
	return first
}
