// Package erofs writes and reads EROFS images, the read-only filesystem of
// the Linux kernel (fs/erofs), as mkfs.erofs makes them and the kernel
// mounts them.
//
// This file holds the on-disk layout: constants and the fixed-size records
// with their encoders and decoders. All integers are little-endian.
package erofs

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
)

// Superblock placement and identity.
const (
	// SuperOffset is the byte offset of the superblock in the image.
	SuperOffset = 1024
	// Magic identifies an EROFS superblock (le32 at SuperOffset).
	Magic = 0xE0F5E1E2
	// SuperSize is the size of the superblock without extension slots.
	SuperSize = 128
)

// Compatible feature bits (superblock feature_compat).
const (
	FeatureCompatSBChecksum  = 0x00000001 // superblock crc32c
	FeatureCompatMtime       = 0x00000002 // compact inodes carry an mtime delta
	FeatureCompatXattrFilter = 0x00000004 // xattr bloom filter in inode headers
)

// Incompatible feature bits (superblock feature_incompat).
const (
	FeatureIncompatZeroPadding    = 0x00000001 // compressed data right-aligned in its pcluster (LZ4_0PADDING)
	FeatureIncompatComprCfgs      = 0x00000002 // compression config records follow the superblock
	FeatureIncompatBigPcluster    = 0x00000002 // pclusters larger than one block
	FeatureIncompatChunkedFile    = 0x00000004 // CHUNK_BASED inode layout
	FeatureIncompatDeviceTable    = 0x00000008 // extra devices
	FeatureIncompatComprHead2     = 0x00000008 // HEAD2 lclusters (second algorithm)
	FeatureIncompatZtailpacking   = 0x00000010 // compressed tail inline after the indexes
	FeatureIncompatFragments      = 0x00000020 // tails or whole files in the packed inode
	FeatureIncompatDedupe         = 0x00000020 // pclusters shared between extents
	FeatureIncompatXattrPrefixes  = 0x00000040 // long xattr name prefixes
	FeatureIncompat48Bit          = 0x00000080 // 48-bit block addresses
	FeatureIncompatMetabox        = 0x00000100 // metadata in a metabox inode
	featureIncompatKnownToKernel6 = 0x000001ff
)

// Compression algorithms (bit numbers of available_compr_algs and values of
// h_algorithmtype).
const (
	AlgLZ4     = 0
	AlgLZMA    = 1
	AlgDeflate = 2
	AlgZstd    = 3
	// algMax is one past the last algorithm known here.
	algMax = 4
)

// AlgName returns the name of a compression algorithm number.
func AlgName(a int) string {
	switch a {
	case AlgLZ4:
		return "lz4"
	case AlgLZMA:
		return "lzma"
	case AlgDeflate:
		return "deflate"
	case AlgZstd:
		return "zstd"
	}
	return "unknown"
}

// Superblock is the decoded superblock (struct erofs_super_block).
type Superblock struct {
	Magic         uint32
	Checksum      uint32
	FeatureCompat uint32
	BlkSzBits     uint8
	ExtSlots      uint8 // superblock size = 128 + ExtSlots*16
	RootNid       uint16
	Inos          uint64
	BuildTime     uint64
	BuildTimeNsec uint32
	Blocks        uint32
	MetaBlkAddr   uint32
	XattrBlkAddr  uint32
	UUID          [16]byte
	VolumeName    [16]byte
	// FeatureIncompat holds the incompatible feature bits.
	FeatureIncompat uint32
	// ComprAlgs is available_compr_algs (a bitmap of algorithms) when
	// FeatureIncompatComprCfgs is set, else lz4_max_distance.
	ComprAlgs        uint16
	ExtraDevices     uint16
	DevtSlotOff      uint16
	DirBlkBits       uint8
	XattrPrefixCount uint8
	XattrPrefixStart uint32
	PackedNid        uint64
	XattrFilterRes   uint8
}

