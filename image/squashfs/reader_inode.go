package squashfs

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"time"

	"github.com/closurefs/closurefs/image"
)

const rdTypeExtended = 7 // extended inode type = basic type + 7

// Inode is a decoded inode of an image.
type Inode struct {
	Ref   uint64 // inode reference (block << 16 | offset) it was read from
	Type  uint16 // on-disk type, 1-14
	Mode  fs.FileMode
	UID   uint32
	GID   uint32
	Mtime uint32
	Ino   uint32
	Nlink uint32
	Rdev  uint32 // device number (squashfs encoding = Linux new_encode_dev)
	Xattr uint32 // xattr id, 0xFFFFFFFF for none

	// Size is the file size, the symlink target length, or the directory
	// listing size (as stored: 3 more than the listing).
	Size uint64

	// Directories.
	dirBlock  uint32 // listing's metadata block, relative to the directory table
	dirOffset uint32 // offset of the listing in that block
	Parent    uint32 // parent directory's inode number
	idxCount  uint32 // directory index entries
	idxPos    metaPos

	// Regular files.
	start   uint64 // first data block
	frag    uint32 // fragment index or 0xFFFFFFFF
	fragOff uint32
	sparse  uint64
	listPos metaPos // position of the block size list

	// Symlinks.
	Target string
}

func (in *Inode) isDir() bool { return in.Type == TypeDir || in.Type == TypeDir+rdTypeExtended }
func (in *Inode) isFile() bool {
	return in.Type == TypeFile || in.Type == TypeFile+rdTypeExtended
}

// basicType returns the basic inode type (1-7).
func (in *Inode) basicType() uint16 {
	if in.Type > rdTypeExtended {
		return in.Type - rdTypeExtended
	}
	return in.Type
}

// IsDir reports whether the inode is a directory.
func (in *Inode) IsDir() bool { return in.isDir() }

// ImageInode returns the inode data as image.Inode.
func (in *Inode) ImageInode() *image.Inode {
	return &image.Inode{
		Ino:   uint64(in.Ino),
		Nlink: in.Nlink,
		UID:   in.UID,
		GID:   in.GID,
		Rdev:  linuxDev(in.Rdev),
		Mtime: time.Unix(int64(in.Mtime), 0),
	}
}

// linuxDev converts squashfs's 32-bit device encoding (the kernel's
// new_encode_dev) to the glibc dev_t encoding used by stat.
func linuxDev(d uint32) uint64 {
	major := uint64((d & 0xfff00) >> 8)
	minor := uint64(d&0xff) | uint64((d>>12)&0xfff00)
	return (major&0xfff)<<8 | (major&^0xfff)<<32 | minor&0xff | (minor&^0xff)<<12
}

// fileMode builds an fs.FileMode from permission bits and a basic type.
func fileMode(perm uint16, typ uint16) fs.FileMode {
	m := fs.FileMode(perm & 0o777)
	if perm&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if perm&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if perm&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	switch typ {
	case TypeDir:
		m |= fs.ModeDir
	case TypeSymlink:
		m |= fs.ModeSymlink
	case TypeBlockDev:
		m |= fs.ModeDevice
	case TypeCharDev:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case TypeFifo:
		m |= fs.ModeNamedPipe
	case TypeSocket:
		m |= fs.ModeSocket
	}
	return m
}

// Inode reads the inode at reference ref.
func (rd *Reader) Inode(ref uint64) (*Inode, error) {
	in, err := rd.inode(ref)
	return in, wrapErr(err)
}

// RootRef returns the root directory's inode reference.
func (rd *Reader) RootRef() uint64 { return rd.sb.RootInode }

func (rd *Reader) inode(ref uint64) (*Inode, error) {
	in, err := rd.decodeInode(ref)
	if err != nil {
		return nil, fmt.Errorf("inode %s: %w", refString(ref), err)
	}
	return in, nil
}

