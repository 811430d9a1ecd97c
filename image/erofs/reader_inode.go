package erofs

import (
	"encoding/binary"
	"io/fs"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/closurefs/closurefs/image"
)

// i_format bits beyond the version and layout.
const (
	rdINlink1Bit = 4        // non-directory compact inodes: nlink is 1, i_nb holds startblk_hi
	rdIFormatAll = 1<<5 - 1 // all defined i_format bits
	rdNidMax     = 1 << 56  // nids beyond this are corrupt whatever the image
	rdChunk48Bit = 0x0040   // EROFS_CHUNK_FORMAT_48BIT
	rdNullAddr   = ^uint64(0)
)

// inode is a decoded on-disk inode.
type rdInode struct {
	nid      uint64
	pos      int64 // byte offset of the inode in the image
	layout   int
	isize    int64 // 32 or 64
	xisize   int64 // inline xattr area
	xicount  uint16
	mode     uint16
	nlink    uint32
	size     int64
	uid, gid uint32
	mtime    int64
	nsec     uint32
	startBlk uint64 // flat layouts: first data block (rdNullAddr if none)
	rdev     uint32
	chunkFmt uint16
	blocks   uint64 // compressed layouts: blocks used

	zOnce sync.Once
	z     *rdZinfo
	zErr  error

	// last is the extent mapped last, so that sequential reads map each
	// extent once.
	lastMu sync.Mutex
	last   rdExtent

	// parentOK is 1 + the nid of the directory whose entry for this
	// directory was checked against its "..".
	parentOK atomic.Uint64
}

// dataPos is the byte offset just after the inode and its inline xattrs.
func (in *rdInode) dataPos() int64 { return in.pos + in.isize + in.xisize }

func (in *rdInode) isDir() bool     { return in.mode&syscall.S_IFMT == syscall.S_IFDIR }
func (in *rdInode) isReg() bool     { return in.mode&syscall.S_IFMT == syscall.S_IFREG }
func (in *rdInode) isSymlink() bool { return in.mode&syscall.S_IFMT == syscall.S_IFLNK }

// fileMode converts the POSIX mode to an fs.FileMode.
func (in *rdInode) fileMode() fs.FileMode { return image.FileMode(uint32(in.mode)) }

// imageInode returns the image.Inode of in. Inode numbers are nids, as
// the kernel reports them (st_ino of a mounted image).
func (in *rdInode) imageInode() *image.Inode {
	var rdev uint64
	if in.mode&syscall.S_IFMT == syscall.S_IFCHR || in.mode&syscall.S_IFMT == syscall.S_IFBLK {
		major := uint64(in.rdev&0xfff00) >> 8
		minor := uint64(in.rdev&0xff) | uint64(in.rdev>>12)&0xfff00
		rdev = major<<8 | minor&0xff | (minor&^0xff)<<12
	}
	return &image.Inode{
		Ino:   in.nid,
		Nlink: in.nlink,
		UID:   in.uid,
		GID:   in.gid,
		Rdev:  rdev,
		Mtime: time.Unix(in.mtime, int64(in.nsec)),
	}
}

// inode returns the inode with the given nid, through the inode cache.
func (rd *Reader) inodeAt(nid uint64) (*rdInode, error) {
	return rd.inodes.Get(nid, func() (*rdInode, int64, error) {
		in, err := rd.readInode(nid)
		return in, 1, err
	})
}

func (rd *Reader) readInode(nid uint64) (*rdInode, error) {
	if nid >= rdNidMax {
		return nil, corruptf("nid %d out of range", nid)
	}
	pos := rd.metaBase + int64(nid)*InodeSlotSize
	if pos < rd.metaBase || pos+CompactInodeSize > rd.size {
		return nil, corruptf("nid %d lies beyond the image end", nid)
	}
	b, err := rd.metaAt(pos, CompactInodeSize)
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	ifmt := le.Uint16(b[0:])
	if ifmt&^rdIFormatAll != 0 {
		return nil, corruptf("nid %d: unsupported i_format %#x", nid, ifmt)
	}
	in := &rdInode{nid: nid, pos: pos, layout: int(ifmt>>1) & 7}
	if in.layout >= layoutMax {
		return nil, corruptf("nid %d: unsupported data layout %d", nid, in.layout)
	}
	var iu uint32
	var nb uint16
	addrMask := uint64(1)<<48 - 1
	if ifmt&InodeVersionMask == InodeVersionExtended {
		in.isize = ExtendedInodeSize
		if b, err = rd.metaAt(pos, ExtendedInodeSize); err != nil {
			return nil, err
		}
		in.xicount = le.Uint16(b[2:])
		in.mode = le.Uint16(b[4:])
		nb = le.Uint16(b[6:])
		in.size = int64(le.Uint64(b[8:]))
		iu = le.Uint32(b[16:])
		in.uid = le.Uint32(b[24:])
		in.gid = le.Uint32(b[28:])
		in.mtime = int64(le.Uint64(b[32:]))
		in.nsec = le.Uint32(b[40:])
		in.nlink = le.Uint32(b[44:])
	} else {
		in.isize = CompactInodeSize
		in.xicount = le.Uint16(b[2:])
		in.mode = le.Uint16(b[4:])
		nb = le.Uint16(b[6:])
		in.size = int64(le.Uint32(b[8:]))
		in.mtime = rd.epoch + int64(le.Uint32(b[12:]))
		in.nsec = rd.fixNsec
		iu = le.Uint32(b[16:])
		in.uid = uint32(le.Uint16(b[24:]))
		in.gid = uint32(le.Uint16(b[26:]))
		if in.mode&syscall.S_IFMT != syscall.S_IFDIR && ifmt>>rdINlink1Bit&1 != 0 {
			in.nlink = 1
		} else {
			in.nlink = uint32(nb)
			nb = 0
			addrMask = 1<<32 - 1
		}
	}
	if in.size < 0 {
		return nil, corruptf("nid %d: size %d", nid, in.size)
	}
	if in.nsec >= 1e9 {
		in.nsec = 0
	}
	in.xisize = int64(XattrSize(in.xicount))
	if in.dataPos() > rd.size {
		return nil, corruptf("nid %d: inode and xattrs end beyond the image", nid)
	}
	switch in.mode & syscall.S_IFMT {
	case syscall.S_IFREG, syscall.S_IFDIR, syscall.S_IFLNK:
		in.startBlk = uint64(iu) | uint64(nb)<<32
		if (in.startBlk^rdNullAddr)&addrMask == 0 || (in.startBlk == NullAddr && nb == 0) {
			in.startBlk = rdNullAddr
		}
		in.blocks = in.startBlk
	case syscall.S_IFCHR, syscall.S_IFBLK:
		in.rdev = iu
	case syscall.S_IFIFO, syscall.S_IFSOCK:
	default:
		return nil, corruptf("nid %d: bogus mode %#o", nid, in.mode)
	}
	if in.isDir() || in.isSymlink() || in.isReg() {
		switch in.layout {
		case LayoutChunkBased:
			if rd.incompat&FeatureIncompatChunkedFile == 0 {
				return nil, corruptf("nid %d: chunk-based inode without the chunked_file feature", nid)
			}
			in.chunkFmt = uint16(iu)
			if in.chunkFmt&^(ChunkFormatBlkBits|ChunkFormatIndexes|rdChunk48Bit) != 0 {
				return nil, corruptf("nid %d: unsupported chunk format %#x", nid, in.chunkFmt)
			}
		}
	}
	return in, nil
}
