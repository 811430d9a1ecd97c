package squashfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
)

// dataKey identifies a decompressed data or fragment block in the cache.
type dataKey struct {
	pos  uint64
	size uint32
}

// blockChunk is how many block sizes of a file's list are decoded at once.
const blockChunk = 1024

// FileData reads the content of one regular file. It is safe for
// concurrent use.
type FileData struct {
	rd      *Reader
	in      *Inode
	nblocks uint64

	// Sequential readahead state.
	raMu    sync.Mutex
	lastEnd int64  // end of the previous read
	raNext  uint64 // first block not yet scheduled for readahead

	mu    sync.Mutex
	ckpt  []blockCkpt // ckpt[k]: where chunk k of the block list starts
	chunk int64       // chunk whose entries are in offs/sizes, -1 for none
	offs  []uint64
	sizes []uint32
}

type blockCkpt struct {
	disk uint64  // on-disk position of the chunk's first block
	pos  metaPos // position of its size entry in the inode table
}

// FileData returns a reader of regular file in's content.
func (rd *Reader) FileData(in *Inode) (*FileData, error) {
	if !in.isFile() {
		return nil, fmt.Errorf("squashfs: inode %s is not a regular file", refString(in.Ref))
	}
	return &FileData{
		rd:      rd,
		in:      in,
		nblocks: in.dataBlocks(rd.sb.BlockSize),
		ckpt:    []blockCkpt{{disk: in.start, pos: in.listPos}},
		chunk:   -1,
	}, nil
}

// Size returns the file size.
func (f *FileData) Size() int64 { return int64(f.in.Size) }

// locate returns the on-disk position and size field of block i.
func (f *FileData) locate(i uint64) (uint64, uint32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := i / blockChunk
	for uint64(len(f.ckpt)) <= k {
		if err := f.loadChunk(uint64(len(f.ckpt) - 1)); err != nil {
			return 0, 0, err
		}
	}
	if f.chunk != int64(k) {
		if err := f.loadChunk(k); err != nil {
			return 0, 0, err
		}
	}
	j := i % blockChunk
	return f.offs[j], f.sizes[j], nil
}

// loadChunk decodes chunk k of the block list (whose checkpoint is
// known) and records the checkpoint of chunk k+1.
func (f *FileData) loadChunk(k uint64) error {
	rd := f.rd
	first := k * blockChunk
	n := min(f.nblocks-first, blockChunk)
	cp := f.ckpt[k]
	c := rd.cursorAt("inode table", rd.sb.InodeTable, rd.inodeLimit, cp.pos)
	b, err := c.read(int(n * 4))
	if err != nil {
		return fmt.Errorf("inode %s: block list: %w", refString(f.in.Ref), err)
	}
	if f.offs == nil {
		f.offs = make([]uint64, blockChunk)
		f.sizes = make([]uint32, blockChunk)
	}
	f.chunk = -1
	disk := cp.disk
	for j := range n {
		sz := binary.LittleEndian.Uint32(b[j*4:])
		if err := rd.checkBlock(disk, sz); err != nil {
			return fmt.Errorf("inode %s: data block %d: %w", refString(f.in.Ref), first+j, err)
		}
		f.offs[j], f.sizes[j] = disk, sz
		disk += uint64(sz &^ blockUncompressed)
	}
	f.chunk = int64(k)
	if uint64(len(f.ckpt)) == k+1 && first+n < f.nblocks {
		f.ckpt = append(f.ckpt, blockCkpt{disk: disk, pos: c.pos})
	}
	return nil
}

// blockData returns the decompressed content of a data or fragment block
// through the shared cache.
func (rd *Reader) blockData(pos uint64, size uint32) ([]byte, error) {
	return rd.data.Get(dataKey{pos, size}, func() ([]byte, int64, error) {
		n := int(size &^ blockUncompressed)
		if size&blockUncompressed != 0 {
			src := make([]byte, n)
			if err := rd.readFull(src, pos, "data block"); err != nil {
				return nil, 0, err
			}
			return src, int64(n), nil
		}
		// The compressed bytes are only needed while decompressing:
		// their buffer is reused (checkBlock bounds n by the block size).
		bp, _ := rd.srcPool.Get().(*[]byte)
		if bp == nil {
			bp = new([]byte)
		}
		if cap(*bp) < n {
			*bp = make([]byte, n)
		}
		src := (*bp)[:n]
		err := rd.readFull(src, pos, "data block")
		var out []byte
		if err == nil {
			out, err = rd.codec.Decompress(nil, src, int(rd.sb.BlockSize))
		}
		rd.srcPool.Put(bp)
		if err != nil {
			return nil, 0, fmt.Errorf("squashfs: data block at %#x: %w", pos, err)
		}
		return out, int64(cap(out)), nil
	})
}

// fragmentTail returns the file's tail from its fragment block.
func (f *FileData) fragmentTail() ([]byte, error) {
	rd := f.rd
	start, size, err := rd.fragment(f.in.frag)
	if err != nil {
		return nil, fmt.Errorf("inode %s: %w", refString(f.in.Ref), err)
	}
	if size&^blockUncompressed == 0 {
		return nil, fmt.Errorf("inode %s: fragment %d is empty", refString(f.in.Ref), f.in.frag)
	}
	data, err := rd.blockData(start, size)
	if err != nil {
		return nil, fmt.Errorf("inode %s: fragment %d: %w", refString(f.in.Ref), f.in.frag, err)
	}
	tail := f.in.Size % uint64(rd.sb.BlockSize)
	end := uint64(f.in.fragOff) + tail
	if end > uint64(len(data)) {
		return nil, fmt.Errorf("inode %s: tail at offset %d (%d bytes) past the end of fragment %d (%d bytes)", refString(f.in.Ref), f.in.fragOff, tail, f.in.frag, len(data))
	}
	return data[f.in.fragOff:end], nil
}

