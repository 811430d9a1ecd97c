package main

import (
	"context"
	"encoding/hex"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/closurefs/closurefs/image"
	"github.com/closurefs/closurefs/image/erofs"
	"github.com/spf13/pflag"
)

// erofsFormat is `snapshot -t erofs`: an EROFS image as mkfs.erofs writes
// it, with mkfs.erofs's spelling of its options.
func erofsFormat() *imageFormat {
	return &imageFormat{
		name:      "erofs",
		blockSize: erofs.DefaultBlockSize,
		flags: func(fs *pflag.FlagSet) formatRun {
			z := fs.StringP("compress", "z", "", "erofs: compressor[,level] or compressor,level=N: lz4, lz4hc, zstd, deflate (as mkfs.erofs -z; default: uncompressed)")
			ext := fs.StringArrayP("extended", "E", nil, "erofs: extended options, comma separated: ztailpacking, fragments, dedupe, legacy-compress (full indexes)")
			pcluster := fs.StringP("pcluster-size", "C", "", "erofs: largest physical cluster size in bytes (big pclusters), a multiple of the block size")
			label := fs.StringP("label", "L", erofs.DefaultLabel, "erofs: volume label (at most 16 bytes)")
			uuid := fs.StringP("uuid", "U", "", "erofs: volume UUID (default: derived from the content)")
			forceUID := fs.Int64("force-uid", -1, "erofs: owner uid of every entry")
			forceGID := fs.Int64("force-gid", -1, "erofs: owner gid of every entry")
			fs.String("mount-point", "", "erofs: accepted for mkfs.erofs compatibility (no effect)")
			// options turns the flags into writer options.
			options := func(c *snapshotCommon) (erofs.Options, error) {
				opts := erofs.Options{
					BlockSize: c.BlockSize,
					Label:     *label,
					BuildTime: c.Mtime,
					ForceUID:  *forceUID,
					ForceGID:  *forceGID,
					Jobs:      c.Jobs,
					Progress:  c.Progress,
				}
				zspec := *z
				if comp := fs.ShorthandLookup("c"); comp != nil && comp.Changed {
					if zspec != "" {
						return opts, usagef("give -z or -c, not both")
					}
					zspec = comp.Value.String()
				}
				for _, id := range []struct {
					name string
					v    int64
				}{{"--force-uid", *forceUID}, {"--force-gid", *forceGID}} {
					if id.v < -1 || id.v > math.MaxUint32 {
						return opts, usagef("%s %d: not a 32-bit id", id.name, id.v)
					}
				}
				if zspec != "" {
					name, rest, _ := strings.Cut(zspec, ",")
					opts.Compressor = name
					if rest != "" {
						n, err := strconv.Atoi(strings.TrimPrefix(rest, "level="))
						if err != nil || n <= 0 {
							return opts, usagef("-z %s: bad level %q", zspec, rest)
						}
						opts.Level = n
					}
				}
				for _, e := range *ext {
					for _, o := range strings.Split(e, ",") {
						switch o {
						case "":
						case "ztailpacking":
							opts.Ztailpacking = true
						case "fragments":
							opts.Fragments = true
						case "dedupe":
							opts.Dedupe = true
						case "legacy-compress":
							opts.FullIndexes = true
						default:
							return opts, usagef("-E %s: unsupported extended option %q", e, o)
						}
					}
				}
				if *pcluster != "" {
					n, err := parseSize(*pcluster)
					if err != nil {
						return opts, usagef("-C %s: %v", *pcluster, err)
					}
					opts.PclusterSize = n
				}
				if *uuid != "" {
					b, err := hex.DecodeString(strings.ReplaceAll(*uuid, "-", ""))
					if err != nil || len(b) != 16 {
						return opts, usagef("-U %s: not a UUID", *uuid)
					}
					var u [16]byte
					copy(u[:], b)
					opts.UUID = &u
				}
				return opts, nil
			}
			return formatRun{
				tune: func(o *image.Options, c *snapshotCommon) error {
					opts, err := options(c)
					if err != nil {
						return err
					}
					// Files this small are stored inline in their own
					// inodes, where sharing saves nothing: leave them out
					// of the search for identical files (same image,
					// fewer files read twice).
					o.DedupeMin = erofs.DedupeMin(opts)
					return nil
				},
				write: func(ctx context.Context, w io.WriterAt, t *image.Tree, c *snapshotCommon) error {
					opts, err := options(c)
					if err != nil {
						return err
					}
					wr, err := erofs.NewWriter(w, opts)
					if err != nil {
						return usagef("%v", err)
					}
					return wr.Write(ctx, t)
				},
			}
		},
	}
}