func (rd *Reader) decodeInode(ref uint64) (*Inode, error) {
	sb := &rd.sb
	blk, off := ref>>16, uint32(ref&0xffff)
	if blk >= sb.DirTable-sb.InodeTable || off >= MetadataBlockSize {
		return nil, fmt.Errorf("reference outside the inode table")
	}
	c := rd.cursorAt("inode table", sb.InodeTable, rd.inodeLimit, metaPos{block: sb.InodeTable + blk, off: off})
	b, err := c.read(16)
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	in := &Inode{
		Ref:   ref,
		Type:  le.Uint16(b[0:]),
		Mtime: le.Uint32(b[8:]),
		Ino:   le.Uint32(b[12:]),
		Xattr: NoXattr,
	}
	perm := le.Uint16(b[2:])
	uidx, gidx := le.Uint16(b[4:]), le.Uint16(b[6:])
	if in.Type < 1 || in.Type > 14 {
		return nil, fmt.Errorf("unknown inode type %d", in.Type)
	}
	if perm&^0o7777 != 0 {
		return nil, fmt.Errorf("permission bits %#o out of range", perm)
	}
	if int(uidx) >= len(rd.ids) || int(gidx) >= len(rd.ids) {
		return nil, fmt.Errorf("uid/gid index %d/%d out of range (%d ids)", uidx, gidx, len(rd.ids))
	}
	in.UID, in.GID = rd.ids[uidx], rd.ids[gidx]
	if in.Ino == 0 || in.Ino > sb.Inodes {
		return nil, fmt.Errorf("inode number %d out of range 1-%d", in.Ino, sb.Inodes)
	}
	in.Mode = fileMode(perm, in.basicType())
	ext := in.Type > rdTypeExtended
	switch in.basicType() {
	case TypeDir:
		if !ext {
			b, err := c.read(16)
			if err != nil {
				return nil, err
			}
			in.dirBlock = le.Uint32(b[0:])
			in.Nlink = le.Uint32(b[4:])
			in.Size = uint64(le.Uint16(b[8:]))
			in.dirOffset = uint32(le.Uint16(b[10:]))
			in.Parent = le.Uint32(b[12:])
		} else {
			b, err := c.read(24)
			if err != nil {
				return nil, err
			}
			in.Nlink = le.Uint32(b[0:])
			in.Size = uint64(le.Uint32(b[4:]))
			in.dirBlock = le.Uint32(b[8:])
			in.Parent = le.Uint32(b[12:])
			in.idxCount = uint32(le.Uint16(b[16:]))
			in.dirOffset = uint32(le.Uint16(b[18:]))
			in.Xattr = le.Uint32(b[20:])
			in.idxPos = c.pos
		}
		if in.Size > 3 {
			if uint64(in.dirBlock) >= rd.dirLimit-sb.DirTable || in.dirOffset >= MetadataBlockSize {
				return nil, fmt.Errorf("directory listing at %#x:%d outside the directory table", in.dirBlock, in.dirOffset)
			}
		}
	case TypeFile:
		if !ext {
			b, err := c.read(16)
			if err != nil {
				return nil, err
			}
			in.start = uint64(le.Uint32(b[0:]))
			in.frag = le.Uint32(b[4:])
			in.fragOff = le.Uint32(b[8:])
			in.Size = uint64(le.Uint32(b[12:]))
			in.Nlink = 1
		} else {
			b, err := c.read(40)
			if err != nil {
				return nil, err
			}
			in.start = le.Uint64(b[0:])
			in.Size = le.Uint64(b[8:])
			in.sparse = le.Uint64(b[16:])
			in.Nlink = le.Uint32(b[24:])
			in.frag = le.Uint32(b[28:])
			in.fragOff = le.Uint32(b[32:])
			in.Xattr = le.Uint32(b[36:])
		}
		in.listPos = c.pos
		if in.Size > 1<<62 {
			return nil, fmt.Errorf("file size %d too large", in.Size)
		}
		if in.start > rd.end {
			return nil, fmt.Errorf("file data at %#x past the end of the image", in.start)
		}
		if in.frag != NoFragment {
			if in.frag >= sb.Fragments {
				return nil, fmt.Errorf("fragment index %d out of range (%d fragments)", in.frag, sb.Fragments)
			}
			if in.fragOff >= sb.BlockSize || uint64(in.fragOff)+in.Size%uint64(sb.BlockSize) > uint64(sb.BlockSize) {
				return nil, fmt.Errorf("fragment offset %d with a %d-byte tail exceeds the block size", in.fragOff, in.Size%uint64(sb.BlockSize))
			}
		}
	case TypeSymlink:
		b, err := c.read(8)
		if err != nil {
			return nil, err
		}
		in.Nlink = le.Uint32(b[0:])
		n := le.Uint32(b[4:])
		if n > rdMaxSymlink {
			return nil, fmt.Errorf("symlink target length %d too long", n)
		}
		t, err := c.read(int(n))
		if err != nil {
			return nil, err
		}
		in.Target = string(t)
		in.Size = uint64(n)
		if ext {
			if in.Xattr, err = c.u32(); err != nil {
				return nil, err
			}
		}
	case TypeBlockDev, TypeCharDev:
		b, err := c.read(8)
		if err != nil {
			return nil, err
		}
		in.Nlink = le.Uint32(b[0:])
		in.Rdev = le.Uint32(b[4:])
		if ext {
			if in.Xattr, err = c.u32(); err != nil {
				return nil, err
			}
		}
	case TypeFifo, TypeSocket:
		var err error
		if in.Nlink, err = c.u32(); err != nil {
			return nil, err
		}
		if ext {
			if in.Xattr, err = c.u32(); err != nil {
				return nil, err
			}
		}
	}
	if in.Xattr != NoXattr && in.Xattr >= rd.xattrCount {
		return nil, fmt.Errorf("xattr index %d out of range (%d xattr ids)", in.Xattr, rd.xattrCount)
	}
	return in, nil
}

// dataBlocks returns the number of entries in a file's block size list.
func (in *Inode) dataBlocks(blockSize uint32) uint64 {
	bs := uint64(blockSize)
	if in.frag != NoFragment {
		return in.Size / bs
	}
	return (in.Size + bs - 1) / bs
}
