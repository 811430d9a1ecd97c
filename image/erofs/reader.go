package erofs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/closurefs/closurefs/image"
	"github.com/closurefs/closurefs/internal/cache"
	"github.com/closurefs/closurefs/internal/codec"
)

// Limits applied to untrusted images.
const (
	rdMaxBlkBits      = 16      // largest block size accepted (64 KiB)
	rdMinBlkBits      = 9       // smallest block size accepted (512 B)
	rdMaxPclusterSize = 1 << 20 // Z_EROFS_PCLUSTER_MAX_SIZE: encoded pcluster bytes
	rdMaxExtentSize   = 12 << 20
	rdMaxSymlink      = 65535 // longest symlink target accepted
	rdMaxDirBlocks    = 1 << 26
	rdMaxXattrs       = 4096 // xattrs of one inode
	rdMaxSharedXattrs = 255
	// rdDefaultCacheBytes bounds the cache of decompressed pclusters.
	rdDefaultCacheBytes = 32 << 20
	// rdMetaCacheBlocks bounds the cache of metadata blocks.
	rdMetaCacheBlocks = 1024
	rdInodeCacheSize  = 8192
)

// Incompatible features this reader understands.
const rdKnownIncompat = FeatureIncompatZeroPadding | FeatureIncompatComprCfgs |
	FeatureIncompatChunkedFile | FeatureIncompatDeviceTable | FeatureIncompatZtailpacking |
	FeatureIncompatFragments | FeatureIncompatXattrPrefixes | FeatureIncompat48Bit

// compatPlainXattrPfx is EROFS_FEATURE_COMPAT_PLAIN_XATTR_PFX: long xattr
// prefixes stored in plain metadata even when a packed inode exists.
const compatPlainXattrPfx = 0x10

// ErrCorrupt is wrapped by every error that reports an inconsistent image.
var ErrCorrupt = errors.New("corrupt erofs image")

func corruptf(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, a...))
}

// ReaderOptions tune a Reader.
type ReaderOptions struct {
	// CacheBytes bounds the memory held by the cache of decompressed
	// pclusters shared by all files (default 32 MiB; negative disables it).
	CacheBytes int64
}

// Reader reads an EROFS image. It implements image.FS and image.XattrFS
// and is safe for concurrent use.
//
// It reads what mkfs.erofs writes: uncompressed (FLAT_PLAIN, FLAT_INLINE),
// chunk-based and compressed files (lz4, MicroLZMA, deflate, zstd; full and
// compact lcluster indexes or extent records, big pclusters, ztailpacking,
// fragments, dedupe, interlaced pclusters), compressed directories, inline
// and shared xattrs with long name prefixes, and the 48-bit layout. Extra
// devices and metadata compression (metabox) are reported as unsupported.
//
// Names are looked up by binary search over the directory blocks.
// Relative symlinks are followed by Open and Stat (as fstest.MapFS does);
// absolute targets are outside the image and give an error. Inode numbers
// are nids, as the kernel reports them. Decoded pclusters are kept in a
// bounded cache shared by all files. Every offset, length and count read
// from the image is checked, and walks that would loop are reported as
// errors wrapping ErrCorrupt.
type Reader struct {
	// NodeFS gives the Reader its read interface (image.FS, XattrFS).
	image.NodeFS[*rdInode]

	r        io.ReaderAt
	size     int64 // bytes of the image addressable by block numbers
	sb       *Superblock
	blkBits  uint
	blkSize  int64
	metaBase int64
	xattrBse int64
	rootNid  uint64
	blocks   uint64
	epoch    int64
	fixNsec  uint32
	mkfsTime uint32
	algs     uint16 // available compression algorithms
	incompat uint32
	compat   uint32
	sbSize   int
	prefixes []xattrLongPrefix
	cfgs     map[int][]byte

	packed    *rdInode
	meta      *cache.LRU[uint64, []byte]
	pclusters *cache.LRU[rdPclusterKey, []byte]
	inodes    *cache.LRU[uint64, *rdInode]
	packedMu  sync.Mutex
	rawBufs   sync.Pool // *[]byte buffers for encoded pclusters
	codecMu   sync.Mutex
	codecs    map[string]codec.Codec
}

// Open reads the superblock of the EROFS image in r and returns a Reader
// with default options.
func Open(r io.ReaderAt) (*Reader, error) { return OpenOptions(r, ReaderOptions{}) }