// Encode writes the superblock into b (at least SuperSize bytes); the
// checksum field is written as s.Checksum.
func (s *Superblock) Encode(b []byte) {
	_ = b[SuperSize-1]
	clear(b[:SuperSize])
	le := binary.LittleEndian
	le.PutUint32(b[0:], s.Magic)
	le.PutUint32(b[4:], s.Checksum)
	le.PutUint32(b[8:], s.FeatureCompat)
	b[12] = s.BlkSzBits
	b[13] = s.ExtSlots
	le.PutUint16(b[14:], s.RootNid)
	le.PutUint64(b[16:], s.Inos)
	le.PutUint64(b[24:], s.BuildTime)
	le.PutUint32(b[32:], s.BuildTimeNsec)
	le.PutUint32(b[36:], s.Blocks)
	le.PutUint32(b[40:], s.MetaBlkAddr)
	le.PutUint32(b[44:], s.XattrBlkAddr)
	copy(b[48:64], s.UUID[:])
	copy(b[64:80], s.VolumeName[:])
	le.PutUint32(b[80:], s.FeatureIncompat)
	le.PutUint16(b[84:], s.ComprAlgs)
	le.PutUint16(b[86:], s.ExtraDevices)
	le.PutUint16(b[88:], s.DevtSlotOff)
	b[90] = s.DirBlkBits
	b[91] = s.XattrPrefixCount
	le.PutUint32(b[92:], s.XattrPrefixStart)
	le.PutUint64(b[96:], s.PackedNid)
	b[104] = s.XattrFilterRes
}

// errShort reports a record shorter than its fixed size.
var errShort = errors.New("erofs: record truncated")

