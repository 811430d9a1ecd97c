package squashfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"runtime"
	"sync"

	"github.com/closurefs/closurefs/image"
	"github.com/closurefs/closurefs/internal/cache"
	"github.com/closurefs/closurefs/internal/codec"
)

// Reader-side limits on what a well-formed image can hold. They keep a
// hostile image from making the reader allocate or loop without bound.
const (
	rdMaxName       = 256     // longest entry name
	rdMaxSymlink    = 65535   // longest symlink target accepted
	rdMaxXattrName  = 255     // longest xattr key suffix
	rdMaxXattrValue = 65536   // XATTR_SIZE_MAX
	rdMaxXattrCount = 65536   // key/value pairs per inode
	rdMaxXattrTotal = 4 << 20 // bytes of keys and values per inode
)

// Options tune a Reader. The zero value selects the defaults.
type Options struct {
	// CacheSize is the number of bytes of decompressed data blocks and
	// fragment blocks kept in memory, shared by all files. Default 32 MiB.
	CacheSize int64
	// MetadataCacheSize is the number of bytes of decompressed metadata
	// blocks (inodes, directories, tables) kept in memory, and separately
	// of decoded directory listings. Default 8 MiB each.
	MetadataCacheSize int64
}

// Reader reads a SquashFS 4.0 image. It implements image.FS and
// image.XattrFS and is safe for concurrent use.
//
// Besides the io/fs view, it offers an inode-level API for FUSE:
// RootRef and Inode read inodes by reference; LookupInode finds a name in
// a directory (binary search in a cached listing, or a scan starting at
// the directory index for big directories); OpenDir/OpenDirAt stream a
// listing with resumable DirPos positions; FileData reads file content
// (io.ReaderAt) through a block cache shared by all files; InodeXattrs
// and InodeRefByNumber (export table) complete it.
//
// Every offset, size and count read from the image is checked before
// use; a directory listed by two directories (a cycle or a hard-linked
// directory) is an error; allocations are bounded by the bytes the image
// actually holds.
type Reader struct {
	// NodeFS gives the Reader its read interface (image.FS, XattrFS).
	image.NodeFS[*Inode]

	r     io.ReaderAt
	sb    Superblock
	codec codec.Codec

	// Region limits: metadata reads of a table never cross its limit.
	inodeLimit uint64 // end of the inode table (directory table start)
	dirLimit   uint64 // upper bound of the directory table
	end        uint64 // bytes used

	ids        []uint32
	fragIndex  []uint64 // locations of the fragment table's metadata blocks
	exportIdx  []uint64 // locations of the export table's metadata blocks
	xattrKV    uint64   // start of the xattr key/value metadata blocks
	xattrCount uint32
	xattrIdx   []uint64 // locations of the xattr id table's metadata blocks
	compOpts   []byte   // compressor options payload, if present

	meta *cache.LRU[uint64, *metaBlock]
	data *cache.LRU[dataKey, []byte]
	// srcPool holds buffers for compressed data blocks (*[]byte).
	srcPool sync.Pool
	// dirs caches whole decoded listings (keyed by directory inode
	// reference) of directories up to maxCachedListing bytes, so that
	// lookups in big directories without an index are not linear scans.
	dirs             *cache.LRU[uint64, []DirEntry]
	maxCachedListing uint64
	// raSem bounds the background readahead decompressions.
	raSem chan struct{}

	// parents maps a directory inode reference to the reference of the
	// directory that lists it, to detect directories reachable twice
	// (hard-linked directories, cycles).
	parentsMu sync.Mutex
	parents   map[uint64]uint64
}

func decodeSuper(b []byte) Superblock {
	le := binary.LittleEndian
	return Superblock{
		Magic:       le.Uint32(b[0:]),
		Inodes:      le.Uint32(b[4:]),
		Mtime:       le.Uint32(b[8:]),
		BlockSize:   le.Uint32(b[12:]),
		Fragments:   le.Uint32(b[16:]),
		Compressor:  le.Uint16(b[20:]),
		BlockLog:    le.Uint16(b[22:]),
		Flags:       le.Uint16(b[24:]),
		IDs:         le.Uint16(b[26:]),
		Major:       le.Uint16(b[28:]),
		Minor:       le.Uint16(b[30:]),
		RootInode:   le.Uint64(b[32:]),
		BytesUsed:   le.Uint64(b[40:]),
		IDTable:     le.Uint64(b[48:]),
		XattrTable:  le.Uint64(b[56:]),
		InodeTable:  le.Uint64(b[64:]),
		DirTable:    le.Uint64(b[72:]),
		FragTable:   le.Uint64(b[80:]),
		ExportTable: le.Uint64(b[88:]),
	}
}

