package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/closurefs/closurefs/closure"
	"github.com/closurefs/closurefs/image"
	"github.com/closurefs/closurefs/internal/atomicfile"
	"github.com/closurefs/closurefs/internal/progress"
	"github.com/spf13/pflag"
)

// imageFormat is one output format of `closurefs snapshot`.
type imageFormat struct {
	name string
	// blockSize is the default of -b.
	blockSize int
	// flags adds the format's own flags to fs. It returns what runs once
	// flags are parsed.
	flags func(fs *pflag.FlagSet) formatRun
}

// formatRun is a format's part of one snapshot run.
type formatRun struct {
	// tune, if not nil, checks the format's flags and adjusts the options
	// the tree is built with before the store is read.
	tune func(o *image.Options, c *snapshotCommon) error
	// write writes t to w with the common options c.
	write func(ctx context.Context, w io.WriterAt, t *image.Tree, c *snapshotCommon) error
}

// snapshotCommon holds the flags every image format shares.
type snapshotCommon struct {
	Output        string
	Jobs          int
	Quiet         bool
	AllRoot       bool
	Mtime         int64
	KeepHardLinks bool
	BlockSize     int    // 0: the format's default
	BlockSizeSpec string // as given on the command line
	IncludeReg    bool
	// Progress, when non-nil, is told of input bytes consumed.
	Progress func(n int64)
}

func imageFormats() []*imageFormat {
	return []*imageFormat{
		squashfsFormat(),
		erofsFormat(),
	}
}

func snapshotCommand() *command {
	return &command{
		name:    "snapshot",
		summary: "write a closure (or a directory) as an erofs or squashfs image",
		usage:   "ROOT... -o IMAGE [-t erofs|squashfs] [flags]",
		help: `Writes the closure of the ROOTs (store paths, result links, profiles) as an
image whose root holds the store paths by name, ready to mount at /nix/store.
With --registration, --attrs or --store-paths and no ROOT, the whole
closure the file describes is written. With --dir, writes the tree of one
directory instead. The output appears whole or not at all: it is written
to a temporary file next to IMAGE, fsynced and renamed. The same inputs and
flags give the same bytes.`,
		setup: func(fs *pflag.FlagSet, e *env) func([]string) error {
			c := &snapshotCommon{}
			var format, dir string
			fs.StringVarP(&c.Output, "output", "o", "", "image file to write (required)")
			fs.StringVarP(&format, "type", "t", "erofs", "image format: erofs or squashfs")
			fs.StringVar(&dir, "dir", "", "write this directory's tree instead of a closure")
			sf := sourceFlags{stderr: e.stderr}
			sf.add(fs) // closure sources, --store-dir, -j and -q
			fs.BoolVar(&c.AllRoot, "all-root", true, "make every file owned by root (uid and gid 0)")
			fs.Int64VarP(&c.Mtime, "mtime", "T", 0, "modification time of every entry, in seconds since the epoch")
			fs.BoolVar(&c.KeepHardLinks, "keep-hard-links", false, "keep hard links (default: dereference them; identical files are deduplicated by content instead)")
			hardDeref := fs.Bool("hard-dereference", true, "dereference hard links (the default for store images)")
			fs.StringVarP(&c.BlockSizeSpec, "block-size", "b", "", "block size, e.g. 4096, 128K or 1M (default: the format's)")
			fs.BoolVar(&c.IncludeReg, "include-registration", false, "add the closure's registration at the image root as "+image.RegistrationName)
			writers := make(map[string]formatRun)
			var names []string
			for _, f := range imageFormats() {
				writers[f.name] = f.flags(fs)
				names = append(names, f.name)
			}
			sort.Strings(names)
			return func(args []string) error {
				c.Jobs, c.Quiet = sf.jobs, sf.quiet
				if fs.Changed("hard-dereference") {
					if *hardDeref && c.KeepHardLinks {
						return usagef("give --keep-hard-links or --hard-dereference, not both")
					}
					c.KeepHardLinks = !*hardDeref
				}
				run, ok := writers[format]
				if !ok {
					return usagef("unknown image format %q (known: %s)", format, strings.Join(names, ", "))
				}
				if c.Output == "" {
					return usagef("-o IMAGE is required")
				}
				if c.Jobs < 1 {
					return usagef("--jobs must be at least 1")
				}
				// Another format's option would be silently ignored.
				var wrong error
				fs.Visit(func(f *pflag.Flag) {
					other, _, ok := strings.Cut(f.Usage, ": ")
					if ok && wrong == nil && other != format && writers[other].write != nil {
						wrong = usagef("--%s is for -t %s images; this one is -t %s", f.Name, other, format)
					}
				})
				if wrong != nil {
					return wrong
				}
				if c.BlockSizeSpec != "" {
					n, err := parseSize(c.BlockSizeSpec)
					if err != nil {
						return usagef("-b %s: %v", c.BlockSizeSpec, err)
					}
					c.BlockSize = n
				}
				opts := image.Options{AllRoot: c.AllRoot, Mtime: c.Mtime, KeepHardLinks: c.KeepHardLinks, Jobs: c.Jobs}
				if run.tune != nil {
					if err := run.tune(&opts, c); err != nil {
						return err
					}
				}
				start := time.Now()
				var tree *image.Tree
				var err error
				switch {
				case dir != "" && len(args) > 0:
					return usagef("give either --dir or ROOTs, not both")
				case dir != "":
					if c.IncludeReg {
						return usagef("--include-registration needs a closure, not --dir")
					}
					tree, err = image.FromDir(dir, opts)
				default:
					if len(args) == 0 && !sf.fileSource() {
						return usagef("no ROOT given (or use --dir DIR)")
					}
					tree, err = snapshotClosureTree(fs, &sf, args, c, opts)
				}
				if err != nil {
					return err
				}
				return writeImage(e, format, run.write, tree, c, start)
			}
		},
	}
}