// OpenOptions is Open with options.
func OpenOptions(r io.ReaderAt, opts ReaderOptions) (*Reader, error) {
	rd := &Reader{r: r}
	rd.NodeFS = image.NewNodeFS[*rdInode](tree{rd})
	if err := rd.readSuper(); err != nil {
		return nil, fmt.Errorf("erofs: %w", err)
	}
	cacheSize := opts.CacheBytes
	if cacheSize == 0 {
		cacheSize = rdDefaultCacheBytes
	}
	rd.pclusters = cache.New[rdPclusterKey, []byte](cacheSize)
	rd.meta = cache.New[uint64, []byte](rdMetaCacheBlocks * rd.blkSize)
	rd.inodes = cache.New[uint64, *rdInode](rdInodeCacheSize)
	if err := rd.readXattrPrefixes(); err != nil {
		return nil, fmt.Errorf("erofs: %w", err)
	}
	root, err := rd.inodeAt(rd.rootNid)
	if err != nil {
		return nil, fmt.Errorf("erofs: root inode: %w", err)
	}
	if !root.isDir() {
		return nil, fmt.Errorf("erofs: %w", corruptf("root inode %d is not a directory", rd.rootNid))
	}
	return rd, nil
}

// rdSizer is implemented by readers that know their size (bytes.Reader,
// io.SectionReader, strings.Reader).
type rdSizer interface{ Size() int64 }

func (rd *Reader) readSuper() error {
	var buf [SuperOffset + 256]byte
	n, err := rd.r.ReadAt(buf[:], 0)
	if n < SuperOffset+SuperSize {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("reading superblock: %w", err)
	}
	b := buf[SuperOffset:n]
	sb, err := DecodeSuperblock(b)
	if err != nil {
		return err
	}
	if sb.Magic != Magic {
		return fmt.Errorf("not an erofs image (magic %#08x at byte 1024, want %#08x)", sb.Magic, uint32(Magic))
	}
	rd.sb = sb
	if sb.BlkSzBits < rdMinBlkBits || sb.BlkSzBits > rdMaxBlkBits {
		return corruptf("block size 2^%d out of range", sb.BlkSzBits)
	}
	rd.blkBits = uint(sb.BlkSzBits)
	rd.blkSize = 1 << rd.blkBits
	rd.compat = sb.FeatureCompat
	rd.incompat = sb.FeatureIncompat
	if un := rd.incompat &^ rdKnownIncompat; un != 0 {
		return fmt.Errorf("unsupported incompatible features %#x (%s)", un, strings.Join(incompatNames(un), ","))
	}
	rd.sbSize = SuperSize + int(sb.ExtSlots)*16
	if rd.sbSize > 256 || SuperOffset+rd.sbSize > n {
		return corruptf("superblock extension slots %d too many", sb.ExtSlots)
	}
	le := binary.LittleEndian
	rd.blocks = uint64(sb.Blocks)
	rd.rootNid = uint64(sb.RootNid)
	if rd.incompat&FeatureIncompat48Bit != 0 {
		if r8 := le.Uint64(b[112:]); r8 != 0 {
			rd.rootNid = r8
			rd.blocks |= uint64(sb.RootNid) << 32
		}
	}
	rd.epoch = int64(sb.BuildTime)
	rd.fixNsec = sb.BuildTimeNsec
	rd.mkfsTime = le.Uint32(b[108:])
	if sb.DirBlkBits != 0 {
		return fmt.Errorf("unsupported directory block size bits %d", sb.DirBlkBits)
	}
	if sb.ExtraDevices != 0 {
		return fmt.Errorf("unsupported: image needs %d extra devices", sb.ExtraDevices)
	}
	if rd.blocks == 0 || rd.blocks > (1<<62)>>rd.blkBits {
		return corruptf("block count %d", rd.blocks)
	}
	rd.size = int64(rd.blocks) << rd.blkBits
	have := int64(-1) // the image's size, if known
	if s, ok := rd.r.(rdSizer); ok {
		have = s.Size()
	} else if f, ok := rd.r.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			have = fi.Size()
		}
	}
	if have >= 0 && have < rd.size {
		return corruptf("image truncated: superblock says %d blocks of %d bytes (%d bytes), file has %d", rd.blocks, rd.blkSize, rd.size, have)
	}
	rd.metaBase = int64(sb.MetaBlkAddr) << rd.blkBits
	rd.xattrBse = int64(sb.XattrBlkAddr) << rd.blkBits
	if rd.packedNid() >= 1<<63 {
		return corruptf("packed nid %#x", sb.PackedNid)
	}
	if rd.compat&FeatureCompatSBChecksum != 0 {
		if err := rd.verifyChecksum(); err != nil {
			return err
		}
	}
	return rd.readComprCfgs()
}

func (rd *Reader) packedNid() uint64 {
	if rd.incompat&FeatureIncompatFragments == 0 {
		return 0
	}
	return rd.sb.PackedNid
}