var rdFlagNames = []struct {
	bit  uint16
	name string
}{
	{FlagUncompressedInodes, "uncompressed-inodes"},
	{FlagUncompressedData, "uncompressed-data"},
	{FlagCheck, "check"},
	{FlagUncompressedFragments, "uncompressed-fragments"},
	{FlagNoFragments, "no-fragments"},
	{FlagAlwaysFragments, "always-fragments"},
	{FlagDuplicates, "duplicates"},
	{FlagExportable, "exportable"},
	{FlagUncompressedXattrs, "uncompressed-xattrs"},
	{FlagNoXattrs, "no-xattrs"},
	{FlagCompressorOptions, "compressor-options"},
	{FlagUncompressedIDs, "uncompressed-ids"},
}

// rdCompressors maps superblock compressor ids to names and codecs.
var rdCompressors = map[uint16]struct{ name, codec string }{
	1: {"gzip", "zlib"},
	2: {"lzma", "lzma"},
	3: {"lzo", ""},
	4: {"xz", "xz"},
	5: {"lz4", "lz4"},
	6: {"zstd", "zstd"},
}

// Open reads and validates the superblock and lookup tables of the image
// in r with default options.
func Open(r io.ReaderAt) (*Reader, error) { return OpenOptions(r, Options{}) }

// sizer is implemented by readers that know their size (bytes.Reader,
// io.SectionReader, strings.Reader).
type sizer interface{ Size() int64 }

// readerSize returns r's size if it can be known cheaply, else -1.
func readerSize(r io.ReaderAt) int64 {
	switch v := r.(type) {
	case sizer:
		return v.Size()
	case *os.File:
		if fi, err := v.Stat(); err == nil && fi.Mode().IsRegular() {
			return fi.Size()
		}
	}
	return -1
}

// OpenOptions is Open with options.
func OpenOptions(r io.ReaderAt, opts Options) (*Reader, error) {
	if opts.CacheSize <= 0 {
		opts.CacheSize = 32 << 20
	}
	if opts.MetadataCacheSize <= 0 {
		opts.MetadataCacheSize = 8 << 20
	}
	var buf [SuperblockSize]byte
	if n, err := r.ReadAt(buf[:], 0); n < len(buf) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("squashfs: reading superblock: %w", err)
	}
	sb := decodeSuper(buf[:])
	rd := &Reader{
		r:    r,
		sb:   sb,
		meta: cache.New[uint64, *metaBlock](opts.MetadataCacheSize),
		data: cache.New[dataKey, []byte](opts.CacheSize),
		dirs: cache.New[uint64, []DirEntry](opts.MetadataCacheSize),
		// A listing decodes to at most ~4x its size (48 bytes per entry
		// of at least 9 bytes); keep one within a quarter of the budget.
		maxCachedListing: uint64(opts.MetadataCacheSize) / 16,
		parents:          make(map[uint64]uint64),
		raSem:            make(chan struct{}, runtime.GOMAXPROCS(0)),
	}
	rd.NodeFS = image.NewNodeFS[*Inode](tree{rd})
	if err := rd.checkSuper(readerSize(r)); err != nil {
		return nil, err
	}
	if err := rd.loadTables(); err != nil {
		return nil, err
	}
	// The root must decode as a directory.
	root, err := rd.inode(sb.RootInode)
	if err != nil {
		return nil, fmt.Errorf("squashfs: root inode: %w", err)
	}
	if !root.isDir() {
		return nil, fmt.Errorf("squashfs: root inode at %s is not a directory", refString(sb.RootInode))
	}
	return rd, nil
}

