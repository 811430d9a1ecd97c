package squashfs

import (
	"bytes"
	"encoding/binary"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/closurefs/closurefs/internal/cache"
	"github.com/closurefs/closurefs/internal/codec"
	"golang.org/x/sys/unix"
)

// Fuzz budgets: every input must finish quickly with data or an error.
const (
	fuzzMaxEntries = 2000
	fuzzMaxRead    = 4 << 20
)

// seedImages are small real images (one per compressor the tools write),
// made once per process when mksquashfs/gensquashfs are installed, plus
// the synthetic basic image.
type seedImage struct {
	name string
	data []byte
}

var (
	seedOnce sync.Once
	seeds    []seedImage
	// plainSeeds have uncompressed inode and directory tables and no
	// xattrs or fragment table, so synth can rebuild them around fuzzed
	// tables.
	plainSeeds []seedImage
)

func fuzzSeeds(tb testing.TB) ([]seedImage, []seedImage) {
	seedOnce.Do(func() {
		seeds = []seedImage{{"synth", basicSynth().image()}}
		plainSeeds = nil
		dir, err := os.MkdirTemp("", "squashfs-fuzz-seeds")
		if err != nil {
			return
		}
		defer os.RemoveAll(dir)
		src := filepath.Join(dir, "src")
		must := func(err error) bool { return err == nil }
		ok := must(os.MkdirAll(filepath.Join(src, "d", "e"), 0o755)) &&
			must(os.WriteFile(filepath.Join(src, "a"), []byte("hello\n"), 0o644)) &&
			must(os.WriteFile(filepath.Join(src, "d", "big"), bytes.Repeat([]byte("abcdefgh"), 700), 0o755)) &&
			must(os.WriteFile(filepath.Join(src, "d", "e", "sparse"), append(make([]byte, 8192), 'x'), 0o644)) &&
			must(os.Link(filepath.Join(src, "a"), filepath.Join(src, "d", "hard"))) &&
			must(os.Symlink("../a", filepath.Join(src, "d", "link")))
		if !ok {
			return
		}
		unix.Lsetxattr(filepath.Join(src, "a"), "user.x", []byte("value"), 0)
		unix.Lsetxattr(filepath.Join(src, "d"), "user.x", []byte("value"), 0)
		run := func(name string, args ...string) []byte {
			if !haveTool(args[0]) {
				return nil
			}
			img := filepath.Join(dir, name)
			var cmd *exec.Cmd
			if args[0] == "mksquashfs" {
				cmd = exec.Command("mksquashfs", append([]string{src, img, "-noappend", "-quiet", "-no-progress", "-nopad", "-b", "4096", "-all-root"}, args[1:]...)...)
			} else {
				cmd = exec.Command("gensquashfs", append([]string{"-q", "-f", "-D", src, "-x", "-b", "4096", "-B", "1024"}, append(args[1:], img)...)...)
			}
			if err := cmd.Run(); err != nil {
				return nil
			}
			b, _ := os.ReadFile(img)
			return b
		}
		for _, c := range []string{"gzip", "xz", "lz4", "zstd", "lzma"} {
			if b := run("mk-"+c, "mksquashfs", "-comp", c); b != nil {
				seeds = append(seeds, seedImage{"mksquashfs-" + c, b})
			}
		}
		// Nothing compressed: mutations reach every structure directly.
		if b := run("mk-none", "mksquashfs", "-noI", "-noD", "-noF", "-noX", "-noId", "-exports"); b != nil {
			seeds = append(seeds, seedImage{"mksquashfs-uncompressed", b})
		}
		if b := run("gen-gzip", "gensquashfs", "-c", "gzip", "-e"); b != nil {
			seeds = append(seeds, seedImage{"gensquashfs-gzip", b})
		}
		if b := run("plain", "mksquashfs", "-noI", "-noD", "-no-fragments", "-no-xattrs", "-no-exports"); b != nil {
			plainSeeds = append(plainSeeds, seedImage{"plain", b})
		}
	})
	return seeds, plainSeeds
}

// fuzzWalk opens img and walks it through both the Reader API and the
// fs.FS API within the fuzz budgets.
func fuzzWalk(t *testing.T, img []byte) {
	r, err := Open(bytes.NewReader(img))
	if err != nil {
		return
	}
	_ = r.Info()
	walkBudget(r, fuzzMaxEntries, fuzzMaxRead)
	n := 0
	fs.WalkDir(r, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if n++; n > fuzzMaxEntries {
			return fs.SkipAll
		}
		r.Xattrs(p)
		if d.Type()&fs.ModeSymlink != 0 {
			r.ReadLink(p)
			r.Stat(p)
		}
		if d.Type().IsRegular() {
			if f, err := r.Open(p); err == nil {
				io.Copy(io.Discard, io.LimitReader(f, 64<<10))
				f.Close()
			}
		}
		return nil
	})
}

func addImageSeeds(f *testing.F) {
	s, _ := fuzzSeeds(f)
	for _, img := range s {
		f.Add(img.data)
	}
}

func FuzzReadFile(f *testing.F) {
	addImageSeeds(f)
	f.Fuzz(func(t *testing.T, img []byte) {
		fuzzWalk(t, img)
	})
}

// FuzzSuperblock mutates the first 96 bytes of the seed images.
func FuzzSuperblock(f *testing.F) {
	s, _ := fuzzSeeds(f)
	for i, img := range s {
		f.Add(uint8(i), img.data[:SuperblockSize])
	}
	f.Fuzz(func(t *testing.T, base uint8, sb []byte) {
		img := bytes.Clone(s[int(base)%len(s)].data)
		copy(img, sb)
		if r, err := Open(bytes.NewReader(img)); err == nil {
			_ = r.Info()
			walkBudget(r, fuzzMaxEntries, fuzzMaxRead)
		}
	})
}