func (rd *Reader) verifyChecksum() error {
	n := rd.blkSize
	if n > SuperOffset {
		n -= SuperOffset
	}
	blk := make([]byte, n)
	if err := rd.readFull(blk, SuperOffset); err != nil {
		return fmt.Errorf("image truncated: superblock block: %w", err)
	}
	if got := SuperChecksum(blk); got != rd.sb.Checksum {
		return corruptf("superblock checksum %#08x, computed %#08x", rd.sb.Checksum, got)
	}
	return nil
}

func (rd *Reader) readComprCfgs() error {
	if rd.incompat&FeatureIncompatComprCfgs == 0 {
		rd.algs = 1 << AlgLZ4
		return nil
	}
	rd.algs = rd.sb.ComprAlgs
	if rd.algs&^(1<<algMax-1) != 0 {
		return fmt.Errorf("unsupported compression algorithms bitmap %#x", rd.algs)
	}
	rd.cfgs = map[int][]byte{}
	off := int64(SuperOffset + rd.sbSize)
	for alg := 0; alg < algMax; alg++ {
		if rd.algs&(1<<alg) == 0 {
			continue
		}
		off = (off + 3) &^ 3
		var l [2]byte
		if err := rd.readFull(l[:], off); err != nil {
			return fmt.Errorf("compression config of %s: %w", AlgName(alg), err)
		}
		n := int64(binary.LittleEndian.Uint16(l[:]))
		if n == 0 || n > 256 {
			return corruptf("compression config of %s has size %d", AlgName(alg), n)
		}
		p := make([]byte, n)
		if err := rd.readFull(p, off+2); err != nil {
			return fmt.Errorf("compression config of %s: %w", AlgName(alg), err)
		}
		rd.cfgs[alg] = p
		off += 2 + n
	}
	return nil
}

// readFull reads len(p) bytes at off, which must lie inside the image.
func (rd *Reader) readFull(p []byte, off int64) error {
	if off < 0 || off > rd.size || int64(len(p)) > rd.size-off {
		return corruptf("read of %d bytes at %d beyond the image end %d", len(p), off, rd.size)
	}
	n, err := rd.r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("reading %d bytes at %d: %w", len(p), off, err)
}

// metaAt returns n bytes of metadata at off, through the metadata block
// cache. The returned slice must not be modified.
func (rd *Reader) metaAt(off int64, n int) ([]byte, error) {
	if off < 0 || n < 0 || off > rd.size || int64(n) > rd.size-off {
		return nil, corruptf("metadata read of %d bytes at %d beyond the image end %d", n, off, rd.size)
	}
	blk := uint64(off >> rd.blkBits)
	in := int(off & (rd.blkSize - 1))
	if in+n <= int(rd.blkSize) {
		b, err := rd.metaBlock(blk)
		if err != nil {
			return nil, err
		}
		if in+n > len(b) {
			return nil, corruptf("metadata read of %d bytes at %d beyond the image end", n, off)
		}
		return b[in : in+n], nil
	}
	out := make([]byte, 0, n)
	for len(out) < n {
		b, err := rd.metaBlock(blk)
		if err != nil {
			return nil, err
		}
		take := min(n-len(out), len(b)-in)
		if take <= 0 {
			return nil, corruptf("metadata read of %d bytes at %d beyond the image end", n, off)
		}
		out = append(out, b[in:in+take]...)
		in = 0
		blk++
	}
	return out, nil
}

func (rd *Reader) metaBlock(blk uint64) ([]byte, error) {
	return rd.meta.Get(blk, func() ([]byte, int64, error) {
		off := int64(blk) << rd.blkBits
		n := min(rd.blkSize, rd.size-off)
		if n <= 0 {
			return nil, 0, corruptf("metadata block %d beyond the image end", blk)
		}
		b := make([]byte, n)
		if err := rd.readFull(b, off); err != nil {
			return nil, 0, err
		}
		return b, n, nil
	})
}

func incompatNames(bits uint32) []string {
	names := []string{}
	for i := 0; i < 32; i++ {
		bit := uint32(1) << i
		if bits&bit == 0 {
			continue
		}
		names = append(names, incompatName(bit))
	}
	return names
}

func incompatName(bit uint32) string {
	switch bit {
	case FeatureIncompatZeroPadding:
		return "0padding"
	case FeatureIncompatComprCfgs:
		return "compr_cfgs,big_pcluster"
	case FeatureIncompatChunkedFile:
		return "chunked_file"
	case FeatureIncompatDeviceTable:
		return "device_table,compr_head2"
	case FeatureIncompatZtailpacking:
		return "ztailpacking"
	case FeatureIncompatFragments:
		return "fragments,dedupe"
	case FeatureIncompatXattrPrefixes:
		return "xattr_prefixes"
	case FeatureIncompat48Bit:
		return "48bit"
	case FeatureIncompatMetabox:
		return "metabox"
	}
	return fmt.Sprintf("unknown_%#x", bit)
}