func (rd *Reader) checkSuper(size int64) error {
	sb := &rd.sb
	if sb.Magic != Magic {
		return fmt.Errorf("squashfs: bad magic %#08x (not a squashfs image)", sb.Magic)
	}
	if sb.Major != 4 || sb.Minor != 0 {
		return fmt.Errorf("squashfs: unsupported version %d.%d (only 4.0 is supported)", sb.Major, sb.Minor)
	}
	if sb.BlockSize < 4096 || sb.BlockSize > 1<<20 || bits.OnesCount32(sb.BlockSize) != 1 {
		return fmt.Errorf("squashfs: block size %d out of range (a power of two from 4096 to 1048576)", sb.BlockSize)
	}
	if 1<<sb.BlockLog != sb.BlockSize {
		return fmt.Errorf("squashfs: block log %d does not match block size %d", sb.BlockLog, sb.BlockSize)
	}
	comp, ok := rdCompressors[sb.Compressor]
	if !ok {
		return fmt.Errorf("squashfs: unknown compressor id %d", sb.Compressor)
	}
	if comp.codec == "" {
		return fmt.Errorf("squashfs: unsupported compressor %s", comp.name)
	}
	c, err := codec.New(comp.codec, 0)
	if err != nil {
		return fmt.Errorf("squashfs: compressor %s: %w", comp.name, err)
	}
	rd.codec = c
	if sb.BytesUsed < SuperblockSize {
		return fmt.Errorf("squashfs: bytes used %d is smaller than the superblock", sb.BytesUsed)
	}
	if size >= 0 && sb.BytesUsed > uint64(size) {
		return fmt.Errorf("squashfs: image truncated: superblock says %d bytes used, file has %d", sb.BytesUsed, size)
	}
	rd.end = sb.BytesUsed
	check := func(name string, pos uint64, optional bool) error {
		if pos == NoTable && optional {
			return nil
		}
		if pos < SuperblockSize || pos >= sb.BytesUsed {
			return fmt.Errorf("squashfs: %s at %#x outside the image (%d bytes used)", name, pos, sb.BytesUsed)
		}
		return nil
	}
	for _, t := range []struct {
		name     string
		pos      uint64
		optional bool
	}{
		{"inode table", sb.InodeTable, false},
		{"directory table", sb.DirTable, false},
		{"id table", sb.IDTable, false},
		{"fragment table", sb.FragTable, true},
		{"export table", sb.ExportTable, true},
		{"xattr table", sb.XattrTable, true},
	} {
		if err := check(t.name, t.pos, t.optional); err != nil {
			return err
		}
	}
	if sb.InodeTable >= sb.DirTable {
		return fmt.Errorf("squashfs: inode table at %#x does not precede directory table at %#x", sb.InodeTable, sb.DirTable)
	}
	rd.inodeLimit = sb.DirTable
	// The directory table ends where the next table starts.
	rd.dirLimit = sb.BytesUsed
	for _, p := range []uint64{sb.IDTable, sb.FragTable, sb.ExportTable, sb.XattrTable} {
		if p != NoTable && p > sb.DirTable && p < rd.dirLimit {
			rd.dirLimit = p
		}
	}
	if sb.Fragments > 0 && sb.FragTable == NoTable {
		return fmt.Errorf("squashfs: %d fragments but no fragment table", sb.Fragments)
	}
	if sb.Inodes == 0 {
		return errors.New("squashfs: inode count is 0")
	}
	if ref := sb.RootInode; ref>>16 >= sb.DirTable-sb.InodeTable || ref&0xffff >= MetadataBlockSize {
		return fmt.Errorf("squashfs: root inode reference %s outside the inode table", refString(ref))
	}
	return nil
}

// loadTables reads the compressor options and the lookup table indexes.
func (rd *Reader) loadTables() error {
	sb := &rd.sb
	if sb.Flags&FlagCompressorOptions != 0 {
		mb, err := rd.metaBlock(SuperblockSize, sb.InodeTable)
		if err != nil {
			return fmt.Errorf("squashfs: compressor options: %w", err)
		}
		rd.compOpts = mb.data
	}
	// ID table: at most 65535 entries, read whole.
	if sb.IDs == 0 {
		return errors.New("squashfs: id table is empty")
	}
	idx, err := rd.readIndex("id table", sb.IDTable, uint64(sb.IDs), idEntrySize)
	if err != nil {
		return err
	}
	rd.ids = make([]uint32, 0, sb.IDs)
	for i := range uint64(sb.IDs) {
		b, err := rd.tableEntry("id table", idx, sb.IDTable, i, idEntrySize)
		if err != nil {
			return err
		}
		rd.ids = append(rd.ids, binary.LittleEndian.Uint32(b))
	}
	if sb.FragTable != NoTable && sb.Fragments > 0 {
		if rd.fragIndex, err = rd.readIndex("fragment table", sb.FragTable, uint64(sb.Fragments), fragEntrySize); err != nil {
			return err
		}
	}
	if sb.ExportTable != NoTable {
		if rd.exportIdx, err = rd.readIndex("export table", sb.ExportTable, uint64(sb.Inodes), exportEntry); err != nil {
			return err
		}
	}
	if sb.XattrTable != NoTable {
		var hdr [16]byte
		if err := rd.readFull(hdr[:], sb.XattrTable, "xattr table header"); err != nil {
			return err
		}
		rd.xattrKV = binary.LittleEndian.Uint64(hdr[0:])
		rd.xattrCount = binary.LittleEndian.Uint32(hdr[8:])
		if rd.xattrKV < SuperblockSize || rd.xattrKV >= sb.XattrTable {
			return fmt.Errorf("squashfs: xattr key/value table at %#x outside the image or after its id table at %#x", rd.xattrKV, sb.XattrTable)
		}
		if rd.xattrCount > 0 {
			if rd.xattrIdx, err = rd.readIndex("xattr id table", sb.XattrTable+16, uint64(rd.xattrCount), xattrIDSize); err != nil {
				return err
			}
		}
	}
	return nil
}