// snapshotClosureTree resolves the roots to a closure with the chosen
// source and builds the tree of its store paths, read from --read-dir (or
// the store dir).
func snapshotClosureTree(fs *pflag.FlagSet, sf *sourceFlags, args []string, c *snapshotCommon, opts image.Options) (*image.Tree, error) {
	src, release, err := sf.source(fs, c.IncludeReg || len(args) > 0)
	if err != nil {
		return nil, err
	}
	defer release()
	roots, err := rootPaths(sf.storeDir, args)
	if err != nil {
		return nil, err
	}
	cl, err := src.Resolve(roots)
	if err != nil {
		return nil, err
	}
	if c.IncludeReg {
		var reg bytes.Buffer
		if err := closure.WriteRegistration(&reg, cl); err != nil {
			return nil, err
		}
		opts.Registration = reg.Bytes()
	}
	readDir := sf.readDir
	if readDir == "" {
		readDir = sf.storeDir
	}
	paths := make([]string, len(cl.Paths))
	for i, pi := range cl.Paths {
		paths[i] = filepath.Join(readDir, filepath.Base(pi.Path))
	}
	return image.FromStorePaths(paths, opts)
}

// writeImage writes tree with write to c.Output through a temporary file,
// removing it on error or on SIGINT/SIGTERM.
func writeImage(e *env, format string, write func(context.Context, io.WriterAt, *image.Tree, *snapshotCommon) error, tree *image.Tree, c *snapshotCommon, start time.Time) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	out, err := atomicfile.Create(c.Output, 0o644)
	if err != nil {
		return err
	}
	defer out.Abort()
	bar := progress.New(e.stderr, "writing "+filepath.Base(c.Output), tree.Stats.Bytes, 0, c.Quiet)
	c.Progress = bar.Add
	if bar == nil {
		c.Progress = nil
	}
	if err := write(ctx, out.File, tree, c); err != nil {
		bar.Finish()
		if ctx.Err() != nil {
			return fmt.Errorf("%s: interrupted, nothing written", c.Output)
		}
		return fmt.Errorf("%s: %w", c.Output, err)
	}
	bar.Finish()
	fi, err := out.Stat()
	if err != nil {
		return err
	}
	if err := out.Commit(); err != nil {
		return err
	}
	if !c.Quiet {
		s := tree.Stats
		ratio := 0.0
		if s.Bytes > 0 {
			ratio = float64(fi.Size()) / float64(s.Bytes)
		}
		fmt.Fprintf(e.stderr, "%s: %s image, %d store paths, %d files, %d dirs, %d symlinks, %s in, %s out (ratio %.3f), %.1fs\n",
			c.Output, format, s.StorePaths, s.Files, s.Dirs, s.Symlinks, humanBytes(s.Bytes), humanBytes(fi.Size()), ratio, time.Since(start).Seconds())
	}
	return nil
}

// parseSize parses a byte count with an optional K, M or G suffix (powers
// of 1024).
func parseSize(s string) (int, error) {
	mult := 1
	t := strings.ToUpper(strings.TrimSuffix(strings.TrimSuffix(s, "iB"), "B"))
	switch {
	case strings.HasSuffix(t, "K"):
		mult, t = 1<<10, t[:len(t)-1]
	case strings.HasSuffix(t, "M"):
		mult, t = 1<<20, t[:len(t)-1]
	case strings.HasSuffix(t, "G"):
		mult, t = 1<<30, t[:len(t)-1]
	}
	var n int
	if _, err := fmt.Sscanf(t, "%d", &n); err != nil || n <= 0 || fmt.Sprint(n) != t {
		return 0, fmt.Errorf("bad size %q", s)
	}
	if n > (1<<31)/mult {
		return 0, fmt.Errorf("size %q too large", s)
	}
	return n * mult, nil
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
