package main

import (
	"context"
	"io"
	"math"

	"github.com/closurefs/closurefs/image"
	"github.com/closurefs/closurefs/image/squashfs"
	"github.com/spf13/pflag"
)

// squashfsFormat is `snapshot -t squashfs`: a SquashFS 4.0 image as
// gensquashfs -D writes it.
func squashfsFormat() *imageFormat {
	return &imageFormat{
		name:      "squashfs",
		blockSize: squashfs.DefaultBlockSize,
		flags: func(fs *pflag.FlagSet) formatRun {
			// -c may be shared with other formats: define it once.
			comp := fs.ShorthandLookup("c")
			if comp == nil {
				fs.StringP("compressor", "c", "", "compressor[,level]; squashfs: gzip, xz, lz4, lz4hc or zstd (default zstd,15); erofs: as -z")
				comp = fs.Lookup("compressor")
			}
			noFrag := fs.Bool("no-fragments", false, "squashfs: do not pack file tails into fragment blocks")
			export := fs.Bool("exportable", false, "squashfs: add the NFS export table")
			return formatRun{write: func(ctx context.Context, w io.WriterAt, t *image.Tree, c *snapshotCommon) error {
				spec := "zstd,15"
				if comp.Changed {
					spec = comp.Value.String()
				}
				cd, err := squashfs.ParseCompressor(spec)
				if err != nil {
					return usagef("-c %s: %v", spec, err)
				}
				if c.Mtime < 0 || c.Mtime > math.MaxUint32 {
					return usagef("-T %d: squashfs holds times from 0 to %d", c.Mtime, uint32(math.MaxUint32))
				}
				bs := c.BlockSize
				if bs != 0 && (bs < squashfs.MinBlockSize || bs > squashfs.MaxBlockSize || bs&(bs-1) != 0) {
					return usagef("-b %s: squashfs block size must be a power of two from 4K to 1M", c.BlockSizeSpec)
				}
				wr, err := squashfs.NewWriter(w, squashfs.WriterOptions{
					BlockSize:   bs,
					Codec:       cd,
					NoFragments: *noFrag,
					Exportable:  *export,
					Jobs:        c.Jobs,
					Progress:    c.Progress,
				})
				if err != nil {
					return usagef("%v", err)
				}
				return wr.Write(ctx, t)
			}}
		},
	}
}