// readFull reads len(b) bytes at off, all within the bytes used.
func (rd *Reader) readFull(b []byte, off uint64, what string) error {
	if off > rd.end || uint64(len(b)) > rd.end-off {
		return fmt.Errorf("squashfs: %s at %#x (%d bytes) runs past the end of the image (%d bytes used)", what, off, len(b), rd.end)
	}
	n, err := rd.r.ReadAt(b, int64(off))
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("squashfs: reading %s at %#x: %w", what, off, err)
}

// readIndex reads the list of metadata block locations of a lookup table
// of count entries of size bytes each, whose list starts at pos.
func (rd *Reader) readIndex(name string, pos, count, size uint64) ([]uint64, error) {
	nblocks := (count*size + MetadataBlockSize - 1) / MetadataBlockSize
	if pos > rd.end || nblocks > (rd.end-pos)/8 {
		return nil, fmt.Errorf("squashfs: %s: %d entries need %d index entries at %#x, past the end of the image", name, count, nblocks, pos)
	}
	// Read in chunks so that a lying size never allocates more than the
	// image holds.
	out := make([]uint64, 0, min(nblocks, 4096))
	var buf [4096]byte
	for done := uint64(0); done < nblocks; {
		n := min(nblocks-done, uint64(len(buf)/8))
		if err := rd.readFull(buf[:n*8], pos+done*8, name+" index"); err != nil {
			return nil, err
		}
		for i := range n {
			loc := binary.LittleEndian.Uint64(buf[i*8:])
			if loc < SuperblockSize || loc >= pos {
				return nil, fmt.Errorf("squashfs: %s: metadata block %d at %#x is not between the superblock and the table index at %#x", name, done+i, loc, pos)
			}
			out = append(out, loc)
		}
		done += n
	}
	return out, nil
}

// tableEntry returns entry i (of size bytes) of a lookup table whose
// metadata block locations are idx and whose index list starts at limit.
func (rd *Reader) tableEntry(name string, idx []uint64, limit, i, size uint64) ([]byte, error) {
	off := i * size
	blk := off / MetadataBlockSize
	if blk >= uint64(len(idx)) {
		return nil, fmt.Errorf("squashfs: %s: entry %d out of range", name, i)
	}
	mb, err := rd.metaBlock(idx[blk], limit)
	if err != nil {
		return nil, fmt.Errorf("squashfs: %s entry %d: %w", name, i, err)
	}
	o := off % MetadataBlockSize
	if o+size > uint64(len(mb.data)) {
		return nil, fmt.Errorf("squashfs: %s entry %d: metadata block at %#x holds only %d bytes", name, i, idx[blk], len(mb.data))
	}
	return mb.data[o : o+size], nil
}

// fragment returns the location and size field of fragment block i.
func (rd *Reader) fragment(i uint32) (start uint64, size uint32, err error) {
	if i >= rd.sb.Fragments || rd.fragIndex == nil {
		return 0, 0, fmt.Errorf("squashfs: fragment index %d out of range (%d fragments)", i, rd.sb.Fragments)
	}
	b, err := rd.tableEntry("fragment table", rd.fragIndex, rd.sb.FragTable, uint64(i), fragEntrySize)
	if err != nil {
		return 0, 0, err
	}
	start = binary.LittleEndian.Uint64(b)
	size = binary.LittleEndian.Uint32(b[8:])
	if err := rd.checkBlock(start, size); err != nil {
		return 0, 0, fmt.Errorf("squashfs: fragment %d: %w", i, err)
	}
	return start, size, nil
}