// FuzzMetadata reads a stream of metadata blocks with each compressor.
func FuzzMetadata(f *testing.F) {
	s, _ := fuzzSeeds(f)
	for _, img := range s {
		sb := decodeSuper(img.data)
		if sb.InodeTable < sb.DirTable && sb.DirTable <= uint64(len(img.data)) {
			f.Add(uint8(sb.Compressor), img.data[sb.InodeTable:sb.DirTable])
		}
	}
	f.Fuzz(func(t *testing.T, comp uint8, data []byte) {
		name, ok := rdCompressors[uint16(comp)]
		if !ok || name.codec == "" {
			return
		}
		c, err := codec.New(name.codec, 0)
		if err != nil {
			t.Fatal(err)
		}
		rd := &Reader{
			r: bytes.NewReader(data), end: uint64(len(data)), codec: c,
			meta: cache.New[uint64, *metaBlock](1 << 20),
		}
		cur := rd.cursorAt("fuzz", 0, uint64(len(data)), metaPos{})
		total := 0
		for total < 1<<20 {
			b, err := cur.read(100)
			if err != nil {
				return
			}
			if len(b) != 100 {
				t.Fatalf("read %d bytes, want 100", len(b))
			}
			total += len(b)
		}
	})
}

// synthFromPlain rebuilds a plain seed image as a synth, so fuzzers can
// replace its inode or directory table.
func synthFromPlain(t testing.TB, img []byte) *synth {
	r, err := Open(bytes.NewReader(img))
	if err != nil {
		t.Fatalf("plain seed: %v", err)
	}
	sb := r.sb
	stream := func(pos, limit uint64) []byte {
		var out []byte
		for pos < limit {
			mb, err := r.metaBlock(pos, limit)
			if err != nil {
				break
			}
			out = append(out, mb.data...)
			pos = mb.next
		}
		return out
	}
	return &synth{
		data:    img[SuperblockSize:sb.InodeTable],
		inodes:  stream(sb.InodeTable, sb.DirTable),
		dirs:    stream(sb.DirTable, r.dirLimit),
		ids:     r.ids,
		root:    sb.RootInode,
		ninodes: sb.Inodes,
	}
}

func synthBases(f *testing.F) []*synth {
	bases := []*synth{basicSynth()}
	_, plain := fuzzSeeds(f)
	for _, p := range plain {
		bases = append(bases, synthFromPlain(f, p.data))
	}
	return bases
}

// FuzzInode replaces the inode table (uncompressed) of a base image,
// decodes an inode at every offset and walks the tree.
func FuzzInode(f *testing.F) {
	bases := synthBases(f)
	for i, b := range bases {
		f.Add(uint8(i), b.inodes, uint32(b.root))
	}
	f.Fuzz(func(t *testing.T, base uint8, inodes []byte, root uint32) {
		if len(inodes) > 64<<10 {
			return
		}
		s := *bases[int(base)%len(bases)]
		s.inodes, s.root = inodes, uint64(root)
		img := s.image()
		r, err := Open(bytes.NewReader(img))
		if err != nil {
			return
		}
		for off := range min(len(inodes), 2048) {
			in, err := r.Inode(synthRef(off))
			if err != nil {
				continue
			}
			r.InodeXattrs(in)
			switch {
			case in.isDir():
				if d, err := r.OpenDir(in); err == nil {
					for range 300 {
						if _, err := d.Next(); err != nil {
							break
						}
					}
				}
				r.Lookup(in, "a")
			case in.isFile():
				if fd, err := r.FileData(in); err == nil {
					var buf [4096]byte
					fd.ReadAt(buf[:], 0)
					if fd.Size() > 0 {
						fd.ReadAt(buf[:1], fd.Size()-1)
					}
				}
			}
		}
		walkBudget(r, fuzzMaxEntries, fuzzMaxRead)
	})
}

// FuzzDirectory replaces the directory table (uncompressed) of a base
// image and walks the tree.
func FuzzDirectory(f *testing.F) {
	bases := synthBases(f)
	for i, b := range bases {
		f.Add(uint8(i), b.dirs)
	}
	f.Fuzz(func(t *testing.T, base uint8, dirs []byte) {
		if len(dirs) > 64<<10 {
			return
		}
		s := *bases[int(base)%len(bases)]
		s.dirs = dirs
		fuzzWalk(t, s.image())
	})
}

// TestFuzzSeeds checks the seeds are what the fuzzers expect: every seed
// image opens and walks cleanly.
func TestFuzzSeeds(t *testing.T) {
	s, plain := fuzzSeeds(t)
	if haveTool("mksquashfs") && len(s) < 7 {
		t.Errorf("only %d seed images", len(s))
	}
	for _, img := range append(s, plain...) {
		r, err := Open(bytes.NewReader(img.data))
		if err != nil {
			t.Fatalf("%s: %v", img.name, err)
		}
		if err := walkBudget(r, fuzzMaxEntries, fuzzMaxRead); err != nil {
			t.Errorf("%s: %v", img.name, err)
		}
	}
	for _, p := range plain {
		// Rebuilt around its own tables, a plain seed reads the same.
		s := synthFromPlain(t, p.data)
		r, err := Open(bytes.NewReader(s.image()))
		if err != nil {
			t.Fatalf("%s rebuilt: %v", p.name, err)
		}
		got, err := fs.ReadFile(r, "d/big")
		if err != nil || !bytes.Equal(got, bytes.Repeat([]byte("abcdefgh"), 700)) {
			t.Errorf("%s rebuilt: d/big: %v", p.name, err)
		}
	}
	_ = binary.LittleEndian
}
