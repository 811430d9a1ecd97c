package squashfs

import (
	"encoding/binary"
)

// synth builds small SquashFS images byte by byte with every metadata
// block stored uncompressed, so tests and fuzzers can shape inodes and
// directory listings directly.
type synth struct {
	data    []byte // data area right after the superblock
	inodes  []byte // uncompressed inode table stream
	dirs    []byte // uncompressed directory table stream
	ids     []uint32
	root    uint64 // root inode reference
	ninodes uint32
	// frags, when non-nil, are fragment table entries (start, size).
	frags [][2]uint64
}

// metaBlocks splits stream into uncompressed metadata blocks.
func metaBlocks(stream []byte) []byte {
	var out []byte
	for len(stream) > 0 {
		n := min(len(stream), MetadataBlockSize)
		out = binary.LittleEndian.AppendUint16(out, uint16(n)|0x8000)
		out = append(out, stream[:n]...)
		stream = stream[n:]
	}
	return out
}

// synthRef returns the reference of byte off of an uncompressed stream
// stored by metaBlocks.
func synthRef(off int) uint64 {
	return uint64(off/MetadataBlockSize*(MetadataBlockSize+2))<<16 | uint64(off%MetadataBlockSize)
}

func (s *synth) image() []byte {
	le := binary.LittleEndian
	img := make([]byte, SuperblockSize)
	img = append(img, s.data...)
	inodeTable := uint64(len(img))
	img = append(img, metaBlocks(s.inodes)...)
	dirTable := uint64(len(img))
	img = append(img, metaBlocks(s.dirs)...)
	fragTable := NoTable
	if s.frags != nil {
		var fb []byte
		for _, f := range s.frags {
			fb = le.AppendUint64(fb, f[0])
			fb = le.AppendUint32(fb, uint32(f[1]))
			fb = le.AppendUint32(fb, 0)
		}
		loc := uint64(len(img))
		img = append(img, metaBlocks(fb)...)
		fragTable = uint64(len(img))
		img = le.AppendUint64(img, loc)
	}
	ids := s.ids
	if ids == nil {
		ids = []uint32{0}
	}
	var idb []byte
	for _, id := range ids {
		idb = le.AppendUint32(idb, id)
	}
	idLoc := uint64(len(img))
	img = append(img, metaBlocks(idb)...)
	idTable := uint64(len(img))
	img = le.AppendUint64(img, idLoc)
	sb := Superblock{
		Magic: Magic, Inodes: s.ninodes, BlockSize: 4096, Fragments: uint32(len(s.frags)),
		Compressor: CompGzip, BlockLog: 12, Flags: FlagUncompressedInodes | FlagUncompressedData,
		IDs: uint16(len(ids)), Major: 4, Minor: 0, RootInode: s.root, BytesUsed: uint64(len(img)),
		IDTable: idTable, XattrTable: NoTable, InodeTable: inodeTable, DirTable: dirTable,
		FragTable: fragTable, ExportTable: NoTable,
	}
	copy(img, sb.MarshalBinary())
	return img
}

// Inode and directory record encoders (basic types).

func synthHeader(b []byte, typ, perm uint16, ino uint32) []byte {
	le := binary.LittleEndian
	b = le.AppendUint16(b, typ)
	b = le.AppendUint16(b, perm)
	b = le.AppendUint16(b, 0) // uid index
	b = le.AppendUint16(b, 0) // gid index
	b = le.AppendUint32(b, 1700000000)
	return le.AppendUint32(b, ino)
}

func synthDir(b []byte, ino, parent, dirBlock uint32, dirOff uint16, listing int, nlink uint32) []byte {
	le := binary.LittleEndian
	b = synthHeader(b, TypeDir, 0o755, ino)
	b = le.AppendUint32(b, dirBlock)
	b = le.AppendUint32(b, nlink)
	b = le.AppendUint16(b, uint16(listing+3))
	b = le.AppendUint16(b, dirOff)
	return le.AppendUint32(b, parent)
}

func synthFile(b []byte, ino uint32, start uint64, size uint32, frag, fragOff uint32, sizes ...uint32) []byte {
	le := binary.LittleEndian
	b = synthHeader(b, TypeFile, 0o644, ino)
	b = le.AppendUint32(b, uint32(start))
	b = le.AppendUint32(b, frag)
	b = le.AppendUint32(b, fragOff)
	b = le.AppendUint32(b, size)
	for _, s := range sizes {
		b = le.AppendUint32(b, s)
	}
	return b
}

func synthSymlink(b []byte, ino uint32, target string) []byte {
	le := binary.LittleEndian
	b = synthHeader(b, TypeSymlink, 0o777, ino)
	b = le.AppendUint32(b, 1)
	b = le.AppendUint32(b, uint32(len(target)))
	return append(b, target...)
}

// synthEntry is one directory entry for synthListing.
type synthEntry struct {
	name string
	ref  uint64
	ino  uint32
	typ  uint16
}

// synthListing encodes entries behind one header (all inodes in one
// metadata block, the first entry's).
func synthListing(ents ...synthEntry) []byte {
	le := binary.LittleEndian
	var b []byte
	if len(ents) == 0 {
		return nil
	}
	base := ents[0].ino
	b = le.AppendUint32(b, uint32(len(ents)-1))
	b = le.AppendUint32(b, uint32(ents[0].ref>>16))
	b = le.AppendUint32(b, base)
	for _, e := range ents {
		b = le.AppendUint16(b, uint16(e.ref&0xffff))
		b = le.AppendUint16(b, uint16(int16(int32(e.ino)-int32(base))))
		b = le.AppendUint16(b, e.typ)
		b = le.AppendUint16(b, uint16(len(e.name)-1))
		b = append(b, e.name...)
	}
	return b
}

// basicSynth returns a small valid image: a root holding a file "hello"
// (5 bytes in one uncompressed data block), a symlink "link" -> "hello"
// and a directory "sub" holding a file "tail" whose 3 bytes are in a
// fragment. Edit the returned synth to make it hostile.
func basicSynth() *synth {
	s := &synth{ninodes: 5}
	// Data: "hello" as an uncompressed block at 96, fragment "abc" at 101.
	s.data = []byte("helloabc")
	var in []byte
	// Layout of the inode table; offsets are computed as we go.
	fileOff := len(in)
	in = synthFile(in, 2, SuperblockSize, 5, NoFragment, 0, 5|blockUncompressed)
	linkOff := len(in)
	in = synthSymlink(in, 3, "hello")
	tailOff := len(in)
	in = synthFile(in, 5, 0, 3, 0, 0)
	subListing := synthListing(synthEntry{"tail", synthRef(tailOff), 5, TypeFile})
	subOff := len(in)
	in = synthDir(in, 4, 1, 0, 0, len(subListing), 2)
	rootListing := synthListing(
		synthEntry{"hello", synthRef(fileOff), 2, TypeFile},
		synthEntry{"link", synthRef(linkOff), 3, TypeSymlink},
		synthEntry{"sub", synthRef(subOff), 4, TypeDir},
	)
	rootOff := len(in)
	in = synthDir(in, 1, 0, 0, uint16(len(subListing)), len(rootListing), 3)
	s.inodes = in
	s.dirs = append(subListing, rootListing...)
	s.root = synthRef(rootOff)
	s.frags = [][2]uint64{{SuperblockSize + 5, 3 | blockUncompressed}}
	return s
}