// checkBlock checks a data or fragment block's location and size field.
func (rd *Reader) checkBlock(start uint64, size uint32) error {
	n := uint64(size &^ blockUncompressed)
	if size&^(blockUncompressed|0xffffff) != 0 {
		return fmt.Errorf("block size field %#x has unknown bits set", size)
	}
	if n > uint64(rd.sb.BlockSize) {
		return fmt.Errorf("block at %#x: on-disk size %d exceeds the block size %d", start, n, rd.sb.BlockSize)
	}
	if start > rd.end || n > rd.end-start {
		return fmt.Errorf("block at %#x (%d bytes) runs past the end of the image (%d bytes used)", start, n, rd.end)
	}
	return nil
}

// InodeRefByNumber returns the inode reference of inode number ino using
// the export table. It fails if the image has none.
func (rd *Reader) InodeRefByNumber(ino uint32) (uint64, error) {
	if rd.exportIdx == nil {
		return 0, errors.New("squashfs: image has no export table")
	}
	if ino == 0 || ino > rd.sb.Inodes {
		return 0, fmt.Errorf("squashfs: inode number %d out of range 1-%d", ino, rd.sb.Inodes)
	}
	b, err := rd.tableEntry("export table", rd.exportIdx, rd.sb.ExportTable, uint64(ino-1), exportEntry)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// Info summarises an image's superblock and tables.
type Info struct {
	Format            string   `json:"format"` // "squashfs"
	Version           string   `json:"version"`
	Compressor        string   `json:"compressor"`
	CompressorOptions string   `json:"compressor_options,omitempty"` // as "level=15", "" if absent
	BlockSize         uint32   `json:"block_size"`
	Inodes            uint32   `json:"inodes"`
	Fragments         uint32   `json:"fragments"`
	IDs               uint16   `json:"ids"`
	Xattrs            uint32   `json:"xattr_ids"`
	BytesUsed         uint64   `json:"bytes_used"`
	Mtime             uint32   `json:"mtime"`
	Flags             []string `json:"flags"`
	ExportTable       bool     `json:"export_table"`
	XattrTable        bool     `json:"xattr_table"`
	FragmentTable     bool     `json:"fragment_table"`
	InodeTable        uint64   `json:"inode_table"`
	DirectoryTable    uint64   `json:"directory_table"`
}

// Info returns the image summary.
func (rd *Reader) Info() Info {
	sb := &rd.sb
	inf := Info{
		Format:            "squashfs",
		Version:           fmt.Sprintf("%d.%d", sb.Major, sb.Minor),
		Compressor:        rdCompressors[sb.Compressor].name,
		CompressorOptions: compressorOptionsString(rdCompressors[sb.Compressor].name, rd.compOpts),
		BlockSize:         sb.BlockSize,
		Inodes:            sb.Inodes,
		Fragments:         sb.Fragments,
		IDs:               sb.IDs,
		Xattrs:            rd.xattrCount,
		BytesUsed:         sb.BytesUsed,
		Mtime:             sb.Mtime,
		Flags:             []string{},
		ExportTable:       sb.ExportTable != NoTable,
		XattrTable:        sb.XattrTable != NoTable,
		FragmentTable:     sb.FragTable != NoTable,
		InodeTable:        sb.InodeTable,
		DirectoryTable:    sb.DirTable,
	}
	for _, f := range rdFlagNames {
		if sb.Flags&f.bit != 0 {
			inf.Flags = append(inf.Flags, f.name)
		}
	}
	return inf
}

// compressorOptionsString describes a compressor options block, or ""
// if there is none.
func compressorOptionsString(comp string, b []byte) string {
	le := binary.LittleEndian
	switch {
	case len(b) == 0:
		return ""
	case comp == "gzip" && len(b) >= 8:
		return fmt.Sprintf("level=%d window=%d strategies=%#x", le.Uint32(b), le.Uint16(b[4:]), le.Uint16(b[6:]))
	case comp == "xz" && len(b) >= 8:
		return fmt.Sprintf("dictionary=%d filters=%#x", le.Uint32(b), le.Uint32(b[4:]))
	case comp == "lz4" && len(b) >= 8:
		hc := ""
		if le.Uint32(b[4:])&1 != 0 {
			hc = " hc"
		}
		return fmt.Sprintf("version=%d%s", le.Uint32(b), hc)
	case comp == "zstd" && len(b) >= 4:
		return fmt.Sprintf("level=%d", le.Uint32(b))
	case comp == "lzo" && len(b) >= 8:
		return fmt.Sprintf("algorithm=%d level=%d", le.Uint32(b), le.Uint32(b[4:]))
	}
	return fmt.Sprintf("% x", b)
}

var _ image.FS = (*Reader)(nil)
var _ image.XattrFS = (*Reader)(nil)