// DecodeSuperblock decodes the superblock from b (the bytes at
// SuperOffset, at least SuperSize of them).
func DecodeSuperblock(b []byte) (*Superblock, error) {
	if len(b) < SuperSize {
		return nil, errShort
	}
	le := binary.LittleEndian
	s := &Superblock{
		Magic:            le.Uint32(b[0:]),
		Checksum:         le.Uint32(b[4:]),
		FeatureCompat:    le.Uint32(b[8:]),
		BlkSzBits:        b[12],
		ExtSlots:         b[13],
		RootNid:          le.Uint16(b[14:]),
		Inos:             le.Uint64(b[16:]),
		BuildTime:        le.Uint64(b[24:]),
		BuildTimeNsec:    le.Uint32(b[32:]),
		Blocks:           le.Uint32(b[36:]),
		MetaBlkAddr:      le.Uint32(b[40:]),
		XattrBlkAddr:     le.Uint32(b[44:]),
		FeatureIncompat:  le.Uint32(b[80:]),
		ComprAlgs:        le.Uint16(b[84:]),
		ExtraDevices:     le.Uint16(b[86:]),
		DevtSlotOff:      le.Uint16(b[88:]),
		DirBlkBits:       b[90],
		XattrPrefixCount: b[91],
		XattrPrefixStart: le.Uint32(b[92:]),
		PackedNid:        le.Uint64(b[96:]),
		XattrFilterRes:   b[104],
	}
	copy(s.UUID[:], b[48:64])
	copy(s.VolumeName[:], b[64:80])
	return s, nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// SuperChecksum computes the superblock checksum over blk, the bytes from
// SuperOffset to the end of the first block: crc32c seeded with ~0, no
// final inversion, with the checksum field (blk[4:8]) taken as zero.
func SuperChecksum(blk []byte) uint32 {
	var zero [4]byte
	crc := ^uint32(0)
	crc = crcRaw(crc, blk[:4])
	crc = crcRaw(crc, zero[:])
	return crcRaw(crc, blk[8:])
}

// crcRaw is the kernel's crc32c(crc, p, len): no pre- or post-inversion.
func crcRaw(crc uint32, p []byte) uint32 {
	return ^crc32.Update(^crc, castagnoli, p)
}

// Inode layout.
const (
	// InodeSlotSize is the unit of nids: an inode at nid n lies at
	// meta_blkaddr*blksz + n*32.
	InodeSlotSize = 32
	// CompactInodeSize and ExtendedInodeSize are the two inode versions.
	CompactInodeSize  = 32
	ExtendedInodeSize = 64

	// i_format: bit 0 is the version, bits 1-3 the data layout.
	InodeVersionCompact  = 0
	InodeVersionExtended = 1
	InodeVersionMask     = 1
	InodeDataLayoutBit   = 1
	InodeDataLayoutBits  = 3

	// Data layouts.
	LayoutFlatPlain         = 0
	LayoutCompressedFull    = 1
	LayoutFlatInline        = 2
	LayoutCompressedCompact = 3
	LayoutChunkBased        = 4
	layoutMax               = 5

	// NullAddr marks an unset raw_blkaddr (e.g. an empty or fully inline
	// file) in i_u.
	NullAddr = 0xffffffff
)

// Inode is the decoded form of a compact or extended inode. Fields absent
// from compact inodes (mtime) are filled in by the caller from the
// superblock.
type Inode struct {
	Format      uint16 // i_format: version bit 0, layout bits 1-3
	XattrICount uint16 // i_xattr_icount
	Mode        uint16
	Nlink       uint32
	Size        uint64
	// U is the union i_u: raw_blkaddr, compressed_blocks, rdev or chunk
	// info, depending on the layout and file type.
	U     uint32
	Ino   uint32
	UID   uint32
	GID   uint32
	Mtime uint64
	// MtimeNsec is only stored in extended inodes.
	MtimeNsec uint32
	// CompactMtime is the compact inode's i_mtime (a delta to the
	// superblock build time, meaningful with FeatureCompatMtime).
	CompactMtime uint32
}

// Extended reports whether the inode uses the 64-byte layout.
func (i *Inode) Extended() bool { return i.Format&InodeVersionMask == InodeVersionExtended }

// Layout returns the inode's data layout.
func (i *Inode) Layout() int {
	return int(i.Format>>InodeDataLayoutBit) & (1<<InodeDataLayoutBits - 1)
}

// Size returns the on-disk size of the inode record.
func (i *Inode) RecordSize() int {
	if i.Extended() {
		return ExtendedInodeSize
	}
	return CompactInodeSize
}

// XattrSize returns the size of the inline xattr area that follows the
// inode: 0 when i_xattr_icount is 0, else 12 + (icount-1)*4.
func XattrSize(icount uint16) int {
	if icount == 0 {
		return 0
	}
	return XattrIbodyHeaderSize + (int(icount)-1)*4
}

// Encode writes the inode into b (at least RecordSize bytes).
func (i *Inode) Encode(b []byte) {
	le := binary.LittleEndian
	if !i.Extended() {
		_ = b[CompactInodeSize-1]
		le.PutUint16(b[0:], i.Format)
		le.PutUint16(b[2:], i.XattrICount)
		le.PutUint16(b[4:], i.Mode)
		le.PutUint16(b[6:], uint16(i.Nlink))
		le.PutUint32(b[8:], uint32(i.Size))
		le.PutUint32(b[12:], i.CompactMtime)
		le.PutUint32(b[16:], i.U)
		le.PutUint32(b[20:], i.Ino)
		le.PutUint16(b[24:], uint16(i.UID))
		le.PutUint16(b[26:], uint16(i.GID))
		le.PutUint32(b[28:], 0)
		return
	}
	_ = b[ExtendedInodeSize-1]
	le.PutUint16(b[0:], i.Format)
	le.PutUint16(b[2:], i.XattrICount)
	le.PutUint16(b[4:], i.Mode)
	le.PutUint16(b[6:], 0)
	le.PutUint64(b[8:], i.Size)
	le.PutUint32(b[16:], i.U)
	le.PutUint32(b[20:], i.Ino)
	le.PutUint32(b[24:], i.UID)
	le.PutUint32(b[28:], i.GID)
	le.PutUint64(b[32:], i.Mtime)
	le.PutUint32(b[40:], i.MtimeNsec)
	le.PutUint32(b[44:], i.Nlink)
	clear(b[48:64])
}

// DecodeInode decodes an inode from b, which must hold at least the
// inode's record (32 bytes, or 64 for an extended inode).
func DecodeInode(b []byte) (*Inode, error) {
	if len(b) < CompactInodeSize {
		return nil, errShort
	}
	le := binary.LittleEndian
	i := &Inode{Format: le.Uint16(b[0:]), XattrICount: le.Uint16(b[2:]), Mode: le.Uint16(b[4:])}
	if !i.Extended() {
		i.Nlink = uint32(le.Uint16(b[6:]))
		i.Size = uint64(le.Uint32(b[8:]))
		i.CompactMtime = le.Uint32(b[12:])
		i.U = le.Uint32(b[16:])
		i.Ino = le.Uint32(b[20:])
		i.UID = uint32(le.Uint16(b[24:]))
		i.GID = uint32(le.Uint16(b[26:]))
		return i, nil
	}
	if len(b) < ExtendedInodeSize {
		return nil, errShort
	}
	i.Size = le.Uint64(b[8:])
	i.U = le.Uint32(b[16:])
	i.Ino = le.Uint32(b[20:])
	i.UID = le.Uint32(b[24:])
	i.GID = le.Uint32(b[28:])
	i.Mtime = le.Uint64(b[32:])
	i.MtimeNsec = le.Uint32(b[40:])
	i.Nlink = le.Uint32(b[44:])
	return i, nil
}

// Inline xattrs.
const (
	// XattrIbodyHeaderSize is the size of struct erofs_xattr_ibody_header:
	// le32 name filter, u8 shared count, 7 reserved bytes, followed by
	// shared count le32 shared xattr ids and then the inline entries.
	XattrIbodyHeaderSize = 12
	// XattrEntrySize is the size of struct erofs_xattr_entry before the
	// name: u8 name length, u8 name index, le16 value size.
	XattrEntrySize = 4

	// Name indexes (the prefix stripped from the stored name).
	XattrIndexUser            = 1
	XattrIndexPosixACLAccess  = 2
	XattrIndexPosixACLDefault = 3
	XattrIndexTrusted         = 4
	XattrIndexLustre          = 5
	XattrIndexSecurity        = 6
	// XattrLongPrefixBit in e_name_index selects a long prefix by index.
	XattrLongPrefixBit = 0x80
)

// XattrPrefixes maps name indexes to the prefixes they stand for. The
// ACL indexes stand for the whole name (empty suffix).
var XattrPrefixes = [...]string{
	XattrIndexUser:            "user.",
	XattrIndexPosixACLAccess:  "system.posix_acl_access",
	XattrIndexPosixACLDefault: "system.posix_acl_default",
	XattrIndexTrusted:         "trusted.",
	XattrIndexLustre:          "lustre.",
	XattrIndexSecurity:        "security.",
}

// Directories.
const (
	// DirentSize is the size of struct erofs_dirent: le64 nid, le16
	// nameoff, u8 file type, u8 reserved.
	DirentSize = 12
	// MaxNameLen is the longest file name.
	MaxNameLen = 255
)

// File types stored in dirents.
const (
	FTUnknown = 0
	FTRegFile = 1
	FTDir     = 2
	FTChrDev  = 3
	FTBlkDev  = 4
	FTFifo    = 5
	FTSock    = 6
	FTSymlink = 7
)

// Dirent is one directory entry record.
type Dirent struct {
	Nid      uint64
	NameOff  uint16
	FileType uint8
}

// Encode writes the dirent into b (at least DirentSize bytes).
func (d Dirent) Encode(b []byte) {
	_ = b[DirentSize-1]
	binary.LittleEndian.PutUint64(b[0:], d.Nid)
	binary.LittleEndian.PutUint16(b[8:], d.NameOff)
	b[10] = d.FileType
	b[11] = 0
}

// DecodeDirent decodes a dirent from b.
func DecodeDirent(b []byte) (Dirent, error) {
	if len(b) < DirentSize {
		return Dirent{}, errShort
	}
	return Dirent{
		Nid:      binary.LittleEndian.Uint64(b[0:]),
		NameOff:  binary.LittleEndian.Uint16(b[8:]),
		FileType: b[10],
	}, nil
}

// Compressed files: the map header follows the inode and its xattrs,
// aligned to 8 bytes, and is followed by the lcluster indexes.
const (
	// MapHeaderSize is the size of struct z_erofs_map_header.
	MapHeaderSize = 8
	// LclusterIndexSize is the size of a full (non-compact) lcluster
	// index, struct z_erofs_lcluster_index.
	LclusterIndexSize = 8

	// h_advise bits.
	AdviseCompacted2B         = 0x0001
	AdviseBigPcluster1        = 0x0002
	AdviseBigPcluster2        = 0x0004
	AdviseInlinePcluster      = 0x0008 // ztailpacking
	AdviseInterlacedPcluster  = 0x0010
	AdviseFragmentPcluster    = 0x0020
	AdviseExtents             = 0x0001 // extent records (COMPRESSED_FULL only, newer kernels)
	FragmentInodeBit          = 7      // h_clusterbits bit: whole file in the packed inode
	ClusterBitsMask           = 0x0f   // h_clusterbits: lclusterbits - 12
	maxLclusterBits           = 14     // compact indexes need lclusterbits <= 14 (2B: <= 12)
	compacted2BMaxLclusterBit = 12

	// Logical cluster types (di_advise bits 0-1).
	LclusterPlain   = 0
	LclusterHead1   = 1
	LclusterNonhead = 2
	LclusterHead2   = 3
	lclusterTypeMax = 4

	// LIPartialRef in di_advise marks a HEAD whose pcluster is only
	// partially referenced (full indexes only).
	LIPartialRef = 1 << 15
	// LID0CblkCnt in delta[0] of the first NONHEAD marks a big
	// pcluster's compressed block count.
	LID0CblkCnt = 1 << 11
)

// MapHeader is struct z_erofs_map_header.
type MapHeader struct {
	// FragmentOff (h_fragmentoff) overlays IdataSize: the offset of the
	// file's data in the packed inode when the whole file is a fragment.
	FragmentOff uint32
	// IdataSize is h_idata_size, the size of the inline (ztailpacking)
	// compressed tail; it is the upper 16 bits of FragmentOff.
	IdataSize     uint16
	Advise        uint16
	AlgorithmType uint8 // bits 0-3 HEAD1, bits 4-7 HEAD2
	ClusterBits   uint8 // bits 0-2 lclusterbits-12, bit 7 whole-file fragment
}

// Encode writes the map header into b (at least MapHeaderSize bytes).
// When the whole file is a fragment (ClusterBits bit 7), FragmentOff is
// written; otherwise IdataSize.
func (h MapHeader) Encode(b []byte) {
	_ = b[MapHeaderSize-1]
	le := binary.LittleEndian
	if h.ClusterBits&(1<<FragmentInodeBit) != 0 {
		le.PutUint32(b[0:], h.FragmentOff)
	} else {
		le.PutUint16(b[0:], 0)
		le.PutUint16(b[2:], h.IdataSize)
	}
	le.PutUint16(b[4:], h.Advise)
	b[6] = h.AlgorithmType
	b[7] = h.ClusterBits
}

// DecodeMapHeader decodes a map header.
func DecodeMapHeader(b []byte) (MapHeader, error) {
	if len(b) < MapHeaderSize {
		return MapHeader{}, errShort
	}
	le := binary.LittleEndian
	return MapHeader{
		FragmentOff:   le.Uint32(b[0:]),
		IdataSize:     le.Uint16(b[2:]),
		Advise:        le.Uint16(b[4:]),
		AlgorithmType: b[6],
		ClusterBits:   b[7],
	}, nil
}

// LclusterIndex is a full lcluster index (struct z_erofs_lcluster_index).
type LclusterIndex struct {
	Advise     uint16 // type in bits 0-1, LIPartialRef
	ClusterOfs uint16
	// BlkAddr is the pcluster's block address for HEAD and PLAIN types;
	// for NONHEAD it holds Delta[0] | Delta[1]<<16.
	BlkAddr uint32
}

// Type returns the lcluster type.
func (x LclusterIndex) Type() int { return int(x.Advise) & (lclusterTypeMax - 1) }

// Delta returns delta[0] and delta[1] of a NONHEAD index.
func (x LclusterIndex) Delta() (uint16, uint16) {
	return uint16(x.BlkAddr), uint16(x.BlkAddr >> 16)
}

// Encode writes the index into b (at least LclusterIndexSize bytes).
func (x LclusterIndex) Encode(b []byte) {
	_ = b[LclusterIndexSize-1]
	binary.LittleEndian.PutUint16(b[0:], x.Advise)
	binary.LittleEndian.PutUint16(b[2:], x.ClusterOfs)
	binary.LittleEndian.PutUint32(b[4:], x.BlkAddr)
}

// DecodeLclusterIndex decodes a full lcluster index.
func DecodeLclusterIndex(b []byte) (LclusterIndex, error) {
	if len(b) < LclusterIndexSize {
		return LclusterIndex{}, errShort
	}
	return LclusterIndex{
		Advise:     binary.LittleEndian.Uint16(b[0:]),
		ClusterOfs: binary.LittleEndian.Uint16(b[2:]),
		BlkAddr:    binary.LittleEndian.Uint32(b[4:]),
	}, nil
}

// FullIndexStart returns the byte offset of the first full lcluster index
// of a compressed inode whose inode and xattrs end at end: the map header
// at end rounded up to 8, followed by 8 reserved bytes (the kernel's
// Z_EROFS_FULL_INDEX_ALIGN).
func FullIndexStart(end int64) int64 {
	return (end+7)&^7 + MapHeaderSize + 8
}

// CompactIndexStart returns the byte offset of the first compact index
// (just after the 8-aligned map header).
func CompactIndexStart(end int64) int64 {
	return (end+7)&^7 + MapHeaderSize
}

// Compression configuration records, each preceded by a le16 size, one
// per bit set in available_compr_algs, placed right after the superblock
// (at SuperOffset + 128 + 16*ExtSlots).

// LZ4Cfg is struct z_erofs_lz4_cfgs (14 bytes).
type LZ4Cfg struct {
	MaxDistance     uint16
	MaxPclusterBlks uint16
}

// LZ4CfgSize, LZMACfgSize, DeflateCfgSize and ZstdCfgSize are the payload
// sizes of the configuration records.
const (
	LZ4CfgSize     = 14
	LZMACfgSize    = 14
	DeflateCfgSize = 6
	ZstdCfgSize    = 6
)

// Encode returns the record payload.
func (c LZ4Cfg) Encode() []byte {
	b := make([]byte, LZ4CfgSize)
	binary.LittleEndian.PutUint16(b[0:], c.MaxDistance)
	binary.LittleEndian.PutUint16(b[2:], c.MaxPclusterBlks)
	return b
}

// DeflateCfg is struct z_erofs_deflate_cfgs (6 bytes).
type DeflateCfg struct {
	WindowBits uint8 // 8..15
}

// Encode returns the record payload.
func (c DeflateCfg) Encode() []byte {
	b := make([]byte, DeflateCfgSize)
	b[0] = c.WindowBits
	return b
}

// ZstdCfg is struct z_erofs_zstd_cfgs (6 bytes).
type ZstdCfg struct {
	Format    uint8
	WindowLog uint8 // windowLog - 10
}

// Encode returns the record payload.
func (c ZstdCfg) Encode() []byte {
	b := make([]byte, ZstdCfgSize)
	b[0] = c.Format
	b[1] = c.WindowLog
	return b
}

// LZMACfg is struct z_erofs_lzma_cfgs (14 bytes).
type LZMACfg struct {
	DictSize uint32
	Format   uint16
}

// Encode returns the record payload.
func (c LZMACfg) Encode() []byte {
	b := make([]byte, LZMACfgSize)
	binary.LittleEndian.PutUint32(b[0:], c.DictSize)
	binary.LittleEndian.PutUint16(b[4:], c.Format)
	return b
}

// Chunk-based files (read side).
const (
	// ChunkFormatBlkBits masks the chunk size (chunkbits - blkszbits) in
	// i_u.c.format.
	ChunkFormatBlkBits = 0x001f
	// ChunkFormatIndexes selects 8-byte chunk indexes instead of 4-byte
	// block addresses.
	ChunkFormatIndexes = 0x0020
	// ChunkIndexSize is the size of struct erofs_inode_chunk_index.
	ChunkIndexSize = 8
)
