// Package squashfs writes and reads SquashFS 4.0 images.
//
// The on-disk format is described in squashfs-tools-ng's doc/format.adoc;
// every integer is little-endian.
package squashfs

import (
	"encoding/binary"
)

// On-disk constants of SquashFS 4.0.
const (
	// Magic is the superblock's magic number, "hsqs" on disk.
	Magic = 0x73717368
	// SuperblockSize is the size of the superblock at offset 0.
	SuperblockSize = 96
	// MetadataBlockSize is the uncompressed size of a full metadata block.
	MetadataBlockSize = 8192
	// MinBlockSize and MaxBlockSize bound the data block size.
	MinBlockSize = 4096
	MaxBlockSize = 1 << 20
	// DefaultBlockSize is the block size used when none is given.
	DefaultBlockSize = 128 << 10
	// DevblockSize is the granularity the image size is padded to.
	DevblockSize = 4096

	// NoTable marks an absent table in the superblock.
	NoTable = ^uint64(0)
	// NoFragment is a file inode's fragment index when it has no tail
	// fragment; NoXattr the xattr index of an inode without xattrs.
	NoFragment = ^uint32(0)
	NoXattr    = ^uint32(0)

	// metaUncompressed is set in a metadata block header when the block
	// is stored uncompressed; the low 15 bits hold the stored size.
	metaUncompressed = 0x8000
	// blockUncompressed is set in a data block or fragment size when the
	// block is stored uncompressed; the low 24 bits hold the stored size
	// (0 for a sparse block).
	blockUncompressed = 1 << 24

	// maxDirEntries is the largest number of entries behind one directory
	// header.
	maxDirEntries = 256
	// Entries of the lookup tables that fit in one metadata block.
	fragEntrySize = 16
	idEntrySize   = 4
	exportEntry   = 8
	xattrIDSize   = 16
)

// Compressor ids of the superblock.
const (
	CompGzip = 1 // zlib stream
	CompLZMA = 2
	CompLZO  = 3
	CompXZ   = 4
	CompLZ4  = 5
	CompZstd = 6
)

// Superblock flags.
const (
	FlagUncompressedInodes    = 0x0001
	FlagUncompressedData      = 0x0002
	FlagCheck                 = 0x0004
	FlagUncompressedFragments = 0x0008
	FlagNoFragments           = 0x0010
	FlagAlwaysFragments       = 0x0020
	FlagDuplicates            = 0x0040
	FlagExportable            = 0x0080
	FlagUncompressedXattrs    = 0x0100
	FlagNoXattrs              = 0x0200
	FlagCompressorOptions     = 0x0400
	FlagUncompressedIDs       = 0x0800
)

// Inode types. An extended type is the basic type + 7.
const (
	TypeDir      = 1
	TypeFile     = 2
	TypeSymlink  = 3
	TypeBlockDev = 4
	TypeCharDev  = 5
	TypeFifo     = 6
	TypeSocket   = 7
	TypeExtDir   = 8
	TypeExtFile  = 9
	TypeExtSym   = 10
	TypeExtBlock = 11
	TypeExtChar  = 12
	TypeExtFifo  = 13
	TypeExtSock  = 14
)

// Xattr key prefixes (type field of a key; typeXattrOOL marks a value
// stored out of line as a u64 reference).
const (
	XattrUser     = 0
	XattrTrusted  = 1
	XattrSecurity = 2
	xattrOOL      = 0x0100
)

// Superblock is the 96-byte header at offset 0.
type Superblock struct {
	Magic       uint32
	Inodes      uint32
	Mtime       uint32
	BlockSize   uint32
	Fragments   uint32
	Compressor  uint16
	BlockLog    uint16
	Flags       uint16
	IDs         uint16
	Major       uint16
	Minor       uint16
	RootInode   uint64 // inode reference: block offset << 16 | offset
	BytesUsed   uint64
	IDTable     uint64
	XattrTable  uint64
	InodeTable  uint64
	DirTable    uint64
	FragTable   uint64
	ExportTable uint64
}

// MarshalBinary encodes the superblock.
func (s *Superblock) MarshalBinary() []byte {
	b := make([]byte, SuperblockSize)
	le := binary.LittleEndian
	le.PutUint32(b[0:], s.Magic)
	le.PutUint32(b[4:], s.Inodes)
	le.PutUint32(b[8:], s.Mtime)
	le.PutUint32(b[12:], s.BlockSize)
	le.PutUint32(b[16:], s.Fragments)
	le.PutUint16(b[20:], s.Compressor)
	le.PutUint16(b[22:], s.BlockLog)
	le.PutUint16(b[24:], s.Flags)
	le.PutUint16(b[26:], s.IDs)
	le.PutUint16(b[28:], s.Major)
	le.PutUint16(b[30:], s.Minor)
	le.PutUint64(b[32:], s.RootInode)
	le.PutUint64(b[40:], s.BytesUsed)
	le.PutUint64(b[48:], s.IDTable)
	le.PutUint64(b[56:], s.XattrTable)
	le.PutUint64(b[64:], s.InodeTable)
	le.PutUint64(b[72:], s.DirTable)
	le.PutUint64(b[80:], s.FragTable)
	le.PutUint64(b[88:], s.ExportTable)
	return b
}

// inodeHeader is the 16-byte header common to every inode.
type inodeHeader struct {
	Type  uint16
	Mode  uint16 // permission bits (incl. setuid/setgid/sticky)
	UID   uint16 // index into the id table
	GID   uint16 // index into the id table
	Mtime uint32
	Ino   uint32 // inode number, 1-based
}

func (h *inodeHeader) append(b []byte) []byte {
	b = le16(b, h.Type)
	b = le16(b, h.Mode)
	b = le16(b, h.UID)
	b = le16(b, h.GID)
	b = le32(b, h.Mtime)
	return le32(b, h.Ino)
}

// Inode layouts after the header (for reference and encoders):
//
//	basic dir (1):   start_block u32, nlink u32, file_size u16, offset u16, parent_ino u32
//	ext dir (8):     nlink u32, file_size u32, start_block u32, parent_ino u32,
//	                 index_count u16, offset u16, xattr u32, then index entries
//	                 {index u32, start u32, name_size-1 u32, name}
//	basic file (2):  blocks_start u32, frag u32, frag_offset u32, size u32, sizes[] u32
//	ext file (9):    blocks_start u64, size u64, sparse u64, nlink u32, frag u32,
//	                 frag_offset u32, xattr u32, sizes[] u32
//	symlink (3/10):  nlink u32, target_size u32, target, (ext: xattr u32)
//	device (4,5/11,12): nlink u32, rdev u32, (ext: xattr u32)
//	ipc (6,7/13,14): nlink u32, (ext: xattr u32)
//
// The directory file_size is the listing size + 3; start_block is relative
// to the directory table and offset is into the uncompressed metadata block.

// A directory header (count-1, inode block, base inode number; 12 bytes)
// precedes up to 256 directory entries that share one inode metadata block.
const dirHeaderSize = 12

// A directory entry is 8 bytes (inode offset in its block, inode number
// minus the header's base, basic type, name size-1) then the name.
const dirEntrySize = 8

// fragEntry is one entry of the fragment table.
type fragEntry struct {
	Start uint64
	Size  uint32 // bit 24: uncompressed
}

// inodeRef builds an inode reference from a metadata block's position
// (relative to its table) and an offset in its uncompressed data.
func inodeRef(block uint64, offset uint16) uint64 { return block<<16 | uint64(offset) }

func le16(b []byte, v uint16) []byte { return binary.LittleEndian.AppendUint16(b, v) }
func le32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }
func le64(b []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(b, v) }