// ReadAt implements io.ReaderAt.
func (f *FileData) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.readAt(p, off)
	return n, wrapErr(err)
}

func (f *FileData) readAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("squashfs: negative offset")
	}
	size := f.in.Size
	if uint64(off) >= size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	want := len(p)
	if uint64(want) > size-uint64(off) {
		want = int(size - uint64(off))
	}
	f.readahead(off, want)
	f.prefetch(uint64(off), uint64(want))
	bs := uint64(f.rd.sb.BlockSize)
	n := 0
	for n < want {
		pos := uint64(off) + uint64(n)
		bi := pos / bs
		within := pos % bs
		blockLen := min(bs, size-bi*bs)
		k := int(min(uint64(want-n), blockLen-within))
		dst := p[n : n+k]
		if bi < f.nblocks {
			if err := f.readBlock(bi, within, blockLen, dst); err != nil {
				return n, err
			}
		} else {
			tail, err := f.fragmentTail()
			if err != nil {
				return n, err
			}
			copy(dst, tail[within:])
		}
		n += k
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// readBlock fills dst with block bi's bytes from offset within.
func (f *FileData) readBlock(bi, within, blockLen uint64, dst []byte) error {
	rd := f.rd
	pos, sz, err := f.locate(bi)
	if err != nil {
		return err
	}
	stored := uint64(sz &^ blockUncompressed)
	switch {
	case stored == 0: // sparse
		clear(dst)
	case sz&blockUncompressed != 0:
		// Stored as is: read straight from the image.
		if stored > within {
			k := min(uint64(len(dst)), stored-within)
			if err := rd.readFull(dst[:k], pos+within, "data block"); err != nil {
				return fmt.Errorf("inode %s: data block %d: %w", refString(f.in.Ref), bi, err)
			}
			clear(dst[k:])
		} else {
			clear(dst)
		}
	default:
		data, err := rd.blockData(pos, sz)
		if err != nil {
			return fmt.Errorf("inode %s: data block %d: %w", refString(f.in.Ref), bi, err)
		}
		if uint64(len(data)) > blockLen {
			return fmt.Errorf("inode %s: data block %d at %#x decompresses to %d bytes, expected %d", refString(f.in.Ref), bi, pos, len(data), blockLen)
		}
		if uint64(len(data)) > within {
			k := copy(dst, data[within:])
			clear(dst[k:])
		} else {
			clear(dst)
		}
	}
	return nil
}

// readahead starts decompressing, in the background, the blocks after a
// sequential read, so that reading a file front to back keeps every core
// busy. Blocks already scheduled are not scheduled again; when all
// readahead workers are busy it gives up until the next read.
func (f *FileData) readahead(off int64, n int) {
	rd := f.rd
	bs := uint64(rd.sb.BlockSize)
	window := min(uint64(cap(rd.raSem))*2, uint64(rd.data.Capacity()/4)/bs)
	f.raMu.Lock()
	seq := off == f.lastEnd
	f.lastEnd = off + int64(n)
	cur := uint64(off) / bs
	if !seq || window == 0 || f.nblocks == 0 {
		f.raNext = 0
		f.raMu.Unlock()
		return
	}
	from := max(f.raNext, cur+1)
	to := min(cur+window, f.nblocks-1)
	if from > to {
		f.raMu.Unlock()
		return
	}
	f.raNext = to + 1
	f.raMu.Unlock()
	for bi := from; bi <= to; bi++ {
		select {
		case rd.raSem <- struct{}{}:
			go func() {
				defer func() { <-rd.raSem }()
				pos, sz, err := f.locate(bi)
				if err == nil && sz&blockUncompressed == 0 && sz != 0 {
					rd.blockData(pos, sz) // errors surface in the real read
				}
			}()
		default:
			f.raMu.Lock()
			f.raNext = min(f.raNext, bi)
			f.raMu.Unlock()
			return
		}
	}
}

// prefetch decompresses the compressed blocks of a read spanning several
// blocks in parallel, into the shared cache.
func (f *FileData) prefetch(off, n uint64) {
	bs := uint64(f.rd.sb.BlockSize)
	first, last := off/bs, (off+n-1)/bs
	last = min(last, f.nblocks-1)
	if f.nblocks == 0 || last <= first {
		return
	}
	// Keep what is prefetched well inside the cache.
	if (last-first+1)*bs > uint64(f.rd.data.Capacity()/2) {
		last = first + uint64(f.rd.data.Capacity()/2)/bs
		if last <= first {
			return
		}
	}
	workers := min(runtime.GOMAXPROCS(0), int(last-first+1))
	if workers < 2 {
		return
	}
	var wg sync.WaitGroup
	next := make(chan uint64)
	for range workers {
		wg.Go(func() {
			for bi := range next {
				pos, sz, err := f.locate(bi)
				if err != nil || sz&blockUncompressed != 0 || sz == 0 {
					continue
				}
				f.rd.blockData(pos, sz) // errors surface in the real read
			}
		})
	}
	for bi := first; bi <= last; bi++ {
		next <- bi
	}
	close(next)
	wg.Wait()
}
